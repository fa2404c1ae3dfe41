import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { chunksOf, type ByteChunks } from './chunks';

/** A file to write: its path in the folder and its bytes (one array, or chunks, sync or async). */
export interface FolderEntry {
  name: string;
  chunks: ByteChunks;
}

/**
 * Write a folder's files under `dir`, creating folders as needed (Node only): a Map of whole
 * files (as writeHfFolder returns them) or entries whose chunks are written one at a time
 * (as hfFolderFiles and exportFiles return them), so nothing is joined in memory.
 */
export async function writeFolder(
  dir: string,
  files: Map<string, Uint8Array> | Iterable<FolderEntry> | AsyncIterable<FolderEntry>,
): Promise<void> {
  const entries = files instanceof Map ? [...files].map(([name, chunks]) => ({ name, chunks })) : files;
  for await (const { name, chunks } of entries) {
    const full = join(dir, name);
    await mkdir(dirname(full), { recursive: true });
    const fh = await open(full, 'w');
    try {
      for await (const chunk of chunksOf(chunks)) {
        let at = 0;
        while (at < chunk.length) at += (await fh.write(chunk, at, chunk.length - at)).bytesWritten;
      }
    } finally {
      await fh.close();
    }
  }
}
