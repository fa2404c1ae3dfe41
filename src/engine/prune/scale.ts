/**
 * The Prune&Comp compensation scale (docs/PRUNE_AND_COMP.md §1). For removing layer k (or
 * the contiguous block k..j−1; j = k+1 for one layer), over calibration windows m:
 *
 *   b_m[c] = mean_t |X_k^(m)[t, c]|     stream entering the removed block   [N windows][D]
 *   a_m[c] = mean_t |X_j^(m)[t, c]|     stream leaving it                   [N windows][D]
 *   s      = mean_c ( mean_m ( a_m[c] / b_m[c] ) )
 *
 * a mean of per-channel ratios of mean-absolute values (official magcomp.py), computed
 * here in float64 whatever the inputs are.
 */
import { LopperError } from '../errors';
import type { WindowStats } from '../runtime/engine';

export interface ScaleOptions {
  /**
   * [ours] Skip a channel when any window's b_m[c] is below minChannel × (mean of b over
   * all windows and channels). Default 1e-3.
   *
   * Why 1e-3: the official code has no guard, and a channel with b ≈ 0 adds a_m[c]/b_m[c]
   * — up to ∞ or NaN — to a mean over D channels. A channel at a fraction r of the typical
   * magnitude contributes about (1/r)/D to s where a normal one contributes ~1/D, so the
   * guard has to sit well below every channel a real model has, yet high enough to stop
   * one channel from dominating. On our llama2.c models every channel of every stream
   * X_0..X_L is at ≥ 0.44 of the mean (stories260K ≥ 0.59, llama2xs ≥ 0.44, babyllama
   * ≥ 0.52), so 1e-3 is > 400× below anything real and never changes s there, while a dead
   * (all-zero) or near-dead channel, the case the guard exists for, is skipped and
   * counted instead of blowing s up. Pass 0 to skip exactly-zero channels only.
   */
  minChannel?: number;
}

export interface ScaleResult {
  /** the compensation scale */
  s: number;
  /** channels left out by the guard (see ScaleOptions.minChannel) */
  skippedChannels: number;
}

type Rows = readonly (Float32Array | Float64Array | readonly number[])[];

/**
 * s from per-window per-channel mean |X|: `before[m][c]` = b_m[c] (stream entering the
 * removed block), `after[m][c]` = a_m[c] (stream leaving it). Throws on empty or ragged
 * input, non-finite or negative values, or when the guard leaves no channel.
 */
export function compensationScale(before: Rows, after: Rows, opts: ScaleOptions = {}): ScaleResult {
  const minChannel = opts.minChannel ?? 1e-3;
  if (!(minChannel >= 0) || !Number.isFinite(minChannel)) throw new LopperError('bad-option', `minChannel ${minChannel} must be a finite number ≥ 0`);
  const N = before.length;
  if (N === 0) throw new LopperError('bad-input', 'compensation scale needs at least one calibration window');
  if (after.length !== N) throw new LopperError('bad-input', `${N} windows of stats before the removed block but ${after.length} after it`);
  const D = before[0].length;
  if (D === 0) throw new LopperError('bad-input', 'compensation scale needs at least one channel');
  let total = 0;
  for (let m = 0; m < N; m++) {
    if (before[m].length !== D || after[m].length !== D) {
      throw new LopperError('bad-input', `window ${m} has ${before[m].length} channels before and ${after[m].length} after, expected ${D}`);
    }
    for (let c = 0; c < D; c++) {
      const b = before[m][c];
      const a = after[m][c];
      if (!Number.isFinite(a) || !Number.isFinite(b) || a < 0 || b < 0) {
        throw new LopperError('bad-input', `window ${m} channel ${c}: mean |X| must be finite and ≥ 0 (before ${b}, after ${a})`);
      }
      total += b;
    }
  }
  const threshold = minChannel * (total / (N * D));

  // s = mean over kept channels of (mean over windows of a/b)
  let sum = 0;
  let kept = 0;
  for (let c = 0; c < D; c++) {
    let skip = false;
    for (let m = 0; m < N && !skip; m++) skip = before[m][c] < threshold || before[m][c] === 0;
    if (skip) continue;
    let ratio = 0;
    for (let m = 0; m < N; m++) ratio += after[m][c] / before[m][c];
    sum += ratio / N;
    kept++;
  }
  if (kept === 0) throw new LopperError('bad-input', `every one of ${D} channels has a near-zero mean |X| before the removed block: no compensation scale`);
  return { s: sum / kept, skippedChannels: D - kept };
}

/**
 * s for removing layers k..j−1 of the model the stats were taken on (j = k+1 for one
 * layer): b = absMean[k], a = absMean[j] of each window (Engine.stats, k = 0..L).
 */
export function scaleFromStats(stats: readonly WindowStats[], k: number, j: number, opts: ScaleOptions = {}): ScaleResult {
  if (stats.length === 0) throw new LopperError('bad-input', 'compensation scale needs at least one calibration window');
  const streams = stats[0].absMean.length; // L + 1
  if (!Number.isInteger(k) || !Number.isInteger(j) || k < 0 || j <= k || j >= streams) {
    throw new LopperError('bad-option', `stream pair (k ${k}, j ${j}) must satisfy 0 ≤ k < j ≤ ${streams - 1}`);
  }
  return compensationScale(
    stats.map((w) => w.absMean[k]),
    stats.map((w) => w.absMean[j]),
    opts,
  );
}
