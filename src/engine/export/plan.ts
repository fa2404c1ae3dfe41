/**
 * A pruning plan as files other tools read: plan.json (what was removed, in original
 * indices and removal order, with each step's scale and scores) and prune-layers.txt, the
 * one-line list llama.cpp's `llama-quantize --prune-layers` takes (comma-separated layer
 * ids; llama.cpp PR #13037, "quantize: Handle user-defined pruning of whole layers").
 */
import type { CompMap } from '../prune/fit';
import type { Plan } from '../prune/plan';

export const PLAN_JSON = 'plan.json';
export const PRUNE_LAYERS_TXT = 'prune-layers.txt';

/**
 * The plan's fields the CLI prints and plan.json holds (everything but the bookkeeping of the
 * run). A step's linear/diag map is summarised (its kind, layer, fit and size), not listed: its
 * D×D values are folded into the exported weights.
 */
export function planJson(p: Plan) {
  return {
    removed: p.removed,
    scales: p.scales,
    fold: p.fold,
    comp: p.comp,
    ...(p.comp === 'linear' || p.comp === 'diag' ? { alpha: p.alpha } : {}),
    untied: p.untied,
    skippedChannels: p.skippedChannels,
    barriers: p.barriers,
    ...(p.budget && { budget: p.budget }),
    steps: p.steps.map(({ map, ...step }) => (map ? { ...step, map: mapSummary(map) } : step)),
  };
}

/** What plan.json says of a fitted map. */
export function mapSummary(m: CompMap) {
  return { kind: m.kind, layer: m.layer, tokens: m.tokens, alpha: m.alpha, residual: m.residual, residualNone: m.residualNone, values: m.T.length };
}

/** `llama-quantize --prune-layers` value: the removed layers' original indices, ascending, comma-separated. */
export function pruneLayersLine(p: Plan): string {
  return [...p.removed].sort((a, b) => a - b).join(',');
}

/** Whether any scale was folded into the weights (then the dense model minus these layers is not this model). */
export function isCompensated(p: Plan): boolean {
  return p.steps.some((s) => s.folded);
}

/** What the prune-layers line reproduces, and what it does not. */
export function pruneLayersNote(p: Plan): string {
  const line = pruneLayersLine(p);
  if (!isCompensated(p)) {
    return (
      `llama-quantize --prune-layers ${line} on the dense model's GGUF removes the same layers (original indices) ` +
      `and gives this pruned model: no compensation was folded into its weights (mode ${p.mode}).`
    );
  }
  return (
    `llama-quantize --prune-layers ${line} removes these layers (original indices) from the dense model's GGUF, ` +
    `but not the compensation: Prune&Comp folded its scales into the remaining weights, so that gives only the ` +
    `uncompensated baseline. For this model, export it as GGUF (lopper export --format gguf, or the app's GGUF ` +
    `download) and run llama-quantize on that file without --prune-layers.`
  );
}

/** plan.json's content: the run's settings, planJson, and the llama.cpp line with its note. */
export function planDocument(p: Plan) {
  return {
    metric: p.metric,
    mode: p.mode,
    layersBefore: p.layersBefore,
    layersAfter: p.layersAfter,
    ...planJson(p),
    llamaCpp: { pruneLayers: pruneLayersLine(p), compensated: isCompensated(p), note: pruneLayersNote(p) },
  };
}

/** plan.json and prune-layers.txt (the line and a newline). */
export function planFiles(p: Plan): { name: string; size: number; chunks: Uint8Array[] }[] {
  const encoder = new TextEncoder();
  const file = (name: string, text: string) => {
    const bytes = encoder.encode(text);
    return { name, size: bytes.length, chunks: [bytes] };
  };
  return [file(PLAN_JSON, JSON.stringify(planDocument(p), null, 2) + '\n'), file(PRUNE_LAYERS_TXT, pruneLayersLine(p) + '\n')];
}
