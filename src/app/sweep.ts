/**
 * The curve every layer-pruning paper draws: perplexity against the number of layers removed,
 * n = 0…N, for several modes (the baseline, iterative without compensation, one-shot with
 * compensation, Prune&Comp) on one metric. One pruning run per mode to N layers gives every
 * n on the way (PruneOptions.onModel: each mode's n-step plan is the first n steps of its
 * N-step plan), so a sweep costs one run and N + 1 perplexities per mode, not N runs; the cl
 * metric, whose block depends on n, runs once per n. `lopper sweep` prints it.
 */
import { LopperError } from '../engine/errors';
import type { Checkpoint } from '../engine/model/checkpoint';
import { MODES, type Barriers, type Fold, type Metric, type Mode } from '../engine/prune/options';
import { prune } from '../engine/prune/plan';
import { Engine } from '../engine/runtime/engine';
import type { Runtime } from '../engine/runtime/ort';

/** The modes a sweep draws by default, in the order a reader compares them. */
export const SWEEP_MODES: readonly Mode[] = ['baseline', 'iterative', 'oneshot-comp', 'prunecomp'];

export interface SweepOptions {
  metric: Metric;
  /** the largest n */
  layers: number;
  modes?: readonly Mode[];
  fold?: Fold;
  barriers?: Partial<Barriers>;
  seed?: number;
  reuse?: boolean;
  /** the evaluation text's ids (BOS first) and the perplexity window */
  evaluation: { ids: readonly number[]; window: number };
  /** after each point */
  onPoint?: (mode: Mode, point: SweepPoint) => void;
  signal?: AbortSignal;
}

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

async function perplexity(ck: Checkpoint, runtime: Runtime, o: SweepOptions) {
  const engine = new Engine(ck, runtime);
  try {
    return await engine.perplexity(o.evaluation.ids, o.evaluation.window);
  } finally {
    await engine.dispose();
  }
}

/** Perplexity against layers removed, n = 0…o.layers, for each of o.modes (default SWEEP_MODES). */
export async function sweepRun(ck: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], o: SweepOptions): Promise<SweepResult> {
  const modes = o.modes ?? SWEEP_MODES;
  const bad = modes.find((m) => !(MODES as readonly string[]).includes(m));
  if (bad !== undefined || modes.length === 0) throw new LopperError('bad-option', `--modes takes some of ${MODES.join(', ')} (got "${modes.join(',')}")`);
  const dense = await perplexity(ck, runtime, o);
  const curves: SweepResult['curves'] = {};
  for (const mode of modes) {
    const ppls: number[] = [];
    const measure = async (i: number, model: Checkpoint) => {
      if (o.signal?.aborted) throw new LopperError('cancelled', 'the sweep was cancelled');
      ppls[i] = (await perplexity(model, runtime, o)).ppl;
    };
    const opts = { metric: o.metric, mode, fold: o.fold, barriers: o.barriers, seed: o.seed, reuse: o.reuse, signal: o.signal };
    const points: SweepPoint[] = [];
    if (o.metric === 'cl') {
      // the block is chosen for each n: one run per n
      for (let n = 1; n <= o.layers; n++) {
        const { plan } = await prune(ck, runtime, windows, { ...opts, layers: n, onModel: measure });
        points.push({ n, removed: plan.removed, ppl: ppls[n] });
        o.onPoint?.(mode, points[points.length - 1]);
      }
    } else {
      const { plan } = await prune(ck, runtime, windows, {
        ...opts,
        layers: o.layers,
        onModel: async (i, model) => {
          await measure(i, model);
          o.onPoint?.(mode, { n: i, removed: [], ppl: ppls[i] });
        },
      });
      for (let n = 1; n <= o.layers; n++) points.push({ n, removed: plan.removed.slice(0, n), ppl: ppls[n] });
    }
    curves[mode] = points;
  }
  return { metric: o.metric, layers: o.layers, eval: { windows: dense.windows, tokens: dense.tokens, window: o.evaluation.window }, dense: dense.ppl, curves };
}

/** The curves as CSV: n, then one perplexity column per mode (n = 0: the dense model). */
export function sweepCsv(r: SweepResult): string {
  const modes = Object.keys(r.curves) as Mode[];
  const rows = [['n', ...modes].join(',')];
  for (let n = 0; n <= r.layers; n++) rows.push([String(n), ...modes.map((m) => String(n === 0 ? r.dense : r.curves[m]![n - 1].ppl))].join(','));
  return rows.join('\n') + '\n';
}
