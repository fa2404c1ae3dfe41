/**
 * A file's bytes as chunks, the one type every reader and writer of model files shares
 * (formats/ writes them, export/ streams them into folders and zips): views of the tensors'
 * data, never a joined copy unless a caller asks for one (concatChunks).
 */

/** Bytes of one file: one array, a list, or an async source (a stream's reader, a generator). */
export type ByteChunks = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** A file of known size as a list of byte chunks, written one after the other (views, not copies). */
export interface FileChunks {
  /** Total bytes of all chunks. */
  size: number;
  /** Iterated once, in order; may produce its chunks lazily. */
  chunks: Iterable<Uint8Array>;
}

/** Any ByteChunks as an async sequence of chunks. */
export async function* chunksOf(chunks: ByteChunks): AsyncGenerator<Uint8Array> {
  if (chunks instanceof Uint8Array) yield chunks;
  else yield* chunks;
}

/** Chunks joined into one array (for small files and tests; model files stream instead). */
export function concatChunks({ size, chunks }: FileChunks): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
