import { LopperError, reason, shown } from '../errors';
import { checkFinite } from '../model/checkpoint';
import { concatChunks, type FileChunks } from './chunks';
import { bytesPerElement, dtypeName, isLazy, lazyTensor, numel, parseDType, type DType, type Tensor } from '../model/tensor';

/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {…} }`, then the
 * tensor bytes (offsets are relative to the end of the header). Little-endian hosts only
 * (every browser and Node platform lopper runs on).
 */

const METADATA_KEY = '__metadata__';
/** The reference implementation's limit on the header (safetensors' MAX_HEADER_SIZE). */
const MAX_HEADER_BYTES = 100_000_000;

type HeaderEntry = { name: string; dtype: DType; shape: number[]; begin: number; end: number };

function isNatural(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The header's byte length from the file's first 8 bytes, checked against the file's size and the format's limit. */
function headerLengthOf(first: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) {
    throw new LopperError('truncated', `file is ${fileSize} bytes, shorter than the 8-byte safetensors header length`, file);
  }
  const headerLength = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(fileSize - 8)) {
    throw new LopperError('truncated', `header length ${headerLength} runs past the end of the file (${fileSize} bytes, so at most ${fileSize - 8})`, file);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new LopperError('corrupt', `header length ${headerLength} is over safetensors' limit of ${MAX_HEADER_BYTES} bytes`, file);
  }
  return Number(headerLength);
}

/** The header JSON: an object (tensor entries and __metadata__). */
function parseHeaderJson(headerBytes: Uint8Array, file: string): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new LopperError('corrupt', `safetensors header is not valid JSON (${reason(e)})`, file);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new LopperError('corrupt', 'safetensors header is not a JSON object', file);
  }
  return header as Record<string, unknown>;
}

/** One header entry, checked as the reference implementation checks it: dtype, shape and byte span agree. */
function checkEntry(name: string, value: unknown, file: string): HeaderEntry {
  const tensor = `tensor ${shown(name, 80)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LopperError('corrupt', `${tensor}: the header entry is ${shown(value)}, not an object`, file);
  }
  const { dtype: dtypeField, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtypeField !== 'string') throw new LopperError('corrupt', `${tensor}: "dtype" is ${shown(dtypeField)}, not a string`, file);
  let dtype: DType;
  try {
    dtype = parseDType(dtypeField.slice(0, 20));
  } catch (e) {
    if (e instanceof LopperError) throw new LopperError(e.code, `${tensor}: ${e.message}`, file);
    throw e;
  }
  if (!Array.isArray(shape) || shape.length > 8 || !shape.every(isNatural)) {
    throw new LopperError('corrupt', `${tensor}: "shape" is ${shown(shape)}, not a list of up to 8 sizes`, file);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNatural) || offsets[0] > offsets[1]) {
    throw new LopperError('corrupt', `${tensor}: "data_offsets" is ${shown(offsets)}, not [begin, end] with begin ≤ end`, file);
  }
  const [begin, end] = offsets as number[];
  const n = numel(shape);
  const size = n * bytesPerElement(dtype);
  if (!Number.isSafeInteger(size) || end - begin !== size) {
    throw new LopperError('corrupt', `${tensor} spans ${end - begin} bytes but ${dtypeName(dtype)} [${shape}] needs ${size}`, file);
  }
  return { name, dtype, shape, begin, end };
}

/**
 * Every tensor of a .safetensors file, in its storage dtype, copied into aligned arrays.
 * Checked like the reference implementation: a well-formed header, and tensors whose byte
 * spans, in offset order, follow each other without gap or overlap and cover the data exactly;
 * and no NaN or ±Infinity values.
 */
export function parseSafetensors(bytes: Uint8Array, file: string): Map<string, Tensor> {
  const headerLength = headerLengthOf(bytes, bytes.length, file);
  const dataStart = 8 + headerLength;
  const entries = checkLayout(parseHeaderJson(bytes.subarray(8, dataStart), file), bytes.length - dataStart, file);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) tensors.set(e.name, tensorOf(e, bytes.subarray(dataStart + e.begin, dataStart + e.end)));
  checkFinite(tensors, file);
  return tensors;
}

/** Where a .safetensors file's bytes come from, by ranges (a FileSource's file). */
export interface RangeReader {
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The same, synchronously (files on disk in Node): what lazy tensors read through. */
  readSync?(offset: number, length: number): Uint8Array;
}

/**
 * parseSafetensors for a file of any size, read by ranges: the 8-byte length, the header
 * (validated, against the file's size, before anything else is read or allocated), then
 * each tensor's own bytes — never the whole file at once. Same checks, same result.
 */
export async function readSafetensors(reader: RangeReader, file: string, opts: { lazy?: boolean } = {}): Promise<Map<string, Tensor>> {
  const first = await reader.read(0, Math.min(8, reader.size));
  const headerLength = headerLengthOf(first, reader.size, file);
  const dataStart = 8 + headerLength;
  const entries = checkLayout(parseHeaderJson(await reader.read(8, headerLength), file), reader.size - dataStart, file);
  const tensors = new Map<string, Tensor>();
  const readSync = opts.lazy ? reader.readSync?.bind(reader) : undefined;
  for (const e of entries) {
    if (readSync) {
      // Lazy (see lazyTensor): elements [start, start + n) are bytes begin + start·b .. + n·b of the data.
      const b = bytesPerElement(e.dtype);
      tensors.set(e.name, lazyTensor(e.dtype, [...e.shape], (start, n) => tensorOf({ ...e, shape: [n] }, readSync(dataStart + e.begin + start * b, n * b)).data));
    } else {
      tensors.set(e.name, tensorOf(e, await reader.read(dataStart + e.begin, e.end - e.begin)));
    }
  }
  checkFinite(tensors, file); // a lazy tensor is read here once, tensor by tensor, and let go
  return tensors;
}

/** The header's tensor entries in offset order, checked to cover `dataLength` bytes contiguously and exactly. */
function checkLayout(header: Record<string, unknown>, dataLength: number, file: string): HeaderEntry[] {
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      const ok = typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
      if (!ok) throw new LopperError('corrupt', `"${METADATA_KEY}" is ${shown(value)}, not an object of strings`, file);
      continue;
    }
    entries.push(checkEntry(name, value, file));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin !== at) {
      const what = e.begin < at ? 'overlaps the tensor before it' : `leaves a gap of ${e.begin - at} bytes before it`;
      throw new LopperError('corrupt', `tensor ${shown(e.name, 80)} at data bytes ${e.begin}..${e.end} ${what} (tensors must cover the data contiguously)`, file);
    }
    at = e.end;
  }
  const cut = entries.find((e) => e.end > dataLength);
  if (cut) {
    throw new LopperError('truncated', `tensor ${shown(cut.name, 80)} ends at byte ${cut.end} of the data but the file holds only ${dataLength} data bytes`, file);
  }
  if (at !== dataLength) {
    throw new LopperError('corrupt', `the tensors cover ${at} data bytes but the file holds ${dataLength} after its header (tensors must cover the data exactly)`, file);
  }
  return entries;
}

/** A tensor over its bytes: a view when they are aligned for its element type and own their buffer, else an aligned copy. */
function tensorOf({ dtype, shape }: HeaderEntry, bytes: Uint8Array): Tensor {
  const n = bytes.length / bytesPerElement(dtype);
  const owns = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  if (owns) return { dtype, shape: [...shape], data: dtype === 'f32' ? new Float32Array(bytes.buffer, 0, n) : new Uint16Array(bytes.buffer, 0, n) };
  const data = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
  new Uint8Array(data.buffer).set(bytes);
  return { dtype, shape: [...shape], data };
}

function byteView(t: Tensor): Uint8Array {
  const data = t.data; // read once (a lazy tensor reads it here, when its chunk is written)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A .safetensors file as the reference implementation writes it: tensors ordered by dtype
 * size (largest first, so every tensor stays aligned) then name, the header padded with
 * spaces to a multiple of 8 bytes. Returned as chunks: the 8-byte length and header, then
 * each tensor's bytes as a view of its data (nothing is copied, so a file of any size can
 * be streamed).
 */
export function safetensorsChunks(tensors: Map<string, Tensor>, metadata?: Record<string, string>): FileChunks {
  const entries = [...tensors].sort(
    ([a, ta], [b, tb]) => bytesPerElement(tb.dtype) - bytesPerElement(ta.dtype) || (a < b ? -1 : a > b ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (metadata) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    if (!isLazy(t) && (t.data.length !== numel(t.shape) || t.data.BYTES_PER_ELEMENT !== bytesPerElement(t.dtype))) {
      throw new Error(`writeSafetensors: tensor "${name}" holds ${t.data.length}×${t.data.BYTES_PER_ELEMENT} bytes, not ${t.dtype} [${t.shape}]`);
    }
    const end = offset + numel(t.shape) * bytesPerElement(t.dtype);
    header[name] = { dtype: dtypeName(t.dtype), shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + headerLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  // Each tensor's bytes when its turn comes: a lazy tensor is read then, and let go after.
  const chunks = function* () {
    yield head;
    for (const [, t] of entries) yield byteView(t);
  };
  return { size: head.length + offset, chunks: { [Symbol.iterator]: chunks } };
}

/** safetensorsChunks as one array. */
export function writeSafetensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return concatChunks(safetensorsChunks(tensors, metadata));
}
