/**
 * Layer metrics for Prune&Comp (docs/PRUNE_AND_COMP.md §4): one score per decoder layer of
 * the *current* model, lowest score is pruned. Each metric is a small function; the single
 * entry point is scoreLayers().
 *
 *   bi       CosSim(BI), ShortGPT Block Influence: BI_k = mean over windows and tokens of
 *            1 − cos(X_k[t], X_{k+1}[t]) (hidden-axis cosine, BOS included). A NaN cosine
 *            (a zero row) counts as 0.5, as the official code maps it. All layers eligible.
 *   angular  Gromov et al. / PruneMe, one layer: arccos(cos(X_k[T−1], X_{k+1}[T−1]))/π on the
 *            last token of each window, averaged over windows. All layers eligible.
 *   cl       CosSim(CL), LLM-Streamline style, a contiguous block of n layers, one shot:
 *            sim_i = mean over windows and tokens of the hidden-axis cosine between X_i[t]
 *            and X_{i+n}[t] (upstream LLM-Streamline's axis; the official Prune&Comp code's
 *            default axis is the sequence axis, which we do not follow). score_i = 1 − sim_i
 *            is indexed by the block's first layer i; the block i..i+n−1 is removed.
 *            Default start i ∈ [1, L−n−1] (skipFirst 1, skipLast 1: the block never holds
 *            the first or the last layer).
 *   mag      Mag+: Σ|W| over all of a layer's weights (q, k, v, o, gate, up, down, both norm
 *            gains, biases when present). Default eligibility 4 ≤ k < L−2.
 *   ppl      SLEB-style: calibration loss (mean NLL over every predicted token of every
 *            window) with layer j bypassed. Default eligibility 1 ≤ j ≤ L−2.
 *   taylor   Taylor+ (prune/taylor.ts): Σ|W ⊙ ∂L/∂W| over the layer. Default 4 ≤ k < L−2.
 *   reverse  the last layer first: score_k = L−1−k. All layers eligible.
 *   random   seeded: score = a uniform number drawn from (seed, ORIGINAL index of the
 *            layer), so a given seed ranks the layers of a model in one fixed random order
 *            whatever has been removed before. All layers eligible.
 *
 * Eligibility barriers are { skipFirst, skipLast }: the first skipFirst and the last
 * skipLast layers of the current model are never scored (index k eligible iff
 * skipFirst ≤ k ≤ L−1−skipLast; for cl, the block start i iff skipFirst ≤ i ≤ L−n−skipLast).
 * The defaults are the paper's (METRIC_BARRIERS); tiny models (our 5-layer llama2.c models)
 * need them lowered, e.g. Mag+ with its defaults has no eligible layer when L < 7.
 */
import { LopperError } from '../errors';
import { layerWeightShapes, tensor, type Checkpoint } from '../model/checkpoint';
import { toFloat32 } from '../model/tensor';
import type { Runtime } from '../runtime/ort';
import { Calibrated } from './calibration';
import { isMetric, METRIC_BARRIERS, METRICS, type Barriers, type Metric } from './options';
import { taylorScores } from './taylor';

/** Metrics that read calibration statistics or streams (the others need only the weights, or gradients). */
export function needsCalibration(metric: Metric): boolean {
  return metric === 'bi' || metric === 'angular' || metric === 'cl' || metric === 'ppl';
}

/** What a metric is computed on: a calibrated model, or (for weight-only metrics and Taylor+) a model and its windows. */
export type LayerSource = Calibrated | { checkpoint: Checkpoint; windows: readonly (readonly number[])[] };

export interface ScoreOptions {
  /** override the metric's default barriers (either field) */
  barriers?: Partial<Barriers>;
  /** cl: the block length n (required for cl) */
  block?: number;
  /** ORIGINAL index of each current layer (default: identity); random draws from these */
  original?: readonly number[];
  /** random: the seed (default 0) */
  seed?: number;
  /** taylor: the runtime to compute gradients on (required for taylor) */
  runtime?: Runtime;
}

export interface LayerScores {
  /** one entry per layer of the current model (cl: per block start); null where not eligible */
  scores: (number | null)[];
  /** the eligible indices, ascending */
  eligible: number[];
  /** the barriers used */
  barriers: Barriers;
}

/** The barriers a metric uses with `override` applied, checked. */
export function resolveBarriers(metric: Metric, override?: Partial<Barriers>): Barriers {
  const b = { ...METRIC_BARRIERS[metric], ...Object.fromEntries(Object.entries(override ?? {}).filter(([, v]) => v !== undefined)) };
  for (const key of ['skipFirst', 'skipLast'] as const) {
    if (!Number.isInteger(b[key]) || b[key] < 0) throw new LopperError('bad-option', `barrier ${key} must be a whole number ≥ 0 (got ${b[key]})`);
  }
  return b;
}

/**
 * The indices a metric may pick on a model of L layers (cl: block starts for blocks of n).
 * Throws a LopperError naming the barriers when none is left.
 */
export function eligibleLayers(metric: Metric, L: number, barriers: Barriers, block = 1): number[] {
  const last = metric === 'cl' ? L - block - barriers.skipLast : L - 1 - barriers.skipLast;
  const out: number[] = [];
  for (let k = barriers.skipFirst; k <= last; k++) out.push(k);
  if (out.length === 0) {
    const what = metric === 'cl' ? `a block of ${block} contiguous layers` : 'a layer';
    throw new LopperError(
      'bad-option',
      `metric ${metric} cannot choose ${what} of ${L}: its barriers (skip the first ${barriers.skipFirst} and the last ${barriers.skipLast} layers) leave none eligible; lower them (--skip-first/--skip-last)`,
    );
  }
  return out;
}

/** Index of the lowest eligible score (the first one on ties). */
export function argminEligible(r: LayerScores): number {
  let best = -1;
  for (const k of r.eligible) {
    const s = r.scores[k];
    if (s === null || Number.isNaN(s)) continue;
    if (best < 0 || s < (r.scores[best] as number)) best = k;
  }
  if (best < 0) throw new LopperError('bad-input', 'no eligible layer has a finite score');
  return best;
}

/** The eligible indices in ascending score order (stable: lower index first on ties). */
export function rankEligible(r: LayerScores): number[] {
  return [...r.eligible].sort((a, b) => (r.scores[a] as number) - (r.scores[b] as number) || a - b);
}

// ----------------------------------------------------------------------------
// The metrics (each returns raw per-index scores for the given indices)

function requireCalibrated(src: LayerSource, metric: Metric): Calibrated {
  if (!(src instanceof Calibrated)) throw new LopperError('bad-option', `metric ${metric} needs calibration statistics (a Calibrated model)`);
  return src;
}

/** cos → its value, NaN → 0.5 (the official code's convention). */
const cleanCos = (c: number) => (Number.isNaN(c) ? 0.5 : c);

/** BI_k = mean over windows and tokens of 1 − cos(X_k[t], X_{k+1}[t]). */
export function biScores(cal: Calibrated, layers: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const k of layers) {
    let sum = 0;
    let n = 0;
    for (const w of cal.stats) {
      for (const c of w.cos[k]) sum += 1 - cleanCos(c);
      n += w.cos[k].length;
    }
    out.set(k, sum / n);
  }
  return out;
}

/** mean over windows of arccos(cos(X_k[T−1], X_{k+1}[T−1])) / π (cos clamped to [−1, 1]). */
export function angularScores(cal: Calibrated, layers: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const k of layers) {
    let sum = 0;
    for (const w of cal.stats) {
      const c = cleanCos(w.cos[k][w.cos[k].length - 1]);
      sum += Math.acos(Math.min(1, Math.max(-1, c))) / Math.PI;
    }
    out.set(k, sum / cal.stats.length);
  }
  return out;
}

/** Mean over tokens of the hidden-axis cosine between rows of a and b ([T·D] each), float64; NaN rows count 0.5. */
export function meanRowCosine(a: ArrayLike<number>, b: ArrayLike<number>, D: number): { sum: number; rows: number } {
  const T = a.length / D;
  let sum = 0;
  for (let t = 0; t < T; t++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let j = t * D; j < (t + 1) * D; j++) {
      ab += a[j] * b[j];
      aa += a[j] * a[j];
      bb += b[j] * b[j];
    }
    sum += cleanCos(ab / Math.sqrt(aa * bb));
  }
  return { sum, rows: T };
}

/** score_i = 1 − mean over windows and tokens of cos(X_i[t], X_{i+n}[t]), for block starts i. */
export async function clScores(cal: Calibrated, starts: readonly number[], n: number): Promise<Map<number, number>> {
  const D = cal.checkpoint.config.hiddenSize;
  const streams = new Map<number, Float32Array[]>();
  const at = async (k: number) => {
    let s = streams.get(k);
    if (!s) streams.set(k, (s = await cal.streamAt(k)));
    return s;
  };
  const out = new Map<number, number>();
  for (const i of starts) {
    const a = await at(i);
    const b = await at(i + n);
    let sum = 0;
    let rows = 0;
    for (let w = 0; w < a.length; w++) {
      const r = meanRowCosine(a[w], b[w], D);
      sum += r.sum;
      rows += r.rows;
    }
    out.set(i, 1 - sum / rows);
  }
  return out;
}

/** Σ|W| over every weight of each layer (layerWeightShapes: projections, both norm gains, biases), float64. */
export function magScores(ck: Checkpoint, layers: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const k of layers) {
    let s = 0;
    for (const name of layerWeightShapes(ck.config, k).keys()) for (const v of toFloat32(tensor(ck, name))) s += Math.abs(v);
    out.set(k, s);
  }
  return out;
}

/** Calibration loss (mean NLL over all predicted tokens of all windows) with layer j bypassed. */
export async function pplScores(cal: Calibrated, layers: readonly number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const j of layers) {
    let sum = 0;
    let n = 0;
    for (const nll of await cal.bypassNll(j)) {
      for (const v of nll) sum += v;
      n += nll.length;
    }
    out.set(j, sum / n);
  }
  return out;
}

/** mulberry32 of a seed mixed with an index: one uniform number in [0, 1). */
export function seededUniform(seed: number, index: number): number {
  let a = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  a = (a + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// ----------------------------------------------------------------------------
// The entry point

/**
 * Score every layer of the current model with `metric` (lowest is pruned). Ineligible
 * indices get null and are not computed where that costs anything (ppl). Throws a
 * LopperError when the barriers leave no eligible layer.
 */
export async function scoreLayers(metric: Metric, src: LayerSource, opts: ScoreOptions = {}): Promise<LayerScores> {
  if (!isMetric(metric)) throw new LopperError('bad-option', `unknown metric "${String(metric)}" (one of ${METRICS.join(', ')})`);
  const ck = src.checkpoint;
  const L = ck.config.numLayers;
  const barriers = resolveBarriers(metric, opts.barriers);
  const block = opts.block ?? 1;
  if (metric === 'cl' && (!Number.isInteger(block) || block < 1 || block >= L)) {
    throw new LopperError('bad-option', `a block of ${block} layers cannot be removed from ${L} (at least one must remain)`);
  }
  const eligible = eligibleLayers(metric, L, barriers, metric === 'cl' ? block : 1);
  const original = opts.original ?? [...Array(L).keys()];
  if (original.length !== L) throw new LopperError('bad-option', `${original.length} original indices for ${L} layers`);

  let values: Map<number, number>;
  switch (metric) {
    case 'bi':
      values = biScores(requireCalibrated(src, metric), eligible);
      break;
    case 'angular':
      values = angularScores(requireCalibrated(src, metric), eligible);
      break;
    case 'cl':
      values = await clScores(requireCalibrated(src, metric), eligible, block);
      break;
    case 'mag':
      values = magScores(ck, eligible);
      break;
    case 'ppl':
      values = await pplScores(requireCalibrated(src, metric), eligible);
      break;
    case 'taylor': {
      if (!opts.runtime) throw new LopperError('bad-option', 'metric taylor needs a runtime');
      const all = await taylorScores(ck, opts.runtime, src.windows);
      values = new Map(eligible.map((k) => [k, all[k]]));
      break;
    }
    case 'reverse':
      values = new Map(eligible.map((k) => [k, L - 1 - k]));
      break;
    case 'random':
      values = new Map(eligible.map((k) => [k, seededUniform(opts.seed ?? 0, original[k])]));
      break;
  }
  const scores: (number | null)[] = Array.from({ length: L }, (_, k) => values.get(k) ?? null);
  return { scores, eligible, barriers };
}
