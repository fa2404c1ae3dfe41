/**
 * Every export format in one place: a Checkpoint (dense or pruned) → the files another
 * tool loads, as entries whose bytes are chunks (views of the tensors where the format
 * stores them as they are), for a folder on disk (formats/hf-node writeFolder) or a
 * streamed .zip (./zip).
 *
 *   hf       config.json (num_hidden_layers, layer_types), generation_config.json,
 *            model.safetensors or model-0000i-of-0000N.safetensors + index, tokenizer files
 *   llama2c  model.bin (+ tokenizer.bin when the model has a llama2.c tokenizer)
 *   onnx     the transformers.js ONNX bundle (./onnx)
 *   gguf     model-<type>.gguf for llama.cpp, Ollama, LM Studio (./gguf)
 *
 * and the plan: plan.json and prune-layers.txt (./plan).
 */
import { LopperError } from '../errors';
import { hfFolderFiles, type HfExportOptions } from '../formats/hf';
import { checkLlama2c, llama2cFiles } from '../formats/llama2c';
import type { Checkpoint } from '../model/checkpoint';
import { checkGguf, ggufFiles, type GgufOptions } from './gguf';
import { onnxBundleFiles, type OnnxBundleOptions } from './onnx';
import type { ZipEntry } from './zip';

export { planFiles, planDocument, planJson, pruneLayersLine, pruneLayersNote, PLAN_JSON, PRUNE_LAYERS_TXT } from './plan';
export { zipChunks, zipStream, zipSize, type ZipEntry, type ZipOptions } from './zip';

export const EXPORT_FORMATS = ['hf', 'llama2c', 'onnx', 'gguf'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export const isExportFormat = (s: unknown): s is ExportFormat => (EXPORT_FORMATS as readonly unknown[]).includes(s);

/** One exported file: a path in the export folder, its size when known, its bytes. */
export type ExportEntry = ZipEntry;

/** Options of the formats that have any: HF shard size, ONNX external data and dtypes, the GGUF type. */
export type ExportOptions = HfExportOptions & OnnxBundleOptions & GgufOptions;

/**
 * Throws what `format` cannot hold of `ck` (llama2.c: biases, RoPE scaling, …) without
 * writing anything, so a command can refuse before long work. Pruning never changes the
 * answer (removing layers and untying the embeddings keep what a format can hold).
 */
export function checkExportable(ck: Checkpoint, format: ExportFormat): void {
  if (!isExportFormat(format)) {
    throw new LopperError('bad-option', `unknown export format "${String(format)}" (one of ${EXPORT_FORMATS.join(', ')})`);
  }
  if (format === 'llama2c') checkLlama2c(ck);
  if (format === 'gguf') checkGguf(ck);
}

/**
 * The files of `ck` in `format`. Refusals are LopperErrors that name what the format cannot
 * hold (llama2.c: biases, RoPE scaling, …; GGUF: what llama.cpp's architecture lacks, a
 * tokenizer it cannot run). Nothing is joined into one buffer: a file's
 * chunks are produced as they are read.
 */
export async function exportFiles(ck: Checkpoint, format: ExportFormat, opts: ExportOptions = {}): Promise<ExportEntry[]> {
  checkExportable(ck, format);
  switch (format) {
    case 'hf':
      return hfFolderFiles(ck, opts);
    case 'llama2c':
      return llama2cFiles(ck);
    case 'onnx':
      return onnxBundleFiles(ck, opts);
    case 'gguf':
      return ggufFiles(ck, opts);
  }
}
