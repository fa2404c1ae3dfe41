/**
 * A model's files are untrusted input. Focused cases of what test/unit/fuzz.test.ts explores
 * at random: shard paths stay inside the model folder on every source; NaN/Inf weights are
 * named at load and a non-finite perplexity is an error, never a printed "NaN"; absurd or
 * inconsistent config values are refused before anything is allocated from them; third-party
 * parsers' errors come back as LopperErrors naming the file; the CLI says one line and exits 1.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { LopperError, type ErrorCode } from '../../src/engine/errors';
import { loadHfFolder, writeHfFolder } from '../../src/engine/formats/hf';
import { writeFolder } from '../../src/engine/formats/hf-node';
import { loadLlama2c, writeLlama2c } from '../../src/engine/formats/llama2c';
import { DirSource } from '../../src/engine/formats/node-source';
import { parseSafetensors, writeSafetensors } from '../../src/engine/formats/safetensors';
import { containedPath, MemorySource } from '../../src/engine/formats/source';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { f32Tensor, type Tensor } from '../../src/engine/model/tensor';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { HOSTILE_PATHS } from '../fuzz/mutate';
import { lopper } from '../helpers/cli';
import { DATA, MODELS } from '../helpers/paths';
import { randomHfFolder } from '../helpers/random-checkpoint';

const STORIES = join(MODELS, 'stories260K/stories260K.bin');
const TOK512 = join(MODELS, 'stories260K/tok512.bin');
const EVAL = join(DATA, 'tinystories/eval.txt');
const INDEX = 'model.safetensors.index.json';

const root = mkdtempSync(join(tmpdir(), 'lopper-untrusted-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const stories = () => loadLlama2c(new Uint8Array(readFileSync(STORIES)), new Uint8Array(readFileSync(TOK512)), { model: STORIES, tokenizer: TOK512 });
const jsonOf = (files: Map<string, Uint8Array>, name: string) => JSON.parse(new TextDecoder().decode(files.get(name)));
const setJson = (files: Map<string, Uint8Array>, name: string, value: unknown) => files.set(name, new TextEncoder().encode(JSON.stringify(value)));

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<LopperError> {
  const e = await (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LopperError);
  return e as LopperError;
}

async function expectRejected(p: Promise<unknown> | (() => unknown), code: ErrorCode, ...fragments: (string | RegExp)[]) {
  const e = await rejection(p);
  expect(e.code, e.message).toBe(code);
  for (const f of fragments) expect(e.message).toMatch(f);
  expect(e.message).not.toMatch(/\n/);
  return e;
}

/** A sharded random model whose index sends one tensor to `path`. */
function withShardPath(path: string): Map<string, Uint8Array> {
  const files = randomHfFolder({}, { sharded: true });
  const index = jsonOf(files, INDEX);
  setJson(files, INDEX, { ...index, weight_map: { ...index.weight_map, 'model.norm.weight': path } });
  return files;
}

describe('shard paths stay inside the model folder', () => {
  test('containedPath accepts plain relative paths, subfolders included, and refuses every other spelling', () => {
    for (const ok of ['model-00001-of-00002.safetensors', 'weights/part 1.safetensors']) expect(containedPath(ok, 'index')).toBe(ok);
    for (const bad of [...HOSTILE_PATHS, './model.safetensors', 'a//b', 'a/./b', 'a\\..\\b', '..', 'x?y', 'x#y', 'A'.repeat(600)]) {
      expect(() => containedPath(bad, 'index.json'), bad).toThrow(/index\.json: .* is not a file inside the model's folder/);
    }
  });

  test('on disk: a weight_map entry ../elsewhere/… is refused, though a valid shard waits there', async () => {
    const dir = join(root, 'traversal', 'model');
    const files = withShardPath('../elsewhere/model-00003-of-00003.safetensors');
    await writeFolder(dir, files);
    mkdirSync(join(root, 'traversal', 'elsewhere'), { recursive: true });
    writeFileSync(join(root, 'traversal', 'elsewhere', 'model-00003-of-00003.safetensors'), files.get('model-00003-of-00003.safetensors')!);
    await expectRejected(loadHfFolder(new DirSource(dir)), 'corrupt', INDEX, '"../elsewhere/model-00003-of-00003.safetensors" is not a file inside');
  });

  test("/etc/passwd as a shard: refused by name, nothing of that file's size or bytes in the message (disk and memory sources)", async () => {
    const dir = join(root, 'passwd');
    const files = withShardPath('/etc/passwd');
    await writeFolder(dir, files);
    const passwd = readFileSync('/etc/passwd');
    for (const src of [new DirSource(dir), new MemorySource('mem', files)]) {
      const e = await expectRejected(loadHfFolder(src), 'corrupt', INDEX, '"/etc/passwd" is not a file inside');
      expect(e.message).not.toContain(passwd.subarray(0, 4).toString());
      expect(e.message).not.toContain(String(passwd.length));
    }
  });

  test('one shard spelled two ways (./x, x/../x) is refused, so no shard is read twice', async () => {
    for (const alias of ['./model-00001-of-00003.safetensors', 'x/../model-00001-of-00003.safetensors']) {
      await expectRejected(loadHfFolder(new MemorySource('mem', withShardPath(alias))), 'corrupt', INDEX, 'is not a file inside');
    }
  });

  test('DirSource itself reads nothing outside its folder', async () => {
    const src = new DirSource(join(root, 'passwd'));
    await expectRejected(src.read('../../../../etc/passwd'), 'bad-input', 'is not inside the folder');
    expect(await src.exists('../../../../etc/passwd')).toBe(false);
  });

  test('the CLI: exit 1, one line naming the index, nothing of /etc/passwd', async () => {
    const r = await lopper('info', '--model', join(root, 'passwd'));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(INDEX);
    expect(r.stderr).not.toContain('root:');
  });
});

describe('non-finite numbers', () => {
  test('NaN and ±Infinity in llama2.c weights: the tensor and the count are named at load', async () => {
    const bytes = new Uint8Array(readFileSync(STORIES));
    const view = new DataView(bytes.buffer);
    const wq = 28 + 4 * (512 * 64 + 5 * 64); // after the embedding [V, D] and rms_att [L, D]
    view.setFloat32(wq, NaN, true);
    view.setFloat32(wq + 8, Infinity, true);
    view.setFloat32(wq + 4 * 4096 + 4, -Infinity, true); // layer 1's wq
    await expectRejected(
      () => loadLlama2c(bytes, new Uint8Array(readFileSync(TOK512)), { model: 'm.bin', tokenizer: 't.bin' }),
      'non-finite',
      'm.bin',
      'tensor "model.layers.0.self_attn.q_proj.weight" has 2 non-finite values (NaN or ±Infinity); 3 in 2 tensors',
    );
  });

  test('F16 and BF16 NaN/Inf bit patterns in safetensors are found too', async () => {
    for (const [dtype, nan] of [['f16', 0x7e00], ['bf16', 0xff80]] as const) {
      const t: Tensor = { dtype, shape: [4], data: Uint16Array.of(0x3c00, nan, 0, 0) };
      await expectRejected(() => parseSafetensors(writeSafetensors(new Map([['w', t]])), 'x.safetensors'), 'non-finite', 'x.safetensors', '"w" has 1 non-finite value');
    }
  });

  // Finite weights that overflow float32 in the forward pass: the final norm's weight at 3e38.
  const overflowing = (): Checkpoint => {
    const ck = stories();
    const tensors = new Map(ck.tensors).set('model.norm.weight', f32Tensor([64], new Float32Array(64).fill(3e38)));
    return { ...ck, tensors };
  };

  test('a perplexity that overflows is a non-finite error naming the window, not a number', async () => {
    const ck = overflowing();
    const engine = new Engine(ck, nodeRuntime());
    try {
      const ids = [1, ...ck.tokenizer.encode(readFileSync(EVAL, 'utf8'))];
      await expectRejected(engine.perplexity(ids, 64, { maxWindows: 2 }), 'non-finite', /the loss of window 1 is (NaN|Infinity)/);
    } finally {
      await engine.dispose();
    }
  });

  test('lopper ppl on that model: exit 1, one line, no "perplexity NaN"', async () => {
    const dir = join(root, 'overflow');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.bin'), writeLlama2c(overflowing()));
    writeFileSync(join(dir, 'tokenizer.bin'), readFileSync(TOK512));
    const r = await lopper('ppl', '--model', join(dir, 'model.bin'), '--text', EVAL, '--window', '64', '--max-windows', '2');
    expect(r.code).toBe(1);
    expect(r.stdout).not.toMatch(/NaN/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^lopper ppl: .*is (NaN|Infinity)/);
  });
});

describe('config values: typed, bounded, consistent with the weights, errors naming config.json', () => {
  const configFiles = (patch: Record<string, unknown>) => {
    const files = writeHfFolder(stories());
    setJson(files, 'config.json', { ...jsonOf(files, 'config.json'), ...patch });
    return files;
  };
  const withConfig = (patch: Record<string, unknown>) => new MemorySource('m', configFiles(patch));

  test('num_hidden_layers 1e6 in a 1 KB config: refused at once', async () => {
    const t0 = performance.now();
    await expectRejected(loadHfFolder(withConfig({ num_hidden_layers: 1e6 })), 'unsupported-config', 'm/config.json', '"num_hidden_layers" must be a whole number from 1 to 1024, got 1000000');
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test('num_hidden_layers below the weights, 0, negative, fractional; fractional head_dim and num_key_value_heads', async () => {
    await expectRejected(loadHfFolder(withConfig({ num_hidden_layers: 4 })), 'shape-mismatch', 'model.safetensors', 'model.layers.4.', 'config.json says num_hidden_layers is 4');
    for (const [key, v] of [['num_hidden_layers', 0], ['num_hidden_layers', -3], ['num_hidden_layers', 2.5], ['head_dim', 7.5], ['num_key_value_heads', 2.5], ['max_position_embeddings', 0], ['max_position_embeddings', 2 ** 31 - 1]] as const) {
      await expectRejected(loadHfFolder(withConfig({ [key]: v })), 'unsupported-config', 'config.json', `"${key}" must be a whole number`, String(v));
    }
    await expectRejected(loadHfFolder(withConfig({ num_key_value_heads: 3 })), 'unsupported-config', 'config.json', 'not a multiple of num_key_value_heads 3');
  });

  test('deeply nested values (100,000 levels) are described, never serialized', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    for (const key of ['architectures', 'hidden_act', 'rope_scaling', 'layer_types', 'num_hidden_layers']) {
      const files = configFiles({ [key]: 'DEEP' });
      const text = new TextDecoder().decode(files.get('config.json')).replace('"DEEP"', key === 'architectures' ? `[${deep}]` : deep);
      files.set('config.json', new TextEncoder().encode(text));
      const e = await rejection(loadHfFolder(new MemorySource('m', files)));
      expect(e.message, key).toContain('config.json');
      expect(e.message.length).toBeLessThan(300);
    }
  });

  test('a tokenizer.json id at or past vocab_size is refused before transformers.js sees it (1e9 would take it 39 s)', async () => {
    for (const id of [512, 1e9]) {
      const files = writeHfFolder(stories());
      const tok = jsonOf(files, 'tokenizer.json');
      tok.model.vocab.the = id;
      setJson(files, 'tokenizer.json', tok);
      const t0 = performance.now();
      await expectRejected(loadHfFolder(new MemorySource('m', files)), 'shape-mismatch', 'm/tokenizer.json', `"the" is ${id}, not a token id below vocab_size 512 (config.json)`);
      expect(performance.now() - t0).toBeLessThan(2000);
    }
  });

  test("what transformers.js throws on a malformed tokenizer.json is a LopperError naming it", async () => {
    const base = writeHfFolder(stories());
    const tok = jsonOf(base, 'tokenizer.json');
    for (const bad of [{ ...tok, normalizer: { type: 'Nope' } }, { ...tok, post_processor: { type: 'TemplateProcessing' } }, { ...tok, added_tokens: [null] }, { ...tok, model: undefined }]) {
      const files = new Map(base);
      setJson(files, 'tokenizer.json', bad);
      const e = await rejection(loadHfFolder(new MemorySource('m', files)));
      expect(e.message).toMatch(/^m\/tokenizer\.json: /);
    }
  });

  test('a large max_position_embeddings is a limit, not an allocation: the RoPE table covers what a run uses', async () => {
    const ck = stories();
    const engine = new Engine({ ...ck, config: { ...ck.config, maxPositions: 1 << 24 } }, nodeRuntime());
    try {
      const before = process.memoryUsage().rss;
      const r = await engine.perplexity([1, ...ck.tokenizer.encode(readFileSync(EVAL, 'utf8'))], 64, { maxWindows: 1 });
      expect(Number.isFinite(r.ppl)).toBe(true);
      // 2^24 positions × head_dim 8 × four float32 tables would be 2 GiB
      expect(process.memoryUsage().rss - before).toBeLessThan(256 * 2 ** 20);
    } finally {
      await engine.dispose();
    }
  });
});

describe('llama2.c and safetensors structure', () => {
  test('a tokenizer piece longer than max_token_length, or a max_token_length over 1024, is refused', async () => {
    const tok = new Uint8Array(readFileSync(TOK512));
    const smaller = tok.slice();
    new DataView(smaller.buffer).setInt32(0, 6, true); // tok512's longest piece has 7 bytes
    await expectRejected(() => loadLlama2c(new Uint8Array(readFileSync(STORIES)), smaller, { model: 'm.bin', tokenizer: 't.bin' }), 'corrupt', 't.bin', 'not from 0 to max_token_length 6');
    const huge = tok.slice();
    new DataView(huge.buffer).setInt32(0, 200_000, true);
    await expectRejected(() => loadLlama2c(new Uint8Array(readFileSync(STORIES)), huge, { model: 'm.bin', tokenizer: 't.bin' }), 'corrupt', 't.bin', 'max_token_length 200000 is not from 1 to 1024');
  });

  test('safetensors: a header length a few bytes short, overlapping and aliased data_offsets, are refused', async () => {
    const a = f32Tensor([2], Float32Array.of(1, 2));
    const b = f32Tensor([2], Float32Array.of(3, 4));
    const file = writeSafetensors(new Map([['a', a], ['b', b]]));
    const short = file.slice();
    const n = new DataView(short.buffer).getBigUint64(0, true);
    new DataView(short.buffer).setBigUint64(0, n - 2n, true);
    await expectRejected(() => parseSafetensors(short, 's.safetensors'), 'corrupt', 's.safetensors');
    const headerOf = (offsets: [number, number][]) => {
      const header = JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: offsets[0] }, b: { dtype: 'F32', shape: [2], data_offsets: offsets[1] } });
      const bytes = new Uint8Array(8 + header.length + 16);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
      bytes.set(new TextEncoder().encode(header), 8);
      return bytes;
    };
    await expectRejected(() => parseSafetensors(headerOf([[0, 8], [0, 8]]), 's.safetensors'), 'corrupt', 'overlaps');
    await expectRejected(() => parseSafetensors(headerOf([[0, 8], [4, 12]]), 's.safetensors'), 'corrupt', 'overlaps');
    await expectRejected(() => parseSafetensors(headerOf([[0, 8], [8, 16]]).subarray(0, -4), 's.safetensors'), 'truncated', '"b" ends at byte 16');
    expect([...parseSafetensors(headerOf([[0, 8], [8, 16]]), 's.safetensors').keys()]).toEqual(['a', 'b']);
  });
});

describe('files the CLI cannot read are one line, exit 1', () => {
  test('a folder as --tokenizer', async () => {
    const r = await lopper('info', '--model', STORIES, '--tokenizer', root);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^lopper info: .*is a folder, not a file\n$/);
  });

  test('a model file over 2 GiB (sparse)', async () => {
    const big = join(root, 'big', 'model.bin');
    mkdirSync(join(root, 'big'), { recursive: true });
    closeSync(openSync(big, 'w'));
    const fd = openSync(big, 'r+');
    try {
      (await import('node:fs')).ftruncateSync(fd, 2 ** 31 + 4096);
    } finally {
      closeSync(fd);
    }
    const r = await lopper('info', '--model', big, '--tokenizer', TOK512);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^lopper info: .*model\.bin: is too large to read into memory at once/);
    rmSync(big);
  });
});
