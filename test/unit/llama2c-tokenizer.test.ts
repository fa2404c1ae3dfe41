import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { Llama2cTokenizer, toHfTokenizerFiles } from '../../src/engine/text/llama2c-tokenizer';
import { mulberry32 } from '../helpers/random-checkpoint';

const SHARED = fileURLToPath(new URL('../../../shared/', import.meta.url));
const TOK512 = 'models/stories260K/tok512.bin';
const TOK105 = 'models/babyllama-tok105/tok105.bin';
/** The excerpt holds every story; calib.txt and eval.txt split its 17 distinct stories in two. */
const TINYSTORIES_ALL = 'tinystories/TinyStories-valid.sample30KB.txt';
const TINYSTORIES_SPLITS = ['tinystories/eval.txt', 'tinystories/calib.txt'];

const readBytes = async (rel: string) => new Uint8Array(await readFile(join(SHARED, rel)));
const readText = async (rel: string) => readFile(join(SHARED, 'data', rel), 'utf8');
const latin1 = (bytes: ArrayLike<number>) => String.fromCharCode(...Array.from(bytes));

/**
 * The oracle: llama2.c run.c's encode() (bos = eos = 0) transcribed literally, with byte
 * tokens found by their "<0xNN>" pieces and <unk> (0) per character when the vocabulary has
 * none. The only liberty: the score of each adjacent pair is remembered until one of its two
 * tokens changes, instead of being looked up again on every pass; each pass still scans every
 * pair for the best score (strict >, so the leftmost wins ties) and shifts the array after a merge.
 */
function naiveEncode(tok: Llama2cTokenizer, text: string): number[] {
  const strs = tok.pieces.map(latin1);
  const vocab = new Map<string, number>();
  strs.forEach((s, id) => vocab.has(s) || vocab.set(s, id));
  const lookup = (s: string) => vocab.get(s) ?? -1; // str_lookup

  const tokens: number[] = [];
  if (text !== '') tokens.push(lookup(' ')); // add_dummy_prefix
  const bytes = new TextEncoder().encode(text);
  let buf: number[] = [];
  for (let c = 0; c < bytes.length; c++) {
    if ((bytes[c] & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[c]);
    if (c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup(latin1(buf));
    if (id !== -1) tokens.push(id);
    else {
      const byteIds = buf.map((b) => lookup(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
      if (byteIds.every((b) => b !== -1)) tokens.push(...byteIds);
      else tokens.push(0);
    }
    buf = [];
  }

  const pairId = (i: number) => lookup(strs[tokens[i]] + strs[tokens[i + 1]]);
  const pairScore = (id: number) => (id === -1 ? -Infinity : tok.scores[id]);
  const pairs = tokens.slice(0, -1).map((_, i) => pairId(i));
  const scores = pairs.map(pairScore);
  for (;;) {
    let bestScore = -1e10;
    let bestIdx = -1;
    for (let i = 0; i < scores.length; i++) {
      if (scores[i] > bestScore) {
        bestScore = scores[i];
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens[bestIdx] = pairs[bestIdx];
    tokens.splice(bestIdx + 1, 1);
    pairs.splice(bestIdx, 1);
    scores.splice(bestIdx, 1);
    for (const i of [bestIdx - 1, bestIdx]) {
      if (i < 0 || i >= pairs.length) continue;
      pairs[i] = pairId(i);
      scores[i] = pairScore(pairs[i]);
    }
  }
  return tokens;
}

/** The id of the piece spelled exactly `s` (in the file's spelling: ' ' for '▁'). */
const idOf = (tok: Llama2cTokenizer, s: string) => tok.pieces.findIndex((p) => latin1(p) === latin1(new TextEncoder().encode(s)));

/** toEqual on thousands of ids is slow and its diff unreadable: compare from where they part. */
function expectSameIds(actual: readonly number[], expected: readonly number[]): void {
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  expect({ at: i, ids: actual.slice(i, i + 8), length: actual.length }).toEqual({ at: i, ids: expected.slice(i, i + 8), length: expected.length });
}

/** A llama2.c tokenizer file with <unk>, BOS, EOS and then `pieces` (text, score). */
function tokenizerFile(pieces: [string, number][]): Uint8Array {
  const specials: [string, number][] = [['<unk>', 0], ['\n<s>\n', 0], ['\n</s>\n', 0]];
  const all = [...specials, ...pieces].map(([p, s]) => [new TextEncoder().encode(p), s] as const);
  const out = new Uint8Array(4 + all.reduce((n, [p]) => n + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...all.map(([p]) => p.length)), true);
  let off = 4;
  for (const [p, score] of all) {
    view.setFloat32(off, score, true);
    view.setInt32(off + 4, p.length, true);
    out.set(p, off + 8);
    off += 8 + p.length;
  }
  return out;
}

let tok512: Llama2cTokenizer;
let tok105: Llama2cTokenizer;
beforeAll(async () => {
  tok512 = new Llama2cTokenizer(await readBytes(TOK512), 'tok512.bin');
  tok105 = new Llama2cTokenizer(await readBytes(TOK105), 'tok105.bin');
});

describe('Llama2cTokenizer', () => {
  test('known encoding: "Once upon a time" with tok512', () => {
    expect([tok512.bosId, ...tok512.encode('Once upon a time')]).toEqual([1, 403, 407, 261, 378]);
    expect(tok512.decode([1, 403, 407, 261, 378])).toBe('Once upon a time');
    expect(tok512.kind).toBe('llama2c');
    expect([tok512.vocabSize, tok512.bosId, tok512.eosId, tok105.vocabSize]).toEqual([512, 1, 2, 105]);
  });

  test('empty text has no tokens, not even the dummy prefix', () => {
    expect(tok512.encode('')).toEqual([]);
    expect(tok512.decode([])).toBe('');
  });

  test('codepoints missing from tok512 fall back to their UTF-8 bytes as <0xNN> tokens', () => {
    const space = idOf(tok512, ' ');
    const byteId = (b: number) => idOf(tok512, `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    const bytesOf = (s: string) => Array.from(new TextEncoder().encode(s), byteId);
    expect(idOf(tok512, '£')).toBe(-1);
    expect(bytesOf('£')).not.toContain(-1);
    expect(tok512.encode('£')).toEqual([space, ...bytesOf('£')]);
    expect(tok512.encode('😀')).toEqual([space, ...bytesOf('😀')]);
    expect(tok512.encode('a\nb')).toEqual([idOf(tok512, ' a'), ...bytesOf('\n'), idOf(tok512, 'b')]);
    for (const s of ['£5 for 😀 and ß', 'line\n\n  two']) expect(tok512.decode([1, ...tok512.encode(s)])).toBe(s);
  });

  test('without byte tokens (tok105), each missing character is one <unk> (id 0)', () => {
    expect(tok105.byteIds.every((id) => id === -1)).toBe(true);
    const [space, a, b] = [' ', 'a', 'b'].map((s) => idOf(tok105, s));
    expect(tok105.encode('a\nb')).toEqual([space, a, 0, b]);
    expect(tok105.encode('a\n\n😀b')).toEqual([space, a, 0, 0, 0, b]);
    expect(tok105.encode('é')).toEqual([space, idOf(tok105, 'é')]);
    expect(tok105.decode([1, ...tok105.encode('a\nb')])).toBe('a<unk>b');
  });

  test('decode follows run.c: leading space stripped only after BOS, BOS/EOS dropped', () => {
    const ids = tok512.encode('Once upon a time');
    expect(tok512.decode(ids)).toBe(' Once upon a time');
    expect(tok512.decode([1, ...ids, 2])).toBe('Once upon a time');
    expect(tok512.decode([1, ...ids, 2, 1, ...ids])).toBe('Once upon a timeOnce upon a time');
    expect(() => tok512.decode([512])).toThrow(LopperError);
  });

  test('files() gives back the original bytes', async () => {
    expect(tok512.files()).toEqual({ 'tokenizer.bin': await readBytes(TOK512) });
  });

  test('a truncated file is refused with its name', async () => {
    const bytes = await readBytes(TOK512);
    expect(() => new Llama2cTokenizer(bytes.subarray(0, 101), 'cut.bin')).toThrow(/cut\.bin: token \d+ needs/);
    expect(() => new Llama2cTokenizer(bytes.subarray(0, 2), 'cut.bin')).toThrow(LopperError);
  });
});

describe('fast BPE = run.c loop', () => {
  const tricky = ['aaaaaaaaaaaaaaa', '   spaces   everywhere   ', 'the the the then there', 'Ünïcödé £€ 😀😀 ß', '\n\n\n', 'x'];

  test.each(['tok512', 'tok105'])('%s: tricky strings, all TinyStories text, 50 KB of WikiText-2', async (name) => {
    const tok = name === 'tok512' ? tok512 : tok105;
    for (const s of tricky) expect(tok.encode(s), s).toEqual(naiveEncode(tok, s));
    const stories = await readText(TINYSTORIES_ALL);
    expectSameIds(tok.encode(stories), naiveEncode(tok, stories));
    const wiki = (await readText('wikitext2/wiki.test.raw')).slice(0, 50_000);
    expectSameIds(tok.encode(wiki), naiveEncode(tok, wiki));
  });

  test('ties: equal scores merge the leftmost pair, as run.c does (random vocabularies and texts)', () => {
    const tie = new Llama2cTokenizer(
      tokenizerFile([
        [' ', 0], ['a', -1], ['b', -1], ['aa', -5], ['ba', -5], ['ab', -5],
        ['n', -1], ['e', -1], ['v', -1], ['r', -1], ['ne', -4], ['nev', -4], ['neve', -3], ['never', -2e10],
      ]),
    );
    const id = (s: string) => idOf(tie, s);
    expect(tie.encode('aaa')).toEqual([id(' '), id('aa'), id('a')]);
    expect(tie.encode('aba')).toEqual([id(' '), id('ab'), id('a')]);
    expect(tie.encode('never')).toEqual([id(' '), id('neve'), id('r')]); // "never" scores below run.c's -1e10 floor

    const rand = mulberry32(42);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    for (let trial = 0; trial < 200; trial++) {
      const letters = ['a', 'b', 'c', ' '];
      const pieces = new Map<string, number>(letters.map((l) => [l, pick([0, -1, -2])]));
      while (pieces.size < 4 + 12) {
        const piece = Array.from({ length: 2 + Math.floor(rand() * 3) }, () => pick(letters)).join('');
        pieces.set(piece, pick([-1, -2, -3, -4])); // few distinct scores: ties everywhere
      }
      const tok = new Llama2cTokenizer(tokenizerFile([...pieces]));
      for (let t = 0; t < 5; t++) {
        const text = Array.from({ length: Math.floor(rand() * 40) }, () => pick([...letters, 'é'])).join('');
        expect(tok.encode(text), `${JSON.stringify([...pieces])} ${JSON.stringify(text)}`).toEqual(naiveEncode(tok, text));
      }
    }
  });

  test('all of WikiText-2 (1.3 MB) encodes quickly and decodes back to the text', async () => {
    const wiki = await readText('wikitext2/wiki.test.raw');
    const start = performance.now();
    const ids = tok512.encode(wiki);
    const seconds = (performance.now() - start) / 1000;
    expect(seconds).toBeLessThan(10);
    expect(ids.length).toBeLessThan(wiki.length * 0.7);
    expect(tok512.decode([1, ...ids])).toBe(wiki);
  });
});

describe('toHfTokenizerFiles in transformers.js', () => {
  const hfTokenizer = (tok: Llama2cTokenizer) => {
    const files = toHfTokenizerFiles(tok);
    expect(Object.keys(files).sort()).toEqual(['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const parse = (name: string) => JSON.parse(new TextDecoder().decode(files[name]));
    return new PreTrainedTokenizer(parse('tokenizer.json'), parse('tokenizer_config.json'));
  };

  test('tok512: the same ids and the same text for TinyStories (and byte fallback)', async () => {
    const hf = hfTokenizer(tok512);
    const wiki = (await readText('wikitext2/wiki.test.raw')).slice(0, 50_000);
    const stories = await Promise.all(TINYSTORIES_SPLITS.map(readText));
    const texts = [...stories, wiki, 'Once upon a time', '£5 for 😀 and ß', '  two  spaces \n\n', ''];
    for (const text of texts) {
      const ids = [1, ...tok512.encode(text)];
      expectSameIds(hf.encode(text), ids);
      expect(hf.decode(ids, { skip_special_tokens: true })).toBe(tok512.decode(ids));
      expect(tok512.decode(ids)).toBe(text);
    }
  });

  test('tok105: the same ids; decoding differs only in <unk>, which HF skips as a special token', async () => {
    const hf = hfTokenizer(tok105);
    const wiki = (await readText('wikitext2/wiki.test.raw')).slice(0, 50_000);
    const texts = [...(await Promise.all(TINYSTORIES_SPLITS.map(readText))), wiki, 'a\n\n😀b', 'Once upon a time'];
    expect(tok105.encode(texts[0])).toContain(0); // TinyStories' newlines are not in tok105
    for (const text of texts) {
      const ids = [1, ...tok105.encode(text)];
      expectSameIds(hf.encode(text), ids);
      expect(hf.decode(ids.slice(1), { skip_special_tokens: false })).toBe(tok105.decode(ids));
      expect(hf.decode(ids, { skip_special_tokens: true })).toBe(tok105.decode(ids).replaceAll('<unk>', ''));
    }
  });

  test('known limit: different pieces with equal scores are ranked by id in HF, not leftmost-first', () => {
    // Real SentencePiece vocabularies score every mergeable piece differently, so this needs a made-up one.
    const tie = new Llama2cTokenizer(tokenizerFile([[' ', 0], ['a', -1], ['b', -1], ['ba', -5], ['ab', -5]]));
    const id = (s: string) => idOf(tie, s);
    expect(tie.encode('aba')).toEqual([id(' '), id('ab'), id('a')]);
    expect(hfTokenizer(tie).encode('aba')).toEqual([1, id(' '), id('a'), id('ba')]);
  });
});
