/**
 * Seeded random checkpoints of the exact published shapes (../shared/configs), with the real
 * tokenizer of each family (../shared/tokenizers), written as the hub lays them out: the
 * published config.json, tokenizer.json, and one bf16 model.safetensors (2.47 GB for
 * Llama-3.2-1B, 16 GB for Llama-3-8B) written tensor by tensor, so writing one holds a
 * single tensor in memory. Used by the real-shape tests and by npm run bench:scale.
 *
 * The values: each bf16 element has a random sign, a mantissa uniform in [1, 2) and an
 * exponent of e or e + 1, e chosen so a matrix's elements have variance ≈ 1/fan_in (unit
 * scale activations and logits); norm gains are 1, biases small.
 * A xorshift stream per tensor (seeded by the model's seed and the tensor's name) makes
 * ~1 ns per element, so the 8B file is written in about the time the disk takes.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors } from '../../src/engine/model/checkpoint';
import { fromHfConfig, type LlamaConfig } from '../../src/engine/model/config';
import { numel } from '../../src/engine/model/tensor';
import { Llama2cTokenizer, toHfTokenizerFiles } from '../../src/engine/text/llama2c-tokenizer';
import { SHARED } from './paths';

/** The shapes lopper's catalog offers, and the paper's 8B, by config file name; the tokenizer family of each. */
export const SHAPES = {
  'HuggingFaceTB__SmolLM2-135M': 'smollm2',
  'HuggingFaceTB__SmolLM2-360M': 'smollm2',
  'Qwen__Qwen2.5-0.5B': 'qwen2',
  'Qwen__Qwen3-0.6B': 'qwen2',
  'TinyLlama__TinyLlama-1.1B-Chat-v1.0': 'llama2',
  'meta-llama__Llama-3.2-1B': 'llama3',
  'HuggingFaceTB__SmolLM2-1.7B': 'smollm2',
  'meta-llama__Meta-Llama-3-8B': 'llama3',
} as const;
export type ShapeName = keyof typeof SHAPES;
type Family = (typeof SHAPES)[ShapeName];

export function shapeConfig(name: ShapeName): LlamaConfig {
  return fromHfConfig(JSON.parse(readFileSync(join(SHARED, 'configs', `${name}.json`), 'utf8')), `${name}.json`);
}

// Qwen2's pre-tokenizer split, as transformers' Qwen2Converter writes it.
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Qwen2's tokenizer.json built from its vocab.json and merges.txt the way transformers'
 * Qwen2Converter builds it: byte-level BPE (no unk, no byte fallback), NFC, the Qwen2 split
 * then byte-level without its own regex, the byte-level decoder, and the added special tokens.
 */
function qwen2TokenizerJson(dir: string): Uint8Array {
  const vocab = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const merges = readFileSync(join(dir, 'merges.txt'), 'utf8')
    .split(/\r?\n/) // the file has CRLF line ends
    .filter((line, i) => line !== '' && !(i === 0 && line.startsWith('#version')));
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { added_tokens_decoder: Record<string, { content: string; special: boolean }> };
  const added = Object.entries(config.added_tokens_decoder).map(([id, t]) => ({
    id: Number(id),
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

/** The real tokenizer's files for a family, as a hub folder holds them (Llama 2's converted from its llama2.c file by lopper's own converter). */
export function tokenizerFiles(family: Family): Record<string, Uint8Array> {
  const dir = join(SHARED, 'tokenizers', family);
  const read = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
  switch (family) {
    case 'smollm2':
      return { 'tokenizer.json': read('tokenizer.json') };
    case 'llama3':
      return { 'tokenizer.json': read('tokenizer.json'), 'tokenizer_config.json': read('tokenizer_config.json') };
    case 'qwen2':
      return { 'tokenizer.json': qwen2TokenizerJson(dir), 'tokenizer_config.json': read('tokenizer_config.json') };
    case 'llama2':
      return toHfTokenizerFiles(new Llama2cTokenizer(read('tokenizer.bin'), join(dir, 'tokenizer.bin')));
  }
}

/** 32-bit FNV-1a of a string: per-tensor seeds. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** A tensor's random bf16 bits (see the top of this file). */
function randomBf16(name: string, shape: readonly number[], seed: number): Uint16Array {
  const n = numel(shape);
  const out = new Uint16Array(n);
  if (name.endsWith('norm.weight')) return out.fill(0x3f80); // 1.0
  // E[m²] of m = (1 + u)·2^b, u ~ U[0, 1), b ∈ {0, 1}: (1 + 1 + 1/3)·(1 + 4)/2 ≈ 5.83
  // Every matrix, the embedding too (it is the head of a tied model): variance 1/D or 1/fan_in,
  // so the logits have unit scale and a random model's perplexity is finite (near the vocabulary size).
  const std = name.endsWith('.bias') ? 0.02 : 1 / Math.sqrt(shape[shape.length - 1]);
  const e = 127 + Math.round(Math.log2(std / Math.sqrt(5.83)));
  let x = (fnv1a(name) ^ Math.imul(seed, 0x9e3779b1)) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x & 1) << 15) | ((e + ((x >>> 1) & 1)) << 7) | ((x >>> 2) & 0x7f);
  }
  return out;
}

/**
 * Write the folder of `name` into `dir`: config.json (the published one), the tokenizer's
 * files, and model.safetensors (bf16, tensors sorted by name as safetensors' save_file sorts
 * equal-dtype tensors), one tensor in memory at a time. Returns the weight file's size.
 */
export function writeShapeFolder(name: ShapeName, dir: string, seed = 1): number {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), readFileSync(join(SHARED, 'configs', `${name}.json`))); // a copy, not the shared file's read-only mode
  for (const [file, bytes] of Object.entries(tokenizerFiles(SHAPES[name]))) writeFileSync(join(dir, file), bytes);
  const entries = [...expectedTensors(shapeConfig(name))].sort(([a], [b]) => (a < b ? -1 : 1));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [tensor, shape] of entries) {
    const bytes = numel(shape) * 2;
    header[tensor] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    writeSync(fd, length);
    writeSync(fd, padded);
    for (const [tensor, shape] of entries) {
      const data = randomBf16(tensor, shape, seed);
      const bytes = new Uint8Array(data.buffer);
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 30));
    }
  } finally {
    closeSync(fd);
  }
  return 8 + padded.length + offset;
}

/** writeShapeFolder into `dir` unless a complete one is there already (bench:scale keeps them between runs). */
export function cachedShapeFolder(name: ShapeName, dir: string, seed = 1): string {
  const done = join(dir, '.complete');
  if (!existsSync(done)) {
    writeShapeFolder(name, dir, seed);
    writeFileSync(done, `${name} seed ${seed}\n`);
  }
  return dir;
}
