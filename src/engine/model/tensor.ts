import { LopperError } from '../errors';

/** Storage dtypes a Checkpoint keeps as they came (F16/BF16 are not widened on import). */
export type DType = 'f32' | 'f16' | 'bf16';

export interface Tensor {
  dtype: DType;
  shape: number[];
  /**
   * f32: Float32Array; f16 and bf16: the raw 16-bit patterns. Of a lazy tensor (lazyTensor),
   * a getter that reads them afresh at every access: read it once per use, and take sizes
   * from `shape` (numel), never from `data`.
   */
  readonly data: Float32Array | Uint16Array;
  /** Lazy tensors only: elements [start, start + n) in storage form, read without the rest. */
  readonly range?: (start: number, n: number) => Float32Array | Uint16Array;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * A tensor whose values are produced when asked for: read from where they stay (a file on
 * disk), or computed from another tensor (a fold, prune/surgery.ts scaleTensor). `data` gives
 * all of them, `range` a part, each time, and nothing is kept. A model larger than memory keeps
 * only its shapes resident; a layer-streamed pass reads one layer at a time; a fold copies
 * nothing.
 */
export function lazyTensor(dtype: DType, shape: number[], read: (start: number, n: number) => Float32Array | Uint16Array): Tensor {
  const n = numel(shape);
  return {
    dtype,
    shape,
    get data() {
      return read(0, n);
    },
    range: read,
  };
}

export const isLazy = (t: Tensor): boolean => t.range !== undefined;

/** Elements [start, start + n) of t in storage form: a view of its data, or for a lazy tensor just those, read. */
export function elements(t: Tensor, start: number, n: number): Float32Array | Uint16Array {
  return t.range ? t.range(start, n) : t.data.subarray(start, start + n);
}

export function f32Tensor(shape: number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) throw new Error(`f32Tensor: ${data.length} values for shape [${shape}]`);
  return { dtype: 'f32', shape, data: data ?? new Float32Array(n) };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function bf16ToF32(b: number): number {
  u32Scratch[0] = b << 16;
  return f32Scratch[0];
}

/** Round-to-nearest-even float → bf16 bits. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return 0x7fc0; // NaN
  return ((u + 0x7fff + ((u >> 16) & 1)) >>> 16) & 0xffff;
}

/** Round-to-nearest-even float → IEEE half bits. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToF16(u32Scratch[0]);
}

/** f32ToF16 of a float given by its bits (u32), so whole arrays convert through a Uint32Array view. */
function f32BitsToF16(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Float32 values as IEEE half bits, rounded to nearest even (overflow → ±Inf, as f32ToF16). */
export function f32ArrayToF16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

/** The tensor's values as float32 (a copy for f16/bf16, the same array for f32). */
export function toFloat32(t: Tensor): Float32Array {
  const data = t.data; // read once
  if (t.dtype === 'f32') return data as Float32Array;
  const src = data as Uint16Array;
  const out = new Float32Array(src.length);
  if (t.dtype === 'bf16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f16ToF32(src[i]);
  }
  return out;
}

/** Store float values in the given dtype (rounding to nearest even). */
export function fromFloat32(values: Float32Array, shape: number[], dtype: DType): Tensor {
  if (dtype === 'f32') return { dtype, shape, data: values };
  if (dtype === 'f16') return { dtype, shape, data: f32ArrayToF16(values) };
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16(values[i]);
  return { dtype, shape, data: out };
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f32' ? 4 : 2;
}

export function parseDType(name: string, file?: string): DType {
  switch (name) {
    case 'F32':
      return 'f32';
    case 'F16':
      return 'f16';
    case 'BF16':
      return 'bf16';
    default:
      throw new LopperError('unknown-dtype', `unknown or unsupported dtype "${name}" (lopper reads F32, F16, BF16)`, file);
  }
}

export function dtypeName(dtype: DType): 'F32' | 'F16' | 'BF16' {
  return dtype === 'f32' ? 'F32' : dtype === 'f16' ? 'F16' : 'BF16';
}

/** Elements [start, start + n) of t widened to float32 (a new array; of a lazy tensor only those are read). */
export function widenedRange(t: Tensor, start: number, n: number): Float32Array {
  const out = new Float32Array(n);
  widenInto(out, 0, { dtype: t.dtype, shape: [n], data: elements(t, start, n) });
  return out;
}

/** Write t's values as float32, each multiplied by `scale`, into out from `offset`; returns the offset after them. */
export function widenInto(out: Float32Array, offset: number, t: Tensor, scale = 1): number {
  const data = t.data; // read once (a lazy tensor reads it at each access)
  const n = data.length;
  if (t.dtype === 'f32') {
    const src = data as Float32Array;
    if (scale === 1) out.set(src, offset);
    else for (let i = 0; i < n; i++) out[offset + i] = src[i] * scale;
  } else if (t.dtype === 'bf16') {
    const src = data as Uint16Array;
    const bits = new Uint32Array(out.buffer, out.byteOffset + offset * 4, n);
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
    if (scale !== 1) for (let i = 0; i < n; i++) out[offset + i] *= scale;
  } else {
    const src = data as Uint16Array;
    for (let i = 0; i < n; i++) out[offset + i] = f16ToF32(src[i]) * scale;
  }
  return offset + n;
}
