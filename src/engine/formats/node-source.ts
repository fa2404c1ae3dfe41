import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join, relative, isAbsolute } from 'node:path';
import { LopperError } from '../errors';
import type { FileSource } from './source';

/** A Node file-system error as a LopperError naming the file (a person's mistake or a bad file, never a bug). */
export function fileError(e: unknown, path: string): LopperError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new LopperError('not-found', 'no such file', path);
  if (code === 'EISDIR') return new LopperError('bad-input', 'is a folder, not a file', path);
  if (code === 'ERR_FS_FILE_TOO_LARGE' || e instanceof RangeError) {
    return new LopperError('bad-input', 'is too large to read into memory at once (over 2 GiB): shard it (model.safetensors.index.json)', path);
  }
  return new LopperError('not-found', `cannot be read (${code ?? (e as Error).message})`, path);
}

/** A range of bytes of a file of `size` bytes, or a 'truncated' LopperError naming the file. */
function checkRange(offset: number, length: number, size: number, full: string, note = ''): void {
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= size)) {
    throw new LopperError('truncated', `bytes ${offset}..${offset + length} are outside the file (${size} bytes)${note}`, full);
  }
}

/** A folder on disk (Node only: the CLI and tests); nothing outside it is read. */
export class DirSource implements FileSource {
  constructor(readonly name: string) {}
  private full(path: string): string {
    const full = join(this.name, path);
    const rel = relative(this.name, full);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new LopperError('bad-input', `"${path}" is not inside the folder`, this.name);
    return full;
  }
  async read(path: string): Promise<Uint8Array> {
    const full = this.full(path);
    try {
      const buf = await readFile(full);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      throw fileError(e, full);
    }
  }
  async size(path: string): Promise<number> {
    const full = this.full(path);
    try {
      const s = await stat(full);
      if (!s.isFile()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
      return s.size;
    } catch (e) {
      throw fileError(e, full);
    }
  }
  /** One range through a file handle: a file of any size, never read whole. */
  async readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    const full = this.full(path);
    checkRange(offset, length, await this.size(path), full);
    const out = new Uint8Array(length);
    let fh;
    try {
      fh = await open(full, 'r');
      let at = 0;
      while (at < length) {
        const { bytesRead } = await fh.read(out, at, Math.min(length - at, 1 << 30), offset + at);
        if (bytesRead === 0) throw new LopperError('truncated', `the file ended at byte ${offset + at} while reading up to ${offset + length}`, full);
        at += bytesRead;
      }
    } catch (e) {
      if (e instanceof LopperError) throw e;
      throw fileError(e, full);
    } finally {
      await fh?.close();
    }
    return out;
  }
  /** readRange, synchronously: what lazy tensors read through (loadHfFolder's lazyAbove). */
  readRangeSync(path: string, offset: number, length: number): Uint8Array {
    const full = this.full(path);
    let fd: number | undefined;
    try {
      fd = openSync(full, 'r');
      checkRange(offset, length, fstatSync(fd).size, full, ': did it change after it was loaded?');
      const out = new Uint8Array(length);
      let at = 0;
      while (at < length) {
        const n = readSync(fd, out, at, Math.min(length - at, 1 << 30), offset + at);
        if (n === 0) throw new LopperError('truncated', `the file ended at byte ${offset + at} while reading up to ${offset + length}`, full);
        at += n;
      }
      return out;
    } catch (e) {
      if (e instanceof LopperError) throw e;
      throw fileError(e, full);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  async exists(path: string): Promise<boolean> {
    try {
      return (await stat(this.full(path))).isFile();
    } catch {
      return false;
    }
  }
}
