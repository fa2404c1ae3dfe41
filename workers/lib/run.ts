/**
 * One pruning run, as `lopper compare` does it (src/cli/main.ts): calibration windows are
 * the first K windows of W tokens of [BOS, …calibration text]; the baseline and the chosen
 * mode prune the dense model on them; perplexity is measured on every whole window of W
 * tokens of [BOS, …evaluation text]. Plus what the pictures need: the per-layer magnitude
 * curve (mean over windows and channels of mean_t |X_k|) of the dense, baseline and
 * compensated models on the calibration windows.
 */
import { LopperError } from '../../src/engine/errors';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { pruneWithBaseline, type Mode, type Plan } from '../../src/engine/prune/plan';
import { foldScalePaper, foldScaleTied, removeLayers, untieEmbeddings } from '../../src/engine/prune/surgery';
import { Engine } from '../../src/engine/runtime/engine';
import type { Runtime } from '../../src/engine/runtime/ort';
import { cutWindows } from '../../src/engine/text/windows';
import type { CurvePoint, PerplexityInfo, RunResult, RunSettings, TextSource } from '../../src/app/protocol';
import type { Tracker } from './progress';

import { checkAbort } from './cancel';

/** A text's identity in result keys: a built-in's id, or a custom text's name and content hash. */
export async function textIdentity(t: TextSource): Promise<string> {
  if (t.kind === 'builtin') return t.id;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(t.text)));
  const hex = [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `custom:${t.name}:${hex}`;
}

/** The parts of a result's cache key: everything that changes the numbers. */
export async function resultParts(modelKey: string, s: RunSettings): Promise<Record<string, string | number>> {
  return {
    kind: 'run-v1',
    model: modelKey,
    backend: s.backend,
    metric: s.metric,
    layers: s.layers,
    mode: s.mode,
    fold: s.fold,
    windows: s.windows,
    window: s.window,
    skipFirst: s.skipFirst ?? 'default',
    skipLast: s.skipLast ?? 'default',
    calib: await textIdentity(s.calib),
    eval: await textIdentity(s.eval),
  };
}

/**
 * Rebuild a pruned model from its plan, exactly as prune() built it (same surgery in the
 * same order, so the same floats): no calibration needed. Used when a result comes from the
 * cache and the person wants to generate with the pruned models.
 */
export function applyPlan(ck: Checkpoint, plan: Plan): Checkpoint {
  if (plan.fold === 'none') return removeLayers(ck, plan.removed);
  const fold = (m: Checkpoint, cut: number, s: number) =>
    plan.fold === 'paper' ? foldScalePaper(m.config.tieWordEmbeddings ? untieEmbeddings(m) : m, cut, s) : foldScaleTied(m, cut, s);
  if (plan.metric === 'cl') {
    const first = plan.steps[0];
    const out = removeLayers(ck, first.block ?? plan.removed);
    return first.folded ? fold(out, first.at, first.scale) : out;
  }
  let m = ck;
  for (const step of plan.steps) {
    m = removeLayers(m, [step.at]);
    if (step.folded) m = fold(m, step.at, step.scale);
  }
  return m;
}

/** Token ids of a text with BOS first. */
export function idsOf(ck: Checkpoint, text: string): number[] {
  return [ck.config.bosTokenId, ...ck.tokenizer.encode(text)];
}

export interface RunInputs {
  ck: Checkpoint;
  modelKey: string;
  modelName: string;
  settings: RunSettings;
  runtime: Runtime;
  calibText: string;
  evalText: string;
  /** names of the texts for the result */
  calibName: string;
  evalName: string;
  key: string;
}

export interface RunOutput {
  result: RunResult;
  baseline: Checkpoint;
  prunecomp: Checkpoint | null;
}

/** The stages of a run with rough relative costs (in windows run through the whole model). */
export function runStages(s: RunSettings, modeLabel: string): { stage: string; label: string; weight: number }[] {
  const K = s.windows;
  const E = 8; // evaluation windows are not known before tokenizing; a fair guess for the estimate
  const compared = s.mode !== 'baseline';
  return [
    { stage: 'text', label: 'reading and tokenizing the texts', weight: 0.2 },
    { stage: 'prune-baseline', label: 'baseline: scoring on the dense model', weight: K },
    ...(compared ? [{ stage: 'prune', label: `${modeLabel}: pruning step by step`, weight: K * s.layers }] : []),
    { stage: 'ppl-dense', label: 'perplexity of the dense model', weight: E },
    { stage: 'ppl-baseline', label: 'perplexity of the baseline', weight: E },
    ...(compared ? [{ stage: 'ppl-prunecomp', label: `perplexity of ${modeLabel}`, weight: E }] : []),
    { stage: 'curves', label: 'magnitude curves', weight: K * (compared ? 3 : 2) },
  ];
}

export async function runPruning(inp: RunInputs, tracker: Tracker, signal: AbortSignal, modeLabel: string): Promise<RunOutput> {
  const t0 = performance.now();
  const { ck, settings: s, runtime } = inp;
  const W = s.window;
  const L = ck.config.numLayers;
  if (!(Number.isInteger(s.layers) && s.layers >= 1 && s.layers < L)) {
    throw new LopperError('bad-option', `cannot remove ${s.layers} of ${L} layers: choose 1 to ${L - 1}`);
  }

  tracker.start('text');
  const calibIds = idsOf(ck, inp.calibText);
  const evalIds = idsOf(ck, inp.evalText);
  const within = (what: string, f: () => number[][]) => {
    try {
      return f();
    } catch (e) {
      if (e instanceof LopperError) throw new LopperError(e.code, `${what} (${e.message})`);
      throw e;
    }
  };
  const windows = within(`the calibration text “${inp.calibName}” is too short`, () => cutWindows(calibIds, W, s.windows));
  const evalWindows = within(`the evaluation text “${inp.evalName}” is too short`, () => cutWindows(evalIds, W)).length;
  checkAbort(signal);

  // Calibration passes report per window; abort there too, so a cancel lands within one window.
  let passes = 0;
  const calibration = {
    onProgress: (done: number, total: number) => {
      checkAbort(signal);
      if (done === total) passes++;
      tracker.report(passes + (done < total ? done / total : 0), expectedPasses);
    },
  };
  let expectedPasses = 1;
  const base = {
    metric: s.metric,
    layers: s.layers,
    fold: s.fold,
    barriers: { skipFirst: s.skipFirst, skipLast: s.skipLast },
    seed: 0,
    signal,
    calibration,
  };

  // One calibration of the dense model serves both: the baseline scores it, the other mode starts from it.
  tracker.start('prune-baseline');
  const { baseline, other: compared } = await pruneWithBaseline(ck, runtime, windows, {
    ...base,
    mode: s.mode as Mode,
    onBaseline: () => {
      checkAbort(signal);
      if (s.mode === 'baseline') return;
      tracker.start('prune');
      passes = 0;
      expectedPasses = s.layers;
    },
    onProgress: (e) => {
      const label =
        e.phase === 'scored'
          ? `${modeLabel}: step ${e.step} of ${e.steps}, removing layer ${e.removed}${e.scale !== 1 ? ` (s = ${e.scale.toFixed(4)})` : ''}`
          : `${modeLabel}: step ${e.step} of ${e.steps} done, layer ${e.removed} removed`;
      tracker.report(Math.min(passes, expectedPasses), expectedPasses, {
        label,
        force: true,
        step: { index: e.step, count: e.steps, removed: e.removed, scale: e.scale },
      });
    },
  });
  checkAbort(signal);

  const ppl = async (stage: string, m: Checkpoint): Promise<PerplexityInfo> => {
    tracker.start(stage);
    const engine = new Engine(m, runtime);
    try {
      const r = await engine.perplexity(evalIds, W, {
        onProgress: (done, total) => {
          checkAbort(signal);
          tracker.report(done, total, { label: `${stageName(stage, modeLabel)}: window ${done} of ${total}` });
        },
      });
      return { ppl: r.ppl, tokens: r.tokens, windows: r.windows };
    } finally {
      await engine.dispose();
    }
  };
  const dense = await ppl('ppl-dense', ck);
  const basePpl = await ppl('ppl-baseline', baseline.checkpoint);
  const compPpl = compared ? await ppl('ppl-prunecomp', compared.checkpoint) : null;

  tracker.start('curves');
  // Curves the pruning runs already measured are reused; only the others take a pass.
  const toCompute = [!baseline.magnitudes.dense, true, !!compared && !compared.magnitudes.pruned].filter(Boolean).length;
  const total = toCompute * windows.length;
  let done = 0;
  const curve = async (m: Checkpoint, removed: readonly number[], known: number[] | null): Promise<CurvePoint[]> => {
    const Lm = m.config.numLayers;
    let values = known;
    if (!values) {
      const engine = new Engine(m, runtime);
      const sums = new Float64Array(Lm + 1);
      try {
        for (const w of windows) {
          const [st] = await engine.stats([w]);
          for (let k = 0; k <= Lm; k++) {
            let a = 0;
            for (const v of st.absMean[k]) a += v;
            sums[k] += a / st.absMean[k].length / windows.length;
          }
          checkAbort(signal);
          tracker.report(++done, total);
        }
      } finally {
        await engine.dispose();
      }
      values = [...sums];
    }
    // boundary k of the pruned model enters its k-th kept layer (ORIGINAL index); k = Lm is the final stream
    const kept = [...Array(L).keys()].filter((i) => !removed.includes(i));
    return values.map((v, k) => ({ layer: k < Lm ? kept[k] : L, value: v }));
  };
  const curves = {
    dense: await curve(ck, [], baseline.magnitudes.dense),
    baseline: await curve(baseline.checkpoint, baseline.plan.removed, null),
    prunecomp: compared ? await curve(compared.checkpoint, compared.plan.removed, compared.magnitudes.pruned) : null,
  };

  const result: RunResult = {
    key: inp.key,
    fromCache: false,
    computedAt: Date.now(),
    millis: performance.now() - t0,
    model: { key: inp.modelKey, name: inp.modelName, numLayers: L },
    settings: {
      backend: s.backend,
      metric: s.metric,
      layers: s.layers,
      mode: s.mode,
      fold: s.fold,
      windows: s.windows,
      window: s.window,
      skipFirst: s.skipFirst,
      skipLast: s.skipLast,
      calib: inp.calibName,
      eval: inp.evalName,
    },
    calibration: { windows: windows.length, window: W, tokens: calibIds.length },
    evaluation: { windows: evalWindows, window: W, tokens: evalIds.length },
    ppl: { dense, baseline: basePpl, prunecomp: compPpl },
    plans: { baseline: baseline.plan, prunecomp: compared?.plan ?? null },
    curves,
  };
  return { result, baseline: baseline.checkpoint, prunecomp: compared?.checkpoint ?? null };
}

function stageName(stage: string, modeLabel: string): string {
  return stage === 'ppl-dense' ? 'dense' : stage === 'ppl-baseline' ? 'baseline' : modeLabel;
}
