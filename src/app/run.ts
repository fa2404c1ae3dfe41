/**
 * One pruning run, the same for every front-end (`lopper compare`, the app's worker,
 * bench/eval.ts): the baseline and the chosen mode prune the dense model on one calibration
 * of it (pruneWithBaseline), then — where asked — the perplexity of each model on the
 * evaluation text, and the per-layer magnitude curve (mean over windows, tokens and
 * channels of |X_k|) of each model on the calibration windows, reusing the curves pruning
 * already measured.
 *
 * Texts (tokenizeText, calibrationWindows): [BOS, …text] cut into windows of W tokens; the
 * calibration keeps the first K, perplexity uses every whole window (text/windows.ts).
 */
import { LopperError } from '../engine/errors';
import type { Checkpoint } from '../engine/model/checkpoint';
import type { Barriers, Comp, Fold, Metric, Mode } from '../engine/prune/options';
import { pruneWithBaseline, type Plan } from '../engine/prune/plan';
import { Engine, type WindowStats } from '../engine/runtime/engine';
import type { Runtime } from '../engine/runtime/ort';
import { cutWindows } from '../engine/text/windows';
import type { Execution } from '../engine/runtime/engine';
import { MODE_LABEL, type CurvePoint, type PerplexityInfo, type Progress, type RunResult } from './protocol';
import type { RunIdentity } from './run-identity';

/** A text's token ids with BOS first. */
export function tokenizeText(ck: Checkpoint, text: string): number[] {
  return [ck.config.bosTokenId, ...ck.tokenizer.encode(text)];
}

/** Windows of W tokens of `ids` (the first K when given); a text too short names itself (`file`) and its role. */
export function textWindows(ids: readonly number[], W: number, K: number | undefined, role: string, file: string): number[][] {
  try {
    return cutWindows(ids, W, K);
  } catch (e) {
    if (e instanceof LopperError) throw new LopperError(e.code, `${role}: ${e.message}`, file);
    throw e;
  }
}

/** The stages of a run, in order (progress reports name them). */
export type RunStage = 'prune-baseline' | 'prune' | 'ppl-dense' | 'ppl-baseline' | 'ppl-prunecomp' | 'curves';

/** Where a run reports progress (the worker's Tracker; nothing in the CLI). */
export interface RunProgress {
  start(stage: RunStage): void;
  report(done: number, total: number, extra?: { label?: string; force?: boolean; step?: Progress['step'] }): void;
}

export interface CompareRunOptions {
  metric: Metric;
  /** layers to remove (n) */
  layers: number;
  /** the method compared with the baseline ('baseline': the baseline alone) */
  mode: Mode;
  fold: Fold;
  /** what the compensated mode folds (default 'scalar') and the linear/diag fits' ridge term (default 0) */
  comp?: Comp;
  alpha?: number;
  barriers?: Partial<Barriers>;
  /** the random metric's seed (default 0) */
  seed?: number;
  /** reuse statistics across cuts (default true) */
  reuse?: boolean;
  /** the evaluation text's ids (BOS first) and the perplexity window; absent: no perplexities */
  evaluation?: { ids: readonly number[]; window: number };
  /** the magnitude curves (default true) */
  curves?: boolean;
  signal?: AbortSignal;
  /** called at every progress point; throws to cancel (the worker polls its shared cancel flag here) */
  poll?: () => void;
  progress?: RunProgress;
}

export interface CompareRunOutput {
  plans: { baseline: Plan; compared: Plan | null };
  models: { baseline: Checkpoint; compared: Checkpoint | null };
  /** null without `evaluation` */
  ppl: { dense: PerplexityInfo; baseline: PerplexityInfo; compared: PerplexityInfo | null } | null;
  /** null with `curves: false` */
  curves: { dense: CurvePoint[]; baseline: CurvePoint[]; compared: CurvePoint[] | null } | null;
  /** passes over the calibration windows the curves took (the others came from pruning) */
  curvePasses: number;
  /** what the first calibration pass (the baseline's scoring of the dense model) and the dense model's perplexity took */
  timings: RunTimings;
}

/** Tokens through the dense model and the seconds they took, for two passes of a run (null: not run). */
export interface RunTimings {
  calibration: { tokens: number; seconds: number };
  perplexity: { tokens: number; seconds: number } | null;
}

/** The stages of a run with rough relative costs (in windows run through the whole model), for a progress tracker. */
export function compareRunStages(o: Pick<CompareRunOptions, 'mode' | 'layers' | 'evaluation' | 'curves'>, calibWindows: number): { stage: RunStage; label: string; weight: number }[] {
  const K = calibWindows;
  const E = 8; // evaluation windows are not known before tokenizing; a fair guess for the estimate
  const compared = o.mode !== 'baseline';
  const label = MODE_LABEL[o.mode];
  const ppl = o.evaluation !== undefined;
  const stages: { stage: RunStage; label: string; weight: number }[] = [
    { stage: 'prune-baseline', label: 'baseline: scoring on the dense model', weight: K },
    ...(compared ? [{ stage: 'prune' as const, label: `${label}: pruning step by step`, weight: K * o.layers }] : []),
    ...(ppl ? [{ stage: 'ppl-dense' as const, label: 'perplexity of the dense model', weight: E }, { stage: 'ppl-baseline' as const, label: 'perplexity of the baseline', weight: E }] : []),
    ...(ppl && compared ? [{ stage: 'ppl-prunecomp' as const, label: `perplexity of ${label}`, weight: E }] : []),
    ...(o.curves !== false ? [{ stage: 'curves' as const, label: 'magnitude curves', weight: K * (compared ? 3 : 2) }] : []),
  ];
  return stages;
}

/** Prune `ck` with the baseline and `o.mode` on `windows` (token ids, BOS first, equal lengths), then measure. */
export async function compareRun(ck: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], o: CompareRunOptions): Promise<CompareRunOutput> {
  const L = ck.config.numLayers;
  const label = MODE_LABEL[o.mode];
  const poll = () => {
    o.poll?.();
    if (o.signal?.aborted) throw new LopperError('cancelled', 'the run was cancelled');
  };
  const progress = o.progress;

  // Calibration passes report per window (layer-streamed: per layer, as a fraction of the
  // windows); poll there too, so a cancel lands within one window (one layer).
  let passes = 0;
  let expectedPasses = 1;
  const t0 = performance.now();
  let firstPass = NaN; // seconds of the first calibration pass: every window through the dense model
  const calibration = {
    onProgress: (done: number, total: number) => {
      poll();
      if (done === total) {
        passes++;
        if (Number.isNaN(firstPass)) firstPass = (performance.now() - t0) / 1000;
      }
      progress?.report(passes + (done < total ? done / total : 0), expectedPasses);
    },
  };

  progress?.start('prune-baseline');
  const { baseline, other: compared } = await pruneWithBaseline(ck, runtime, windows, {
    metric: o.metric,
    layers: o.layers,
    mode: o.mode,
    fold: o.fold,
    comp: o.comp,
    alpha: o.alpha,
    barriers: o.barriers,
    seed: o.seed ?? 0,
    reuse: o.reuse,
    signal: o.signal,
    calibration,
    onBaseline: () => {
      poll();
      if (o.mode === 'baseline') return;
      progress?.start('prune');
      passes = 0;
      expectedPasses = o.layers;
    },
    onProgress: (e) => {
      progress?.report(Math.min(passes, expectedPasses), expectedPasses, {
        label:
          e.phase === 'scored'
            ? `${label}: step ${e.step} of ${e.steps}, removing layer ${e.removed}${e.scale !== 1 ? ` (s = ${e.scale.toFixed(4)})` : ''}`
            : `${label}: step ${e.step} of ${e.steps} done, layer ${e.removed} removed`,
        force: true,
        step: { index: e.step, count: e.steps, removed: e.removed, scale: e.scale },
      });
    },
  });
  poll();

  let ppl: CompareRunOutput['ppl'] = null;
  let perplexityTiming: RunTimings['perplexity'] = null;
  if (o.evaluation) {
    const { ids, window } = o.evaluation;
    const perplexity = async (stage: RunStage, name: string, m: Checkpoint): Promise<PerplexityInfo> => {
      progress?.start(stage);
      const engine = new Engine(m, runtime);
      const start = performance.now();
      try {
        const r = await engine.perplexity(ids, window, {
          onProgress: (done, total) => {
            poll();
            progress?.report(done, total, { label: `${name}: window ${Math.min(total, Math.floor(done) + 1)} of ${total}` });
          },
        });
        if (m === ck) perplexityTiming = { tokens: r.windows * window, seconds: (performance.now() - start) / 1000 };
        return { ppl: r.ppl, tokens: r.tokens, windows: r.windows };
      } finally {
        await engine.dispose();
      }
    };
    ppl = {
      dense: await perplexity('ppl-dense', 'dense', ck),
      baseline: await perplexity('ppl-baseline', 'baseline', baseline.checkpoint),
      compared: compared ? await perplexity('ppl-prunecomp', label, compared.checkpoint) : null,
    };
  }

  let curves: CompareRunOutput['curves'] = null;
  let curvePasses = 0;
  if (o.curves !== false) {
    progress?.start('curves');
    // Curves the pruning runs already measured are reused; only the others take a pass.
    const toCompute = [!baseline.magnitudes.dense, true, !!compared && !compared.magnitudes.pruned].filter(Boolean).length;
    const total = toCompute * windows.length;
    let done = 0;
    const curve = async (m: Checkpoint, removed: readonly number[], known: number[] | null): Promise<CurvePoint[]> => {
      const values = known ?? (await magnitudeCurve(m, runtime, windows, () => (poll(), progress?.report(++done, total))));
      if (!known) curvePasses++;
      return curvePoints(values, L, removed);
    };
    curves = {
      dense: await curve(ck, [], baseline.magnitudes.dense),
      baseline: await curve(baseline.checkpoint, baseline.plan.removed, null),
      compared: compared ? await curve(compared.checkpoint, compared.plan.removed, compared.magnitudes.pruned) : null,
    };
  }

  return {
    plans: { baseline: baseline.plan, compared: compared?.plan ?? null },
    models: { baseline: baseline.checkpoint, compared: compared?.checkpoint ?? null },
    ppl,
    curves,
    curvePasses,
    timings: { calibration: { tokens: windows.length * windows[0].length, seconds: firstPass }, perplexity: perplexityTiming },
  };
}

/**
 * A magnitude curve's points in ORIGINAL numbering: value k of a model that has lost `removed`
 * (original indices) of the dense model's L layers is the stream entering its k-th kept layer,
 * and its last value (k = L − removed) is the final stream, at L.
 */
export function curvePoints(values: readonly number[], L: number, removed: readonly number[]): CurvePoint[] {
  const Lm = values.length - 1;
  const kept = [...Array(L).keys()].filter((i) => !removed.includes(i));
  return values.map((v, k) => ({ layer: k < Lm ? kept[k] : L, value: v }));
}

/** Add one window's mean over channels of mean_t |X_k| (k = 0..L), divided by the number of windows `n`, to sums[k]. */
export function addToCurve(sums: Float64Array, st: WindowStats, n: number): void {
  for (let k = 0; k < sums.length; k++) {
    let a = 0;
    for (const v of st.absMean[k]) a += v;
    sums[k] += a / st.absMean[k].length / n;
  }
}

/** What a RunResult says besides compareRun's output. */
export interface RunFacts {
  /** the result cache's key (store/cache.ts resultKey of runKeyParts) */
  key: string;
  model: RunResult['model'];
  settings: RunIdentity;
  /** the texts' windows and tokens (the whole text's, BOS included) */
  calibration: RunResult['calibration'];
  evaluation: RunResult['evaluation'];
  computedAt: number;
  millis: number;
  /** how fast this device ran the run; absent: no timings (a precomputed example's are another machine's) */
  speed?: { execution: Execution; flopsPerSecond: number };
}

/**
 * The app's RunResult of a compareRun made with `evaluation` and curves — one home for the
 * worker (workers/lopper.worker.ts) and the precomputed example (scripts/example.ts).
 */
export function runResult(out: CompareRunOutput, facts: RunFacts): RunResult {
  if (!out.ppl || !out.curves) throw new Error('a RunResult needs the perplexities and the curves: run compareRun with `evaluation` and curves');
  const { speed, ...rest } = facts;
  return {
    ...rest,
    fromCache: false,
    ppl: { dense: out.ppl.dense, baseline: out.ppl.baseline, prunecomp: out.ppl.compared },
    plans: { baseline: out.plans.baseline, prunecomp: out.plans.compared },
    curves: { dense: out.curves.dense, baseline: out.curves.baseline, prunecomp: out.curves.compared },
    ...(speed ? { timings: { ...out.timings, ...speed } } : {}),
  };
}

/** Mean |X_k| over windows, tokens and channels, k = 0..L (one pass; `onWindow` after each window). */
async function magnitudeCurve(m: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], onWindow: () => void): Promise<number[]> {
  const Lm = m.config.numLayers;
  const engine = new Engine(m, runtime);
  const sums = new Float64Array(Lm + 1);
  try {
    for (const w of windows) {
      const [st] = await engine.stats([w]);
      addToCurve(sums, st, windows.length);
      onWindow();
    }
  } finally {
    await engine.dispose();
  }
  return [...sums];
}
