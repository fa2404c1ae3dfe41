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
  exists(path: string): Promise<boolean>;
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
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
}
