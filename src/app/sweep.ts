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
import type { Barriers, Comp, Fold, Metric, Mode } from '../engine/prune/options';
import { prune } from '../engine/prune/plan';
import { Engine } from '../engine/runtime/engine';
import type { Runtime } from '../engine/runtime/ort';
import { sweepModes, SWEEP_MODES, type SweepPoint, type SweepResult } from './sweep-data';

export * from './sweep-data';

export interface SweepOptions {
  metric: Metric;
  /** the largest n */
  layers: number;
  modes?: readonly Mode[];
  fold?: Fold;
  /** what the compensated modes fold (default 'scalar') and the linear/diag fits' ridge term (default 0) */
  comp?: Comp;
  alpha?: number;
  barriers?: Partial<Barriers>;
  seed?: number;
  reuse?: boolean;
  /** the evaluation text's ids (BOS first) and the perplexity window */
  evaluation: { ids: readonly number[]; window: number };
  /** after each point (its plan so far: the layers removed, original indices in removal order) */
  onPoint?: (mode: Mode, point: SweepPoint) => void;
  signal?: AbortSignal;
  /** called at every calibration window and point; throws to cancel (the worker polls its shared cancel flag here) */
  poll?: () => void;
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
  const modes = sweepModes(o.modes ?? SWEEP_MODES);
  const L = ck.config.numLayers;
  if (!(Number.isInteger(o.layers) && o.layers >= 1 && o.layers < L)) throw new LopperError('bad-option', `a sweep removes 1 to ${L - 1} layers at most (got ${o.layers})`);
  const check = () => {
    o.poll?.();
    if (o.signal?.aborted) throw new LopperError('cancelled', 'the sweep was cancelled');
  };
  const dense = await perplexity(ck, runtime, o);
  const curves: SweepResult['curves'] = {};
  for (const mode of modes) {
    const points: SweepPoint[] = [];
    const measure = async (n: number, model: Checkpoint, removed: number[]) => {
      check();
      points[n - 1] = { n, removed, ppl: (await perplexity(model, runtime, o)).ppl };
      o.onPoint?.(mode, points[n - 1]);
    };
    const opts = {
      metric: o.metric,
      mode,
      fold: o.fold,
      comp: o.comp,
      alpha: o.alpha,
      barriers: o.barriers,
      seed: o.seed,
      reuse: o.reuse,
      signal: o.signal,
      calibration: o.poll ? { onProgress: check } : undefined,
    };
    if (o.metric === 'cl') {
      // the block is chosen for each n: one run per n, measured at its end
      for (let n = 1; n <= o.layers; n++) await prune(ck, runtime, windows, { ...opts, layers: n, onModel: (i, model, removed) => (i === n ? measure(n, model, removed) : undefined) });
    } else {
      await prune(ck, runtime, windows, { ...opts, layers: o.layers, onModel: measure });
    }
    curves[mode] = points;
  }
  return { metric: o.metric, layers: o.layers, eval: { windows: dense.windows, tokens: dense.tokens, window: o.evaluation.window }, dense: dense.ppl, curves };
}
