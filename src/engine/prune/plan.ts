/**
 * The Prune&Comp loop and its baselines (docs/PRUNE_AND_COMP.md §3):
 *
 *   prunecomp     repeat n times on the current model: score, k = argmin over eligible,
 *                 s = scale(current model, k) BEFORE deletion, delete k, fold s.
 *   baseline      score once on the dense model, remove the n lowest together, no compensation.
 *   iterative     as prunecomp without compensation (ablation).
 *   oneshot-comp  the baseline's list (dense scores, ascending), removed one at a time in
 *                 that order, each with s estimated on the current model and folded (ablation).
 *
 * Compensation (`comp`, in the compensated modes): 'scalar' folds Prune&Comp's s as above;
 * 'linear' / 'diag' fit a least-squares map on the current model before each deletion and fold
 * it into down_proj of the layer before the cut (fit.ts); removing layer 0, which has no layer
 * before it, folds the scalar s instead (the step has no map: the plan says so).
 *
 * Budget (`budget` B, prunecomp / iterative): cut one layer at a time, up to `layers`, and stop
 * before the first cut after which the calibration windows' perplexity would exceed B × the
 * dense model's (plan.budget says where and why it stopped).
 *
 * CL (a contiguous block of n) is one shot in every mode: choose the block on the dense
 * model, and in the compensated modes (prunecomp, oneshot-comp) compute s once between
 * X_i and X_{i+n}, remove the block and fold once; in the others remove it unfolded.
 *
 * Removing the last layer of the current model: s is measured and reported, but nothing is
 * folded (the final RMSNorm cancels any scalar). Tied embeddings with the paper's fold are
 * untied (plan.untied). The input Checkpoint is never modified (surgery is pure); a run
 * cancelled through its AbortSignal (checked between steps) throws LopperError('cancelled').
 */
import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import type { Runtime } from '../runtime/ort';
import { Calibrated, type CalibrationOptions } from './calibration';
import { argminEligible, needsCalibration, rankEligible, resolveBarriers, scoreLayers, type LayerSource } from './metrics';
import type { CompMap } from './fit';
import { compensates, COMPS, isComp, isFold, isMetric, isMode, METRICS, MODES, type Barriers, type Comp, type Fold, type Metric, type Mode } from './options';
import { applyCut } from './surgery';

export interface PruneProgress {
  /** 'scored': a step's scores are in; 'removed': its layer is gone (and folded) */
  phase: 'scored' | 'removed';
  /** 1-based step, of `steps` */
  step: number;
  steps: number;
  /** ORIGINAL index of the layer chosen at this step */
  removed: number;
  scale: number;
}

export interface PruneOptions {
  metric: Metric;
  /** how many layers to remove (n) */
  layers: number;
  mode: Mode;
  /** how compensation is folded (default 'paper'); ignored by the uncompensated modes */
  fold?: Fold;
  /** what the compensated modes fold at each cut (default 'scalar', Prune&Comp) */
  comp?: Comp;
  /** the ridge term α of the linear/diag fits (default 0, as ReplaceMe's code) */
  alpha?: number;
  /** stop before the first cut whose calibration perplexity exceeds budget × the dense model's (prunecomp, iterative); `layers` is then the most to remove */
  budget?: number;
  /** reuse calibration statistics across cuts (default true); false recomputes everything */
  reuse?: boolean;
  /** override the metric's eligibility barriers */
  barriers?: Partial<Barriers>;
  /** random metric's seed (default 0) */
  seed?: number;
  /** passed to Calibrated (batch, cache size; reuse is taken from `reuse`) */
  calibration?: Omit<CalibrationOptions, 'reuse'>;
  onProgress?: (e: PruneProgress) => void;
  /**
   * Each model on the way, in order: after the i-th removal, the model with those i layers
   * removed — what prune with `layers: i` returns, since every mode's i-step plan is the first
   * i steps of its n-step plan (except the cl metric, whose block depends on n: there only i = n).
   * Awaited before the next step (a sweep measures each: app/sweep.ts). `removed`: the
   * original indices removed so far, in removal order (that i-step plan's `removed`).
   */
  onModel?: (i: number, model: Checkpoint, removed: number[]) => Promise<void> | void;
  signal?: AbortSignal;
}

export interface PlanStep {
  /** score of every layer of the model at this step, by current index (cl: by block start); null = not eligible */
  scores: (number | null)[];
  /** ORIGINAL index of the layer removed at this step */
  removed: number;
  /** its index in the model the step ran on */
  at: number;
  /** the compensation scale of this step (1 when uncompensated; measured but unfolded for the last layer) */
  scale: number;
  /** whether the scale was folded into the weights */
  folded: boolean;
  /** channels the scale's near-zero guard left out */
  skippedChannels: number;
  /** cl: the whole block (original indices); it is folded once, at its first step */
  block?: number[];
  /** the linear/diag map folded at this step instead of a scale (then scale is 1) */
  map?: CompMap;
}

/** Where a budgeted run stopped, and why. */
export interface BudgetOutcome {
  /** B: the most the calibration perplexity may grow, as a factor of the dense model's */
  factor: number;
  densePpl: number;
  /** the calibration perplexity after each kept step */
  ppls: number[];
  /** 'budget': the next cut would have gone over; 'layers': `layers` cuts were made within it */
  stopped: 'budget' | 'layers';
  /** the cut that would have gone over (original index) and the perplexity it gave */
  rejected: { removed: number; ppl: number } | null;
}

export interface Plan {
  metric: Metric;
  mode: Mode;
  /** the fold used ('none' for the uncompensated modes) */
  fold: Fold | 'none';
  /** the compensation ('none' for the uncompensated modes) */
  comp: Comp | 'none';
  /** the ridge term of the linear/diag fits */
  alpha: number;
  /** a budgeted run's outcome (null without a budget) */
  budget: BudgetOutcome | null;
  /** the eligibility barriers used */
  barriers: Barriers;
  /** ORIGINAL indices, in removal order */
  removed: number[];
  /** steps[i].scale */
  scales: number[];
  steps: PlanStep[];
  /** the input had tied embeddings and the paper fold untied them */
  untied: boolean;
  /** Σ over steps of skippedChannels */
  skippedChannels: number;
  layersBefore: number;
  layersAfter: number;
}

export interface PruneResult {
  plan: Plan;
  checkpoint: Checkpoint;
  /**
   * Magnitude curves (Calibrated.magnitudes) the run got for free: of the dense model when it
   * calibrated, and of the returned model when its last state was calibrated (iterative modes).
   */
  magnitudes: { dense: number[] | null; pruned: number[] | null };
}

const cancelled = () => new LopperError('cancelled', 'pruning was cancelled');

/** Check everything that can be checked before any work (a LopperError names the problem). */
export function checkOptions(ck: Checkpoint, windows: readonly (readonly number[])[], opts: PruneOptions): Barriers {
  const L = ck.config.numLayers;
  const n = opts.layers;
  if (!isMetric(opts.metric)) throw new LopperError('bad-option', `unknown metric "${String(opts.metric)}" (one of ${METRICS.join(', ')})`);
  if (!isMode(opts.mode)) throw new LopperError('bad-option', `unknown mode "${String(opts.mode)}" (one of ${MODES.join(', ')})`);
  if (opts.fold !== undefined && !isFold(opts.fold)) throw new LopperError('bad-option', `fold must be paper or tied (got "${String(opts.fold)}")`);
  if (opts.comp !== undefined && !isComp(opts.comp)) throw new LopperError('bad-option', `unknown compensation "${String(opts.comp)}" (one of ${COMPS.join(', ')})`);
  if (opts.alpha !== undefined && !(Number.isFinite(opts.alpha) && opts.alpha >= 0)) throw new LopperError('bad-option', `the ridge term α must be a finite number ≥ 0 (got ${opts.alpha})`);
  if (opts.budget !== undefined) {
    if (!(Number.isFinite(opts.budget) && opts.budget >= 1)) throw new LopperError('bad-option', `the perplexity budget must be a factor ≥ 1 of the dense model's (got ${opts.budget})`);
    if (opts.mode !== 'prunecomp' && opts.mode !== 'iterative') throw new LopperError('bad-option', `a perplexity budget cuts one layer at a time: use mode prunecomp or iterative (got ${opts.mode})`);
    if (opts.metric === 'cl') throw new LopperError('bad-option', 'a perplexity budget cuts one layer at a time: the cl metric removes one block in one shot');
  }
  if (!Number.isInteger(n) || n < 1) throw new LopperError('bad-option', `the number of layers to remove must be a whole number ≥ 1 (got ${n})`);
  if (n >= L) throw new LopperError('bad-option', `cannot remove ${n} of ${L} layers: at least one must remain`);
  if (windows.length === 0) throw new LopperError('bad-input', 'calibration needs at least one window of text');
  if (windows.some((w) => w.length < 2 || w.length !== windows[0].length)) throw new LopperError('bad-input', 'calibration windows must all have the same length, at least 2 tokens');
  const barriers = resolveBarriers(opts.metric, opts.barriers);
  // Single-layer metrics need an eligible layer at every step, the last one on L−n+1 layers;
  // cl needs a block start in [skipFirst, L−n−skipLast]: both come down to L − skipFirst − skipLast ≥ n.
  const room = L - barriers.skipFirst - barriers.skipLast;
  if (room < n) {
    throw new LopperError(
      'bad-option',
      `metric ${opts.metric} cannot remove ${n} of ${L} layers: its barriers (skip the first ${barriers.skipFirst} and the last ${barriers.skipLast} layers) leave ${Math.max(0, room)} eligible; lower them (--skip-first/--skip-last)`,
    );
  }
  return barriers;
}

/** What a mode needs of the dense model: statistics (compensation, calibrated metrics) or only the model. */
const needsCalibrated = (opts: PruneOptions) => compensates(opts.mode) || needsCalibration(opts.metric) || opts.budget !== undefined;

async function denseState(ck: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], opts: PruneOptions, calibrated: boolean): Promise<LayerSource> {
  if (opts.signal?.aborted) throw cancelled();
  return calibrated ? Calibrated.create(ck, runtime, windows, { ...opts.calibration, reuse: opts.reuse, nll: opts.budget !== undefined }) : { checkpoint: ck, windows };
}

/**
 * Prune `opts.layers` decoder layers of `ck` (see the file comment for the modes), scoring
 * on `windows` (token ids, BOS first, equal lengths). Returns the plan and the new model.
 */
export async function prune(ck: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], opts: PruneOptions): Promise<PruneResult> {
  const barriers = checkOptions(ck, windows, opts);
  const start = await denseState(ck, runtime, windows, opts, needsCalibrated(opts));
  return pruneFrom(ck, start, runtime, windows, opts, barriers, true);
}

/**
 * The baseline and `opts.mode` side by side on ONE calibration of the dense model: the
 * baseline scores the dense statistics that the other mode's first step starts from, so the
 * dense model runs through the calibration windows once, not twice. The plans and models
 * equal two prune() calls'. `other` is null when opts.mode is 'baseline'.
 */
export async function pruneWithBaseline(
  ck: Checkpoint,
  runtime: Runtime,
  windows: readonly (readonly number[])[],
  opts: PruneOptions & { onBaseline?: (baseline: PruneResult) => void },
): Promise<{ baseline: PruneResult; other: PruneResult | null }> {
  const barriers = checkOptions(ck, windows, opts);
  const start = await denseState(ck, runtime, windows, opts, needsCalibrated(opts));
  let baseline: PruneResult;
  try {
    baseline = await pruneFrom(ck, start, runtime, windows, { ...opts, mode: 'baseline', onProgress: undefined }, barriers, false);
  } catch (e) {
    if (start instanceof Calibrated) await start.dispose();
    throw e;
  }
  opts.onBaseline?.(baseline);
  if (opts.mode === 'baseline') {
    if (start instanceof Calibrated) await start.dispose();
    return { baseline, other: null };
  }
  return { baseline, other: await pruneFrom(ck, start, runtime, windows, opts, barriers, true) };
}

/**
 * Several runs on ONE calibration of the dense model (app/lab.ts): each from that shared
 * start (its removals keep it usable), so their plans and models equal separate prune()
 * calls'. The dense model is calibrated once when any run needs it (with runs[0]'s
 * calibration options; the runs must agree on `reuse` and on whether they have a budget),
 * and released at the end. `onResult` gets each run's result, or the LopperError that made
 * it fail (its options, or its work: a map that cannot be fitted); a cancel ends them all.
 * Returns how many runs started from the shared calibration.
 */
export async function pruneRuns(
  ck: Checkpoint,
  runtime: Runtime,
  windows: readonly (readonly number[])[],
  runs: readonly PruneOptions[],
  onResult: (i: number, r: PruneResult | LopperError) => Promise<void> | void,
): Promise<{ calibrated: number }> {
  if (runs.some((r) => (r.reuse ?? true) !== (runs[0].reuse ?? true) || (r.budget === undefined) !== (runs[0].budget === undefined))) {
    throw new LopperError('bad-option', 'runs on one calibration must agree on reuse and on having a budget');
  }
  const checked = runs.map((r) => {
    try {
      return checkOptions(ck, windows, r);
    } catch (e) {
      if (e instanceof LopperError) return e;
      throw e;
    }
  });
  const calibrated = runs.filter((r, i) => !(checked[i] instanceof LopperError) && needsCalibrated(r));
  const shared = calibrated.length > 0 ? await denseState(ck, runtime, windows, calibrated[0], true) : null;
  try {
    for (const [i, r] of runs.entries()) {
      const barriers = checked[i];
      if (barriers instanceof LopperError) {
        await onResult(i, barriers);
        continue;
      }
      if (r.signal?.aborted) throw cancelled();
      let result: PruneResult | LopperError;
      try {
        result = await pruneFrom(ck, needsCalibrated(r) ? shared! : { checkpoint: ck, windows }, runtime, windows, r, barriers, false);
      } catch (e) {
        if (!(e instanceof LopperError) || e.code === 'cancelled') throw e;
        result = e;
      }
      await onResult(i, result);
    }
  } finally {
    if (shared instanceof Calibrated) await shared.dispose();
  }
  return { calibrated: calibrated.length };
}

/**
 * The modes from a dense state. Every state it derives is released; `start` too when
 * `ownsStart`; otherwise `start` stays usable (another run can start from it).
 */
async function pruneFrom(
  ck: Checkpoint,
  start: LayerSource,
  runtime: Runtime,
  windows: readonly (readonly number[])[],
  opts: PruneOptions,
  barriers: Barriers,
  ownsStart: boolean,
): Promise<PruneResult> {
  const { metric, mode, layers: n, signal } = opts;
  const L = ck.config.numLayers;
  const compensate = compensates(mode);
  const fold: Fold | 'none' = compensate ? (opts.fold ?? 'paper') : 'none';
  const comp: Comp | 'none' = compensate ? (opts.comp ?? 'scalar') : 'none';
  const alpha = opts.alpha ?? 0;
  let budget: BudgetOutcome | null = null;
  const steps: PlanStep[] = [];
  const removedSoFar = () => steps.map((st) => st.removed);
  const original = [...Array(L).keys()];
  const scoreOpts = { barriers, seed: opts.seed, runtime };
  const check = () => {
    if (signal?.aborted) throw cancelled();
  };
  const progress = (phase: PruneProgress['phase'], step: PlanStep) =>
    opts.onProgress?.({ phase, step: steps.length + (phase === 'scored' ? 1 : 0), steps: n, removed: step.removed, scale: step.scale });

  let state = start;
  const magnitudes: PruneResult['magnitudes'] = { dense: state instanceof Calibrated ? state.magnitudes() : null, pruned: null };
  let out: Checkpoint;
  try {
    check();
    /** s for removing current layers k..j−1 of a calibrated state */
    const scaleOf = (k: number, j = k + 1) => (state as Calibrated).scale(k, j);

    if (metric === 'cl') {
      // one shot: the block on the dense model
      const r = await scoreLayers(metric, state, { ...scoreOpts, block: n });
      check();
      const i = argminEligible(r);
      const block = original.slice(i, i + n);
      let s = 1;
      let skipped = 0;
      // one map for the whole span (ReplaceMe's one-shot form), or the scalar when the block starts at layer 0
      const map = comp !== 'none' && comp !== 'scalar' && i >= 1 ? await (state as Calibrated).fitMap(i, i + n, comp, alpha) : undefined;
      check();
      const folded = compensate && (map !== undefined || i + n < L);
      if (compensate && !map) ({ s, skippedChannels: skipped } = scaleOf(i, i + n));
      out = applyCut(ck, { layers: block, fold: folded && !map ? fold : 'none', scale: s, map });
      block.forEach((orig, b) =>
        steps.push({
          scores: r.scores,
          removed: orig,
          at: i,
          scale: b === 0 ? s : 1,
          folded: b === 0 && folded,
          skippedChannels: b === 0 ? skipped : 0,
          block,
          ...(b === 0 && map && { map }),
        }),
      );
      progress('removed', steps[steps.length - 1]);
      await opts.onModel?.(n, out, removedSoFar());
    } else if (mode === 'baseline' || mode === 'oneshot-comp') {
      const r = await scoreLayers(metric, state, scoreOpts);
      check();
      const list = rankEligible(r).slice(0, n);
      if (mode === 'baseline') {
        out = applyCut(ck, { layers: list, fold: 'none', scale: 1 });
        for (const k of list) {
          steps.push({ scores: r.scores, removed: k, at: k, scale: 1, folded: false, skippedChannels: 0 });
          progress('removed', steps[steps.length - 1]);
          if (opts.onModel) {
            check();
            const i = steps.length;
            await opts.onModel(i, i === n ? out : applyCut(ck, { layers: list.slice(0, i), fold: 'none', scale: 1 }), removedSoFar());
          }
        }
      } else {
        for (const orig of list) {
          check();
          const cal = state as Calibrated;
          const k = original.indexOf(orig);
          const step = await removeOne(cal, k, fold, comp, alpha, r.scores, orig, undefined, cal === start && !ownsStart);
          steps.push(step.step);
          state = step.next;
          original.splice(k, 1);
          progress('removed', step.step);
          await opts.onModel?.(steps.length, state.checkpoint, removedSoFar());
        }
        out = state.checkpoint;
      }
    } else {
      // prunecomp / iterative: the metric on the current model at every step
      const densePpl = opts.budget !== undefined ? (state as Calibrated).perplexity() : 0;
      if (opts.budget !== undefined) budget = { factor: opts.budget, densePpl, ppls: [], stopped: 'layers', rejected: null };
      for (let i = 0; i < n; i++) {
        check();
        const r = await scoreLayers(metric, state, { ...scoreOpts, original });
        check();
        const k = argminEligible(r);
        if (state instanceof Calibrated && budget) {
          // keep the current state until the cut is known to stay within the budget
          const step = await removeOne(state, k, fold, comp, alpha, r.scores, original[k], (st) => progress('scored', st), true);
          const ppl = step.next.perplexity();
          if (ppl > budget.factor * budget.densePpl) {
            await step.next.dispose();
            budget.stopped = 'budget';
            budget.rejected = { removed: original[k], ppl };
            break;
          }
          budget.ppls.push(ppl);
          if (state !== start || ownsStart) await state.dispose();
          steps.push(step.step);
          state = step.next;
        } else if (state instanceof Calibrated) {
          const step = await removeOne(state, k, fold, comp, alpha, r.scores, original[k], (st) => progress('scored', st), state === start && !ownsStart);
          steps.push(step.step);
          state = step.next;
        } else {
          const st: PlanStep = { scores: r.scores, removed: original[k], at: k, scale: 1, folded: false, skippedChannels: 0 };
          progress('scored', st);
          steps.push(st);
          state = { checkpoint: applyCut(state.checkpoint, { layers: [k], fold: 'none', scale: 1 }), windows };
        }
        original.splice(k, 1);
        progress('removed', steps[steps.length - 1]);
        await opts.onModel?.(steps.length, state.checkpoint, removedSoFar());
      }
      out = state.checkpoint;
    }
    if (state instanceof Calibrated && state.checkpoint === out) magnitudes.pruned = state.magnitudes();
  } finally {
    if (state instanceof Calibrated && (state !== start || ownsStart)) await state.dispose();
  }

  const plan: Plan = {
    metric,
    mode,
    fold,
    comp,
    alpha,
    budget,
    barriers,
    removed: steps.map((s) => s.removed),
    scales: steps.map((s) => s.scale),
    steps,
    untied: ck.config.tieWordEmbeddings && !out.config.tieWordEmbeddings,
    skippedChannels: steps.reduce((a, s) => a + s.skippedChannels, 0),
    layersBefore: L,
    layersAfter: out.config.numLayers,
  };
  return { plan, checkpoint: out, magnitudes };
}

/**
 * One removal on a calibrated state, unless `fold` is 'none': a map fitted on it (comp linear
 * or diag, k ≥ 1) or s from its statistics, both before deletion; then delete layer k and fold
 * (a scalar folds nothing at the last layer; a map does). `keep`: `cal` stays usable.
 */
async function removeOne(
  cal: Calibrated,
  k: number,
  fold: Fold | 'none',
  comp: Comp | 'none',
  alpha: number,
  scores: (number | null)[],
  orig: number,
  onScored?: (st: PlanStep) => void,
  keep = false,
): Promise<{ step: PlanStep; next: Calibrated }> {
  if (fold !== 'none' && comp !== 'scalar' && comp !== 'none' && k >= 1) {
    const map = await cal.fitMap(k, k + 1, comp, alpha);
    const step: PlanStep = { scores, removed: orig, at: k, scale: 1, folded: true, skippedChannels: 0, map };
    onScored?.(step);
    return { step, next: await cal.removeLayer(k, 'none', 1, { map, keep }) };
  }
  let scale = 1;
  let skippedChannels = 0;
  if (fold !== 'none') ({ s: scale, skippedChannels } = cal.scale(k));
  const folded = fold !== 'none' && k < cal.numLayers - 1;
  const step: PlanStep = { scores, removed: orig, at: k, scale, folded, skippedChannels };
  onScored?.(step);
  const next = await cal.removeLayer(k, folded ? fold : 'none', scale, { keep });
  return { step, next };
}
