/**
 * 8-bit weights for the decoder that generates where fp32 weights do not fit: each row of
 * W [N, K] (Hugging Face layout [out, in]) symmetric — scale = max|w| / 127, q = round(w /
 * scale) + 128 as uint8 (zero point 128) — dequantized in the graph by DequantizeLinear (axis
 * 0) just before its Gemm. Dequantized, w ≈ (q − 128)·scale: at most scale/2 off, 1/254 of the
 * row's largest magnitude.
 *
 * Why rows, not blocks: on onnxruntime-web's WASM build (1.30) a 1×2048 · 2048×8192 product
 * through a per-row DequantizeLinear and Gemm takes 7× the fp32 MatMul's time, with
 * com.microsoft MatMulNBits (bits 8, blocks of 32) 24×, through a blocked DequantizeLinear
 * (opset 21) 23× (npm run bench:q8-matmul): rows are the fastest 8-bit form it runs.
 */
export interface Q8Weight {
  rows: number; // N
  cols: number; // K
  /** [N, K] */
  q: Uint8Array;
  /** [N] */
  scales: Float32Array;
  /** [N], all 128 */
  zeros: Uint8Array;
}

export function quantizeQ8(w: Float32Array, rows: number, cols: number): Q8Weight {
  const q = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = w.subarray(r * cols, (r + 1) * cols);
    const out = q.subarray(r * cols, (r + 1) * cols);
    let max = 0;
    for (let i = 0; i < cols; i++) {
      const a = row[i] < 0 ? -row[i] : row[i];
      if (a > max) max = a;
    }
    const scale = max / 127;
    scales[r] = scale;
    if (scale === 0) {
      out.fill(128); // an all-zero row
      continue;
    }
    const inv = 127 / max;
    // round(w/scale) + 128 = floor(w/scale + 128.5), in 1.5..255.5: a Uint8Array store truncates, which is that floor
    for (let i = 0; i < cols; i++) out[i] = row[i] * inv + 128.5;
  }
  return { rows, cols, q, scales, zeros: new Uint8Array(rows).fill(128) };
}
