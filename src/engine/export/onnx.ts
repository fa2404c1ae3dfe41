/**
 * The transformers.js ONNX bundle: a model folder that transformers.js (`AutoModelForCausalLM`,
 * `AutoTokenizer`, `pipeline('text-generation')`) loads and generates with, in Node and in
 * the browser.
 *
 *   config.json               the Hugging Face config (model_type llama / mistral / qwen2 / qwen3) plus
 *                             "transformers.js_config": {dtype "fp32", use_external_data_format}
 *   generation_config.json    bos/eos
 *   tokenizer.json, …         the tokenizer's files (a llama2.c tokenizer converted)
 *   onnx/model.onnx           the decoder-with-past graph (graph/llama.ts, program
 *                             {kind 'decode', io 'transformers'}), float32 weights
 *   onnx/model.onnx_data[_N]  the weights, only when they exceed the inline limit
 *
 * Weights stay inside model.onnx up to `externalDataThreshold` bytes (protobuf caps a
 * message at 2 GiB). Above it every initializer of 1 KiB or more moves to external data
 * (TensorProto data_location EXTERNAL with location/offset/length), split into files of at
 * most `externalDataChunkBytes` named as transformers.js looks for them (model.onnx_data,
 * model.onnx_data_1, …), and config.json says how many there are: transformers.js reads
 * `transformers.js_config.use_external_data_format` (true for one file, else the count) to
 * fetch them in the browser; in Node it hands onnxruntime-node the model's path and the
 * files are found beside it. A caller whose config lacks the key can pass the same value as
 * from_pretrained's `use_external_data_format` option.
 */
import { hfSideFiles, type FolderFile } from '../formats/hf';
import { concatChunks } from '../formats/chunks';
import { LopperError } from '../errors';
import { llamaGraph } from '../graph/llama';
import type { Checkpoint } from '../model/checkpoint';
import { toHfConfig } from '../model/config';

export const ONNX_SUBFOLDER = 'onnx';
export const ONNX_MODEL = `${ONNX_SUBFOLDER}/model.onnx`;
/** The first external data file; later ones are `${ONNX_DATA}_1`, `_2`, … */
export const ONNX_DATA = `${ONNX_MODEL}_data`;

/** Weight bytes above which they go to external data: 2 GB, under protobuf's 2 GiB message limit with room for the graph. */
export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 2_000_000_000;
/** Largest external data file (a single larger tensor gets a file of its own). */
export const DEFAULT_EXTERNAL_DATA_CHUNK_BYTES = 2_000_000_000;

export interface OnnxBundleOptions {
  /** Put the weights in external data when their bytes exceed this (default 2 GB; 0: always). */
  externalDataThreshold?: number;
  /** Largest external data file in bytes (default 2 GB). */
  externalDataChunkBytes?: number;
}

/** The "transformers.js_config" entry of the bundle's config.json. */
export interface TransformersJsConfig {
  dtype: 'fp32';
  /** true: one external data file; a number: that many; absent: weights inline. */
  use_external_data_format?: true | number;
}

/**
 * The files of a transformers.js model folder for `ck` (dense or pruned: the graph has one
 * past_key_values/present pair per remaining layer, numbered 0..L−1), in writing order.
 * External data files are chunks that view the graph's weights (nothing is concatenated),
 * so a zip writer or a folder writer streams them.
 */
export function onnxBundleFiles(ck: Checkpoint, opts: OnnxBundleOptions = {}): FolderFile[] {
  const threshold = opts.externalDataThreshold ?? DEFAULT_EXTERNAL_DATA_THRESHOLD;
  const chunkBytes = opts.externalDataChunkBytes ?? DEFAULT_EXTERNAL_DATA_CHUNK_BYTES;
  if (!(threshold >= 0)) throw new LopperError('bad-option', `externalDataThreshold must be ≥ 0 (got ${threshold})`);
  if (!(chunkBytes > 0)) throw new LopperError('bad-option', `externalDataChunkBytes must be > 0 (got ${chunkBytes})`);

  const graph = llamaGraph(ck, { kind: 'decode', io: 'transformers' }, 'ops');
  const onnxFiles: FolderFile[] = [];
  const jsConfig: TransformersJsConfig = { dtype: 'fp32' };
  if (graph.initializerBytes() > threshold) {
    const { model, data } = graph.encodeExternal({ location: ONNX_DATA.slice(ONNX_SUBFOLDER.length + 1), chunkBytes });
    onnxFiles.push({ name: ONNX_MODEL, size: model.length, chunks: [model] });
    for (const { location, size, chunks } of data) onnxFiles.push({ name: `${ONNX_SUBFOLDER}/${location}`, size, chunks });
    if (data.length > 0) jsConfig.use_external_data_format = data.length === 1 ? true : data.length;
  } else {
    onnxFiles.push({ name: ONNX_MODEL, ...graph.encodeChunks() });
  }
  return [...hfSideFiles(ck, { ...toHfConfig(ck.config), 'transformers.js_config': jsConfig }), ...onnxFiles];
}

/** onnxBundleFiles with each file in one array, by path. */
export function exportOnnxBundle(ck: Checkpoint, opts: OnnxBundleOptions = {}): Map<string, Uint8Array> {
  return new Map(onnxBundleFiles(ck, opts).map((f) => [f.name, concatChunks(f)]));
}
