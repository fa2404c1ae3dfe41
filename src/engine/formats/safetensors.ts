import { LopperError } from '../errors';
import { concatChunks, type FileChunks } from './chunks';
import { bytesPerElement, dtypeName, numel, parseDType, type DType, type Tensor } from '../model/tensor';

/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {…} }`, then the
 * tensor bytes (offsets are relative to the end of the header). Little-endian hosts only
 * (every browser and Node platform lopper runs on).
 */

const METADATA_KEY = '__metadata__';

type HeaderEntry = { dtype: string; shape: number[]; data_offsets: [number, number] };

function isNatural(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseHeader(bytes: Uint8Array, file: string): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    throw new LopperError('truncated', `file is ${bytes.length} bytes, shorter than the 8-byte safetensors header length`, file);
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw new LopperError(
      'truncated',
      `header length ${headerLength} runs past the end of the file (${bytes.length} bytes, so at most ${bytes.length - 8})`,
      file,
    );
  }
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    throw new LopperError('corrupt', `safetensors header is not valid JSON (${(e as Error).message})`, file);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new LopperError('corrupt', 'safetensors header is not a JSON object', file);
  }
  return { header: header as Record<string, unknown>, dataStart };
}

function tensorDType(name: string, dtype: unknown, file: string): DType {
  try {
    return parseDType(String(dtype));
  } catch (e) {
    if (e instanceof LopperError) throw new LopperError(e.code, `tensor "${name}": ${e.message}`, file);
    throw e;
  }
}

function checkEntry(name: string, value: unknown, file: string): HeaderEntry {
  const entry = value as Partial<HeaderEntry> | null;
  const shape = entry?.shape;
  const offsets = entry?.data_offsets;
  if (
    !Array.isArray(shape) ||
    !shape.every(isNatural) ||
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every(isNatural) ||
    offsets[0] > offsets[1]
  ) {
    throw new LopperError('corrupt', `tensor "${name}" has a malformed header entry ${JSON.stringify(value)}`, file);
  }
  return entry as HeaderEntry;
}

/** Every tensor of a .safetensors file, in its storage dtype, copied into aligned arrays. */
export function parseSafetensors(bytes: Uint8Array, file: string): Map<string, Tensor> {
  const { header, dataStart } = parseHeader(bytes, file);
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    const { dtype: dtypeField, shape, data_offsets: [begin, end] } = checkEntry(name, value, file);
    const dtype = tensorDType(name, dtypeField, file);
    if (end > dataLength) {
      throw new LopperError(
        'truncated',
        `tensor "${name}" ends at byte ${end} of the data but the file holds only ${dataLength} data bytes`,
        file,
      );
    }
    const n = numel(shape);
    const size = n * bytesPerElement(dtype);
    if (end - begin !== size) {
      throw new LopperError(
        'corrupt',
        `tensor "${name}" spans ${end - begin} bytes but ${dtypeName(dtype)} [${shape}] needs ${size}`,
        file,
      );
    }
    const data = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape: [...shape], data });
  }
  return tensors;
}

function byteView(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
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
    if (t.data.length !== numel(t.shape) || t.data.BYTES_PER_ELEMENT !== bytesPerElement(t.dtype)) {
      throw new Error(`writeSafetensors: tensor "${name}" holds ${t.data.length}×${t.data.BYTES_PER_ELEMENT} bytes, not ${t.dtype} [${t.shape}]`);
    }
    const end = offset + t.data.byteLength;
    header[name] = { dtype: dtypeName(t.dtype), shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + headerLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  return { size: head.length + offset, chunks: [head, ...entries.map(([, t]) => byteView(t))] };
}

/** safetensorsChunks as one array. */
export function writeSafetensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return concatChunks(safetensorsChunks(tensors, metadata));
}
