/**
 * The GGUF export (src/engine/export/gguf.ts) run by an independent client: node-llama-cpp
 * 3.21.1, a prebuilt llama.cpp, loads each file lopper writes (CPU), and
 *
 * - greedy-generates the engine's token ids: stories260K dense and Prune&Comp-pruned (paper
 *   fold: untied head), llama2xs pruned, in F32 — and the next-token distributions at every
 *   position of prompt + generation are the engine's within PROB_TOL (F32), HALF_TOL (F16/BF16)
 *   or Q8_TOL (Q8_0: llama.cpp also quantizes the activations to 8 bits in each product);
 * - the same for seeded random checkpoints of the other layouts the writer handles: Qwen2 (q/k/v
 *   biases, tied), Qwen3 (q/k norms, head_dim ≠ D/H), Llama with GQA, every bias and llama3 RoPE
 *   scaling (rope_freqs.weight), and a lazy bf16 model written as BF16;
 * - tokenizes the sample texts as lopper does, for the llama2.c tokenizer (tok512), Llama 2's
 *   (its llama2.c file, and the tokenizer.json lopper converts it to), SmolLM2's, Llama 3's and
 *   Qwen2's, on random weights over the real vocabularies;
 * - reads back (its own GGUF parser, readGgufFileInfo) the hyperparameters and tensor names the
 *   converter writes, and each file's size is the size the export announced.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, readGgufFileInfo, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ggufFiles, quantizeQ8_0, dequantizeQ8_0, type GgufType } from '../../src/engine/export/gguf';
import { loadModelPath } from '../../src/engine/formats/load-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { HfTokenizer } from '../../src/engine/text/hf-tokenizer';
import { Llama2cTokenizer } from '../../src/engine/text/llama2c-tokenizer';
import { cutWindows } from '../../src/engine/text/windows';
import { prune } from '../../src/engine/prune/plan';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { writeExportFile } from '../../src/cli/export';
import { f32ToF16 } from '../../src/engine/model/tensor';
import { lopper } from '../helpers/cli';
import { DATA, MODELS, SHARED } from '../helpers/paths';
import { randomCheckpoint, type RandomCheckpointOptions } from '../helpers/random-checkpoint';
import { shapeConfig, tokenizerFiles } from '../helpers/real-shapes';

/**
 * max |p_llama.cpp − p_engine| over the vocabulary and every position, F32 weights, llama.cpp
 * with an F32 KV cache. Measured ≤ 2.2e-6 (stories260K, llama2xs), ≤ 5.2e-7 (random layouts).
 */
const PROB_TOL = 1e-5;
/** The same with F16 or BF16 weights (llama.cpp rounds the activations to the weights' type in each product): measured 2.3e-4 (BF16). */
const HALF_TOL = 2e-3;
/** The same with Q8_0 weights (llama.cpp rounds the activations to 8 bits in each product): measured 0.033 (llama2xs). */
const Q8_TOL = 0.06;
const PROMPT = [1, 403, 407, 261, 378]; // "Once upon a time" with tok512, after BOS
const NEW_TOKENS = 24;

const root = mkdtempSync(join(tmpdir(), 'lopper-gguf-'));
let llama: Llama;
const measured: Record<string, number> = {};
const engines: Engine[] = [];
const models: LlamaModel[] = [];

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
});
afterAll(async () => {
  for (const e of engines) await e.dispose();
  for (const m of models) await m.dispose();
  await llama?.dispose();
  rmSync(root, { recursive: true, force: true });
  console.log('gguf: max |Δp| against the engine', measured);
});

let files = 0;
/** Write `ck` as GGUF of `type`; checks the file has the size the export announced. */
async function writeGguf(ck: Checkpoint, type?: GgufType): Promise<string> {
  const [entry] = ggufFiles(ck, { ggufType: type });
  const path = join(root, `${files++}-${entry.name}`);
  await writeExportFile(path, entry);
  expect(statSync(path).size).toBe(entry.size);
  return path;
}

async function load(path: string, vocabOnly = false): Promise<LlamaModel> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly });
  models.push(model);
  return model;
}

function engineOf(ck: Checkpoint): Engine {
  const e = new Engine(ck, nodeRuntime());
  engines.push(e);
  return e;
}

async function engineGreedy(ck: Checkpoint, prompt: number[], n: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const id of engineOf(ck).generate(prompt, { maxTokens: n, stopAtEos: false })) ids.push(id);
  return ids;
}

/** llama.cpp's greedy continuation of `prompt` (n tokens, EOS included). */
async function llamaGreedy(model: LlamaModel, prompt: number[], n: number): Promise<number[]> {
  const ctx = await model.createContext({ contextSize: 128, threads: 2 });
  try {
    const out: number[] = [];
    for await (const t of ctx.getSequence().evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
      out.push(t);
      if (out.length >= n) break;
    }
    return out;
  } finally {
    await ctx.dispose();
  }
}

/**
 * max |p − q| between llama.cpp's next-token probabilities and the engine's softmax, at every
 * position of `ids` (teacher-forced: both read the same tokens).
 */
async function maxProbDiff(model: LlamaModel, ck: Checkpoint, ids: number[]): Promise<number> {
  // an F32 KV cache (llama.cpp's default is F16, which rounds every key and value)
  const ctx = await model.createContext({ contextSize: 128, threads: 2, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  try {
    // the plain softmax: temperature 1, and no top-k/top-p/min-p truncation (node-llama-cpp's defaults are 40/0.95/0)
    const options = { temperature: 1, topK: ck.config.vocabSize, topP: 1, minP: 0 };
    const items = ids.map((t) => [t as Token, { generateNext: { probabilities: true, options } }] as [Token, { generateNext: { probabilities: true; options: typeof options } }]);
    const out = await ctx.getSequence().controlledEvaluate(items);
    const logits = await engineOf(ck).logits(ids);
    const V = ck.config.vocabSize;
    let worst = 0;
    ids.forEach((_, pos) => {
      const probs = out[pos]?.next.probabilities;
      if (!probs) throw new Error(`no probabilities at position ${pos}`);
      const row = logits.subarray(pos * V, (pos + 1) * V);
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let sum = 0;
      for (const x of row) sum += Math.exp(x - max);
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(Math.exp(row[v] - max) / sum - (probs.get(v as Token) ?? 0)));
    });
    return worst;
  } finally {
    await ctx.dispose();
  }
}

const stories = () => loadModelPath(join(MODELS, 'stories260K/stories260K.bin'));

async function prunecomp(ck: Checkpoint, layers: number): Promise<Checkpoint> {
  const text = readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8');
  const windows = cutWindows([1, ...ck.tokenizer.encode(text)], 128, 8);
  return (await prune(ck, nodeRuntime(1), windows, { metric: 'bi', mode: 'prunecomp', layers })).checkpoint;
}

/** Greedy ids equal, and the distributions within `tol`, for `ck` written as `type`. */
async function checkAgainstEngine(name: string, ck: Checkpoint, type: GgufType, tol: number, prompt = PROMPT): Promise<{ model: LlamaModel; path: string }> {
  const path = await writeGguf(ck, type);
  const model = await load(path);
  const expected = await engineGreedy(ck, prompt, NEW_TOKENS);
  if (type === 'f32' || type === 'bf16') expect(await llamaGreedy(model, prompt, NEW_TOKENS)).toEqual(expected);
  else expect((await llamaGreedy(model, prompt, 8)).slice(0, 8)).toEqual(expected.slice(0, 8)); // a short horizon: rounded weights may flip a near-tie later
  const diff = await maxProbDiff(model, ck, [...prompt, ...expected]);
  measured[`${name} ${type}`] = diff;
  expect(diff).toBeLessThanOrEqual(tol);
  return { model, path };
}

describe('llama2.c models through llama.cpp', () => {
  test('stories260K dense, F32: the engine greedy ids and distributions; its header as the converter writes it', async () => {
    const ck = await stories();
    const { model, path } = await checkAgainstEngine('stories260K dense', ck, 'f32', PROB_TOL);
    expect(model.tokenize('Once upon a time')).toEqual(ck.tokenizer.encode('Once upon a time'));
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    const meta = info.metadata as unknown as Record<string, Record<string, unknown>>;
    expect(meta.general.architecture).toBe('llama');
    expect(meta.llama).toMatchObject({ block_count: 5, embedding_length: 64, feed_forward_length: 172, context_length: 512, vocab_size: 512 });
    expect(meta.llama.attention).toMatchObject({ head_count: 8, head_count_kv: 4 });
    expect(meta.tokenizer.ggml).toMatchObject({ model: 'llama', bos_token_id: 1, eos_token_id: 2 });
    const names = info.fullTensorInfo!.map((t) => t.name);
    expect(names).toContain('blk.4.ffn_down.weight');
    expect(names).not.toContain('output.weight'); // tied: llama.cpp reads token_embd for the head
    expect(info.fullTensorInfo!.find((t) => t.name === 'blk.0.attn_q.weight')!.dimensions).toEqual([64, 64]);
  });

  test('stories260K Prune&Comp (2 layers, untied by the paper fold), F32 and F16', async () => {
    const ck = await prunecomp(await stories(), 2);
    expect(ck.config.numLayers).toBe(3);
    const { path } = await checkAgainstEngine('stories260K prunecomp', ck, 'f32', PROB_TOL);
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    expect((info.metadata as unknown as Record<string, Record<string, unknown>>).llama.block_count).toBe(3);
    expect(info.fullTensorInfo!.map((t) => t.name)).toContain('output.weight');
    await checkAgainstEngine('stories260K prunecomp', ck, 'f16', HALF_TOL);
  });

  test('llama2xs Prune&Comp (3 layers), F32 and Q8_0', async () => {
    const ck = await prunecomp(await loadModelPath(join(MODELS, 'llama2xs-tinystories/model.bin')), 3);
    await checkAgainstEngine('llama2xs prunecomp', ck, 'f32', PROB_TOL);
    await checkAgainstEngine('llama2xs prunecomp', ck, 'q8_0', Q8_TOL);
  });
});

describe('the CLI: lopper export / prune --out with --format gguf', () => {
  test('prune --out DIR --format gguf writes the pruned model llama.cpp generates the pruned engine\'s ids with; export --out FILE.gguf the dense one', async () => {
    const model = join(MODELS, 'stories260K/stories260K.bin');
    const dir = join(root, 'pruned-gguf');
    const pruned = await lopper('prune', '--model', model, '--metric', 'bi', '--layers', '2', '--mode', 'prunecomp', '--calib', join(DATA, 'tinystories/calib.txt'), '--out', dir, '--format', 'gguf', '--json');
    expect(pruned.stderr).toBe('');
    const result = JSON.parse(pruned.stdout) as { out: string };
    expect(result.out).toBe(join(dir, 'model-f32.gguf'));
    expect(readdirSync(dir).sort()).toEqual(['model-f32.gguf', 'plan.json', 'prune-layers.txt']);
    const llamaIds = await llamaGreedy(await load(result.out), PROMPT, NEW_TOKENS);
    // the same run written as llama2.c, generated by lopper itself
    const same = join(root, 'pruned-bin');
    await lopper('prune', '--model', model, '--metric', 'bi', '--layers', '2', '--mode', 'prunecomp', '--calib', join(DATA, 'tinystories/calib.txt'), '--out', same);
    const gen = JSON.parse((await lopper('generate', '--model', join(same, 'model.bin'), '--prompt', 'Once upon a time', '--max-tokens', String(NEW_TOKENS), '--json')).stdout) as { prompt_ids: number[]; ids: number[] };
    expect(gen.prompt_ids).toEqual(PROMPT);
    expect(llamaIds).toEqual(gen.ids);

    const file = join(root, 'dense-f16.gguf');
    const exported = await lopper('export', '--model', model, '--format', 'gguf', '--dtype', 'f16', '--out', file, '--json');
    expect(JSON.parse(exported.stdout)).toMatchObject({ format: 'gguf', path: file, files: [{ name: 'model-f16.gguf', size: statSync(file).size }] });
    expect((await llamaGreedy(await load(file), PROMPT, 8))).toEqual((await engineGreedy(await stories(), PROMPT, 8)));
    const refused = await lopper('export', '--model', model, '--format', 'gguf', '--dtype', 'q4_k', '--out', join(root, 'x.gguf'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--dtype of a GGUF export must be one of f32, f16, bf16, q8_0/);
  });
});

describe('other layouts (seeded random weights) through llama.cpp', () => {
  const cases: [string, RandomCheckpointOptions][] = [
    ['Qwen2: q/k/v biases, GQA, tied', { architecture: 'Qwen2ForCausalLM', hiddenSize: 64, numHeads: 4, numKvHeads: 2, tie: true, ropeTheta: 1e6 }],
    ['Qwen3: q/k norms, head_dim 32 ≠ D/H', { architecture: 'Qwen3ForCausalLM', hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, tie: true }],
    ['Llama: GQA, attention and MLP biases, llama3 RoPE scaling', { hiddenSize: 64, numHeads: 4, numKvHeads: 1, qkvBias: true, oBias: true, mlpBias: true, ropeScaling: true, ropeTheta: 500000 }],
  ];
  test.each(cases)('%s: F32 greedy ids and distributions', async (name, opts) => {
    const ck = randomCheckpoint({ numLayers: 2, intermediateSize: 96, seed: 7, ...opts });
    await checkAgainstEngine(name, ck, 'f32', PROB_TOL, [1, 72, 101, 108, 108, 111]);
  });

  test('bf16 weights written as BF16: the same numbers as the engine', async () => {
    const ck = randomCheckpoint({ hiddenSize: 64, numHeads: 4, numLayers: 2, intermediateSize: 96, dtype: 'bf16', seed: 3 });
    await checkAgainstEngine('Llama bf16', ck, 'bf16', HALF_TOL, [1, 72, 101, 108, 108, 111]);
  });
});

describe('tokenizers: llama.cpp tokenizes the sample texts as lopper does', () => {
  const samples = [
    'Once upon a time, there was a little girl named Lily.',
    readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8').slice(0, 2000),
    readFileSync(join(DATA, 'wikitext2/wiki.test.raw'), 'utf8').slice(0, 3000),
    'Numbers 1234567 and 3.14159, "quotes", tabs\tand\n\nnewlines   spaces; café, naïve, 東京, emoji 🙂!',
  ];

  async function checkTokenizer(ck: Checkpoint): Promise<void> {
    const model = await load(await writeGguf(ck, 'f32'), true);
    for (const text of samples) expect(model.tokenize(text)).toEqual(ck.tokenizer.encode(text));
  }

  /** Random weights (small widths) over the real vocabulary of a family's tokenizer. */
  async function withHfTokenizer(files: Record<string, Uint8Array>, vocabSize: number, bos: number, eos: number, arch: RandomCheckpointOptions['architecture'] = 'LlamaForCausalLM'): Promise<Checkpoint> {
    const ck = randomCheckpoint({ architecture: arch, hiddenSize: 32, numHeads: 4, numLayers: 1, intermediateSize: 32, vocabSize, tie: true });
    const tokenizer = await HfTokenizer.create(files, { bosTokenId: bos, eosTokenId: eos, vocabSize }, 'test');
    return { ...ck, tokenizer, config: { ...ck.config, bosTokenId: bos, eosTokenId: eos }, format: 'hf' };
  }

  test('llama2.c tok512 (stories260K)', async () => checkTokenizer(await stories()));

  test("Llama 2's tokenizer, as its llama2.c file and as the tokenizer.json lopper converts it to", async () => {
    const tok = new Llama2cTokenizer(new Uint8Array(readFileSync(join(SHARED, 'tokenizers/llama2/tokenizer.bin'))), 'tokenizer.bin');
    const ck = randomCheckpoint({ hiddenSize: 32, numHeads: 4, numLayers: 1, intermediateSize: 32, vocabSize: 32000, tie: true });
    await checkTokenizer({ ...ck, tokenizer: tok, format: 'llama2c' });
    await checkTokenizer(await withHfTokenizer(tokenizerFiles('llama2'), 32000, 1, 2));
  });

  test.each([
    ['SmolLM2', 'HuggingFaceTB__SmolLM2-135M', 'smollm2', 'LlamaForCausalLM'],
    ['Llama 3', 'meta-llama__Llama-3.2-1B', 'llama3', 'LlamaForCausalLM'],
    ['Qwen2', 'Qwen__Qwen2.5-0.5B', 'qwen2', 'Qwen2ForCausalLM'],
  ] as const)('%s', async (_, shape, family, arch) => {
    const c = shapeConfig(shape);
    await checkTokenizer(await withHfTokenizer(tokenizerFiles(family), c.vocabSize, c.bosTokenId, c.eosTokenId, arch));
  });
});

describe('Q8_0 blocks (ggml quantize_row_q8_0_ref)', () => {
  test('scale max|x|/127 as f16, values rounded half away from zero, round trip within half a step', () => {
    const x = new Float32Array(64);
    x[0] = 127; // d = 1
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.49;
    for (let i = 32; i < 64; i++) x[i] = Math.sin(i) * 0.01;
    const q = quantizeQ8_0(x);
    expect(q.length).toBe(2 * 34);
    const view = new DataView(q.buffer);
    expect(view.getUint16(0, true)).toBe(0x3c00); // d = 127/127 = 1 as f16
    expect([0, 1, 2, 3].map((j) => view.getInt8(2 + j))).toEqual([127, 3, -3, 0]); // 2.5 → 3, −2.5 → −3
    const amax = Math.max(...x.subarray(32).map(Math.abs));
    const d = view.getUint16(34, true);
    expect(d).toBe(f32ToF16(Math.fround(amax / 127)));
    expect(Math.max(...Array.from({ length: 32 }, (_, j) => Math.abs(view.getInt8(36 + j))))).toBe(127);
  });
  test('dequantized values are within d/2 of the input (plus the f16 rounding of d: 127 · d · 2⁻¹¹)', () => {
    const x = Float32Array.from({ length: 320 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
    const y = dequantizeQ8_0(quantizeQ8_0(x), x.length);
    for (let b = 0; b < 10; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j] - x[b * 32 + j])).toBeLessThanOrEqual((amax / 127) * (0.5 + 127 * 2 ** -11));
    }
  });
});
