import { LopperError, shown } from '../errors';
import { expectedTensors, validateTensors, type Checkpoint } from '../model/checkpoint';
import { fromHfConfig, toHfConfig } from '../model/config';
import { bytesPerElement, numel, type Tensor } from '../model/tensor';
import { HfTokenizer, parseJsonObject, TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from '../text/hf-tokenizer';
import { toHfTokenizerFiles, type Llama2cTokenizer } from '../text/llama2c-tokenizer';
import { concatChunks, type FileChunks } from './chunks';
import { readSafetensors, safetensorsChunks } from './safetensors';
import { containedPath, type FileSource } from './source';

/**
 * A Hugging Face model folder: config.json, the weights in model.safetensors or in shards
 * listed by model.safetensors.index.json, and tokenizer.json (+ tokenizer_config.json).
 */

export const CONFIG_JSON = 'config.json';
export const GENERATION_CONFIG_JSON = 'generation_config.json';
export const SAFETENSORS = 'model.safetensors';
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** Carried with tokenizer.json so an export writes them back (transformers.js reads only tokenizer_config.json). */
const OPTIONAL_TOKENIZER_FILES = [TOKENIZER_CONFIG_JSON, 'special_tokens_map.json'];

const FOLDER_LAYOUT = `a Hugging Face model folder holds ${CONFIG_JSON}, ${SAFETENSORS} (or ${SAFETENSORS_INDEX} and its shards) and ${TOKENIZER_JSON}`;

const pathIn = (src: FileSource, path: string) => `${src.name}/${path}`;

async function readJson(src: FileSource, path: string): Promise<Record<string, unknown>> {
  return parseJsonObject(await src.read(path), pathIn(src, path));
}

async function requireFile(src: FileSource, path: string, hint = ''): Promise<void> {
  if (!(await src.exists(path))) throw new LopperError('not-found', `no ${path}: ${FOLDER_LAYOUT}${hint}`, src.name);
}

/**
 * The weight_map of a sharded checkpoint's index, grouped by shard file: every shard path
 * contained in the model's folder (containedPath), so one shard has one spelling and is read once.
 */
function shardsOf(index: Record<string, unknown>, file: string): Map<string, string[]> {
  const weightMap = index.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new LopperError('corrupt', 'index has no "weight_map" object', file);
  }
  const shards = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string') {
      throw new LopperError('corrupt', `weight_map entry for ${shown(name, 80)} is ${shown(shard)}, not a file name`, file);
    }
    containedPath(shard, file, `weight_map entry for ${shown(name, 80)}:`);
    const names = shards.get(shard) ?? [];
    names.push(name);
    shards.set(shard, names);
  }
  return shards;
}

/** Tensors of a sharded checkpoint: each shard is read once and only its listed tensors are kept. */
async function readShardedWeights(src: FileSource, lazy: boolean): Promise<Map<string, Tensor>> {
  const indexFile = pathIn(src, SAFETENSORS_INDEX);
  const tensors = new Map<string, Tensor>();
  for (const [shard, names] of shardsOf(await readJson(src, SAFETENSORS_INDEX), indexFile)) {
    const shardFile = pathIn(src, shard);
    if (!(await src.exists(shard))) {
      throw new LopperError('not-found', `shard listed in ${SAFETENSORS_INDEX} is missing`, shardFile);
    }
    const inShard = await readSafetensorsFile(src, shard, shardFile, lazy);
    for (const name of names) {
      const t = inShard.get(name);
      if (!t) throw new LopperError('missing-tensor', `no tensor ${shown(name, 80)} (${SAFETENSORS_INDEX} says it is here)`, shardFile);
      tensors.set(name, t);
    }
  }
  return tensors;
}

/** A .safetensors file of the source, read by ranges (files of any size; see readSafetensors). */
async function readSafetensorsFile(src: FileSource, path: string, file: string, lazy = false): Promise<Map<string, Tensor>> {
  const readSync = src.readRangeSync && ((offset: number, length: number) => src.readRangeSync!(path, offset, length));
  return readSafetensors({ size: await src.size(path), read: (offset, length) => src.readRange(path, offset, length), readSync }, file, { lazy });
}

/** Bytes of the weight files (the single file, or every shard the index names). */
async function weightBytes(src: FileSource): Promise<number> {
  if (await src.exists(SAFETENSORS)) return src.size(SAFETENSORS);
  let total = 0;
  for (const shard of shardsOf(await readJson(src, SAFETENSORS_INDEX), pathIn(src, SAFETENSORS_INDEX)).keys()) {
    if (await src.exists(shard)) total += await src.size(shard);
  }
  return total;
}

async function readWeights(src: FileSource, lazyAbove: number): Promise<{ tensors: Map<string, Tensor>; file: string }> {
  const single = await src.exists(SAFETENSORS);
  const lazy = !!src.readRangeSync && (single || (await src.exists(SAFETENSORS_INDEX))) && (await weightBytes(src)) > lazyAbove;
  if (single) {
    const file = pathIn(src, SAFETENSORS);
    return { tensors: await readSafetensorsFile(src, SAFETENSORS, file, lazy), file };
  }
  if (await src.exists(SAFETENSORS_INDEX)) {
    return { tensors: await readShardedWeights(src, lazy), file: pathIn(src, SAFETENSORS_INDEX) };
  }
  const hint = (await src.exists('pytorch_model.bin')) ? ' (pytorch_model.bin is not read: save the model as safetensors)' : '';
  throw new LopperError('not-found', `no ${SAFETENSORS} or ${SAFETENSORS_INDEX}: ${FOLDER_LAYOUT}${hint}`, src.name);
}

export interface HfLoadOptions {
  /**
   * Weight files larger than this many bytes in all stay on disk: their tensors are lazy
   * (model/tensor.ts lazyTensor), read when a pass, a fold or an export needs them, so a model
   * larger than memory loads with only its shapes resident (an 8B model's 16 GB). Needs a
   * source that reads synchronously (files on disk in Node); default: never.
   */
  lazyAbove?: number;
}

/** Import a Hugging Face model folder (any FileSource: disk, dropped files, a hub mirror). */
export async function loadHfFolder(src: FileSource, opts: HfLoadOptions = {}): Promise<Checkpoint> {
  await requireFile(src, CONFIG_JSON);
  const config = fromHfConfig(await readJson(src, CONFIG_JSON), pathIn(src, CONFIG_JSON));
  await requireFile(src, TOKENIZER_JSON);
  const tokenizerFiles: Record<string, Uint8Array> = { [TOKENIZER_JSON]: await src.read(TOKENIZER_JSON) };
  for (const optional of OPTIONAL_TOKENIZER_FILES) {
    if (await src.exists(optional)) tokenizerFiles[optional] = await src.read(optional);
  }
  const tokenizer = await HfTokenizer.create(tokenizerFiles, config, src.name, CONFIG_JSON);
  const { tensors, file } = await readWeights(src, opts.lazyAbove ?? Infinity);
  return {
    config,
    tensors: validateTensors(config, tensors, file, CONFIG_JSON),
    tokenizer,
    source: src.name,
    format: 'hf',
  };
}

const jsonFile = (json: unknown) => new TextEncoder().encode(JSON.stringify(json, null, 2) + '\n');

/** One file of a model folder: its path in the folder and its bytes as chunks. */
export interface FolderFile extends FileChunks {
  name: string;
}

const bytesFile = (name: string, bytes: Uint8Array): FolderFile => ({ name, size: bytes.length, chunks: [bytes] });

/** transformers' save_pretrained default max_shard_size, "5GB" (decimal, as transformers reads it). */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;

export interface HfExportOptions {
  /**
   * Largest weight bytes per safetensors file (default 5 GB). Above it the weights are split
   * as transformers' save_pretrained splits them: model-00001-of-0000N.safetensors, … and
   * model.safetensors.index.json; a tensor larger than the limit gets a shard of its own.
   */
  maxShardSize?: number;
}

/** `transformers`' shard file name: model-00001-of-00003.safetensors. */
export const shardName = (i: number, count: number) =>
  `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;

/**
 * Tensors grouped into shards as huggingface_hub's split_state_dict_into_shards does: in
 * model order (embedding, layer by layer, final norm, LM head), a new shard whenever the
 * next tensor would push the current one past `maxShardSize`, and a tensor larger than
 * that alone in its own shard.
 */
function splitIntoShards(ck: Checkpoint, maxShardSize: number): Map<string, Tensor>[] {
  const order = [...expectedTensors(ck.config).keys()].filter((n) => ck.tensors.has(n));
  const known = new Set(order);
  order.push(...[...ck.tensors.keys()].filter((n) => !known.has(n)).sort());
  const shards: Map<string, Tensor>[] = [];
  let current = new Map<string, Tensor>();
  let currentSize = 0;
  for (const name of order) {
    const t = ck.tensors.get(name)!;
    const size = numel(t.shape) * bytesPerElement(t.dtype);
    if (size > maxShardSize) {
      shards.push(new Map([[name, t]]));
      continue;
    }
    if (currentSize + size > maxShardSize) {
      shards.push(current);
      current = new Map();
      currentSize = 0;
    }
    current.set(name, t);
    currentSize += size;
  }
  if (current.size > 0) shards.push(current);
  return shards;
}

/** model.safetensors, or shards and their index when the weights exceed maxShardSize. */
function weightFiles(ck: Checkpoint, maxShardSize: number): FolderFile[] {
  if (!(Number.isSafeInteger(maxShardSize) && maxShardSize > 0)) {
    throw new LopperError('bad-option', `the largest shard size must be a whole number of bytes > 0 (got ${maxShardSize})`);
  }
  const metadata = { format: 'pt' };
  const shards = splitIntoShards(ck, maxShardSize);
  if (shards.length <= 1) return [{ name: SAFETENSORS, ...safetensorsChunks(ck.tensors, metadata) }];
  const files: FolderFile[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  shards.forEach((tensors, i) => {
    const name = shardName(i, shards.length);
    for (const [tensorName, t] of tensors) {
      weightMap[tensorName] = name;
      totalSize += numel(t.shape) * bytesPerElement(t.dtype);
    }
    files.push({ name, ...safetensorsChunks(tensors, metadata) });
  });
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  files.push(bytesFile(SAFETENSORS_INDEX, jsonFile({ metadata: { total_size: totalSize }, weight_map: sortedMap })));
  return files;
}

/**
 * The files of a Hugging Face model folder for `ck`, as chunks that view the tensors'
 * memory (nothing is copied): config.json (num_hidden_layers and layer_types as the
 * checkpoint has them), generation_config.json, the weights (each tensor in its own dtype;
 * one model.safetensors, or shards and model.safetensors.index.json above
 * `opts.maxShardSize`), and the tokenizer's files (a llama2.c tokenizer is converted to
 * tokenizer.json).
 */
export function hfFolderFiles(ck: Checkpoint, opts: HfExportOptions = {}): FolderFile[] {
  const [config, generationConfig, ...tokenizer] = hfSideFiles(ck, toHfConfig(ck.config));
  return [config, generationConfig, ...weightFiles(ck, opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE), ...tokenizer];
}

/**
 * What a model folder holds besides its weights (here and in the transformers.js bundle):
 * config.json (`config`), generation_config.json, and the tokenizer's files (a llama2.c
 * tokenizer is converted to tokenizer.json).
 */
export function hfSideFiles(ck: Checkpoint, config: Record<string, unknown>): FolderFile[] {
  const tokenizerFiles =
    ck.tokenizer.kind === 'llama2c' ? toHfTokenizerFiles(ck.tokenizer as Llama2cTokenizer) : ck.tokenizer.files();
  return [
    bytesFile(CONFIG_JSON, jsonFile(config)),
    bytesFile(
      GENERATION_CONFIG_JSON,
      jsonFile({ _from_model_config: true, bos_token_id: ck.config.bosTokenId, eos_token_id: ck.config.eosTokenId }),
    ),
    ...Object.entries(tokenizerFiles).map(([name, bytes]) => bytesFile(name, bytes)),
  ];
}

/** hfFolderFiles with each file in one array, by path. */
export function writeHfFolder(ck: Checkpoint, opts: HfExportOptions = {}): Map<string, Uint8Array> {
  return new Map(hfFolderFiles(ck, opts).map((f) => [f.name, concatChunks(f)]));
}
