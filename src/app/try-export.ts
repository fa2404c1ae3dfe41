/**
 * "Try it in transformers.js": a model's transformers.js bundle (the export's files, made by
 * the worker as Blobs) loaded into transformers.js in a Web Worker of its own
 * (workers/tjs.worker.ts) and greedy-generated there, beside lopper's own greedy generation
 * of the same model. This file holds what the page and that worker share: their messages, and
 * the comparison of the two id sequences. No engine, no onnxruntime (the page imports it).
 */
import type { OnnxDtype, Progress } from './protocol';

/** One file of the bundle, by its path inside the model folder (config.json, onnx/model.onnx, …). */
export interface BundleFile {
  path: string;
  blob: Blob;
}

/** Page → tjs worker: load the bundle, tokenize `prompt` with its tokenizer, greedy-generate up to `maxTokens`. */
export interface TjsRequest {
  files: BundleFile[];
  dtype: OnnxDtype;
  prompt: string;
  maxTokens: number;
}

/** What transformers.js produced. */
export interface TjsResult {
  /** the prompt as the bundle's tokenizer encodes it (BOS included) */
  promptIds: number[];
  /** the new ids, up to EOS (not included) or maxTokens */
  ids: number[];
  /** the new ids as the bundle's tokenizer decodes them after the prompt (special tokens skipped) */
  text: string;
  /** reading the files and opening the onnxruntime session */
  loadMillis: number;
  /** after the first new token; with one token, its own rate */
  tokensPerSecond: number;
  /** transformers.js's version */
  version: string;
}

/** tjs worker → page. */
export type TjsMessage =
  | { type: 'progress'; progress: Progress }
  | { type: 'token'; ids: number[]; text: string }
  | { type: 'done'; result: TjsResult }
  | { type: 'error'; message: string };

/** Where two greedy runs of the same model part, if they do. */
export interface Agreement {
  /** both runs' ids are the same, in the same number */
  same: boolean;
  /** ids both runs produced alike from the start */
  common: number;
  /**
   * the first position (0-based, in the new tokens) where they differ, with each side's id
   * there (null: that run had stopped — EOS or its limit — before it); null when `same`
   */
  first: { index: number; lopper: number | null; tjs: number | null } | null;
}

/** Compare lopper's new ids with transformers.js's (both without EOS). */
export function compareGreedy(lopper: readonly number[], tjs: readonly number[]): Agreement {
  let common = 0;
  while (common < lopper.length && common < tjs.length && lopper[common] === tjs[common]) common++;
  if (common === lopper.length && common === tjs.length) return { same: true, common, first: null };
  return { same: false, common, first: { index: common, lopper: lopper[common] ?? null, tjs: tjs[common] ?? null } };
}

/**
 * Drop a trailing end-of-sequence id: transformers.js returns the EOS it stopped at, lopper's
 * generation stops before it. `eos` may be one id or several (generation_config.json allows a list).
 */
export function withoutEos(ids: readonly number[], eos: number | readonly number[] | null | undefined): number[] {
  const stops = eos === null || eos === undefined ? [] : typeof eos === 'number' ? [eos] : eos;
  return ids.length > 0 && stops.includes(ids[ids.length - 1]) ? ids.slice(0, -1) : [...ids];
}

/**
 * The bundle's weights that the tab tries: fp32 while its weights are at most `limit` bytes,
 * else fp16 while those are, else none (with why). `requested` fp16 is kept as asked;
 * a requested fp32 too large for the tab falls back to fp16 and says so.
 */
export function tryDtype(
  sizes: { fp32: number; fp16: number },
  limit: number,
  requested: OnnxDtype = 'fp32',
): { dtype: OnnxDtype; note: string | null } | { dtype: null; note: string } {
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (requested === 'fp32' && sizes.fp32 <= limit) return { dtype: 'fp32', note: null };
  if (sizes.fp16 <= limit) {
    return { dtype: 'fp16', note: requested === 'fp32' ? `the fp32 bundle (${gib(sizes.fp32)}) is over the ${gib(limit)} the tab loads into transformers.js: its fp16 bundle instead` : null };
  }
  return {
    dtype: null,
    note: `this model's bundle is too large to try in the tab: ${gib(sizes.fp16)} with fp16 weights (${gib(sizes.fp32)} fp32), over the ${gib(limit)} transformers.js can load here (onnxruntime-web's WebAssembly memory holds about 3× the weights, at most 4 GiB). Download the bundle and load it with transformers.js in Node instead.`,
  };
}
