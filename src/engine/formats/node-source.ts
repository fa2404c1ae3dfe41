import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LopperError } from '../errors';
import type { FileSource } from './source';

/** A folder on disk (Node only: the CLI and tests). */
export class DirSource implements FileSource {
  constructor(readonly name: string) {}
  async read(path: string): Promise<Uint8Array> {
    const full = join(this.name, path);
    try {
      const buf = await readFile(full);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new LopperError('not-found', 'no such file', full);
      throw e;
    }
  }
  async exists(path: string): Promise<boolean> {
    try {
      return (await stat(join(this.name, path))).isFile();
    } catch {
      return false;
    }
  }
}
