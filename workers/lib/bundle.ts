/**
 * A model's transformers.js bundle as Blobs, for "Try it in transformers.js": the same files
 * the export's .zip holds (src/engine/export exportFiles, format onnx, one dtype), made tensor
 * by tensor as the export makes them and gathered into Blobs (the browser keeps a Blob's bytes
 * outside this worker's heap, on disk when large), so the checkpoint here is the only other
 * copy. The page hands the Blobs to workers/tjs.worker.ts, which lets them go when done.
 */
import { LopperError } from '../../src/engine/errors';
import { exportFiles } from '../../src/engine/export/index';
import { chunksOf } from '../../src/engine/formats/chunks';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { WEB_WHOLE_GRAPH_BUDGET } from '../../src/engine/runtime/ort';
import { tryDtype, type BundleFile } from '../../src/app/try-export';
import type { OnnxDtype } from '../../src/app/protocol';
import { checkAbort } from './cancel';

/**
 * The most bundle bytes the tab loads into transformers.js: the whole-graph budget of
 * onnxruntime-web (its WebAssembly memory holds about 3× a graph's weights).
 */
export const TRY_LIMIT_BYTES = WEB_WHOLE_GRAPH_BUDGET;

/** Pieces of a file gathered before they become one Blob (a Blob per tensor would be thousands). */
const BLOB_PIECE_BYTES = 16 * 1024 * 1024;

/** An ONNX bundle's files all have their sizes up front (onnxBundleFiles). */
const total = (files: { size?: number }[]) => files.reduce((a, f) => a + (f.size ?? NaN), 0);

/**
 * `ck`'s bundle with `requested` weights (fp32 by default; fp16 when the fp32 bundle is over
 * TRY_LIMIT_BYTES; refused with the sizes when both are). `onBytes` reports bytes made so far.
 */
export async function bundleBlobs(
  ck: Checkpoint,
  requested: OnnxDtype | undefined,
  signal: AbortSignal,
  onBytes: (done: number, total: number) => void,
): Promise<{ files: BundleFile[]; dtype: OnnxDtype; bytes: number; note: string | null }> {
  const fp32 = await exportFiles(ck, 'onnx', { dtypes: ['fp32'] });
  const fits32 = requested !== 'fp16' && total(fp32) <= TRY_LIMIT_BYTES;
  const fp16 = fits32 ? null : await exportFiles(ck, 'onnx', { dtypes: ['fp16'] });
  const choice = tryDtype({ fp32: total(fp32), fp16: fp16 ? total(fp16) : Infinity }, TRY_LIMIT_BYTES, requested);
  if (choice.dtype === null) throw new LopperError('bad-input', choice.note); // the banner's 'too-large' offers to load anyway: not a choice here
  const files = choice.dtype === 'fp32' ? fp32 : fp16!;
  const bytes = total(files);
  const out: BundleFile[] = [];
  let done = 0;
  for (const f of files) {
    const parts: Blob[] = [];
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const flush = () => {
      if (pending.length) parts.push(new Blob(pending as Uint8Array<ArrayBuffer>[])); // copies the views' bytes, not the buffers they view
      pending = [];
      pendingBytes = 0;
    };
    for await (const chunk of chunksOf(f.chunks)) {
      checkAbort(signal, 'the bundle was cancelled');
      pending.push(chunk);
      pendingBytes += chunk.length;
      done += chunk.length;
      if (pendingBytes >= BLOB_PIECE_BYTES) flush();
      onBytes(done, bytes);
    }
    flush();
    const blob = new Blob(parts);
    if (blob.size !== f.size) throw new Error(`${f.name}: made ${blob.size} bytes, announced ${f.size}`);
    out.push({ path: f.name, blob });
  }
  return { files: out, dtype: choice.dtype, bytes, note: choice.note };
}
