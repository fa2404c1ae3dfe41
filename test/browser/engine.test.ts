/**
 * The engine in real Chromium, on onnxruntime-web's WASM and WebGPU (SwiftShader) backends,
 * against the Float64 reference: max relative error ≤ 1e-4 for logits, NLL and calibration
 * statistics; greedy KV-cache generation gives the reference's token ids. Llama (stories260K,
 * a random GQA model) and Qwen3 (per-head q/k RMSNorm). Layer-streamed passes (the execution
 * of models over the whole-graph budget: one session per layer program, the head in slices,
 * windows in groups) on both backends too. Pruning with ReplaceMe's linear map: every map the
 * loop fits against a Float64 fit on the reference's streams (≤ 1e-4; measured ≤ 8.1e-6).
 */
import { describe, expect, test } from 'vitest';
import type { AttentionImpl } from '../../src/engine/graph/llama';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { tensor } from '../../src/engine/model/checkpoint';
import { toFloat32 } from '../../src/engine/model/tensor';
import { GramAccumulator } from '../../src/engine/prune/fit';
import { prune } from '../../src/engine/prune/plan';
import { applyCut } from '../../src/engine/prune/surgery';
import { ReferenceModel, referenceLayerParts } from '../../src/engine/reference/forward';
import { cutWindows } from '../../src/engine/text/windows';
import { Engine } from '../../src/engine/runtime/engine';
import { argmax } from '../../src/engine/runtime/sampler';
import { browserRuntime, type Backend } from '../../src/engine/runtime/web';
import { maxRelError } from '../helpers/compare';
import { randomCheckpoint } from '../helpers/random-checkpoint';
import { fetchShared, loadStories260K } from './helpers/shared';

const TOL = 1e-4;

let stories: Promise<Checkpoint> | undefined;
const loadStories = (): Promise<Checkpoint> => (stories ??= loadStories260K());

function greedyReference(ck: Checkpoint, prompt: number[], n: number): number[] {
  const ref = new ReferenceModel(ck);
  const seq = [...prompt];
  for (let i = 0; i < n; i++) seq.push(argmax(ref.forward(seq).logits.subarray((seq.length - 1) * ck.config.vocabSize)));
  return seq.slice(prompt.length);
}

async function checkEngine(ck: Checkpoint, backend: Backend, attention: AttentionImpl, ids: number[], genTokens: number) {
  const engine = new Engine(ck, browserRuntime(backend), { attention });
  try {
    const ref = new ReferenceModel(ck);
    const { logits, streams } = ref.forward(ids);
    expect(maxRelError(await engine.logits(ids), logits)).toBeLessThan(TOL);
    expect(maxRelError((await engine.nll([ids]))[0], ref.nll(ids))).toBeLessThan(TOL);
    const [st] = await engine.stats([ids]);
    const D = ck.config.hiddenSize;
    const L = ck.config.numLayers;
    const absMean = new Float64Array(D);
    for (let t = 0; t < ids.length; t++) for (let c = 0; c < D; c++) absMean[c] += Math.abs(streams[L][t * D + c]) / ids.length;
    expect(maxRelError(st.absMean[L], absMean)).toBeLessThan(TOL);
    const got: number[] = [];
    for await (const id of engine.generate([1], { maxTokens: genTokens, stopAtEos: false })) got.push(id);
    expect(got).toEqual(greedyReference(ck, [1], genTokens));
    return got;
  } finally {
    await engine.dispose();
  }
}

describe.each(['wasm', 'webgpu'] as const)('engine on onnxruntime-web %s', (backend) => {
  test('stories260K: prune with ReplaceMe’s linear map — each fitted map against a Float64 fit on the reference’s streams', async () => {
    const ck = await loadStories();
    const text = new TextDecoder().decode(await fetchShared('data/tinystories/calib.txt'));
    const windows = cutWindows([1, ...ck.tokenizer.encode(text)], 64, 4); // 256 tokens for a 64×64 map (with 192 the fit is less well posed: 6.5e-5)
    const { plan } = await prune(ck, browserRuntime(backend), windows, { metric: 'bi', mode: 'prunecomp', layers: 2, comp: 'linear' });
    // replay each step on the Float64 reference: the model before it, its streams, layer p's two halves
    let model = ck;
    for (const step of plan.steps) {
      expect(step.map, `step removing layer ${step.removed}`).toBeDefined();
      const k = step.at;
      const ref = new ReferenceModel(model);
      const acc = new GramAccumulator(ck.config.hiddenSize);
      const weight = (name: string) => Float64Array.from(toFloat32(tensor(model, name)));
      for (const w of windows) {
        const { streams } = ref.forward(w);
        const { y } = referenceLayerParts(model.config, weight, k - 1, streams[k - 1], w.length);
        acc.add(streams[k].map((v, i) => v - y[i]), streams[k + 1].map((v, i) => v - y[i]));
      }
      const want = acc.solve('linear', 0, k - 1, 'the reference');
      const err = maxRelError(step.map!.T, want.T);
      console.log(`[browser] ${backend}: linear map for layer ${k} (original ${step.removed}): max rel error ${err.toExponential(2)} against the Float64 fit`);
      expect(err).toBeLessThan(1e-4); // measured ≤ 8.1e-6 on both backends
      model = applyCut(model, { layers: [k], fold: 'none', scale: 1, map: step.map });
    }
  });

  test('stories260K: logits, NLL, statistics and greedy generation match the reference', async () => {
    const ck = await loadStories();
    const ids = [1, ...ck.tokenizer.encode('Once upon a time, there was a little girl named Lily. She loved to play')];
    const got = await checkEngine(ck, backend, 'ops', ids, 20);
    expect(ck.tokenizer.decode([1, ...got])).toMatch(/^Once upon a time, there was a little girl named Lily\./);
  });

  test('fused GroupQueryAttention (GQA, llama3 RoPE, head size 16) matches the reference', async () => {
    const ck = randomCheckpoint({ hiddenSize: 64, numHeads: 4, numKvHeads: 2, ropeScaling: true, seed: 21 });
    const ids = Array.from({ length: 24 }, (_, i) => (i * 37 + 1) % ck.config.vocabSize);
    await checkEngine(ck, backend, 'fused', ids, 8);
  });

  test('layer-streamed passes (head in slices, one window per run): logits, NLL, statistics and streams match the reference', async () => {
    const ck = randomCheckpoint({ architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 16, numLayers: 3, dtype: 'bf16', seed: 23 });
    const windows = [0, 1].map((w) => Array.from({ length: 16 }, (_, i) => (i * 37 + w * 11 + 1) % ck.config.vocabSize));
    const engine = new Engine(ck, { ...browserRuntime(backend), execution: 'streamed' }, { headSliceFloats: 40 * ck.config.hiddenSize, streamGroupTokens: 16 });
    try {
      const results = await engine.pass(windows, { logits: true, nll: true, stats: true, streams: true });
      const ref = new ReferenceModel(ck);
      let worst = 0;
      for (const [b, ids] of windows.entries()) {
        const { logits, streams } = ref.forward(ids);
        const r = results[b];
        worst = Math.max(worst, maxRelError(r.logits!, logits), maxRelError(r.nll!, ref.nll(ids)));
        for (let k = 0; k <= ck.config.numLayers; k++) worst = Math.max(worst, maxRelError(r.streams[k], streams[k]));
      }
      console.log(`streamed on ${backend}: max relative error vs the reference ${worst.toExponential(1)}`);
      expect(worst).toBeLessThan(TOL);
    } finally {
      await engine.dispose();
    }
  });

  // WebGPU on SwiftShader takes ~30 s per attention path for this model here: there only the
  // fused attention, which a real Qwen3 (head_dim 128) uses; WASM runs both.
  test('Qwen3 q/k norms (GQA, head_dim 16 ≠ D/H, tied, θ 1e6) match the reference', async () => {
    const ck = randomCheckpoint({ architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 16, tie: true, ropeTheta: 1e6, seed: 22 });
    const ids = Array.from({ length: 24 }, (_, i) => (i * 37 + 1) % ck.config.vocabSize);
    for (const attention of backend === 'wasm' ? (['fused', 'ops'] as const) : (['fused'] as const)) await checkEngine(ck, backend, attention, ids, 8);
  });
});
