import { f32ArrayToF16 } from '../model/tensor';
import {
  ElemType,
  encodeModel,
  encodeModelChunks,
  type AttrValue,
  type ExternalRef,
  type GraphSpec,
  expandChunks,
  type InitializerSpec,
  type LazyBytes,
  type NodeSpec,
  type ValueSpec,
} from './onnx-proto';

export { ElemType };

/** The opset lopper's graphs use (ReduceMean/ReduceSum take axes as an input since 18). */
export const OPSET = 18;

/** A weight's float32 values as they will be written: one array, or its parts in order (rows of a large matrix). */
export type WeightValues = Float32Array | (() => Iterable<Float32Array>);

/**
 * Builds one ONNX graph op by op. Each op returns the name of its output, so graph code
 * reads like the maths: `const h = g.add(x, g.matmul(n, w))`.
 */
export class GraphBuilder {
  private nodes: NodeSpec[] = [];
  private inits: InitializerSpec[] = [];
  private inputs: ValueSpec[] = [];
  private outputs: ValueSpec[] = [];
  private constCache = new Map<string, string>();
  private counter = 0;
  private domains = new Set<string>();

  /** `opset`: the default domain's opset (default OPSET; bench:q8-matmul's blocked DequantizeLinear needs 21). */
  constructor(
    private readonly name: string,
    private readonly opset = OPSET,
  ) {}

  private fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  input(name: string, elemType: ElemType, dims: (number | string)[]): string {
    this.inputs.push({ name, elemType, dims });
    return name;
  }

  /** Mark `value` as a graph output called `name` (adds an Identity when the names differ). */
  output(value: string, name: string, elemType: ElemType, dims: (number | string)[]): void {
    if (value !== name) this.op('Identity', [value], {}, name);
    this.outputs.push({ name, elemType, dims });
  }

  /**
   * A float weight stored as float32 or float16 (`type`; float16 rounds to nearest even);
   * returns the initializer's name. Given as a function, its values are made only when the
   * model is written, part by part, and let go after: a graph of lazy weights holds none of
   * them (an exported model streams tensor by tensor).
   */
  weight(name: string, dims: number[], values: WeightValues, type: 'fp32' | 'fp16' = 'fp32'): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (values instanceof Float32Array && values.length !== n) throw new Error(`weight ${name}: ${values.length} values for [${dims}]`);
    if (type === 'fp32' && values instanceof Float32Array) return this.floats(name, dims, values);
    const parts = values instanceof Float32Array ? () => [values] : values;
    const chunks =
      type === 'fp32'
        ? function* () {
            for (const v of parts()) yield new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
          }
        : function* () {
            for (const v of parts()) yield new Uint8Array(f32ArrayToF16(v).buffer);
          };
    const elemType = type === 'fp32' ? ElemType.FLOAT : ElemType.FLOAT16;
    this.inits.push({ name, elemType, dims, raw: { byteLength: n * (type === 'fp32' ? 4 : 2), chunks } });
    return name;
  }

  /** A float32 constant from its values, held as they are (RoPE frequencies, 8-bit scales). */
  floats(name: string, dims: number[], data: Float32Array): string {
    this.inits.push({ name, elemType: ElemType.FLOAT, dims, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** A weight of any element type from its little-endian bytes (quantized weights: uint8 blocks). */
  rawWeight(name: string, elemType: ElemType, dims: number[], raw: Uint8Array): string {
    this.inits.push({ name, elemType, dims, raw });
    return name;
  }

  /** An int64 constant (shapes, axes, indices), shared between uses. */
  ints(values: number[]): string {
    const key = 'i64:' + values.join(',');
    let name = this.constCache.get(key);
    if (!name) {
      name = this.fresh('const_i64');
      const raw = new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
      this.inits.push({ name, elemType: ElemType.INT64, dims: [values.length], raw });
      this.constCache.set(key, name);
    }
    return name;
  }

  /** An int64 scalar (0-d) constant: Range bounds, Gather indices. */
  int(value: number): string {
    const key = 'i64s:' + value;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.fresh('const_i64s');
      this.inits.push({ name, elemType: ElemType.INT64, dims: [], raw: new Uint8Array(BigInt64Array.of(BigInt(value)).buffer) });
      this.constCache.set(key, name);
    }
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    const key = 'f32:' + value;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.fresh('const_f32');
      this.inits.push({ name, elemType: ElemType.FLOAT, dims: [], raw: new Uint8Array(Float32Array.of(value).buffer) });
      this.constCache.set(key, name);
    }
    return name;
  }

  /** Add a node; returns its (first) output. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outName?: string): string {
    const out = outName ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [out], name: this.fresh('n_' + op), attrs });
    return out;
  }

  /** Add a node with several outputs (`outNames` to name them; '' for an omitted optional input). */
  opN(op: string, inputs: string[], nOut: number, attrs: Record<string, AttrValue> = {}, opts: { domain?: string; outNames?: string[] } = {}): string[] {
    const outs = opts.outNames ?? Array.from({ length: nOut }, () => this.fresh(op.toLowerCase()));
    if (opts.domain) this.domains.add(opts.domain);
    this.nodes.push({ op, inputs, outputs: outs, name: this.fresh('n_' + op), attrs, domain: opts.domain });
    return outs;
  }

  // Shorthands for the ops lopper uses most.
  add = (a: string, b: string) => this.op('Add', [a, b]);
  sub = (a: string, b: string) => this.op('Sub', [a, b]);
  mul = (a: string, b: string) => this.op('Mul', [a, b]);
  div = (a: string, b: string) => this.op('Div', [a, b]);
  matmul = (a: string, b: string) => this.op('MatMul', [a, b]);
  reshape = (x: string, shape: number[]) => this.op('Reshape', [x, this.ints(shape)]);
  transpose = (x: string, perm: number[]) => this.op('Transpose', [x], { perm });
  reduceMean = (x: string, axes: number[], keepdims = 1) => this.op('ReduceMean', [x, this.ints(axes)], { keepdims });
  reduceSum = (x: string, axes: number[], keepdims = 1) => this.op('ReduceSum', [x, this.ints(axes)], { keepdims });

  spec(): GraphSpec {
    return { name: this.name, nodes: this.nodes, initializers: this.inits, inputs: this.inputs, outputs: this.outputs };
  }

  /** Bytes of every initializer (weights and constants): what decides between inline and external data. */
  initializerBytes(): number {
    return this.inits.reduce((s, t) => s + t.raw.byteLength, 0);
  }

  encode(): Uint8Array {
    return encodeModel(this.spec(), this.modelOptions());
  }

  /**
   * The encoded model as chunks (the weights are views of the initializers, lazy ones made
   * as the chunks are iterated): for writing it out without one more copy.
   */
  encodeChunks(): { size: number; chunks: Iterable<Uint8Array> } {
    const { size, chunks } = encodeModelChunks(this.spec(), this.modelOptions());
    return { size, chunks };
  }

  /**
   * The model with its large initializers in external data files (ONNX's convention:
   * data_location EXTERNAL, location/offset/length entries; each tensor starts at a
   * 16-byte boundary). Files are `location`, then `location_1`, `location_2`, … (the chunk
   * names transformers.js reads): a file is closed when the next tensor would take it past
   * `chunkBytes` (a larger tensor gets a file of its own). Initializers under `minBytes`
   * (default 1024, as onnx's convert_model_to_external_data) stay inline.
   */
  encodeExternal(opts: { location: string; chunkBytes?: number; minBytes?: number }): {
    model: Uint8Array;
    /** each file as chunks: views of the initializers (lazy ones made as iterated) and the zero padding between them */
    data: { location: string; size: number; chunks: Iterable<Uint8Array> }[];
  } {
    const { location, chunkBytes = Infinity, minBytes = 1024 } = opts;
    const align = (n: number) => Math.ceil(n / 16) * 16;
    const files: { location: string; size: number; chunks: (Uint8Array | LazyBytes)[] }[] = [];
    const refs = new Map<string, ExternalRef>();
    for (const t of this.inits) {
      if (t.raw.byteLength < minBytes) continue;
      let file = files.at(-1);
      if (!file || (file.size > 0 && align(file.size) + t.raw.byteLength > chunkBytes)) {
        file = { location: files.length === 0 ? location : `${location}_${files.length}`, size: 0, chunks: [] };
        files.push(file);
      }
      const offset = align(file.size);
      if (offset > file.size) file.chunks.push(new Uint8Array(offset - file.size));
      file.chunks.push(t.raw);
      file.size = offset + t.raw.byteLength;
      refs.set(t.name, { location: file.location, offset, length: t.raw.byteLength });
    }
    const spec = this.spec();
    const model = encodeModel(
      { ...spec, initializers: spec.initializers.map((t) => (refs.has(t.name) ? { ...t, external: refs.get(t.name) } : t)) },
      this.modelOptions(),
    );
    return { model, data: files.map((f) => ({ ...f, chunks: { [Symbol.iterator]: () => expandChunks(f.chunks) } })) };
  }

  private modelOptions() {
    return { opset: this.opset, domains: Object.fromEntries([...this.domains].map((d) => [d, 1])) };
  }
}
