import { ElemType, encodeModel } from '../../../src/engine/graph/onnx-proto';

/**
 * A tiny ONNX model, Y = X·W + B (MatMul then Add), built as bytes with the engine's own
 * encoder, plus a Float64 reference of what it must compute. Sizes are large enough that
 * MatMul has real work to split (M×K·K×N) but small enough for SwiftShader WebGPU.
 */
export interface TinyModel {
  bytes: Uint8Array;
  x: Float32Array;
  dims: { m: number; k: number; n: number };
  /** Y computed in float64 from the float32 inputs. */
  expected: Float64Array;
}

/** Deterministic values in [-1, 1) (xorshift32), so failures are reproducible. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const raw = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export function matMulAddModel(m = 16, k = 64, n = 32): TinyModel {
  const w = values(k * n, 1);
  const b = values(n, 2);
  const x = values(m * k, 3);
  const bytes = encodeModel(
    {
      name: 'matmul_add',
      nodes: [
        { op: 'MatMul', inputs: ['X', 'W'], outputs: ['XW'], name: 'matmul' },
        { op: 'Add', inputs: ['XW', 'B'], outputs: ['Y'], name: 'add' },
      ],
      initializers: [
        { name: 'W', elemType: ElemType.FLOAT, dims: [k, n], raw: raw(w) },
        { name: 'B', elemType: ElemType.FLOAT, dims: [n], raw: raw(b) },
      ],
      inputs: [{ name: 'X', elemType: ElemType.FLOAT, dims: ['batch', k] }],
      outputs: [{ name: 'Y', elemType: ElemType.FLOAT, dims: ['batch', n] }],
    },
    { opset: 18 },
  );
  const expected = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = b[j];
      for (let t = 0; t < k; t++) s += x[i * k + t] * w[t * n + j];
      expected[i * n + j] = s;
    }
  }
  return { bytes, x, dims: { m, k, n }, expected };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
