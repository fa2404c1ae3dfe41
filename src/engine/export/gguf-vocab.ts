/**
 * A model's tokenizer as GGUF metadata, the way llama.cpp's convert_hf_to_gguf.py writes it:
 *
 *   SentencePiece (`tokenizer.ggml.model` "llama"): pieces with '▁' for spaces, their scores
 *     (llama.cpp merges the adjacent pair whose concatenation scores highest) and token types,
 *     from a llama2.c tokenizer (its own scores; BOS/EOS named <s>/</s>) or from a
 *     Llama-2-style tokenizer.json (BPE with byte fallback and a '▁' normalizer: a piece scores
 *     minus the rank of the first merge that makes it, the order SentencePiece's scores give).
 *   byte-level BPE (`gpt2`): the vocabulary in its byte-level spelling, the merges, and the
 *     pre-tokenizer llama.cpp must split with (`tokenizer.ggml.pre`), recognised from
 *     tokenizer.json's pre_tokenizer: Llama 3's split (llama-bpe), Qwen2's (qwen2), SmolLM2's
 *     digits + byte-level (smollm), GPT-2's byte-level (gpt-2).
 *
 * The token list has exactly vocab_size entries (the embedding's rows): ids the tokenizer does
 * not use are "[PAD<id>]", type UNUSED, as the converter writes them.
 */
import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { parseJsonObject, TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from '../text/hf-tokenizer';
import { Llama2cTokenizer } from '../text/llama2c-tokenizer';
import { bool, str, u32, type Metadata } from './gguf-file';

/** llama.cpp's token types (llama_token_type). */
const TOKEN = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;
const UNDERLINE = '▁';
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * The tokenizer.json pre-tokenizers llama.cpp implements, by the name it knows them by: each
 * a Split regex (then ByteLevel without its own regex), or ByteLevel with GPT-2's regex after
 * single digits (SmolLM2) or alone (GPT-2).
 */
const PRE_SPLITS: Record<string, string> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The tokenizer metadata of `ck` (throws a LopperError naming tokenizer.json for one llama.cpp cannot run). */
export function ggufVocab(ck: Checkpoint): Metadata {
  const tok = ck.tokenizer;
  const V = ck.config.vocabSize;
  const special: Metadata = [
    ['tokenizer.ggml.bos_token_id', u32(tok.bosId)],
    ['tokenizer.ggml.eos_token_id', u32(tok.eosId)],
  ];
  if (tok instanceof Llama2cTokenizer) {
    return [...llama2cVocab(tok, V), ...special, ['tokenizer.ggml.unknown_token_id', u32(0)], ['tokenizer.ggml.add_bos_token', bool(true)], ['tokenizer.ggml.add_eos_token', bool(false)]];
  }
  const files = tok.files();
  const file = `${ck.source}/${TOKENIZER_JSON}`;
  const bytes = files[TOKENIZER_JSON];
  if (!bytes) throw new LopperError('not-found', `no ${TOKENIZER_JSON} to convert for GGUF`, ck.source);
  const json = parseJsonObject(bytes, file);
  const config = files[TOKENIZER_CONFIG_JSON] ? parseJsonObject(files[TOKENIZER_CONFIG_JSON], `${ck.source}/${TOKENIZER_CONFIG_JSON}`) : {};
  const model = json.model;
  if (!isObject(model) || model.type !== 'BPE' || !isObject(model.vocab)) {
    throw new LopperError('unsupported-config', `GGUF export converts BPE tokenizers; this one's model is ${isObject(model) ? JSON.stringify(model.type) : 'missing'}`, file);
  }
  const merges = mergeList(model.merges, file);
  const entries = hfEntries(json, model.vocab, V, file);
  const vocab = spmStyle(json, model) ? spmFromBpe(entries, merges) : gpt2Vocab(json, entries, merges, file);
  const extra: Metadata = [];
  const addBos = config.add_bos_token;
  if (typeof addBos === 'boolean') extra.push(['tokenizer.ggml.add_bos_token', bool(addBos)]);
  else if (addsBos(json)) extra.push(['tokenizer.ggml.add_bos_token', bool(true)]);
  if (typeof config.chat_template === 'string') extra.push(['tokenizer.chat_template', str(config.chat_template)]);
  return [...vocab, ...special, ...extra];
}

// ---- llama2.c -------------------------------------------------------------------------------

/** A llama2.c tokenizer's pieces back in SentencePiece's spelling: ' ' → '▁', "\n<s>\n" → "<s>". */
function llama2cVocab(tok: Llama2cTokenizer, V: number): Metadata {
  const names = ['<unk>', '<s>', '</s>'];
  const enc = new TextEncoder();
  const underline = enc.encode(UNDERLINE);
  const tokens: Uint8Array[] = [];
  const types = new Int32Array(V);
  const scores = new Float32Array(V);
  for (let id = 0; id < V; id++) {
    scores[id] = tok.scores[id];
    if (id < names.length) {
      tokens.push(enc.encode(names[id]));
      types[id] = id === 0 ? TOKEN.unknown : TOKEN.control;
      continue;
    }
    const piece = tok.pieces[id];
    const text = String.fromCharCode(...piece.subarray(0, 8));
    types[id] = piece.length === 6 && BYTE_PIECE.test(text) ? TOKEN.byte : TOKEN.normal;
    tokens.push(replaceSpaces(piece, underline));
  }
  return [
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { t: 'strings', v: tokens }],
    ['tokenizer.ggml.scores', { t: 'f32s', v: scores }],
    ['tokenizer.ggml.token_type', { t: 'i32s', v: types }],
  ];
}

/** `bytes` with every 0x20 replaced by `by` (pieces may hold any bytes; this keeps them as they are). */
function replaceSpaces(bytes: Uint8Array, by: Uint8Array): Uint8Array {
  let spaces = 0;
  for (const b of bytes) if (b === 0x20) spaces++;
  if (!spaces) return bytes;
  const out = new Uint8Array(bytes.length + spaces * (by.length - 1));
  let at = 0;
  for (const b of bytes) {
    if (b === 0x20) {
      out.set(by, at);
      at += by.length;
    } else out[at++] = b;
  }
  return out;
}

// ---- tokenizer.json ----------------------------------------------------------------------------

interface Entry {
  text: string;
  type: number;
}

/** model.merges as "left right" strings (older files store them so, newer ones as pairs). */
function mergeList(merges: unknown, file: string): string[] {
  if (!Array.isArray(merges)) throw new LopperError('corrupt', '"model.merges" is not a list', file);
  return merges.map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return `${m[0]} ${m[1]}`;
    throw new LopperError('corrupt', `merge ${i} is neither "a b" nor ["a", "b"]`, file);
  });
}

/** Whether a token added as not special still looks like a control token (the converter's does_token_look_special). */
const looksSpecial = (t: string) =>
  ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) ||
  (t.startsWith('<|') && t.endsWith('|>')) ||
  (t.startsWith('<｜') && t.endsWith('｜>')) ||
  (t.startsWith('<unused') && t.endsWith('>'));

/** Every id below V with its text and type: the vocabulary, then the added tokens over it, "[PAD<id>]" for the rest. */
function hfEntries(json: Json, vocab: Json, V: number, file: string): Entry[] {
  const entries: (Entry | undefined)[] = new Array(V);
  for (const [text, id] of Object.entries(vocab)) {
    if (typeof id === 'number' && id >= 0 && id < V) entries[id] = { text, type: TOKEN.normal };
  }
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  for (const t of added) {
    if (!isObject(t) || typeof t.id !== 'number' || typeof t.content !== 'string' || t.id < 0 || t.id >= V) {
      throw new LopperError('corrupt', `an added token is not {id below ${V}, content}`, file);
    }
    const controlled = t.special === true || looksSpecial(t.content);
    entries[t.id] = { text: controlled ? t.content : t.content.replaceAll(UNDERLINE, ' '), type: controlled ? TOKEN.control : TOKEN.userDefined };
  }
  return Array.from(entries, (e, id) => e ?? { text: `[PAD${id}]`, type: TOKEN.unused });
}

/** A Llama-2-style tokenizer.json: BPE over '▁'-spelled pieces (a '▁' normalizer or Metaspace, byte fallback), no byte-level step. */
function spmStyle(json: Json, model: Json): boolean {
  const text = JSON.stringify([json.normalizer, json.pre_tokenizer, json.decoder]);
  return !text.includes('"ByteLevel"') && (model.byte_fallback === true || text.includes(UNDERLINE) || text.includes('"Metaspace"'));
}

/** SentencePiece metadata from a Llama-2-style tokenizer.json: a piece scores −(rank of the first merge that makes it). */
function spmFromBpe(entries: Entry[], merges: string[]): Metadata {
  const rank = new Map<string, number>();
  merges.forEach((m, i) => {
    const piece = m.replace(' ', '');
    if (!rank.has(piece)) rank.set(piece, i);
  });
  const scores = new Float32Array(entries.length);
  const types = new Int32Array(entries.length);
  entries.forEach((e, id) => {
    scores[id] = e.type === TOKEN.normal ? -(rank.get(e.text) ?? 0) : 0;
    types[id] = e.type === TOKEN.normal && BYTE_PIECE.test(e.text) ? TOKEN.byte : e.text === '<unk>' ? TOKEN.unknown : e.type;
  });
  return [
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { t: 'strings', v: entries.map((e) => e.text) }],
    ['tokenizer.ggml.scores', { t: 'f32s', v: scores }],
    ['tokenizer.ggml.token_type', { t: 'i32s', v: types }],
  ];
}

/** Byte-level BPE metadata, with the pre-tokenizer llama.cpp knows this tokenizer.json's by. */
function gpt2Vocab(json: Json, entries: Entry[], merges: string[], file: string): Metadata {
  return [
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str(preTokenizer(json, file))],
    ['tokenizer.ggml.tokens', { t: 'strings', v: entries.map((e) => e.text) }],
    ['tokenizer.ggml.token_type', { t: 'i32s', v: Int32Array.from(entries, (e) => e.type) }],
    ['tokenizer.ggml.merges', { t: 'strings', v: merges }],
  ];
}

function preTokenizer(json: Json, file: string): string {
  const pre = json.pre_tokenizer;
  const steps = isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [pre];
  const types = steps.map((s) => (isObject(s) ? s.type : undefined));
  const last = steps[steps.length - 1];
  if (isObject(last) && last.type === 'ByteLevel') {
    const first = steps[0];
    if (steps.length === 2 && isObject(first) && first.type === 'Split' && isObject(first.pattern) && last.use_regex === false) {
      const found = Object.entries(PRE_SPLITS).find(([, regex]) => regex === (first.pattern as Json).Regex);
      if (found) return found[0];
    }
    if (steps.length === 2 && isObject(first) && first.type === 'Digits' && first.individual_digits === true && last.use_regex !== false) return 'smollm';
    if (steps.length === 1 && last.use_regex !== false) return 'gpt-2';
  }
  throw new LopperError(
    'unsupported-config',
    `GGUF export does not know this tokenizer's pre-tokenizer (${JSON.stringify(types)}), so llama.cpp would split text differently: convert it with llama.cpp's convert_hf_to_gguf.py`,
    file,
  );
}

/** Whether tokenizer.json's post-processor puts a special token before the text (TemplateProcessing: BOS). */
function addsBos(json: Json): boolean {
  const post = json.post_processor;
  const processors = isObject(post) && post.type === 'Sequence' && Array.isArray(post.processors) ? post.processors : [post];
  return processors.some((p) => isObject(p) && p.type === 'TemplateProcessing' && Array.isArray(p.single) && isObject(p.single[0]) && 'SpecialToken' in p.single[0]);
}
