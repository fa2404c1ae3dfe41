/**
 * Read-only access to the files of a model, wherever they live: a folder on disk (Node),
 * files the person dropped on the page, a hub repo or mirror over HTTP, IndexedDB.
 * Importers only see this interface.
 */
export interface FileSource {
  /** A name for messages: a folder path, a URL, a repo id. */
  readonly name: string;
  /** Whole file by path relative to the source; throws LopperError('not-found') if absent. */
  read(path: string): Promise<Uint8Array>;
  exists(path: string): Promise<boolean>;
}

/** A FileSource over files already in memory (tests, dropped files). */
export class MemorySource implements FileSource {
  constructor(
    readonly name: string,
    private readonly files: Map<string, Uint8Array>,
  ) {}
  async read(path: string): Promise<Uint8Array> {
    const f = this.files.get(path);
    if (!f) {
      const { LopperError } = await import('../errors');
      throw new LopperError('not-found', `no file "${path}"`, this.name);
    }
    return f;
  }
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
}
