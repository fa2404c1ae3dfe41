/**
 * The transformers.js ONNX bundle: a model folder that transformers.js (`AutoModelForCausalLM`,
 * `AutoTokenizer`, `pipeline('text-generation')`) loads and generates with, in Node and in
 * the browser.
 *
 *   config.json               the Hugging Face config (model_type llama / mistral / qwen2 / qwen3) plus
 *                             "transformers.js_config": {dtype, use_external_data_format}
 *   generation_config.json    bos/eos
 *   tokenizer.json, …         the tokenizer's files (a llama2.c tokenizer converted)
 *   onnx/model.onnx           the decoder-with-past graph (graph/llama.ts, program
 *                             {kind 'decode', io 'transformers'}), float32 weights
 *   onnx/model_fp16.onnx      the same graph with float16 weights (transformers.js dtype 'fp16')
 *   onnx/model[_fp16].onnx_data[_N]  the weights, only when they exceed the inline limit
 *
 * Weights stay inside model.onnx up to `externalDataThreshold` bytes (protobuf caps a
 * message at 2 GiB). Above it every initializer of 1 KiB or more moves to external data
 * (TensorProto data_location EXTERNAL with location/offset/length), split into files of at
 * most `externalDataChunkBytes` named as transformers.js looks for them (model.onnx_data,
 * model.onnx_data_1, …), and config.json says how many there are per model file:
 * transformers.js reads `transformers.js_config.use_external_data_format` ({"model.onnx":
 * true for one file, else the count}) to fetch them in the browser; in Node it hands
 * onnxruntime-node the model's path and the files are found beside it.
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

/** The weight types a bundle offers, each its own model file (transformers.js's dtype option picks one). */
export const ONNX_DTYPES = ['fp32', 'fp16'] as const;
export type OnnxDtype = (typeof ONNX_DTYPES)[number];

/** The model file of `dtype` inside the bundle: onnx/model.onnx, onnx/model_fp16.onnx (transformers.js's names). */
export const onnxModelFile = (dtype: OnnxDtype): string => `${ONNX_SUBFOLDER}/model${dtype === 'fp16' ? '_fp16' : ''}.onnx`;

/** Weight bytes above which they go to external data: 2 GB, under protobuf's 2 GiB message limit with room for the graph. */
export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 2_000_000_000;
/** Largest external data file (a single larger tensor gets a file of its own). */
export const DEFAULT_EXTERNAL_DATA_CHUNK_BYTES = 2_000_000_000;

export interface OnnxBundleOptions {
  /** Put the weights in external data when their bytes exceed this (default 2 GB; 0: always). */
  externalDataThreshold?: number;
  /** Largest external data file in bytes (default 2 GB). */
  externalDataChunkBytes?: number;
  /**
   * The model files to write (default ['fp32']): fp32 → onnx/model.onnx, fp16 →
   * onnx/model_fp16.onnx (float16 weights widened by a Cast in the graph: half the bytes,
   * float32 arithmetic). The first is the bundle's default dtype.
   */
  dtypes?: readonly OnnxDtype[];
}

/** The "transformers.js_config" entry of the bundle's config.json. */
export interface TransformersJsConfig {
  /** the model file from_pretrained loads when no dtype is asked for */
  dtype: OnnxDtype;
  /** per model file with external data (e.g. "model_fp16.onnx"): true for one data file, else their count */
  use_external_data_format?: Record<string, true | number>;
}

/** Parse a --dtype value: fp32, fp16, or both ("fp32,fp16"). */
export function parseOnnxDtypes(s: string): OnnxDtype[] {
  const parts = s === 'both' ? [...ONNX_DTYPES] : s.split(',').map((p) => p.trim());
  const bad = parts.find((p) => !(ONNX_DTYPES as readonly string[]).includes(p));
  if (bad !== undefined || parts.length === 0) throw new LopperError('bad-option', `--dtype takes fp32, fp16 or both (got "${s}")`);
  return [...new Set(parts as OnnxDtype[])];
}

/**
 * The files of a transformers.js model folder for `ck` (dense or pruned: the graph has one
 * past_key_values/present pair per remaining layer, numbered 0..L−1), in writing order.
 * Every weight is made when its turn comes to be written and let go after (the graph holds
 * lazy weights: graph/builder.ts), so a zip writer or a folder writer streams the bundle
 * holding about one tensor at a time — never a second copy of the model.
 */
export function onnxBundleFiles(ck: Checkpoint, opts: OnnxBundleOptions = {}): FolderFile[] {
  const threshold = opts.externalDataThreshold ?? DEFAULT_EXTERNAL_DATA_THRESHOLD;
  const chunkBytes = opts.externalDataChunkBytes ?? DEFAULT_EXTERNAL_DATA_CHUNK_BYTES;
  const dtypes = opts.dtypes ?? ['fp32'];
  if (!(threshold >= 0)) throw new LopperError('bad-option', `externalDataThreshold must be ≥ 0 (got ${threshold})`);
  if (!(chunkBytes > 0)) throw new LopperError('bad-option', `externalDataChunkBytes must be > 0 (got ${chunkBytes})`);
  if (dtypes.length === 0 || dtypes.some((d) => !(ONNX_DTYPES as readonly string[]).includes(d))) {
    throw new LopperError('bad-option', `the ONNX bundle's dtypes are fp32 and/or fp16 (got ${JSON.stringify(dtypes)})`);
  }

  const onnxFiles: FolderFile[] = [];
  const jsConfig: TransformersJsConfig = { dtype: dtypes[0] };
  const external: Record<string, true | number> = {};
  for (const dtype of new Set(dtypes)) {
    const file = onnxModelFile(dtype);
    const base = file.slice(ONNX_SUBFOLDER.length + 1); // model.onnx, model_fp16.onnx
    const graph = llamaGraph(ck, { kind: 'decode', io: 'transformers', weights: dtype }, 'ops');
    if (graph.initializerBytes() > threshold) {
      const { model, data } = graph.encodeExternal({ location: `${base}_data`, chunkBytes });
      onnxFiles.push({ name: file, size: model.length, chunks: [model] });
      for (const { location, size, chunks } of data) onnxFiles.push({ name: `${ONNX_SUBFOLDER}/${location}`, size, chunks });
      if (data.length > 0) external[base] = data.length === 1 ? true : data.length;
    } else {
      onnxFiles.push({ name: file, ...graph.encodeChunks() });
    }
  }
  if (Object.keys(external).length > 0) jsConfig.use_external_data_format = external;
  return [...hfSideFiles(ck, { ...toHfConfig(ck.config), 'transformers.js_config': jsConfig }), ...onnxFiles];
}

/** onnxBundleFiles with each file in one array, by path (tests and small models). */
export function exportOnnxBundle(ck: Checkpoint, opts: OnnxBundleOptions = {}): Map<string, Uint8Array> {
  return new Map(onnxBundleFiles(ck, opts).map((f) => [f.name, concatChunks(f)]));
}
