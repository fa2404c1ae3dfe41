/**
 * The sweep's data (src/app/sweep.ts computes it): its points and result, the modes it draws,
 * the check of a requested list of modes, its cache key, and its CSV. Nothing here loads the
 * engine, so the page imports it (the curve's table and CSV download).
 */
import { LopperError } from '../engine/errors';
import { MODES, type Metric, type Mode } from '../engine/prune/options';
import type { RunIdentity } from './run-identity';

/** The modes a sweep draws by default, in the order a reader compares them. */
export const SWEEP_MODES: readonly Mode[] = ['baseline', 'iterative', 'oneshot-comp', 'prunecomp'];

/** One point of a curve: n layers removed (original indices, in removal order) and the perplexity. */
export interface SweepPoint {
  n: number;
  removed: number[];
  ppl: number;
}

export interface SweepResult {
  metric: Metric;
  layers: number;
  /** the number of evaluation windows and tokens every perplexity is over */
  eval: { windows: number; tokens: number; window: number };
  /** the dense model's perplexity: n = 0 of every curve */
  dense: number;
  /** per mode, n = 1…layers */
  curves: Partial<Record<Mode, SweepPoint[]>>;
}

/** `modes` checked (untrusted: the CLI's --modes, the page's request): known, at least one, no repeats; a bad one is named. */
export function sweepModes(modes: readonly string[]): Mode[] {
  if (modes.length === 0) throw new LopperError('bad-option', `--modes takes some of ${MODES.join(', ')} (got none)`);
  for (const [i, m] of modes.entries()) {
    if (!(MODES as readonly string[]).includes(m)) throw new LopperError('bad-option', `--modes takes some of ${MODES.join(', ')} (got "${m}")`);
    if (modes.indexOf(m) !== i) throw new LopperError('bad-option', `--modes names "${m}" twice`);
  }
  return modes as Mode[];
}

/**
 * The parts of a sweep's cache key (store/cache.ts resultKey): the model, the run's identity
 * without its n and mode (a sweep covers every n, for its own modes), the largest n and the modes.
 */
export function sweepKeyParts(modelKey: string, id: RunIdentity, layers: number, modes: readonly Mode[]): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...id };
  delete rest.layers;
  delete rest.mode;
  return { kind: 'sweep-v1', model: modelKey, ...rest, sweepLayers: layers, modes: [...modes] };
}

/** The layers removed at a point, as one CSV/table cell: original indices in removal order, space-separated ("3 2"). */
export const removedCell = (removed: readonly number[]): string => removed.join(' ');

/**
 * The curves as CSV: n, then per mode its perplexity and the layers removed (n = 0: the
 * dense model, nothing removed). Perplexities printed in full (shortest round-trip form).
 */
export function sweepCsv(r: SweepResult): string {
  const modes = Object.keys(r.curves) as Mode[];
  const rows = [['n', ...modes.flatMap((m) => [m, `${m} removed`])].join(',')];
  for (let n = 0; n <= r.layers; n++) {
    rows.push([String(n), ...modes.flatMap((m) => (n === 0 ? [String(r.dense), ''] : [String(r.curves[m]![n - 1].ppl), removedCell(r.curves[m]![n - 1].removed)]))].join(','));
  }
  return rows.join('\n') + '\n';
}
