/**
 * The compensation lab: let the model choose. Every metric × every compensation (none, i.e.
 * iterative; Prune&Comp's scalar; ReplaceMe's linear and diagonal maps), n = 1…N, each model
 * on the way scored by its perplexity on HELD-OUT calibration windows (never fitted or scored
 * on), and the best combination per n is the lowest of those. All runs share ONE calibration
 * of the dense model (pruneRuns), and each run to N gives every n on the way (onModel; the cl
 * metric, whose block depends on n, runs once per n from the same start). `lopper lab` prints it.
 */
import { averageAccuracy } from '../engine/eval/accuracy';
import { evaluate, type TaskItems } from '../engine/eval/evaluate';
import { LopperError } from '../engine/errors';
import type { Checkpoint } from '../engine/model/checkpoint';
import { compWithMode, METRICS, type Barriers, type CompChoice, type Fold, type Metric } from '../engine/prune/options';
import { checkOptions, pruneRuns, type PruneOptions } from '../engine/prune/plan';
import { Engine } from '../engine/runtime/engine';
import type { Runtime } from '../engine/runtime/ort';
import { bestPerN, LAB_COMPS, labComps, labMetrics, type LabResult, type LabRow } from './lab-data';

export * from './lab-data';

export interface LabOptions {
  /** default: every metric (METRICS) */
  metrics?: Metric[];
  /** default: none, scalar, linear, diag */
  comps?: CompChoice[];
  /** N: rows for n = 1…N */
  layers: number;
  /** ridge term of the linear/diag fits (default 0) */
  alpha?: number;
  fold?: Fold;
  barriers?: Partial<Barriers>;
  seed?: number;
  reuse?: boolean;
  /** held-out calibration windows (token ids, BOS first): every model is scored on them, nothing is fitted or chosen on them */
  heldOut: readonly (readonly number[])[];
  /** the evaluation text's ids (BOS first) and the perplexity window */
  evaluation?: { ids: readonly number[]; window: number };
  /** zero-shot tasks (their items): every model's average accuracy (RP: against the dense model's) */
  zeroShot?: { tasks: readonly TaskItems[]; limit?: number };
  signal?: AbortSignal;
  /** called at every calibration window and row; throws to cancel */
  poll?: () => void;
  onRow?: (row: LabRow) => void;
}

/**
 * Fit and held-out windows: the last ceil(f·K) of the K windows are held out. Both parts
 * must keep at least one window.
 */
export function labSplit<W>(windows: readonly W[], heldOutFraction = 0.25): { fit: W[]; heldOut: W[] } {
  const K = windows.length;
  const f = heldOutFraction;
  if (!(Number.isFinite(f) && f > 0 && f < 1)) throw new LopperError('bad-option', `the held-out fraction must be a number between 0 and 1, both excluded (got ${f})`);
  const h = Math.ceil(f * K);
  if (K < 2 || h >= K) {
    throw new LopperError('bad-option', `holding out ${f} of ${K} calibration window${K === 1 ? '' : 's'} leaves ${K < 2 ? 'no room for both parts' : 'none to fit on'}: the lab needs at least one window to fit on and one held out (use more calibration text or windows, or a smaller fraction)`);
  }
  return { fit: windows.slice(0, K - h), heldOut: windows.slice(K - h) };
}

/** Held-out perplexity (exp of the mean NLL over every predicted token of the windows), evaluation perplexity, zero-shot average. */
async function measure(ck: Checkpoint, runtime: Runtime, o: LabOptions): Promise<{ heldOut: number; eval: number | null; zeroShot?: number }> {
  const engine = new Engine(ck, runtime);
  try {
    const heldOut = (await engine.windowsPerplexity(o.heldOut)).ppl;
    const evalPpl = o.evaluation ? (await engine.perplexity(o.evaluation.ids, o.evaluation.window)).ppl : null;
    const zeroShot = o.zeroShot ? averageAccuracy(await evaluate(ck, engine, o.zeroShot.tasks, { limit: o.zeroShot.limit })) : undefined;
    return { heldOut, eval: evalPpl, ...(zeroShot !== undefined && { zeroShot }) };
  } finally {
    await engine.dispose();
  }
}

/** The largest n ≤ N that prune accepts for `opts` (0: none), and its refusal of the next n. */
function reach(ck: Checkpoint, windows: readonly (readonly number[])[], opts: Omit<PruneOptions, 'layers'>, N: number): { most: number; reason: string | null } {
  let reason: string | null = null;
  for (let n = N; n >= 1; n--) {
    try {
      checkOptions(ck, windows, { ...opts, layers: n });
      return { most: n, reason };
    } catch (e) {
      if (!(e instanceof LopperError)) throw e;
      reason = e.message; // ends as the refusal of most + 1
    }
  }
  return { most: 0, reason };
}

/** Every metric × compensation for n = 1…o.layers on one calibration of `ck` (fit `windows`), scored on o.heldOut. */
export async function labRun(ck: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], o: LabOptions): Promise<LabResult> {
  const t0 = performance.now();
  const metrics = labMetrics(o.metrics ?? METRICS);
  const comps = labComps(o.comps ?? LAB_COMPS);
  const L = ck.config.numLayers;
  const N = o.layers;
  if (!(Number.isInteger(N) && N >= 1 && N < L)) throw new LopperError('bad-option', `the lab removes 1 to ${L - 1} layers of ${L} at most (got ${N})`);
  if (o.heldOut.length === 0) throw new LopperError('bad-input', 'the lab needs at least one held-out calibration window');
  if (o.heldOut.some((w) => w.length < 2)) throw new LopperError('bad-input', 'held-out windows must have at least 2 tokens');
  if (windows.length === 0) throw new LopperError('bad-input', 'the lab needs at least one calibration window to fit on');
  const check = () => {
    o.poll?.();
    if (o.signal?.aborted) throw new LopperError('cancelled', 'the lab was cancelled');
  };

  // layer-passes over the fit windows (one layer over all K windows = 1)
  let run = 0;
  let reused = 0;
  const K = windows.length;
  const calibration = {
    onProgress: () => check(),
    onLayers: (layers: number, w: number, skipped: number) => {
      run += (layers * w) / K;
      reused += (skipped * w) / K;
    },
  };

  check();
  const dense = await measure(ck, runtime, o);
  const rows: LabRow[] = [];
  const skipped: LabResult['skipped'] = [];
  const skip = (metric: Metric, comp: CompChoice, reason: string) => {
    if (!skipped.some((s) => s.metric === metric && s.comp === comp && s.reason === reason)) skipped.push({ metric, comp, reason });
  };
  const runs: PruneOptions[] = [];
  const owner: { metric: Metric; comp: CompChoice }[] = [];
  for (const metric of metrics) {
    for (const comp of comps) {
      const base = {
        metric,
        ...compWithMode('prunecomp', comp),
        alpha: o.alpha,
        fold: o.fold,
        barriers: o.barriers,
        seed: o.seed,
        reuse: o.reuse,
        signal: o.signal,
        calibration,
      };
      // a metric's barriers may leave fewer than N layers eligible: its rows stop there, and say why
      const { most, reason } = reach(ck, windows, base, N);
      if (reason !== null) skip(metric, comp, reason);
      const row = async (n: number, model: Checkpoint, removed: number[]) => {
        check();
        const r: LabRow = { metric, comp, n, removed, ...(await measure(model, runtime, o)) };
        rows.push(r);
        o.onRow?.(r);
      };
      // cl: the block is chosen for each n (one run per n, measured at its end); the others: one run to the most
      const each = metric === 'cl' ? Array.from({ length: most }, (_, i) => i + 1) : most > 0 ? [most] : [];
      for (const n of each) {
        runs.push({ ...base, layers: n, onModel: (i, model, removed) => (metric !== 'cl' || i === n ? row(i, model, removed) : undefined) });
        owner.push({ metric, comp });
      }
    }
  }

  const { calibrated } = await pruneRuns(ck, runtime, windows, runs, (i, r) => {
    if (r instanceof LopperError) skip(owner[i].metric, owner[i].comp, r.message);
  });

  const order = (r: LabRow) => [r.n, metrics.indexOf(r.metric), comps.indexOf(r.comp)];
  rows.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  // without sharing, every calibrated run calibrates the dense model itself; without reuse, every removal runs the whole model
  const naive = run + reused + Math.max(0, calibrated - 1) * L;
  return { layers: N, metrics, comps, dense, rows, best: bestPerN(rows), skipped, passes: { run, naive }, seconds: (performance.now() - t0) / 1000 };
}
