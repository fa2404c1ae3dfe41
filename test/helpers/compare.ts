/**
 * How engine output is compared with the Float64 reference: the largest absolute
 * difference relative to the largest reference magnitude (elementwise relative error is
 * meaningless for values near zero).
 */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

/**
 * The calibration statistics from the reference's streams X_k and X_{k+1} ([T·D] each), in
 * Float64: mean over tokens of |X_k| per channel, and the per-token cosine of X_k and X_{k+1}.
 */
export function referenceStats(xk: ArrayLike<number>, next: ArrayLike<number> | null, T: number, D: number): { absMean: Float64Array; cos: Float64Array | null } {
  const absMean = new Float64Array(D);
  for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) absMean[c] += Math.abs(xk[t * D + c]) / T;
  if (!next) return { absMean, cos: null };
  const cos = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let dot = 0, a = 0, b = 0;
    for (let c = 0; c < D; c++) {
      const x = xk[t * D + c], y = next[t * D + c];
      dot += x * y; a += x * x; b += y * y;
    }
    cos[t] = dot / Math.sqrt(a * b);
  }
  return { absMean, cos };
}
