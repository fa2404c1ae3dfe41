/**
 * A small ONNX ModelProto encoder (protobuf wire format), enough for the graphs lopper
 * builds: nodes with attributes, raw-data initializers (inline, or in external data files
 * by ONNX's convention), typed inputs/outputs with symbolic dims. Messages are encoded as lists
 * of byte chunks so that large weight buffers are copied exactly once, into the final model
 * bytes; a weight may be LazyBytes, made only when its turn comes in the output (an exported
 * model's weights are then produced tensor by tensor and never all held at once).
 *
 * Field numbers are from onnx/onnx.proto3.
 */

export const enum ElemType {
  FLOAT = 1,
  UINT8 = 2,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
  BFLOAT16 = 16,
}

export type AttrValue = number | string | number[] | { floats: number[] } | { float: number };

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs?: Record<string, AttrValue>;
  domain?: string;
}

/**
 * Bytes made when they are written: their length is known up front (messages are
 * length-prefixed), `chunks()` produces them, in order, each time it is called.
 */
export interface LazyBytes {
  byteLength: number;
  chunks: () => Iterable<Uint8Array>;
}

export const isLazyBytes = (b: Uint8Array | LazyBytes): b is LazyBytes => !(b instanceof Uint8Array);

/** The chunks of byte pieces, lazy ones made as they come; throws if one makes other than its stated length. */
export function* expandChunks(pieces: Iterable<Uint8Array | LazyBytes>): Generator<Uint8Array> {
  for (const p of pieces) {
    if (!isLazyBytes(p)) {
      yield p;
      continue;
    }
    let n = 0;
    for (const c of p.chunks()) {
      n += c.byteLength;
      yield c;
    }
    if (n !== p.byteLength) throw new Error(`a lazy weight made ${n} bytes, not the ${p.byteLength} it stated`);
  }
}

export interface InitializerSpec {
  name: string;
  elemType: ElemType;
  dims: number[];
  /** the tensor's little-endian bytes, or LazyBytes that make them when written */
  raw: Uint8Array | LazyBytes;
  /**
   * Where `raw` lives instead of inside the model (ONNX external data): a file beside the
   * model (location, relative to the model file) at a byte offset. Set, the tensor is written
   * with data_location EXTERNAL and no raw_data.
   */
  external?: ExternalRef;
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export interface ValueSpec {
  name: string;
  elemType: ElemType;
  /** numbers are fixed sizes, strings symbolic dims */
  dims: (number | string)[];
}

export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  initializers: InitializerSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
}

/** A message under construction: byte chunks plus their total length. */
class Msg {
  chunks: (Uint8Array | LazyBytes)[] = [];
  length = 0;

  private push(b: Uint8Array | LazyBytes) {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  private varint(v: number | bigint) {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (x >= 0x80n) {
      out.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    out.push(Number(x));
    this.push(Uint8Array.from(out));
  }
  private key(field: number, wire: number) {
    this.varint((field << 3) | wire);
  }
  int(field: number, v: number) {
    this.key(field, 0);
    this.varint(v);
  }
  float(field: number, v: number) {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
  }
  bytes(field: number, b: Uint8Array | LazyBytes) {
    this.key(field, 2);
    this.varint(b.byteLength);
    this.push(b);
  }
  string(field: number, s: string) {
    this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Msg) {
    this.key(field, 2);
    this.varint(m.length);
    for (const c of m.chunks) this.push(c);
  }
  packedInts(field: number, vs: number[]) {
    const m = new Msg();
    for (const v of vs) m.varint(v);
    this.message(field, m);
  }
  packedFloats(field: number, vs: number[]) {
    const b = new Uint8Array(4 * vs.length);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(4 * i, v, true));
    this.bytes(field, b);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of expandChunks(this.chunks)) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

function attribute(name: string, v: AttrValue): Msg {
  const m = new Msg();
  m.string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for floats`);
    m.int(3, v);
    m.int(20, ATTR_INT);
  } else if (typeof v === 'string') {
    m.string(4, v);
    m.int(20, ATTR_STRING);
  } else if (Array.isArray(v)) {
    m.packedInts(8, v);
    m.int(20, ATTR_INTS);
  } else if ('floats' in v) {
    m.packedFloats(7, v.floats);
    m.int(20, ATTR_FLOATS);
  } else {
    m.float(2, v.float);
    m.int(20, ATTR_FLOAT);
  }
  return m;
}

function node(n: NodeSpec): Msg {
  const m = new Msg();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name);
  m.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) m.message(5, attribute(k, v));
  if (n.domain) m.string(7, n.domain);
  return m;
}

// TensorProto.DataLocation
const DATA_LOCATION_EXTERNAL = 1;

function initializer(t: InitializerSpec): Msg {
  const m = new Msg();
  m.packedInts(1, t.dims);
  m.int(2, t.elemType);
  m.string(8, t.name);
  if (!t.external) {
    m.bytes(9, t.raw);
    return m;
  }
  // external_data: StringStringEntryProto {key = 1, value = 2} entries
  const { location, offset, length } = t.external;
  for (const [key, value] of [['location', location], ['offset', String(offset)], ['length', String(length)]]) {
    const entry = new Msg();
    entry.string(1, key);
    entry.string(2, value);
    m.message(13, entry);
  }
  m.int(14, DATA_LOCATION_EXTERNAL);
  return m;
}

function valueInfo(v: ValueSpec): Msg {
  const shape = new Msg();
  for (const d of v.dims) {
    const dim = new Msg();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new Msg();
  tensorType.int(1, v.elemType);
  tensorType.message(2, shape);
  const type = new Msg();
  type.message(1, tensorType);
  const m = new Msg();
  m.string(1, v.name);
  m.message(2, type);
  return m;
}

export interface ModelOptions {
  /** opset of the default domain */
  opset: number;
  /** extra domains, e.g. {'com.microsoft': 1} */
  domains?: Record<string, number>;
  producer?: string;
}

/** Encode a ModelProto. IR version 8 (opset ≤ 18 era readers accept it). */
export function encodeModel(g: GraphSpec, opts: ModelOptions): Uint8Array {
  return encodeModelChunks(g, opts).concat();
}

/**
 * The model's bytes as chunks (raw weights are views, not copies; lazy ones are made as the
 * chunks are iterated) and their total length, for streaming.
 */
export function encodeModelChunks(g: GraphSpec, opts: ModelOptions): { size: number; chunks: Iterable<Uint8Array>; concat(): Uint8Array } {
  const graph = new Msg();
  for (const n of g.nodes) graph.message(1, node(n));
  graph.string(2, g.name);
  for (const t of g.initializers) graph.message(5, initializer(t));
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));

  const model = new Msg();
  model.int(1, 8); // ir_version
  model.string(2, opts.producer ?? 'lopper');
  model.message(7, graph);
  const opset = (domain: string, version: number) => {
    const o = new Msg();
    if (domain) o.string(1, domain);
    o.int(2, version);
    model.message(8, o);
  };
  opset('', opts.opset);
  for (const [d, v] of Object.entries(opts.domains ?? {})) opset(d, v);
  return { size: model.length, chunks: { [Symbol.iterator]: () => expandChunks(model.chunks) }, concat: () => model.concat() };
}
