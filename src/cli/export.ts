/**
 * `lopper export --model MODEL --format hf|llama2c|onnx|gguf --out DIR|FILE.zip|FILE.gguf`, and the folder
 * writer `prune --out` shares with it: files are written into a temporary folder beside the
 * target and renamed into place, so an error leaves nothing behind.
 */
import { mkdtemp, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { LopperError } from '../engine/errors';
import {
  checkExportable,
  EXPORT_FORMATS,
  exportFiles,
  isExportFormat,
  planFiles,
  type ExportEntry,
  type ExportFormat,
  type ExportOptions,
} from '../engine/export';
import { GGUF_TYPES, isGgufType, type GgufType } from '../engine/export/gguf';
import { parseOnnxDtypes, type OnnxDtype } from '../engine/export/onnx';
import { zipChunks } from '../engine/export/zip';
import { chunksOf } from '../engine/formats/chunks';
import { writeFolder } from '../engine/formats/hf-node';
import { LLAMA2C_MODEL, llama2cTokenizerNote } from '../engine/formats/llama2c';
import { loadModelPath } from '../engine/formats/load-node';
import type { Checkpoint } from '../engine/model/checkpoint';
import type { Plan } from '../engine/prune/plan';
import { parse, required } from './args';

/** An --out that does not exist or is an empty folder (checked before any work). */
export async function checkOutDir(dir: string): Promise<void> {
  let s;
  try {
    s = await stat(dir);
  } catch {
    return;
  }
  if (!s.isDirectory() || (await readdir(dir)).length > 0) throw new LopperError('bad-option', '--out must be a new or empty folder', dir);
}

/** --format's value, or `fallback` (the model's own format) when it is absent. */
export function formatOption(values: Record<string, unknown>, fallback?: ExportFormat): ExportFormat {
  const f = values.format ?? fallback;
  if (f === undefined) throw new LopperError('bad-option', `--format is required (${EXPORT_FORMATS.join('|')})`);
  if (!isExportFormat(f)) throw new LopperError('bad-option', `--format must be one of ${EXPORT_FORMATS.join(', ')} (got "${String(f)}")`);
  return f;
}

const UNITS: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30 };

/** --max-shard-size: bytes, or with a unit as transformers reads it ("5GB" = 5·10⁹, "500MiB"). */
export function sizeOption(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(v));
  const unit = m && UNITS[m[2].toUpperCase()];
  const n = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(n >= 1)) throw new LopperError('bad-option', `--${name} must be a size such as 5GB, 200MB or 1000000 (got "${String(v)}")`);
  return n;
}

/**
 * --dtype: of an ONNX export fp32 (default), fp16, or both (model.onnx and model_fp16.onnx);
 * of a GGUF export f32, f16, bf16 or q8_0 (default: the weights' own type).
 */
export function dtypeOption(values: Record<string, unknown>, format: ExportFormat | undefined): { dtypes?: OnnxDtype[]; ggufType?: GgufType } {
  const v = values.dtype;
  if (v === undefined) return {};
  if (format === 'onnx') return { dtypes: parseOnnxDtypes(String(v)) };
  if (format === 'gguf') {
    const t = String(v).toLowerCase().replace(/^fp/, 'f');
    if (!isGgufType(t)) throw new LopperError('bad-option', `--dtype of a GGUF export must be one of ${GGUF_TYPES.join(', ')} (got "${String(v)}")`);
    return { ggufType: t };
  }
  throw new LopperError('bad-option', '--dtype applies to --format onnx and gguf only (the other formats keep the weights\' own dtype)');
}

/** Move a finished temporary folder or file onto `target` (an empty folder there is replaced). */
async function moveIntoPlace(tmp: string, target: string): Promise<void> {
  await rmdir(target).catch(() => undefined); // an empty --out folder (checked up front)
  await rename(tmp, target);
}

/** Write `entries` as the folder `dir` (new or empty), all or nothing. */
export async function writeExportFolder(dir: string, entries: ExportEntry[]): Promise<void> {
  const target = resolve(dir);
  const tmp = await mkdtemp(join(dirname(target), `.${basename(target)}.tmp-`));
  try {
    await writeFolder(tmp, entries);
    await moveIntoPlace(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Write `chunks` as the file `file` (which must not exist), streamed, all or nothing. */
async function writeStreamed(file: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const target = resolve(file);
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}`);
  const fh = await open(tmp, 'wx');
  try {
    for await (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) at += (await fh.write(chunk, at, chunk.length - at)).bytesWritten;
    }
    await fh.close();
    await rename(tmp, target);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Write `entries` as a stored .zip at `file` (which must not exist), streamed, all or nothing. */
export const writeExportZip = (file: string, entries: ExportEntry[]): Promise<void> => writeStreamed(file, zipChunks(entries));

/** Write the one file of `entry` (a GGUF) at `file` (which must not exist), streamed, all or nothing. */
export const writeExportFile = (file: string, entry: ExportEntry): Promise<void> => writeStreamed(file, chunksOf(entry.chunks));

/** The path to pass as --model for a model written to `dir` in `format` (for GGUF: the file, for llama.cpp). */
export function modelPathIn(dir: string, format: ExportFormat, entries: ExportEntry[] = []): string {
  if (format === 'llama2c') return join(dir, LLAMA2C_MODEL);
  if (format === 'gguf') return join(dir, entries.find((e) => e.name.endsWith('.gguf'))?.name ?? '');
  return dir;
}

export interface WriteModelOptions extends ExportOptions {
  /** Default: the model's own format (llama2.c → model.bin + tokenizer.bin; HF → a model folder). */
  format?: ExportFormat;
  /** Written beside the model as plan.json and prune-layers.txt. */
  plan?: Plan;
}

/**
 * Write `ck` (and its plan) to the new or empty folder `dir`, all or nothing. Returns the path
 * to pass as --model.
 */
export async function writeModel(ck: Checkpoint, dir: string, opts: WriteModelOptions = {}): Promise<string> {
  const format = opts.format ?? ck.format;
  const entries = await exportFiles(ck, format, opts);
  if (opts.plan) entries.push(...planFiles(opts.plan));
  await writeExportFolder(dir, entries);
  return modelPathIn(dir, format, entries);
}

/** `lopper export`. */
export async function exportCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    tokenizer: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    'max-shard-size': { type: 'string' },
    dtype: { type: 'string' },
    json: { type: 'boolean' },
  });
  const format = formatOption(v);
  const types = dtypeOption(v, format);
  const dest = required(v, 'out');
  const maxShardSize = sizeOption(v, 'max-shard-size');
  if (maxShardSize !== undefined && format !== 'hf') throw new LopperError('bad-option', '--max-shard-size applies to --format hf only');
  const suffix = /\.(zip|gguf)$/i.exec(dest)?.[1].toLowerCase();
  if (suffix === 'gguf' && format !== 'gguf') throw new LopperError('bad-option', '--out FILE.gguf needs --format gguf', dest);
  if (suffix) {
    if (await stat(dest).then(() => true, () => false)) throw new LopperError('bad-option', `--out: the .${suffix} file already exists`, dest);
  } else {
    await checkOutDir(dest);
  }
  const ck = await loadModelPath(required(v, 'model'), v.tokenizer as string | undefined);
  const entries = await exportFiles(ck, format, { maxShardSize, ...types });
  if (suffix === 'zip') await writeExportZip(dest, entries);
  else if (suffix === 'gguf') await writeExportFile(dest, entries[0]);
  else await writeExportFolder(dest, entries);

  const notes = format === 'llama2c' ? [llama2cTokenizerNote(ck)].filter((n) => n !== undefined) : [];
  const files = entries.map((e) => ({ name: e.name, size: e.size }));
  if (v.json) {
    const path = suffix === 'gguf' ? dest : suffix ? undefined : modelPathIn(dest, format, entries);
    out(JSON.stringify({ model: ck.source, format, out: dest, ...(path && { path }), files, notes }) + '\n');
    return;
  }
  out(`wrote ${ck.source} as ${format} (${files.length} files) to ${dest}\n`);
  for (const n of notes) out(`note: ${n}\n`);
}

/**
 * `prune --out DIR [--format F]`: the format to write (default: the model's own), checked
 * against the model before any pruning; undefined without --out.
 */
export function pruneOutFormat(values: Record<string, unknown>, ck: Checkpoint, dir: string | undefined): ExportFormat | undefined {
  if (dir === undefined) {
    if (values.format !== undefined) throw new LopperError('bad-option', '--format applies to the model --out writes: give --out DIR too');
    return undefined;
  }
  const format = formatOption(values, ck.format);
  checkExportable(ck, format);
  return format;
}
