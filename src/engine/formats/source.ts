import { LopperError, shown } from '../errors';

/**
 * Read-only access to the files of a model, wherever they live: a folder on disk (Node),
 * files the person dropped on the page, a hub repo or mirror over HTTP, IndexedDB.
 * Importers only see this interface, and only ask it for paths that containedPath accepted.
 */
export interface FileSource {
  /** A name for messages: a folder path, a URL, a repo id. */
  readonly name: string;
  /** Whole file by path relative to the source; throws LopperError('not-found') if absent. */
  read(path: string): Promise<Uint8Array>;
  /** The file's size in bytes (LopperError('not-found') if absent). */
  size(path: string): Promise<number>;
  /**
   * Bytes [offset, offset + length) of the file, for files too large to read whole (weights:
   * a single Llama-3.2-1B model.safetensors is 2.47 GB). The range must lie inside the file.
   */
  readRange(path: string, offset: number, length: number): Promise<Uint8Array>;
  /** readRange, synchronously, where the source can (files on disk in Node): lazy weights read through it. */
  readRangeSync?(path: string, offset: number, length: number): Uint8Array;
  exists(path: string): Promise<boolean>;
}

/** A range of bytes already in memory, checked to lie inside them (a view, not a copy). */
export function rangeOf(bytes: Uint8Array, offset: number, length: number, file: string): Uint8Array {
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= bytes.length)) {
    throw new LopperError('truncated', `bytes ${offset}..${offset + length} are outside the file (${bytes.length} bytes)`, file);
  }
  return bytes.subarray(offset, offset + length);
}

/**
 * `path` (from a file of the model, such as a shard index's weight_map) if it names a file
 * inside the model's folder on every kind of source, else a LopperError naming `file`: only
 * plain relative segments separated by "/" (no "..", ".", empty segments, absolute paths,
 * drive letters, URL schemes, queries or fragments, backslashes, percent-escapes, control
 * characters). So one file has one spelling, and nothing outside the model is ever read.
 */
export function containedPath(path: string, file: string, what = 'path'): string {
  const segments = path.split('/');
  const ok =
    path.length > 0 &&
    path.length <= 512 &&
    !/[\\:?#%\u0000-\u001f\u007f]/.test(path) &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..');
  if (!ok) throw new LopperError('corrupt', `${what} ${shown(path, 80)} is not a file inside the model's folder`, file);
  return path;
}

/** A FileSource over files already in memory (tests, dropped files). */
export class MemorySource implements FileSource {
  constructor(
    readonly name: string,
    private readonly files: Map<string, Uint8Array>,
  ) {}
  async read(path: string): Promise<Uint8Array> {
    const f = this.files.get(path);
    if (!f) throw new LopperError('not-found', `no file "${path}"`, this.name);
    return f;
  }
  async size(path: string): Promise<number> {
    const f = this.files.get(path);
    if (!f) throw new LopperError('not-found', `no file "${path}"`, this.name);
    return f.length;
  }
  async readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    return rangeOf(await this.read(path), offset, length, `${this.name}/${path}`);
  }
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
}
