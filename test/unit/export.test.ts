/**
 * Exports other tools load (src/engine/export): export → import gives the same tensors, bit
 * for bit, for stories260K dense and pruned and for random checkpoints of each dtype; the HF
 * folder gives the same perplexity; layer_types follow the layers; the plan's files; the
 * `lopper export` command and `prune --out`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { exportFiles, planFiles, pruneLayersLine, type ExportEntry } from '../../src/engine/export';
import { planDocument } from '../../src/engine/export/plan';
import { chunksOf } from '../../src/engine/formats/chunks';
import { zipChunks } from '../../src/engine/export/zip';
import { loadHfFolder, SAFETENSORS, SAFETENSORS_INDEX } from '../../src/engine/formats/hf';
import { writeFolder } from '../../src/engine/formats/hf-node';
import { llama2cTokenizerNote, loadLlama2c } from '../../src/engine/formats/llama2c';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { loadModelPath } from '../../src/engine/formats/load-node';
import { MemorySource } from '../../src/engine/formats/source';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { fromHfConfig, toHfConfig } from '../../src/engine/model/config';
import { toFloat32 } from '../../src/engine/model/tensor';
import { prune, type Plan } from '../../src/engine/prune/plan';
import { foldScaleTied, removeLayers } from '../../src/engine/prune/surgery';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { cutWindows } from '../../src/engine/text/windows';
import { lopper } from '../helpers/cli';
import { DATA, MODELS } from '../helpers/paths';
import { randomCheckpoint, randomHfFolder } from '../helpers/random-checkpoint';

const STORIES = join(MODELS, 'stories260K/stories260K.bin');
const TOK512 = join(MODELS, 'stories260K/tok512.bin');
const CALIB = join(DATA, 'tinystories/calib.txt');
const EVAL = join(DATA, 'tinystories/eval.txt');
const root = mkdtempSync(join(tmpdir(), 'lopper-export-'));

const dense = await loadLlama2cFile(STORIES);
/** Layers 1 and 3 removed, a scale folded the tie-preserving way (so weights differ from the dense model's). */
const pruned = foldScaleTied(removeLayers(dense, [1, 3]), 1, 1.25);
// ReplaceMe's linear map (issue 14): folded into down_proj, so every export carries it in standard weights
const linear = (
  await prune(dense, nodeRuntime(1), cutWindows([1, ...dense.tokenizer.encode(readFileSync(CALIB, 'utf8'))], 128, 8), { metric: 'bi', mode: 'prunecomp', layers: 2, comp: 'linear' })
).checkpoint;

async function bytesOf(e: ExportEntry): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of chunksOf(e.chunks)) parts.push(c);
  return new Uint8Array(Buffer.concat(parts));
}

async function asFiles(entries: ExportEntry[]): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const e of entries) {
    const bytes = await bytesOf(e);
    if (e.size !== undefined) expect(bytes.length, e.name).toBe(e.size);
    files.set(e.name, bytes);
  }
  return files;
}

const raw = (data: Float32Array | Uint16Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** Same names, dtypes, shapes and bytes. */
function expectSameTensors(got: Checkpoint, want: Checkpoint): void {
  expect([...got.tensors.keys()].sort()).toEqual([...want.tensors.keys()].sort());
  for (const [name, t] of want.tensors) {
    const g = got.tensors.get(name)!;
    expect(g.dtype, name).toBe(t.dtype);
    expect(g.shape, name).toEqual(t.shape);
    expect(raw(g.data).equals(raw(t.data)), name).toBe(true);
  }
}

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));

describe.each([
  ['dense', dense],
  ['pruned [1, 3]', pruned],
  ['pruned with linear maps', linear],
])('stories260K %s', (_, ck) => {
  test('HF folder, one model.safetensors: same tensors and config', async () => {
    const files = await asFiles(await exportFiles(ck, 'hf'));
    expect(files.has(SAFETENSORS)).toBe(true);
    expect(files.has(SAFETENSORS_INDEX)).toBe(false);
    expect(json(files.get('config.json')!).num_hidden_layers).toBe(ck.config.numLayers);
    const back = await loadHfFolder(new MemorySource('export', files));
    expectSameTensors(back, ck);
    expect(back.config).toEqual(ck.config);
  });

  test('HF folder sharded at 100 kB: transformers\' names, index, every tensor back', async () => {
    const limit = 100_000;
    const files = await asFiles(await exportFiles(ck, 'hf', { maxShardSize: limit }));
    expect(files.has(SAFETENSORS)).toBe(false);
    const index = json(files.get(SAFETENSORS_INDEX)!);
    const shards = [...new Set(Object.values(index.weight_map) as string[])].sort();
    expect(shards.length).toBeGreaterThan(2);
    shards.forEach((s, i) => expect(s).toBe(`model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
    expect([...files.keys()].filter((n) => n.endsWith('.safetensors')).sort()).toEqual(shards);
    expect(Object.keys(index.weight_map).sort()).toEqual([...ck.tensors.keys()].sort());
    let total = 0;
    for (const t of ck.tensors.values()) total += t.data.byteLength;
    expect(index.metadata.total_size).toBe(total);
    for (const s of shards) {
      const names = Object.keys(index.weight_map).filter((n) => index.weight_map[n] === s);
      const bytes = names.reduce((n, name) => n + ck.tensors.get(name)!.data.byteLength, 0);
      expect(bytes <= limit || names.length === 1, s).toBe(true); // a tensor over the limit gets a shard of its own
    }
    expectSameTensors(await loadHfFolder(new MemorySource('export', files)), ck);
  });

  test('llama2.c: model.bin + tok512 as tokenizer.bin, same tensors and config', async () => {
    const files = await asFiles(await exportFiles(ck, 'llama2c'));
    expect([...files.keys()]).toEqual(['model.bin', 'tokenizer.bin']);
    expect(Buffer.from(files.get('tokenizer.bin')!).equals(readFileSync(TOK512))).toBe(true);
    const back = loadLlama2c(files.get('model.bin')!, files.get('tokenizer.bin')!, { model: 'model.bin', tokenizer: 'tokenizer.bin' });
    expectSameTensors(back, ck);
    expect(back.config).toEqual(ck.config);
  });

  test('HF folder on disk re-imports with the same perplexity on eval.txt', async () => {
    const dir = join(root, `ppl-${_.replace(/\W+/g, '-')}`);
    await writeFolder(dir, await exportFiles(ck, 'hf', { maxShardSize: 200_000 }));
    const back = await loadModelPath(dir);
    expectSameTensors(back, ck);
    const text = readFileSync(EVAL, 'utf8');
    const ids = [1, ...ck.tokenizer.encode(text)];
    expect([1, ...back.tokenizer.encode(text)]).toEqual(ids);
    const runtime = nodeRuntime();
    const ppl = async (model: Checkpoint) => {
      const engine = new Engine(model, runtime);
      try {
        return await engine.perplexity(ids, 256, { maxWindows: 8 });
      } finally {
        await engine.dispose();
      }
    };
    const [a, b] = [await ppl(ck), await ppl(back)];
    expect(b.tokens).toBe(a.tokens);
    expect(b.ppl).toBe(a.ppl);
  });
});

describe('other dtypes and configs (random checkpoints)', () => {
  test.each(['f32', 'f16', 'bf16'] as const)('%s: HF export, sharded, bit for bit', async (dtype) => {
    const ck = randomCheckpoint({ dtype, numLayers: 3, hiddenSize: 64, numKvHeads: 2, seed: 4 });
    for (const maxShardSize of [undefined, 20_000]) {
      const files = await asFiles(await exportFiles(ck, 'hf', { maxShardSize }));
      expect(files.has(SAFETENSORS_INDEX)).toBe(maxShardSize !== undefined);
      const back = await loadHfFolder(new MemorySource('export', files));
      expectSameTensors(back, ck);
      expect(back.config).toEqual(ck.config);
    }
  });

  test('llama2.c holds GQA and an untied head; f16 weights are widened exactly', async () => {
    const ck = randomCheckpoint({ dtype: 'f16', hiddenSize: 64, numHeads: 4, numKvHeads: 2, tie: false, seed: 9 });
    const files = await asFiles(await exportFiles(ck, 'llama2c'));
    // a Hugging Face tokenizer cannot become tokenizer.bin: its own files come along, and a note says so
    expect([...files.keys()].sort()).toEqual(['model.bin', 'tokenizer.json', 'tokenizer_config.json']);
    expect(llama2cTokenizerNote(ck)).toMatch(/tokenizer\.json.*beside model\.bin/);
    expect(llama2cTokenizerNote(dense)).toBeUndefined();
    const header = new Int32Array(files.get('model.bin')!.slice(0, 28).buffer);
    expect([header[3], header[4], header[5]]).toEqual([4, 2, -ck.config.vocabSize]);
    const back = loadLlama2c(files.get('model.bin')!, fillerTokenizer(ck.config.vocabSize), { model: 'm', tokenizer: 't' });
    expect(back.config).toEqual({ ...ck.config, torchDtype: 'float32' });
    for (const [name, t] of ck.tensors) expect(raw(back.tensors.get(name)!.data).equals(raw(toFloat32(t))), name).toBe(true);
  });

  test('llama2.c refuses what it cannot express, naming each thing', async () => {
    const cases: [Parameters<typeof randomCheckpoint>[0], RegExp][] = [
      [{ qkvBias: true, oBias: true }, /attention biases/],
      [{ mlpBias: true }, /MLP biases/],
      [{ hiddenSize: 64, ropeScaling: true }, /RoPE scaling/],
      [{ ropeTheta: 500000 }, /rope_theta 500000/],
      [{ headDim: 16 }, /head_dim 16/],
    ];
    for (const [opts, message] of cases) {
      const err = await exportFiles(randomCheckpoint(opts), 'llama2c').then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(LopperError);
      expect((err as LopperError).code).toBe('unsupported-config');
      expect((err as LopperError).message).toMatch(/llama2\.c cannot express this model/);
      expect((err as LopperError).message).toMatch(message);
    }
  });

  test('the transformers.js bundle is listed with the other formats', async () => {
    const names = (await exportFiles(pruned, 'onnx')).map((e) => e.name);
    expect(names).toContain('onnx/model.onnx');
    expect(names).toContain('config.json');
  });
});

/** A llama2.c tokenizer of `n` filler tokens (scores 0): only the tensors of a model loaded with it matter. */
function fillerTokenizer(n: number): Uint8Array {
  const parts: number[] = [];
  const push32 = (v: number, float = false) => {
    const b = new Uint8Array(4);
    const dv = new DataView(b.buffer);
    if (float) dv.setFloat32(0, v, true);
    else dv.setInt32(0, v, true);
    parts.push(...b);
  };
  push32(8); // max_token_length
  for (let i = 0; i < n; i++) {
    const piece = new TextEncoder().encode(`<t${i}>`);
    push32(0, true);
    push32(piece.length);
    parts.push(...piece);
  }
  return Uint8Array.from(parts);
}

describe('layer_types', () => {
  const types = ['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention'];

  test('round trip through config.json, and pruning drops the removed layers\' entries', async () => {
    const base = randomCheckpoint({ numLayers: 4, seed: 2 });
    const ck: Checkpoint = { ...base, config: { ...base.config, layerTypes: types } };
    const files = await asFiles(await exportFiles(ck, 'hf'));
    expect(json(files.get('config.json')!).layer_types).toEqual(types);
    const back = await loadHfFolder(new MemorySource('export', files));
    expect(back.config.layerTypes).toEqual(types);

    const cut = removeLayers(back, [1, 2]);
    expect(cut.config.layerTypes).toEqual(['full_attention', 'sliding_attention']);
    expect(back.config.layerTypes).toEqual(types); // the input is untouched
    const config = json((await asFiles(await exportFiles(cut, 'hf'))).get('config.json')!);
    expect(config.num_hidden_layers).toBe(2);
    expect(config.layer_types).toEqual(['full_attention', 'sliding_attention']);
  });

  test('a model without layer_types writes none', async () => {
    const files = await asFiles(await exportFiles(randomCheckpoint(), 'hf'));
    expect('layer_types' in json(files.get('config.json')!)).toBe(false);
  });

  test('a length other than num_hidden_layers is refused, reading and writing', () => {
    const c = toHfConfig(randomCheckpoint({ numLayers: 4 }).config);
    for (const bad of [types.slice(0, 3), [...types, 'full_attention']]) {
      expect(() => fromHfConfig({ ...c, layer_types: bad }, 'x/config.json')).toThrow(
        new RegExp(`x/config.json: config "layer_types" has ${bad.length} entries but num_hidden_layers is 4`),
      );
    }
    expect(() => fromHfConfig({ ...c, layer_types: 'full_attention' })).toThrow(/"layer_types" must be a list of strings/);
    expect(() => toHfConfig({ ...randomCheckpoint({ numLayers: 2 }).config, layerTypes: types })).toThrow(/has 4 entries but num_hidden_layers is 2/);
  });
});

describe('zip of an export', () => {
  test('a sharded HF export as a .zip: unzip -t passes, and the extracted folder loads to the same tensors', async () => {
    const file = join(root, 'pruned-hf.zip');
    const parts: Uint8Array[] = [];
    for await (const c of zipChunks(await exportFiles(pruned, 'hf', { maxShardSize: 150_000 }))) parts.push(c);
    writeFileSync(file, Buffer.concat(parts));
    expect(execFileSync('unzip', ['-t', file]).toString()).toContain('No errors detected');
    execFileSync('python3', ['-m', 'zipfile', '-t', file]);
    const dir = join(root, 'unzipped');
    execFileSync('unzip', ['-q', file, '-d', dir]);
    expect(readdirSync(dir)).toContain(SAFETENSORS_INDEX);
    expectSameTensors(await loadModelPath(dir), pruned);
  });
});

describe('plan files', () => {
  const step = (removed: number, folded: boolean) => ({ scores: [0.1, 0.2], removed, at: removed, scale: 1.1, folded, skippedChannels: 0 });
  const plan = (folded: boolean): Plan => ({
    metric: 'bi',
    mode: folded ? 'prunecomp' : 'baseline',
    fold: folded ? 'paper' : 'none',
    comp: folded ? 'scalar' : 'none',
    alpha: 0,
    budget: null,
    barriers: { skipFirst: 0, skipLast: 0 },
    removed: [3, 1],
    scales: [1.1, 1.1],
    steps: [step(3, folded), step(1, folded)],
    untied: folded,
    skippedChannels: 0,
    layersBefore: 5,
    layersAfter: 3,
  });

  test('plan.json (original indices in removal order) and prune-layers.txt (sorted, comma-separated)', async () => {
    const files = await asFiles(planFiles(plan(true)));
    expect([...files.keys()]).toEqual(['plan.json', 'prune-layers.txt']);
    expect(new TextDecoder().decode(files.get('prune-layers.txt'))).toBe('1,3\n');
    const doc = json(files.get('plan.json')!);
    expect(doc).toMatchObject({ metric: 'bi', mode: 'prunecomp', removed: [3, 1], scales: [1.1, 1.1], layersBefore: 5, layersAfter: 3 });
    expect(doc.llamaCpp.pruneLayers).toBe('1,3');
    expect(doc.llamaCpp.compensated).toBe(true);
    expect(doc.llamaCpp.note).toMatch(/--prune-layers 1,3 .*uncompensated baseline.*export it as GGUF.*without --prune-layers/);
  });

  test('without compensation the line reproduces the pruned model, and the note says so', () => {
    const doc = planDocument(plan(false));
    expect(doc.llamaCpp.compensated).toBe(false);
    expect(doc.llamaCpp.note).toMatch(/--prune-layers 1,3 on the dense model's GGUF .*gives this pruned model/);
    expect(pruneLayersLine({ ...plan(false), removed: [10, 2, 7] })).toBe('2,7,10');
  });
});

// ---------------------------------------------------------------- CLI

const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

describe('lopper export', () => {
  test.each(['hf', 'llama2c', 'onnx'] as const)('--format %s writes a model other commands load', async (format) => {
    const out = join(root, `cli-${format}`);
    const r = await lopper('export', '--model', STORIES, '--format', format, '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.format).toBe(format);
    for (const f of j.files) expect(existsSync(join(out, f.name)), f.name).toBe(true);
    expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]);
    if (format === 'onnx') {
      expect(existsSync(join(out, 'onnx/model.onnx'))).toBe(true);
      return;
    }
    expect(j.path).toBe(format === 'llama2c' ? join(out, 'model.bin') : out);
    expectSameTensors(await loadModelPath(j.path), dense);
  });

  test('--format onnx --dtype both writes model.onnx and model_fp16.onnx; --dtype fp16 only the latter', async () => {
    const both = join(root, 'cli-onnx-both');
    const r = await lopper('export', '--model', STORIES, '--format', 'onnx', '--dtype', 'both', '--out', both, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(join(both, 'onnx')).sort()).toEqual(['model.onnx', 'model_fp16.onnx']);
    const half = join(root, 'cli-onnx-fp16');
    expect((await lopper('export', '--model', STORIES, '--format', 'onnx', '--dtype', 'fp16', '--out', half)).code).toBe(0);
    expect(readdirSync(join(half, 'onnx'))).toEqual(['model_fp16.onnx']);
    expect(JSON.parse(readFileSync(join(half, 'config.json'), 'utf8'))['transformers.js_config']).toEqual({ dtype: 'fp16' });
  });

  test('--out FILE.zip with --max-shard-size writes a sharded folder as a .zip', async () => {
    const file = join(root, 'cli.zip');
    const r = await lopper('export', '--model', STORIES, '--format', 'hf', '--max-shard-size', '0.3MB', '--out', file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/as hf \(\d+ files\) to .*cli\.zip/);
    const listing = execFileSync('unzip', ['-t', file]).toString();
    expect(listing).toContain('No errors detected');
    expect(listing).toContain('model-00001-of-00004.safetensors');
  });

  describe('bad input: a message, exit 1, no stack trace, nothing written', () => {
    const biased = join(root, 'biased-hf');
    const full = join(root, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'keep.txt'), 'x');
    writeFileSync(join(root, 'exists.zip'), 'x');
    const cases: [string, string[], RegExp][] = [
      ['bad --format', ['--model', STORIES, '--format', 'safetensors'], /--format must be one of hf, llama2c, onnx, gguf \(got "safetensors"\)/],
      ['no --format', ['--model', STORIES], /--format is required/],
      ['llama2.c refuses biases', ['--model', biased, '--format', 'llama2c'], /biased-hf: llama2\.c cannot express this model: attention biases; MLP biases/],
      ['--max-shard-size for llama2.c', ['--model', STORIES, '--format', 'llama2c', '--max-shard-size', '1GB'], /--max-shard-size applies to --format hf only/],
      ['a bad --max-shard-size', ['--model', STORIES, '--format', 'hf', '--max-shard-size', 'lots'], /--max-shard-size must be a size such as 5GB/],
      ['--dtype for an HF folder', ['--model', STORIES, '--format', 'hf', '--dtype', 'fp16'], /--dtype applies to --format onnx and gguf only/],
      ['a bad --dtype', ['--model', STORIES, '--format', 'onnx', '--dtype', 'int4'], /--dtype takes fp32, fp16 or both \(got "int4"\)/],
      ['no such model', ['--model', join(root, 'nope.bin'), '--format', 'hf'], /nope\.bin: no such file/],
    ];
    test.each(cases)('%s', async (_, args, message) => {
      await writeFolder(biased, randomHfFolder({ qkvBias: true, oBias: true, mlpBias: true }));
      const out = join(root, 'bad-' + Math.random().toString(36).slice(2));
      const r = await lopper('export', ...args, '--out', out);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      noStack(r.stderr);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]);
    });

    test('--out that is a non-empty folder, or a .zip that exists', async () => {
      const a = await lopper('export', '--model', STORIES, '--format', 'hf', '--out', full);
      expect(a.code).toBe(1);
      expect(a.stderr).toContain('--out must be a new or empty folder');
      expect(readdirSync(full)).toEqual(['keep.txt']);
      const b = await lopper('export', '--model', STORIES, '--format', 'hf', '--out', join(root, 'exists.zip'));
      expect(b.code).toBe(1);
      expect(b.stderr).toContain('the .zip file already exists');
      expect(readFileSync(join(root, 'exists.zip'), 'utf8')).toBe('x');
    });
  });
});

describe('lopper prune --out', () => {
  test('writes plan.json and prune-layers.txt beside the model; --format hf from a llama2.c model', async () => {
    const out = join(root, 'pruned-hf');
    const r = await lopper('prune', '--model', STORIES, '--metric', 'bi', '--layers', '2', '--mode', 'prunecomp', '--calib', CALIB, '--calib-windows', '2', '--out', out, '--format', 'hf', '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.out).toBe(out);
    expect(readdirSync(out)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'plan.json', 'prune-layers.txt']));
    const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8'));
    expect(plan.removed).toEqual(j.removed);
    expect(plan.scales).toEqual(j.scales);
    expect(plan.layersAfter).toBe(3);
    expect(readFileSync(join(out, 'prune-layers.txt'), 'utf8')).toBe([...j.removed].sort((a: number, b: number) => a - b).join(',') + '\n');
    expect(plan.llamaCpp.note).toMatch(/--prune-layers/);
    const info = JSON.parse((await lopper('info', '--model', out, '--json')).stdout);
    expect(info.config.numLayers).toBe(3);
  });

  test('--format llama2c on a model with biases is refused before pruning; --format needs --out', async () => {
    const biased = join(root, 'biased-prune');
    await writeFolder(biased, randomHfFolder({ qkvBias: true, oBias: true, numLayers: 3 }));
    const out = join(root, 'never');
    const a = await lopper('prune', '--model', biased, '--metric', 'reverse', '--layers', '1', '--mode', 'baseline', '--calib', CALIB, '--window', '16', '--out', out, '--format', 'llama2c');
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/llama2\.c cannot express this model: attention biases/);
    noStack(a.stderr);
    expect(existsSync(out)).toBe(false);
    const b = await lopper('prune', '--model', STORIES, '--metric', 'bi', '--layers', '1', '--mode', 'baseline', '--calib', CALIB, '--format', 'hf');
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('--format applies to the model --out writes');
  });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));
