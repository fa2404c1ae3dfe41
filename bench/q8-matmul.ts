/**
 * npm run bench:q8-matmul — why the 8-bit decoder (graph/quantize.ts) stores rows: one
 * 1×2048 · 2048×8192 product (a Llama-3.2-1B MLP weight, one decoding token) on onnxruntime-web's
 * WASM build, side by side in one process, median of 12 warm runs: fp32 MatMul; per-row uint8
 * with DequantizeLinear (axis 0) + Gemm (what lopper uses); com.microsoft MatMulNBits with 8 bits
 * in blocks of 32; a blocked DequantizeLinear (opset 21) + Gemm. Each 8-bit form's ratio to fp32.
 */
import { ElemType, GraphBuilder } from '../src/engine/graph/builder';
import { quantizeQ8 } from '../src/engine/graph/quantize';
import { webWasmRuntime } from '../src/engine/runtime/web-node';

const K = 2048;
const N = 8192;
const W = Float32Array.from({ length: N * K }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
const rt = webWasmRuntime();

/** Blocks of 32 along K: codes [N, K/32, 32], scales and zero points [N·K/32]. */
function blocks(): { q: Uint8Array; scales: Float32Array; zeros: Uint8Array } {
  const kb = K / 32;
  const q = new Uint8Array(N * K);
  const scales = new Float32Array(N * kb);
  for (let b = 0; b < N * kb; b++) {
    let max = 0;
    for (let i = 0; i < 32; i++) max = Math.max(max, Math.abs(W[b * 32 + i]));
    scales[b] = max / 127;
    for (let i = 0; i < 32; i++) q[b * 32 + i] = Math.round(W[b * 32 + i] / scales[b]) + 128;
  }
  return { q, scales, zeros: new Uint8Array(N * kb).fill(128) };
}

const variants: Record<string, (g: GraphBuilder, a: string) => string> = {
  'fp32 MatMul': (g, a) => {
    const wt = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = W[n * K + k];
    return g.matmul(a, g.weight('w', [K, N], wt));
  },
  'uint8 rows, DequantizeLinear + Gemm': (g, a) => {
    const q = quantizeQ8(W, N, K);
    const dq = g.op('DequantizeLinear', [g.rawWeight('q', ElemType.UINT8, [N, K], q.q), g.weight('s', [N], q.scales), g.rawWeight('z', ElemType.UINT8, [N], q.zeros)], { axis: 0 });
    return g.op('Gemm', [a, dq], { transB: 1 });
  },
  'MatMulNBits, 8 bits, blocks of 32': (g, a) => {
    const b = blocks();
    const inputs = [a, g.rawWeight('q', ElemType.UINT8, [N, K / 32, 32], b.q), g.weight('s', [N * (K / 32)], b.scales), g.rawWeight('z', ElemType.UINT8, [N * (K / 32)], b.zeros)];
    return g.opN('MatMulNBits', inputs, 1, { K, N, bits: 8, block_size: 32, accuracy_level: 1 }, { domain: 'com.microsoft' })[0];
  },
  'uint8 blocks of 32, DequantizeLinear (opset 21) + Gemm': (g, a) => {
    const b = blocks();
    const dq = g.op('DequantizeLinear', [g.rawWeight('q', ElemType.UINT8, [N, K], b.q), g.weight('s', [N, K / 32], b.scales), g.rawWeight('z', ElemType.UINT8, [N, K / 32], b.zeros)], { axis: 1, block_size: 32 });
    return g.op('Gemm', [a, dq], { transB: 1 });
  },
};

let fp32 = NaN;
console.log('| form | median ms | × fp32 |');
console.log('|---|---|---|');
for (const [name, build] of Object.entries(variants)) {
  const g = new GraphBuilder('q8_matmul', name.includes('opset 21') ? 21 : undefined);
  const a = g.input('a', ElemType.FLOAT, [1, K]);
  g.output(build(g, a), 'y', ElemType.FLOAT, [1, N]);
  const session = await rt.ort.InferenceSession.create(g.encode(), rt.sessionOptions);
  const x = new rt.ort.Tensor('float32', new Float32Array(K).fill(0.1), [1, K]);
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    await session.run({ a: x });
    times.push(performance.now() - t);
  }
  await session.release();
  const ms = times.slice(3).sort((p, q) => p - q)[6];
  if (Number.isNaN(fp32)) fp32 = ms;
  console.log(`| ${name} | ${ms.toFixed(2)} | ${(ms / fp32).toFixed(1)}× |`);
}
