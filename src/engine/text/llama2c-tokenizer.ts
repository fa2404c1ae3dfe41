/**
 * The llama2.c tokenizer (tokenizer.bin, tok512.bin, …): a SentencePiece BPE vocabulary
 * rewritten by llama2.c's tokenizer.py, encoded and decoded the way run.c does it.
 *
 * File layout (little-endian):
 *   int32 max_token_length
 *   per token: float32 score, int32 len, len bytes of UTF-8 piece
 * Pieces use ' ' where SentencePiece writes '▁'; BOS and EOS are written "\n<s>\n" and
 * "\n</s>\n"; byte-fallback pieces are "<0x00>" … "<0xFF>". The token count is not stored:
 * the file holds exactly vocab_size tokens.
 */
import { LopperError } from '../errors';
import type { Tokenizer } from '../model/tokenizer';

const UNK = 0;
const BOS = 1;
const EOS = 2;
/** run.c starts its best merge score here: a pair merges only if its piece scores above it. */
const NO_MERGE_SCORE = -1e10;
const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/**
 * The longest piece lopper reads (and so the largest max_token_length): run.c allocates
 * buffers from max_token_length, and splitting a piece into pairs costs its length squared.
 * Far above real vocabularies (Llama 2's longest piece is 27 bytes).
 */
export const MAX_TOKEN_LENGTH = 1024;

/** A piece's bytes as a string of char codes 0–255: equal strings ⇔ equal bytes. */
const byteKey = (bytes: Uint8Array): string => {
  let key = '';
  for (let i = 0; i < bytes.length; i += 4096) key += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return key;
};

/** The 1–4 bytes of one UTF-8 codepoint (lead byte first) packed into one number. */
const charKey = (bytes: Uint8Array, start: number, n: number): number => {
  let key = 0;
  for (let i = n - 1; i >= 0; i--) key = key * 256 + bytes[start + i];
  return key;
};

const isContinuation = (b: number) => (b & 0xc0) === 0x80;

export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c';
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly vocabSize: number;
  /** Piece bytes by id, as in the file. */
  readonly pieces: readonly Uint8Array[];
  /** Merge score by id (SentencePiece log-probabilities: higher merges first). */
  readonly scores: Float32Array;
  /** Id of the piece "<0xNN>" for each byte value, or -1 where the vocabulary has none. */
  readonly byteIds: Int32Array;
  /** The byte each id stands for when it is a "<0xNN>" piece, else -1. */
  private readonly byteOf: Int16Array;
  /** Id of each single-codepoint piece, by charKey of its bytes. */
  private readonly charIds = new Map<number, number>();
  /** Id of the piece spelled by two adjacent pieces, by left * vocabSize + right. */
  private readonly merges = new Map<number, number>();

  /**
   * @param bytes the tokenizer file
   * @param file its name, for messages
   */
  constructor(
    private readonly bytes: Uint8Array,
    readonly file = 'tokenizer.bin',
  ) {
    ({ pieces: this.pieces, scores: this.scores } = parse(bytes, file));
    const V = (this.vocabSize = this.pieces.length);

    // str_lookup: the first id spelled by each byte string
    const ids = new Map<string, number>();
    this.pieces.forEach((p, id) => {
      if (!ids.has(byteKey(p))) ids.set(byteKey(p), id);
    });

    this.byteIds = new Int32Array(256).fill(-1);
    this.byteOf = new Int16Array(V).fill(-1);
    for (const [key, id] of ids) {
      if (!BYTE_PIECE.test(key)) continue;
      const b = parseInt(key.slice(3, 5), 16);
      this.byteIds[b] = id;
      this.byteOf[id] = b;
    }

    for (const [key, id] of ids) {
      const p = this.pieces[id];
      if (p.length >= 1 && p.length <= 4 && !isContinuation(p[0]) && p.subarray(1).every(isContinuation)) {
        this.charIds.set(charKey(p, 0, p.length), id);
      }
      if (!(this.scores[id] > NO_MERGE_SCORE)) continue;
      for (let k = 1; k < p.length; k++) {
        const left = ids.get(key.slice(0, k));
        const right = ids.get(key.slice(k));
        if (left !== undefined && right !== undefined) this.merges.set(left * V + right, id);
      }
    }
  }

  /**
   * run.c's encode() without BOS/EOS: a dummy-prefix " " token when the text is not empty,
   * one token per UTF-8 codepoint (bytes as "<0xNN>" tokens when the codepoint has no piece,
   * or <unk> when the vocabulary has no byte tokens for it), then BPE merges, best score
   * first and leftmost on ties. (The prefix goes through the same lookup as the text, so a
   * vocabulary without " " gets its fallback where run.c would emit id -1.)
   */
  encode(text: string): number[] {
    if (text === '') return [];
    const utf8 = new TextEncoder().encode(' ' + text);
    const ids: number[] = [];
    for (let i = 0; i < utf8.length; ) {
      let n = 1;
      while (n < 4 && i + n < utf8.length && isContinuation(utf8[i + n])) n++;
      const id = this.charIds.get(charKey(utf8, i, n));
      if (id !== undefined) ids.push(id);
      else this.fallback(utf8.subarray(i, i + n), ids);
      i += n;
    }
    return this.mergePairs(ids);
  }

  /** A codepoint with no piece: its bytes as byte tokens, or one <unk> if any byte has none. */
  private fallback(codepoint: Uint8Array, out: number[]): void {
    if (codepoint.every((b) => this.byteIds[b] >= 0)) for (const b of codepoint) out.push(this.byteIds[b]);
    else out.push(UNK);
  }

  /**
   * run.c's merge loop (merge the best-scoring adjacent pair, leftmost on ties, until none
   * merges) in O(n log n): the sequence is a linked list over the initial positions, and a
   * heap holds candidate merges, each pushed when its pair forms; one whose position no
   * longer holds a pair spelling its piece is stale and skipped.
   */
  private mergePairs(ids: number[]): number[] {
    const n = ids.length;
    const V = this.vocabSize;
    const tok = Int32Array.from(ids); // -1: merged into its left neighbour
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const merged = (left: number) => (next[left] < 0 ? undefined : this.merges.get(tok[left] * V + tok[next[left]]));
    const queue = new MergeQueue(this.scores);
    const offer = (left: number) => {
      const id = merged(left);
      if (id !== undefined) queue.push(id, left);
    };

    for (let i = 0; i + 1 < n; i++) offer(i);
    while (queue.size > 0) {
      const [id, left] = queue.pop();
      if (tok[left] < 0 || merged(left) !== id) continue;
      const right = next[left];
      tok[left] = id;
      tok[right] = -1;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) offer(prev[left]);
      offer(left);
    }

    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(tok[i]);
    return out;
  }

  /**
   * run.c's decode(): pieces' bytes ("<0xNN>" pieces as the raw byte; the leading space of
   * a piece right after BOS stripped), BOS and EOS dropped, then UTF-8 decoding of the whole.
   */
  decode(ids: readonly number[]): string {
    const out: number[] = [];
    let prev = -1;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new LopperError('bad-input', `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`, this.file);
      }
      if (id !== BOS && id !== EOS) {
        if (this.byteOf[id] >= 0) out.push(this.byteOf[id]);
        else {
          const piece = this.pieces[id];
          for (let i = prev === BOS && piece[0] === 0x20 ? 1 : 0; i < piece.length; i++) out.push(piece[i]);
        }
      }
      prev = id;
    }
    return new TextDecoder().decode(Uint8Array.from(out));
  }

  files(): Record<string, Uint8Array> {
    return { 'tokenizer.bin': this.bytes };
  }
}

function parse(bytes: Uint8Array, file: string): { pieces: Uint8Array[]; scores: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    throw new LopperError('truncated', `${bytes.byteLength} bytes: too short for a llama2.c tokenizer header (4 bytes)`, file);
  }
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength < 1 || maxTokenLength > MAX_TOKEN_LENGTH) {
    throw new LopperError('corrupt', `max_token_length ${maxTokenLength} is not from 1 to ${MAX_TOKEN_LENGTH}`, file);
  }
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  for (let off = 4; off < bytes.byteLength; ) {
    if (off + 8 > bytes.byteLength) {
      throw new LopperError('truncated', `token ${pieces.length} needs 8 bytes at offset ${off}, file has ${bytes.byteLength}`, file);
    }
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxTokenLength) {
      throw new LopperError('corrupt', `token ${pieces.length} has length ${len}, not from 0 to max_token_length ${maxTokenLength}`, file);
    }
    if (off + len > bytes.byteLength) {
      throw new LopperError('truncated', `token ${pieces.length} needs ${off + len} bytes, file has ${bytes.byteLength}`, file);
    }
    pieces.push(bytes.slice(off, off + len));
    scores.push(score);
    off += len;
  }
  if (pieces.length <= EOS) throw new LopperError('corrupt', `only ${pieces.length} tokens: <unk>, BOS and EOS are missing`, file);
  return { pieces, scores: Float32Array.from(scores) };
}

/** Max-heap of candidate merges (piece id, left position): higher score first, then leftmost. */
class MergeQueue {
  private ids: Int32Array = new Int32Array(1024);
  private lefts: Int32Array = new Int32Array(1024);
  size = 0;

  constructor(private readonly scores: Float32Array) {}

  push(id: number, left: number): void {
    if (this.size === this.ids.length) {
      this.ids = grow(this.ids);
      this.lefts = grow(this.lefts);
    }
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(id, left, parent)) break;
      this.move(parent, i);
      i = parent;
    }
    this.ids[i] = id;
    this.lefts[i] = left;
  }

  pop(): [id: number, left: number] {
    const top: [number, number] = [this.ids[0], this.lefts[0]];
    const n = --this.size;
    const id = this.ids[n];
    const left = this.lefts[n];
    let i = 0;
    for (let child = 1; child < n; child = 2 * i + 1) {
      if (child + 1 < n && this.before(this.ids[child + 1], this.lefts[child + 1], child)) child++;
      if (!this.before(this.ids[child], this.lefts[child], n)) break;
      this.move(child, i);
      i = child;
    }
    this.ids[i] = id;
    this.lefts[i] = left;
    return top;
  }

  /** Whether candidate (id, left) comes before the entry at heap index j. */
  private before(id: number, left: number, j: number): boolean {
    const s = this.scores[id];
    const t = this.scores[this.ids[j]];
    return s > t || (s === t && left < this.lefts[j]);
  }

  private move(from: number, to: number): void {
    this.ids[to] = this.ids[from];
    this.lefts[to] = this.lefts[from];
  }
}

function grow(a: Int32Array): Int32Array {
  const bigger = new Int32Array(a.length * 2);
  bigger.set(a);
  return bigger;
}

// ---------------------------------------------------------------- Hugging Face export

const UNDERLINE = '▁';
const SPECIAL_NAMES = ['<unk>', '<s>', '</s>'];

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n');

/**
 * tokenizer.json, tokenizer_config.json and special_tokens_map.json that make Hugging Face
 * tokenizers (and transformers.js) encode and decode like this tokenizer: a Llama-2-style
 * SentencePiece BPE (pieces with '▁' for ' ', merges ranked by the merged piece's score as
 * HF's LlamaConverter does, Prepend("▁") + Replace(" ", "▁") normalizer, BOS added by the
 * post-processor). Unlike LlamaConverter, fuse_unk is off: like SentencePiece's BPE and this
 * tokenizer, each unknown character becomes its own <unk>.
 */
export function toHfTokenizerFiles(tok: Llama2cTokenizer): Record<string, Uint8Array> {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const pieces = tok.pieces.map((p, id) => {
    if (id < SPECIAL_NAMES.length) return SPECIAL_NAMES[id];
    try {
      return utf8.decode(p).replaceAll(' ', UNDERLINE);
    } catch {
      throw new LopperError('unsupported-config', `token ${id} is not valid UTF-8, which tokenizer.json cannot hold`, tok.file);
    }
  });
  const vocab = new Map<string, number>();
  pieces.forEach((p, id) => {
    const other = vocab.get(p);
    if (other !== undefined) {
      throw new LopperError('unsupported-config', `tokens ${other} and ${id} are both ${JSON.stringify(p)} in tokenizer.json`, tok.file);
    }
    vocab.set(p, id);
  });

  const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_NAMES.map((content, id) => ({ id, content, ...flags, special: true })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: UNDERLINE },
        { type: 'Replace', pattern: { String: ' ' }, content: UNDERLINE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [BOS], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: UNDERLINE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: SPECIAL_NAMES[UNK],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: tok.byteIds.some((id) => id >= 0),
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: generateMerges(pieces, vocab, tok.scores),
    },
  };

  const specialTokensMap = {
    bos_token: { content: SPECIAL_NAMES[BOS], ...flags },
    eos_token: { content: SPECIAL_NAMES[EOS], ...flags },
    unk_token: { content: SPECIAL_NAMES[UNK], ...flags },
  };
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(SPECIAL_NAMES.map((content, id) => [id, { content, ...flags, special: true }])),
    bos_token: SPECIAL_NAMES[BOS],
    eos_token: SPECIAL_NAMES[EOS],
    unk_token: SPECIAL_NAMES[UNK],
    clean_up_tokenization_spaces: false,
    legacy: true,
    tokenizer_class: 'LlamaTokenizer',
  };
  return {
    'tokenizer.json': json(tokenizerJson),
    'tokenizer_config.json': json(tokenizerConfig),
    'special_tokens_map.json': json(specialTokensMap),
  };
}

/**
 * HF's generate_merges (used by LlamaConverter through SentencePieceExtractor): every split
 * of a piece into two pieces, highest merged-piece score first, then longer left and right
 * parts, then vocabulary order.
 */
function generateMerges(pieces: string[], vocab: Map<string, number>, scores: Float32Array): [string, string][] {
  type Merge = { left: string; right: string; score: number; lenL: number; lenR: number };
  const merges: Merge[] = [];
  pieces.forEach((piece, id) => {
    const chars = Array.from(piece);
    const local: Merge[] = [];
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('');
      const right = chars.slice(k).join('');
      if (vocab.has(left) && vocab.has(right)) local.push({ left, right, score: scores[id], lenL: k, lenR: chars.length - k });
    }
    local.sort((a, b) => vocab.get(a.left)! - vocab.get(b.left)! || vocab.get(a.right)! - vocab.get(b.right)!);
    merges.push(...local);
  });
  merges.sort((a, b) => b.score - a.score || b.lenL - a.lenL || b.lenR - a.lenR);
  return merges.map((m) => [m.left, m.right]);
}
