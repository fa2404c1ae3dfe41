/**
 * The GGUF container (ggml's docs/gguf.md), version 3, little-endian:
 *
 *   "GGUF" u32 version 3, u64 tensor count, u64 metadata count
 *   metadata    key (u64 length + UTF-8), u32 value type, value (arrays: u32 element type, u64 count, elements)
 *   tensor info name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml type, u64 offset in the data
 *   padding to 32 bytes, then each tensor's data, each padded to 32 bytes
 *
 * This file writes the header; ./gguf fills it with a model, ./gguf-vocab with its tokenizer.
 */

export const GGUF_ALIGNMENT = 32;
const GGUF_MAGIC = 'GGUF';
const GGUF_VERSION = 3;

/** gguf_type ids of metadata values. */
const V = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
type Value =
  | { t: 'u32' | 'i32' | 'f32'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'string'; v: string | Uint8Array }
  | { t: 'strings'; v: (string | Uint8Array)[] }
  | { t: 'f32s'; v: Float32Array }
  | { t: 'i32s'; v: Int32Array };
export type Metadata = [key: string, value: Value][];

export const u32 = (v: number): Value => ({ t: 'u32', v });
export const f32 = (v: number): Value => ({ t: 'f32', v });
export const bool = (v: boolean): Value => ({ t: 'bool', v });
export const str = (v: string | Uint8Array): Value => ({ t: 'string', v });

const utf8 = new TextEncoder();

/** Little-endian bytes of a metadata block and tensor infos, grown as they are written. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  string(s: string | Uint8Array): void {
    const b = typeof s === 'string' ? utf8.encode(s) : s;
    this.u64(b.length);
    this.bytes(b);
  }
  value(value: Value): void {
    switch (value.t) {
      case 'u32':
      case 'i32':
      case 'f32':
        this.u32(V[value.t]);
        this[value.t](value.v);
        return;
      case 'bool':
        this.u32(V.bool);
        this.reserve(1);
        this.buf[this.length++] = value.v ? 1 : 0;
        return;
      case 'string':
        this.u32(V.string);
        this.string(value.v);
        return;
      case 'strings':
        this.u32(V.array);
        this.u32(V.string);
        this.u64(value.v.length);
        for (const s of value.v) this.string(s);
        return;
      case 'f32s':
      case 'i32s':
        this.u32(V.array);
        this.u32(value.t === 'f32s' ? V.f32 : V.i32);
        this.u64(value.v.length);
        for (const x of value.v) this[value.t === 'f32s' ? 'f32' : 'i32'](x);
        return;
    }
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** One tensor's entry in the header: its name, ne (innermost first), ggml type id, and byte offset in the data section. */
export interface TensorInfo {
  name: string;
  ne: number[];
  ggmlType: number;
  offset: number;
}

/** The whole header, padded to the alignment: the data section starts right after it. */
export function ggufHeader(metadata: Metadata, tensors: TensorInfo[]): Uint8Array {
  const w = new ByteWriter();
  for (const ch of GGUF_MAGIC) w.bytes(Uint8Array.of(ch.charCodeAt(0)));
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    w.value(value);
  }
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.ggmlType);
    w.u64(t.offset);
  }
  w.pad(GGUF_ALIGNMENT);
  return w.result();
}
