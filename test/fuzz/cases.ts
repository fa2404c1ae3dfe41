/**
 * The fuzz cases: the seed corpus (the shared models' real files, and the Hugging Face folder
 * lopper converts stories260K to), one seeded mutation of one file per case, the loader it
 * goes through (in this thread), and the oracle that says whether the loader held.
 *
 * A case holds when the loader either rejects the file with a LopperError whose message names
 * the mutated file (one line, bounded), or accepts it and the model then works (its tokenizer
 * encodes a sample text to ids inside the vocabulary, decodes them, converts to GGUF metadata
 * or is refused by that conversion with a LopperError, and the ONNX graph builds).
 * It fails when anything else is thrown (an escape: a stack trace in the CLI), a file outside
 * the model is read, or a mutation known to make the file inconsistent is accepted.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { LopperError, MAX_MESSAGE } from '../../src/engine/errors';
import { ggufVocab } from '../../src/engine/export/gguf-vocab';
import { loadHfFolder, SAFETENSORS, SAFETENSORS_INDEX, CONFIG_JSON, writeHfFolder } from '../../src/engine/formats/hf';
import { loadLlama2c } from '../../src/engine/formats/llama2c';
import { containedPath, rangeOf, type FileSource } from '../../src/engine/formats/source';
import { buildLlamaGraph } from '../../src/engine/graph/llama';
import { parameterCount, type Checkpoint } from '../../src/engine/model/checkpoint';
import { CONFIG_LIMITS } from '../../src/engine/model/config';
import { fromFloat32, toFloat32, type Tensor } from '../../src/engine/model/tensor';
import { TOKENIZER_JSON } from '../../src/engine/text/hf-tokenizer';
import { Llama2cTokenizer, MAX_TOKEN_LENGTH, toHfTokenizerFiles } from '../../src/engine/text/llama2c-tokenizer';
import { DATA, MODELS } from '../helpers/paths';
import {
  bitFlips,
  caseSeed,
  damageText,
  deleteBytes,
  editJson,
  HOSTILE_PATHS,
  hugeWeights,
  insertBytes,
  nonFinite,
  Rng,
  setInt32,
  splice,
  truncate,
  writeJson,
  type Json,
  type Mutation,
} from './mutate';

export const KINDS = ['llama2c-model', 'llama2c-tokenizer', 'safetensors', 'config.json', 'shard-index', 'tokenizer.json'] as const;
export type Kind = (typeof KINDS)[number];

export type Outcome = 'rejected' | 'accepted' | 'escape' | 'outside-read' | 'accepted-inconsistent' | 'hang' | 'memory';
/** Outcomes that are failures of lopper (rejected and accepted are the two ways to hold). */
export const FAILURES: readonly Outcome[] = ['escape', 'outside-read', 'accepted-inconsistent', 'hang', 'memory'];

export interface CaseResult {
  index: number;
  kind: Kind;
  /** What was done to which file. */
  label: string;
  outcome: Outcome;
  /** The error's message (rejected), or what went wrong (a failure). */
  detail?: string;
  ms: number;
}

// ---------------------------------------------------------------- corpus

interface Llama2cSeed {
  name: string;
  model: Uint8Array;
  /** Where the weights end (the RoPE tables run.c ignores, and a separate classifier, follow). */
  weightsEnd: number;
  tokenizer: Uint8Array;
  tokenizerName: string;
}

/** The seed files, built once per thread (the shared models' real files and their HF conversion). */
export interface Corpus {
  llama2c: Llama2cSeed[];
  /** stories260K as a Hugging Face folder: float32 weights in one model.safetensors. */
  hf: Map<string, Uint8Array>;
  /** The same with float16 weights. */
  hf16: Map<string, Uint8Array>;
  /** The same in shards with model.safetensors.index.json. */
  sharded: Map<string, Uint8Array>;
  /** A few hundred characters of TinyStories: what accepted tokenizers must encode. */
  text: string;
}

export const FOLDER = 'fuzz/stories260K-hf';

export function buildCorpus(): Corpus {
  const seed = (dir: string, model: string, tok: string): Llama2cSeed => {
    const s = {
      name: join(dir, model),
      model: new Uint8Array(readFileSync(join(MODELS, dir, model))),
      tokenizer: new Uint8Array(readFileSync(join(MODELS, dir, tok))),
      tokenizerName: join(dir, tok),
    };
    const ck = loadLlama2c(s.model, s.tokenizer, { model: s.name, tokenizer: s.tokenizerName });
    const head = ck.tensors.get('lm_head.weight')?.data.length ?? 0;
    return { ...s, weightsEnd: 28 + 4 * (parameterCount(ck) - head) };
  };
  const llama2c = [seed('stories260K', 'stories260K.bin', 'tok512.bin'), seed('babyllama-tok105', 'model5000.bin', 'tok105.bin')];
  const s = llama2c[0];
  const ck = loadLlama2c(s.model, s.tokenizer, { model: s.name, tokenizer: s.tokenizerName });
  const f16: Map<string, Tensor> = new Map([...ck.tensors].map(([n, t]) => [n, fromFloat32(toFloat32(t), t.shape, 'f16')]));
  return {
    llama2c,
    hf: writeHfFolder(ck),
    hf16: writeHfFolder({ ...ck, tensors: f16 }),
    sharded: writeHfFolder(ck, { maxShardSize: 250_000 }),
    text: readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8').slice(0, 600),
  };
}

// ---------------------------------------------------------------- mutations per kind

const json = (bytes: Uint8Array): Json => JSON.parse(new TextDecoder().decode(bytes));

/** The mutated file set of one case and what the loader is given. */
type Target =
  | { format: 'llama2c'; model: Uint8Array; tokenizer: Uint8Array; names: { model: string; tokenizer: string } }
  | { format: 'hf'; files: Map<string, Uint8Array> };

interface Made {
  target: Target;
  /** The mutated file's name as messages must show it. */
  file: string;
  mutation: Omit<Mutation, 'bytes'>;
}

/** Offsets of each llama2.c tokenizer piece's int32 length field. */
function pieceLengthOffsets(tok: Uint8Array): number[] {
  const view = new DataView(tok.buffer, tok.byteOffset, tok.byteLength);
  const out: number[] = [];
  for (let off = 4; off + 8 <= tok.length; ) {
    out.push(off + 4);
    off += 8 + view.getInt32(off + 4, true);
  }
  return out;
}

/** A llama2.c tokenizer with piece `k` replaced by `len` bytes (max_token_length raised to fit). */
function longPiece(tok: Uint8Array, rng: Rng): Mutation {
  const offsets = pieceLengthOffsets(tok);
  const k = 3 + rng.int(offsets.length - 3);
  const len = rng.pick([64, 1024, 1025, 50_000, 200_000]);
  const view = new DataView(tok.buffer, tok.byteOffset, tok.byteLength);
  const at = offsets[k];
  const oldLen = view.getInt32(at, true);
  const piece = new Uint8Array(len).fill(0x61 + (k % 26)); // "aaaa…": valid UTF-8, a fresh piece
  const out = new Uint8Array(tok.length - oldLen + len);
  out.set(tok.subarray(0, at + 4));
  out.set(piece, at + 4);
  out.set(tok.subarray(at + 4 + oldLen), at + 4 + len);
  const v = new DataView(out.buffer);
  v.setInt32(at, len, true);
  v.setInt32(0, Math.max(v.getInt32(0, true), len), true);
  return { bytes: out, label: `piece ${k} of ${len} bytes`, mustReject: len > MAX_TOKEN_LENGTH };
}

function mutateLlama2cModel(s: Llama2cSeed, rng: Rng): Mutation {
  const weightsStart = 28;
  const r = rng.int(10);
  if (r === 0) return setInt32(s.model, 4 * rng.int(7), rng, 'header field');
  if (r === 1) {
    const out = s.model.slice();
    const bit = rng.int(28 * 8);
    out[bit >> 3] ^= 1 << (bit & 7);
    return { bytes: out, label: `header bit ${bit}`, mustReject: true };
  }
  if (r === 2) return bitFlips(s.model, rng);
  if (r === 3) return truncate(s.model, rng);
  if (r === 4) return insertBytes(s.model, rng);
  if (r === 5) return deleteBytes(s.model, rng);
  if (r === 6) return splice(s.model, rng);
  if (r === 7) return hugeWeights(s.model, rng, weightsStart, s.weightsEnd);
  return nonFinite(s.model, rng, weightsStart, s.weightsEnd);
}

function mutateLlama2cTokenizer(s: Llama2cSeed, rng: Rng): Mutation {
  const tok = s.tokenizer;
  const maxLen = new DataView(tok.buffer, tok.byteOffset).getInt32(0, true);
  const r = rng.int(9);
  if (r === 0) {
    const m = setInt32(tok, 0, rng, 'max_token_length');
    const v = new DataView(m.bytes.buffer).getInt32(0, true);
    return { ...m, mustReject: v < maxLen || v > MAX_TOKEN_LENGTH };
  }
  if (r === 1) return setInt32(tok, rng.pick(pieceLengthOffsets(tok)), rng, 'piece length');
  if (r === 2) return longPiece(tok, rng);
  if (r === 3) {
    const out = tok.slice();
    const at = rng.pick(pieceLengthOffsets(tok)) - 4;
    new DataView(out.buffer).setFloat32(at, rng.pick([NaN, Infinity, -Infinity, 1e38, -1e38]), true);
    return { bytes: out, label: `score@${at}`, mustReject: false };
  }
  if (r === 4) return truncate(tok, rng);
  if (r === 5) return { ...insertBytes(tok, rng), mustReject: false };
  if (r === 6) return { ...deleteBytes(tok, rng), mustReject: false };
  if (r === 7) return splice(tok, rng);
  return bitFlips(tok, rng);
}

/** safetensors with its header rewritten (length field and padding kept consistent). */
function withHeader(bytes: Uint8Array, header: Uint8Array): Uint8Array {
  const oldLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const padded = Math.ceil(header.length / 8) * 8;
  const out = new Uint8Array(8 + padded + bytes.length - 8 - oldLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + padded);
  out.set(bytes.subarray(8 + oldLength), 8 + padded);
  return out;
}

function mutateSafetensors(bytes: Uint8Array, f16: boolean, rng: Rng): Mutation {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const dataStart = 8 + headerLength;
  const header = json(bytes.subarray(8, dataStart)) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const r = rng.int(12);
  if (r === 0) {
    const out = bytes.slice();
    const v = rng.pick([headerLength - 1, headerLength - 8, headerLength + 1, headerLength + 8, 0, 1, bytes.length, 2 ** 53, 2 ** 63]);
    new DataView(out.buffer).setBigUint64(0, BigInt(v), true);
    return { bytes: out, label: `header length ${headerLength}→${v}`, mustReject: true };
  }
  if (r <= 3) {
    const edit = editJson(header as unknown as Json, rng, /^\.[^.]+\.(dtype|shape|data_offsets)/);
    return { bytes: withHeader(bytes, writeJson(edit.tree, rng)), label: `header ${edit.label}`, mustReject: edit.mustReject };
  }
  if (r === 4) {
    // overlap or alias: one tensor's offsets moved onto another's
    const [a, b] = [rng.pick(names), rng.pick(names)];
    const edited = structuredClone(header);
    const shift = rng.pick([0, 4, -4]);
    edited[a].data_offsets = [edited[b].data_offsets[0] + shift, edited[b].data_offsets[0] + shift + (edited[a].data_offsets[1] - edited[a].data_offsets[0])];
    const changed = a !== b || shift !== 0;
    return { bytes: withHeader(bytes, writeJson(edited as unknown as Json, rng)), label: `offsets of ${a} onto ${b}${shift ? `+${shift}` : ''}`, mustReject: changed };
  }
  if (r === 5) {
    const edited = structuredClone(header);
    const a = rng.pick(names);
    edited[a].dtype = rng.pick(['F16', 'BF16', 'F32', 'F64', 'I8', 'U8', 'f32']);
    const size = (d: string) => ({ F16: 2, BF16: 2, F32: 4 })[d] ?? 0;
    const changed = size(edited[a].dtype) !== size(header[a].dtype); // F16 ↔ BF16 is a consistent file with other values
    return { bytes: withHeader(bytes, writeJson(edited as unknown as Json, rng)), label: `dtype of ${a}→${edited[a].dtype}`, mustReject: changed };
  }
  if (r === 6) return bitFlips(bytes, rng, dataStart);
  if (r === 7) return truncate(bytes, rng);
  if (r === 8) return insertBytes(bytes, rng);
  if (r === 9) return deleteBytes(bytes, rng);
  if (r === 10) return nonFinite(bytes, rng, dataStart, bytes.length, f16 ? 2 : 4);
  return bitFlips(bytes, rng);
}

const SIZE_KEYS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'vocab_size'];

/** Whether an edit of config.json's `key` to `value` (undefined: removed) must be rejected. */
function configMustReject(cfg: Record<string, Json>, key: string, value: Json | undefined): boolean {
  const old = cfg[key];
  if (value === null) value = undefined; // null is absent in a config.json (the default applies)
  if (value === old) return false;
  if (SIZE_KEYS.includes(key)) return !(value === undefined && key === 'head_dim'); // the weights fix every size (head_dim defaults to D/H = the same)
  if (key === 'max_position_embeddings') return value !== undefined && !(Number.isInteger(value) && (value as number) >= 1 && (value as number) <= CONFIG_LIMITS.maxPositions);
  if (key === 'architectures') return true;
  if (key === 'hidden_act') return value !== undefined;
  if (key === 'rms_norm_eps' || key === 'rope_theta') return value !== undefined && !(typeof value === 'number' && value > 0);
  if (key === 'bos_token_id' || key === 'eos_token_id') {
    const id = Array.isArray(value) ? value[0] : value; // a list's first id (Llama 3 lists several EOS ids)
    return value !== undefined && !(Number.isInteger(id) && (id as number) >= 0 && (id as number) < (cfg.vocab_size as number));
  }
  return false;
}

function mutateConfig(bytes: Uint8Array, rng: Rng): Mutation {
  const cfg = json(bytes) as Record<string, Json>;
  const r = rng.int(10);
  if (r < 5) {
    // a key the loader reads, set to a telling value or removed
    const key = rng.pick([...SIZE_KEYS, 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'bos_token_id', 'eos_token_id', 'architectures', 'hidden_act', 'rope_scaling', 'layer_types', 'tie_word_embeddings']);
    const value: Json | undefined = rng.chance(0.15)
      ? undefined
      : rng.pick<Json>([0, -1, -8, 2.5, 0.5, 1e6, 2 ** 31 - 1, 2 ** 53, 1e308, '64', null, true, [], {}, [64], 'LlamaForCausalLM', ['GPT2LMHeadModel'], { rope_type: 'llama3' }, { rope_type: 'yarn', factor: 2 }, ['full_attention'], 1, 3, 4, 7, 8, 63, 65, 511, 513]);
    const tree = { ...cfg };
    if (value === undefined) delete tree[key];
    else tree[key] = value;
    return { bytes: writeJson(tree, rng), label: `${key}→${value === undefined ? 'removed' : JSON.stringify(value)}`, mustReject: configMustReject(cfg, key, value) };
  }
  if (r < 7) {
    const key = rng.pick(['architectures', 'hidden_act', 'rope_scaling', 'layer_types', 'num_hidden_layers', 'vocab_size', 'torch_dtype']);
    const tree = { ...cfg, [key]: '\u0000deep\u0000' } as Json;
    return { bytes: writeJson(tree, rng), label: `${key}→deep`, mustReject: configMustReject(cfg, key, 'deep') };
  }
  if (r < 9) {
    const edit = editJson(cfg, rng);
    return { bytes: writeJson(edit.tree, rng), label: edit.label, mustReject: edit.mustReject };
  }
  return damageText(bytes, rng);
}

function mutateIndex(bytes: Uint8Array, rng: Rng): Mutation {
  const index = json(bytes) as { metadata: Json; weight_map: Record<string, string> };
  const names = Object.keys(index.weight_map);
  const r = rng.int(8);
  if (r < 3) {
    const name = rng.pick(names);
    const path = rng.pick(HOSTILE_PATHS);
    const tree = { ...index, weight_map: { ...index.weight_map, [name]: path } };
    return { bytes: writeJson(tree, rng), label: `weight_map[${name}]→${JSON.stringify(path)}`, mustReject: true };
  }
  if (r === 3) {
    // one shard spelled two ways
    const name = rng.pick(names);
    const alias = rng.pick(['./', 'x/../', './/'.slice(0, 2)]) + index.weight_map[name];
    const tree = { ...index, weight_map: { ...index.weight_map, [name]: alias } };
    return { bytes: writeJson(tree, rng), label: `weight_map[${name}]→${JSON.stringify(alias)}`, mustReject: true };
  }
  if (r < 7) {
    const edit = editJson(index as unknown as Json, rng, /^\.weight_map/);
    return { bytes: writeJson(edit.tree, rng), label: edit.label, mustReject: edit.mustReject };
  }
  return damageText(bytes, rng);
}

function mutateTokenizerJson(bytes: Uint8Array, vocabSize: number, rng: Rng): Mutation {
  const tok = json(bytes) as Record<string, Json>;
  const model = tok.model as Record<string, Json>;
  const r = rng.int(10);
  if (r < 2) {
    const pieces = Object.keys(model.vocab as Record<string, number>);
    const piece = rng.pick(pieces);
    const id = rng.pick([1e9, -1, 2.5, vocabSize, vocabSize + 1, 2 ** 31, '7', null]);
    const tree = { ...tok, model: { ...model, vocab: { ...(model.vocab as Record<string, Json>), [piece]: id } } };
    return { bytes: writeJson(tree, rng), label: `vocab[${JSON.stringify(piece)}]→${JSON.stringify(id)}`, mustReject: true };
  }
  if (r === 2) {
    const options: [string, Record<string, Json>, boolean][] = [
      ['model removed', { ...tok, model: null }, true],
      ['added_tokens [null]', { ...tok, added_tokens: [null] }, true],
      ['added token id 1e9', { ...tok, added_tokens: [{ id: 1e9, content: '<x>', special: true }] }, true],
      ['merges: 5', { ...tok, model: { ...model, merges: 5 } }, false],
      ['normalizer of unknown type', { ...tok, normalizer: { type: 'Nope' } }, true],
      ['pre_tokenizer of unknown type', { ...tok, pre_tokenizer: { type: 'Nope' } }, true],
      ['decoder of unknown type', { ...tok, decoder: { type: 'Nope' } }, true],
      ['post_processor without templates', { ...tok, post_processor: { type: 'TemplateProcessing' } }, true],
      ['model of unknown type', { ...tok, model: { ...model, type: 'Nope' } }, false],
    ];
    const [label, tree, mustReject] = rng.pick(options);
    return { bytes: writeJson(tree, rng), label, mustReject };
  }
  if (r < 8) {
    const edit = editJson(tok, rng, /^\.(model\.(type|vocab|merges|unk_token|byte_fallback)|normalizer|pre_tokenizer|post_processor|decoder|added_tokens)/);
    return { bytes: writeJson(edit.tree, rng), label: edit.label, mustReject: edit.mustReject };
  }
  return damageText(bytes, rng);
}

/** Case `index` of a run with `seed`: which file, how mutated. */
export function makeCase(corpus: Corpus, seed: number, index: number): { kind: Kind } & Made {
  const rng = new Rng(caseSeed(seed, index));
  const kind = KINDS[index % KINDS.length];
  const hfWith = (base: Map<string, Uint8Array>, name: string, m: Mutation, dir = FOLDER): Made => ({
    target: { format: 'hf', files: new Map(base).set(name, m.bytes) },
    file: `${dir}/${name}`,
    mutation: m,
  });
  switch (kind) {
    case 'llama2c-model':
    case 'llama2c-tokenizer': {
      const s = rng.pick(corpus.llama2c);
      const names = { model: s.name, tokenizer: s.tokenizerName };
      if (kind === 'llama2c-model') {
        const m = mutateLlama2cModel(s, rng);
        return { kind, target: { format: 'llama2c', model: m.bytes, tokenizer: s.tokenizer, names }, file: s.name, mutation: m };
      }
      const m = mutateLlama2cTokenizer(s, rng);
      return { kind, target: { format: 'llama2c', model: s.model, tokenizer: m.bytes, names }, file: s.tokenizerName, mutation: m };
    }
    case 'safetensors': {
      const which = rng.int(3);
      if (which === 2) {
        const shards = [...corpus.sharded.keys()].filter((n) => n.endsWith('.safetensors'));
        const shard = rng.pick(shards);
        return { kind, ...hfWith(corpus.sharded, shard, mutateSafetensors(corpus.sharded.get(shard)!, false, rng)) };
      }
      const base = which === 0 ? corpus.hf : corpus.hf16;
      return { kind, ...hfWith(base, SAFETENSORS, mutateSafetensors(base.get(SAFETENSORS)!, which === 1, rng)) };
    }
    case 'config.json':
      return { kind, ...hfWith(corpus.hf, CONFIG_JSON, mutateConfig(corpus.hf.get(CONFIG_JSON)!, rng)) };
    case 'shard-index':
      return { kind, ...hfWith(corpus.sharded, SAFETENSORS_INDEX, mutateIndex(corpus.sharded.get(SAFETENSORS_INDEX)!, rng)) };
    case 'tokenizer.json':
      return { kind, ...hfWith(corpus.hf, TOKENIZER_JSON, mutateTokenizerJson(corpus.hf.get(TOKENIZER_JSON)!, 512, rng)) };
  }
}

// ---------------------------------------------------------------- running one case

/**
 * The files of a model folder in memory, plus files outside it (what a hostile index points
 * at, so a loader that followed such a path would find something and the read is seen).
 */
class WatchedSource implements FileSource {
  readonly outsideReads: string[] = [];
  constructor(
    readonly name: string,
    private readonly files: Map<string, Uint8Array>,
    private readonly outside: Uint8Array,
  ) {}
  private isOutside(path: string): boolean {
    try {
      containedPath(path, this.name);
      return false;
    } catch {
      return true;
    }
  }
  async read(path: string): Promise<Uint8Array> {
    if (this.isOutside(path)) {
      this.outsideReads.push(path);
      return this.outside;
    }
    const f = this.files.get(path);
    if (!f) throw new LopperError('not-found', `no file "${path}"`, this.name);
    return f;
  }
  async size(path: string): Promise<number> {
    return (await this.read(path)).length;
  }
  async readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    return rangeOf(await this.read(path), offset, length, `${this.name}/${path}`);
  }
  async exists(path: string): Promise<boolean> {
    return this.isOutside(path) || this.files.has(path);
  }
}

/** Whether a rejection's message is one a person can act on: one line, bounded, naming the file. */
function messageProblem(e: LopperError, file: string): string | undefined {
  if (/[\n\r]/.test(e.message)) return 'the message spans several lines';
  if (e.message.length > 2 * MAX_MESSAGE + 2) return `the message is ${e.message.length} characters long`;
  if (!e.message.includes(basename(file))) return `the message does not name ${basename(file)}`;
  return undefined;
}

/**
 * What must work once a model is accepted: its tokenizer on real text, ids in the vocabulary,
 * the llama2.c tokenizer's conversion to tokenizer.json, and (when the config was what changed:
 * it is what shapes the graph) the ONNX graph.
 */
function exercise(ck: Checkpoint, text: string, buildGraph: boolean): string | undefined {
  const ids = ck.tokenizer.encode(text);
  const V = ck.config.vocabSize;
  const bad = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < V));
  if (bad !== undefined) return `the tokenizer makes id ${bad}, outside the model's vocabulary of ${V}`;
  ck.tokenizer.decode([ck.config.bosTokenId, ...ids]);
  if (ck.tokenizer instanceof Llama2cTokenizer) toHfTokenizerFiles(ck.tokenizer);
  ggufVocab(ck); // the tokenizer as GGUF metadata: converted, or refused with a LopperError
  if (buildGraph) buildLlamaGraph(ck, { kind: 'window', nll: true }, 'ops');
  return undefined;
}

export async function runCase(corpus: Corpus, seed: number, index: number): Promise<CaseResult> {
  const t0 = performance.now();
  const { kind, target, file, mutation } = makeCase(corpus, seed, index);
  const result = (outcome: Outcome, detail?: string): CaseResult => ({
    index,
    kind,
    label: mutation.label.slice(0, 120),
    outcome,
    detail: detail?.slice(0, 300),
    ms: performance.now() - t0,
  });
  const source = target.format === 'hf' ? new WatchedSource(FOLDER, target.files, corpus.hf.get(SAFETENSORS)!) : undefined;
  let ck: Checkpoint;
  try {
    ck = target.format === 'llama2c' ? loadLlama2c(target.model, target.tokenizer, target.names) : await loadHfFolder(source!);
  } catch (e) {
    if (source?.outsideReads.length) return result('outside-read', `read ${JSON.stringify(source.outsideReads[0])}`);
    if (!(e instanceof LopperError)) return result('escape', `loading threw ${(e as Error)?.stack ?? String(e)}`);
    const problem = messageProblem(e, file);
    return problem ? result('escape', `${problem}: ${e.message}`) : result('rejected', e.message);
  }
  if (source?.outsideReads.length) return result('outside-read', `read ${JSON.stringify(source.outsideReads[0])}`);
  if (mutation.mustReject) return result('accepted-inconsistent', 'loaded a file this mutation makes inconsistent');
  try {
    const problem = exercise(ck, corpus.text, kind === 'config.json');
    return problem ? result('escape', problem) : result('accepted');
  } catch (e) {
    if (e instanceof LopperError) {
      const problem = messageProblem(e, file);
      return problem ? result('escape', `after loading, ${problem}: ${e.message}`) : result('rejected', `after loading: ${e.message}`);
    }
    return result('escape', `after loading, threw ${(e as Error)?.stack ?? String(e)}`);
  }
}
