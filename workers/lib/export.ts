/**
 * A model as a .zip, streamed: src/engine/export gives the files of a format as chunks and
 * its zip writer frames them, one entry at a time; this wraps that in a ReadableStream the
 * worker transfers to the page, which writes it to disk as it arrives. At no point is the
 * whole archive in memory, here or in the page (with the File System Access API).
 */
import { LopperError } from '../../src/engine/errors';
import { exportFiles, zipChunks, zipSize, type ExportEntry, type ExportOptions } from '../../src/engine/export/index';
import { chunksOf } from '../../src/engine/formats/chunks';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import type { ExportFormat } from '../../src/app/protocol';
import { isCancelled } from './cancel';

/** Largest piece handed across to the page: chunks are copied there, so memory stays bounded by this. */
const PIECE_BYTES = 4 * 1024 * 1024;

export interface Archive {
  stream: ReadableStream<Uint8Array>;
  /** the archive's size, when every file's size is known up front */
  bytes: number | null;
  /** bytes read by the page, once it has read everything (rejects when it cancelled or the export failed) */
  finished: Promise<number>;
}

/**
 * `ck` in `format` (with `options`: the ONNX bundle's dtypes, the GGUF type) as a zip whose
 * entries sit in one folder (`folder/config.json`, …); a GGUF, which is one file, as that file's
 * bytes alone. The bytes are made as the page reads them (an ONNX bundle's weights tensor by
 * tensor, a GGUF's rows block by block).
 * `onBytes` reports bytes handed to the page so far. The signal (the request's cancel)
 * ends the stream with LopperError('cancelled').
 */
export async function exportArchive(
  ck: Checkpoint,
  format: ExportFormat,
  options: ExportOptions,
  folder: string,
  signal: AbortSignal,
  onBytes: (sent: number, total: number | null) => void,
): Promise<Archive> {
  const files = await exportFiles(ck, format, options);
  const entries: ExportEntry[] = files.map((f) => ({ ...f, name: `${folder}/${f.name}` }));
  let bytes: number | null = null;
  let source: AsyncGenerator<Uint8Array>;
  if (format === 'gguf') {
    bytes = files[0].size ?? null;
    source = chunksOf(files[0].chunks);
  } else {
    try {
      bytes = zipSize(entries);
    } catch {
      bytes = null; // a file's size is not known before it is written
    }
    source = zipChunks(entries);
  }

  const chunks = pieces(source);
  let sent = 0;
  let settle!: { resolve: (n: number) => void; reject: (e: unknown) => void };
  const finished = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
  finished.catch(() => undefined); // the caller awaits it; no unhandled rejection meanwhile
  const cancelled = () => new LopperError('cancelled', 'the export was cancelled');
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | null = null;
  const onAbort = () => {
    try {
      controllerRef?.error(cancelled());
    } catch {
      // already closed
    }
    void chunks.return(undefined);
    settle.reject(cancelled());
  };
  signal.addEventListener('abort', onAbort, { once: true });

  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controllerRef = controller;
      },
      async pull(controller) {
        try {
          if (isCancelled(signal)) throw cancelled();
          const { value, done } = await chunks.next();
          if (done) {
            controller.close();
            signal.removeEventListener('abort', onAbort);
            settle.resolve(sent);
            return;
          }
          sent += value.length;
          onBytes(sent, bytes);
          controller.enqueue(value);
        } catch (e) {
          signal.removeEventListener('abort', onAbort);
          controller.error(e);
          settle.reject(e);
        }
      },
      async cancel(reason) {
        signal.removeEventListener('abort', onAbort);
        await chunks.return(undefined);
        settle.reject(new LopperError('cancelled', `the page stopped reading the export${reason ? ` (${String((reason as Error)?.message ?? reason)})` : ''}`));
      },
    },
    { highWaterMark: 2 },
  );
  return { stream, bytes, finished };
}

/**
 * The archive's chunks as pieces of at most PIECE_BYTES, each in its own buffer: a chunk
 * may view a whole checkpoint's memory, and what crosses to the page is copied with the
 * buffer it views.
 */
async function* pieces(source: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of source) {
      for (let at = 0; at < chunk.length; at += PIECE_BYTES) {
        const part = chunk.subarray(at, Math.min(chunk.length, at + PIECE_BYTES));
        yield part.byteOffset === 0 && part.byteLength === part.buffer.byteLength && part.buffer instanceof ArrayBuffer ? part : part.slice();
      }
    }
  } finally {
    await source.return(undefined);
  }
}
