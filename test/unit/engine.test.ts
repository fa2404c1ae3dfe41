/**
 * The engine (ONNX graphs on onnxruntime-node and onnxruntime-web's WASM build) against the
 * Float64 reference forward, on real llama2.c models, their Hugging Face conversion, and
 * seeded random checkpoints covering every config feature. Tolerance: max relative error
 * (max |a − b| / max |b|) ≤ 1e-4 for logits, NLL and calibration statistics.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadHfFolder, writeHfFolder } from '../../src/engine/formats/hf';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { MemorySource } from '../../src/engine/formats/source';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { ReferenceModel, referencePerplexity } from '../../src/engine/reference/forward';
import type { AttentionImpl } from '../../src/engine/graph/llama';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import type { Runtime } from '../../src/engine/runtime/ort';
import { argmax } from '../../src/engine/runtime/sampler';
import { webWasmRuntime } from '../../src/engine/runtime/web-node';
import { maxRelError, referenceStats } from '../helpers/compare';
import { DATA, LLAMA2C_MODELS, MODELS } from '../helpers/paths';
import { randomCheckpoint, type RandomCheckpointOptions } from '../helpers/random-checkpoint';

const TOL = 1e-4;
const runtimes: Runtime[] = [nodeRuntime(), webWasmRuntime()];

const stories = () => loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));

async function viaHf(ck: Checkpoint): Promise<Checkpoint> {
  return loadHfFolder(new MemorySource('converted', writeHfFolder(ck)));
}

// Head size 16 lets the fused GroupQueryAttention run; each case also runs on the plain-ops attention.
const randomCases: [string, RandomCheckpointOptions][] = [
  ['GQA, untied', { hiddenSize: 64, numHeads: 4, numKvHeads: 2 }],
  ['MQA, tied', { hiddenSize: 64, numHeads: 4, numKvHeads: 1, tie: true }],
  ['Qwen2 q/k/v biases, head_dim ≠ D/H', { architecture: 'Qwen2ForCausalLM', headDim: 16, numKvHeads: 2 }],
  ['Llama attention_bias + mlp_bias, head size 8', { qkvBias: true, oBias: true, mlpBias: true }],
  ['rope_scaling llama3, theta 5e5', { hiddenSize: 64, ropeScaling: true, ropeTheta: 500000, numKvHeads: 2 }],
  ['Mistral', { architecture: 'MistralForCausalLM', hiddenSize: 64, numKvHeads: 2 }],
  ['F16 storage', { dtype: 'f16', hiddenSize: 64, numKvHeads: 2, tie: true }],
  ['BF16 storage', { dtype: 'bf16', hiddenSize: 64, numKvHeads: 2 }],
  // Qwen3: per-head q/k RMSNorm before RoPE; head size 16 (fused + ops) and 8 (ops only), both ≠ D/H
  ['Qwen3 q/k norms, GQA 4/2, head_dim 16 ≠ D/H, tied, θ 1e6', { architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 16, tie: true, ropeTheta: 1e6 }],
  ['Qwen3 q/k norms, GQA 4/2, head size 8 ≠ D/H, untied', { architecture: 'Qwen3ForCausalLM', hiddenSize: 48, numHeads: 4, numKvHeads: 2, headDim: 8, ropeTheta: 1e6 }],
  ['Qwen3 attention_bias, MQA, BF16', { architecture: 'Qwen3ForCausalLM', hiddenSize: 64, numKvHeads: 1, qkvBias: true, oBias: true, dtype: 'bf16' }],
];

/** Measured errors of the random cases (worst over logits, NLL, statistics), printed at the end. */
const measured: string[] = [];
afterAll(() => console.log(`[engine] max relative errors vs the reference:\n  ${measured.join('\n  ')}`));

const attentions = (ck: Checkpoint) => (ck.config.headDim % 16 === 0 ? (['ops', 'fused'] as const) : (['ops'] as const));

function tokens(n: number, vocab: number, seed = 7): number[] {
  let s = seed;
  return [1, ...Array.from({ length: n - 1 }, () => (s = (s * 1103515245 + 12345) % 2147483648) % vocab)];
}

/** Logits, NLL and statistics of one window against the reference; returns the worst error (logits, NLL, stats). */
async function checkWindow(engine: Engine, ref: ReferenceModel, ids: number[]): Promise<{ logits: number; nll: number; stats: number }> {
  const { logits, streams } = ref.forward(ids);
  const worst = { logits: maxRelError(await engine.logits(ids), logits), nll: 0, stats: 0 };
  expect(worst.logits).toBeLessThan(TOL);
  const [nll] = await engine.nll([ids]);
  worst.nll = maxRelError(nll, ref.nll(ids));
  expect(worst.nll).toBeLessThan(TOL);
  const stat = (got: ArrayLike<number>, want: ArrayLike<number>) => {
    const err = maxRelError(got, want);
    worst.stats = Math.max(worst.stats, err);
    expect(err).toBeLessThan(TOL);
  };

  const [st] = await engine.stats([ids]);
  const { hiddenSize: D, numLayers: L } = engine.checkpoint.config;
  const T = ids.length;
  for (let k = 0; k <= L; k++) {
    const ref = referenceStats(streams[k], k < L ? streams[k + 1] : null, T, D);
    stat(st.absMean[k], ref.absMean);
    if (ref.cos) stat(st.cos[k], ref.cos);
  }
  return worst;
}

describe.each(runtimes)('$name', (runtime) => {
  const engines: Engine[] = [];
  const open = (ck: Checkpoint, attention?: AttentionImpl) => {
    const e = new Engine(ck, runtime, { attention });
    engines.push(e);
    return e;
  };
  afterAll(async () => {
    for (const e of engines) await e.dispose();
  });

  test.each(LLAMA2C_MODELS)('%s: logits, NLL, statistics match the reference', async (_, path) => {
    const ck = await loadLlama2cFile(path);
    const text = readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8').slice(0, 2000);
    const ids = [1, ...ck.tokenizer.encode(text)].slice(0, 128);
    await checkWindow(open(ck), new ReferenceModel(ck), ids);
  });

  test('stories260K through its Hugging Face conversion matches the reference', async () => {
    const ck = await viaHf(await stories());
    await checkWindow(open(ck), new ReferenceModel(ck), tokens(64, ck.config.vocabSize));
  });

  test.each(randomCases)('random checkpoint, %s', async (label, opts) => {
    const ck = randomCheckpoint({ ...opts, seed: 11 });
    const ref = new ReferenceModel(ck);
    for (const attention of attentions(ck)) {
      const e = open(ck, attention);
      expect(e.attention).toBe(attention);
      const worst = await checkWindow(e, ref, tokens(40, ck.config.vocabSize));
      const f = (x: number) => x.toExponential(1);
      measured.push(`${runtime.name} ${attention} ${label}: logits ${f(worst.logits)}, NLL ${f(worst.nll)}, stats ${f(worst.stats)}`);
      // KV-cache decoding with a prompt: the same ids as greedy decoding with the reference
      const prompt = tokens(6, ck.config.vocabSize);
      const got: number[] = [];
      for await (const id of e.generate(prompt, { maxTokens: 8, stopAtEos: false })) got.push(id);
      const seq = [...prompt];
      for (let n = 0; n < 8; n++) seq.push(argmax(ref.forward(seq).logits.subarray((seq.length - 1) * ck.config.vocabSize)));
      expect(got).toEqual(seq.slice(prompt.length));
    }
    // through its HF folder too: F16/BF16 storage survives the round trip
    const back = await viaHf(ck);
    expect(maxRelError(await open(back).logits(tokens(9, ck.config.vocabSize)), ref.forward(tokens(9, ck.config.vocabSize)).logits)).toBeLessThan(TOL);
  });

  test('a pass restarted from a stream checkpoint X_k gives the same statistics, streams and NLL', async () => {
    const ck = await stories();
    const e = open(ck);
    const ws = [tokens(48, 512, 3), tokens(48, 512, 4)];
    const full = await e.pass(ws, { stats: true, streams: true, nll: true });
    const ref = new ReferenceModel(ck).forward(ws[0]).streams;
    for (let k = 0; k <= ck.config.numLayers; k++) expect(maxRelError(full[0].streams[k], ref[k])).toBeLessThan(TOL);
    for (const k of [1, 3]) {
      const part = await e.pass(ws, { stats: true, streams: true, nll: true }, { from: k, streams: full.map((r) => r.streams[k]) });
      part.forEach((p, b) => {
        expect(p.cos.slice(0, k).every((x) => x === undefined)).toBe(true);
        for (let j = k; j < ck.config.numLayers; j++) expect(maxRelError(p.cos[j], full[b].cos[j])).toBeLessThan(1e-6);
        for (let j = k; j <= ck.config.numLayers; j++) expect(maxRelError(p.absMean[j], full[b].absMean[j])).toBeLessThan(1e-6);
        expect(maxRelError(p.streams[ck.config.numLayers], full[b].streams[ck.config.numLayers])).toBeLessThan(1e-6);
        expect(maxRelError(p.nll!, full[b].nll!)).toBeLessThan(1e-6);
      });
    }
  });

  test('batched windows give the same NLL as one at a time', async () => {
    const ck = await stories();
    const e = open(ck);
    const a = tokens(32, 512, 1), b = tokens(32, 512, 2);
    const [na, nb] = await e.nll([a, b]);
    expect(maxRelError(na, (await e.nll([a]))[0])).toBeLessThan(1e-6);
    expect(maxRelError(nb, (await e.nll([b]))[0])).toBeLessThan(1e-6);
  });

  test('KV-cache generation equals greedy decoding with the reference', async () => {
    const ck = await stories();
    const ref = new ReferenceModel(ck);
    const expected: number[] = [1];
    for (let i = 0; i < 30; i++) {
      const V = ck.config.vocabSize;
      expected.push(argmax(ref.forward(expected).logits.subarray((expected.length - 1) * V)));
    }
    const got: number[] = [];
    for await (const id of open(ck).generate([1], { maxTokens: 30, stopAtEos: false })) got.push(id);
    expect(got).toEqual(expected.slice(1));
    expect(ck.tokenizer.decode([1, ...got])).toMatch(/^Once upon a time, there was a little girl named Lily\./);
  });

  test('sampling is seeded: same seed, same text; other seed, other text', async () => {
    const e = open(await stories());
    const run = async (seed: number) => {
      const ids: number[] = [];
      for await (const id of e.generate([1], { maxTokens: 30, temperature: 1, topK: 40, seed })) ids.push(id);
      return ids;
    };
    expect(await run(3)).toEqual(await run(3));
    expect(await run(3)).not.toEqual(await run(4));
  });
});

describe('perplexity protocol', () => {
  test.each(LLAMA2C_MODELS.map(([n, p]) => ({ n, p })))('$n on eval.txt (first 12 windows of 256): engine equals the Float64 reference within 0.01%', async ({ p: path }) => {
    const ck = await loadLlama2cFile(path);
    const ids = [1, ...ck.tokenizer.encode(readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8'))];
    const e = new Engine(ck, nodeRuntime());
    const got = await e.perplexity(ids, 256, { maxWindows: 12 });
    await e.dispose();
    const want = referencePerplexity(new ReferenceModel(ck), ids, 256, 12);
    expect(got.tokens).toBe(want.tokens);
    expect(got.windows).toBe(want.windows);
    expect(Math.abs(got.ppl / want.ppl - 1)).toBeLessThan(1e-4);
  });
});

describe('Qwen3 q/k norms', () => {
  // With every ε = 0, RMSNorm cancels a positive scale: q_proj and k_proj ×4 (exact in f32) change nothing
  // when each head's q and k are normed, and change the attention (so the logits) when not.
  test('are applied: q_proj, k_proj ×4 leave the logits unchanged (reference and both attentions); without the norms they change', async () => {
    const base = randomCheckpoint({ architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 16, seed: 5 });
    const qwen3: Checkpoint = { ...base, config: { ...base.config, rmsNormEps: 0 } };
    const scaled = (ck: Checkpoint): Checkpoint => {
      const tensors = new Map(ck.tensors);
      for (let l = 0; l < ck.config.numLayers; l++) {
        for (const n of ['q_proj', 'k_proj']) {
          const name = `model.layers.${l}.self_attn.${n}.weight`;
          const t = ck.tensors.get(name)!;
          tensors.set(name, { ...t, data: (t.data as Float32Array).map((v) => v * 4) }); // ×4: exact in f32
        }
      }
      return { ...ck, tensors };
    };
    const llama: Checkpoint = {
      ...qwen3,
      config: { ...qwen3.config, architecture: 'LlamaForCausalLM', qkNorm: false },
      tensors: new Map([...qwen3.tensors].filter(([name]) => !/_norm\.weight$/.test(name) || !name.includes('self_attn'))),
    };
    const ids = tokens(24, qwen3.config.vocabSize);
    const ref = (ck: Checkpoint) => new ReferenceModel(ck).forward(ids).logits;
    const want = ref(qwen3);
    expect(maxRelError(ref(scaled(qwen3)), want)).toBeLessThan(1e-12);
    expect(maxRelError(ref(scaled(llama)), ref(llama))).toBeGreaterThan(1e-2);
    for (const attention of ['ops', 'fused'] as const) {
      const e = new Engine(scaled(qwen3), nodeRuntime(), { attention });
      expect(maxRelError(await e.logits(ids), want)).toBeLessThan(TOL);
      await e.dispose();
    }
  });
});
