/**
 * Taylor+ gradients (graph/backward.ts, a hand-written backward pass run by onnxruntime)
 * against central finite differences of the Float64 reference loss, and Taylor+ scores
 * (prune/taylor.ts) against scores built from finite-difference gradients.
 *
 * Loss: L = Σ_windows mean next-token NLL of the window (HF `labels=ids` loss, summed over
 * windows as the official code accumulates W.grad).
 *
 * Finite differences: G_fd = (L(w⁺) − L(w⁻)) / (w⁺ − w⁻) with w± = fround(w ± h), h = 1e-4,
 * dividing by the perturbation actually stored in float32. The reference is Float64, so the
 * FD error is truncation, ~h²·L'''/6 ≈ 1e-9, far below float32 ORT's own error.
 *
 * Tolerance: for every weight tensor, the sampled entries (its largest |G| and a few
 * random ones) must satisfy max |G_ort − G_fd| ≤ 1e-3 · max |G_fd| (relative to the
 * tensor's largest gradient: elementwise relative error is meaningless near zero); the
 * scores Σ|W ⊙ G| must agree to 1e-3 relative.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { layerWeightShapes } from '../../src/engine/model/checkpoint';
import { tensor, type Checkpoint } from '../../src/engine/model/checkpoint';
import { toFloat32 } from '../../src/engine/model/tensor';
import { taylorGradients, taylorScores, taylorScoresFromGradients } from '../../src/engine/prune/taylor';
import { ReferenceModel } from '../../src/engine/reference/forward';
import { nodeRuntime } from '../../src/engine/runtime/node';
import type { Runtime } from '../../src/engine/runtime/ort';
import { webWasmRuntime } from '../../src/engine/runtime/web-node';
import { maxRelError } from '../helpers/compare';
import { DATA, MODELS } from '../helpers/paths';
import { mulberry32, randomCheckpoint, type RandomCheckpointOptions } from '../helpers/random-checkpoint';

const H = 1e-4; // finite-difference step
const GRAD_TOL = 1e-3;
const SCORE_TOL = 1e-3;
const RUNTIME_TOL = 1e-4; // node vs WASM

const runtimes: Runtime[] = [nodeRuntime(1), webWasmRuntime(1)];

// ---------------------------------------------------------------- Float64 oracle

/** L = Σ_windows mean NLL, in Float64. */
function referenceLoss(ck: Checkpoint, windows: number[][]): number {
  const model = new ReferenceModel(ck);
  let loss = 0;
  for (const w of windows) {
    const nll = model.nll(w);
    loss += nll.reduce((a, b) => a + b, 0) / nll.length;
  }
  return loss;
}

/** A shallow copy of `ck` with entry `idx` of tensor `name` set to `value` (float32). */
function withEntry(ck: Checkpoint, name: string, idx: number, value: number): Checkpoint {
  const t = tensor(ck, name);
  const data = Float32Array.from(toFloat32(t));
  data[idx] = value;
  const tensors = new Map(ck.tensors);
  tensors.set(name, { dtype: 'f32', shape: t.shape, data });
  return { ...ck, tensors };
}

/** Central finite difference of referenceLoss with respect to one weight entry. */
function fdGradient(ck: Checkpoint, windows: number[][], name: string, idx: number): number {
  const w0 = toFloat32(tensor(ck, name))[idx];
  const wp = Math.fround(w0 + H);
  const wm = Math.fround(w0 - H);
  return (referenceLoss(withEntry(ck, name, idx, wp), windows) - referenceLoss(withEntry(ck, name, idx, wm), windows)) / (wp - wm);
}

function argmaxAbs(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (Math.abs(a[i]) > Math.abs(a[best])) best = i;
  return best;
}

function randomWindows(n: number, T: number, V: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => [1, ...Array.from({ length: T - 1 }, () => Math.floor(rand() * V))]);
}

/**
 * For every layer weight: its largest-|G| entry and `extra` random entries, ORT vs FD.
 * Returns the worst error relative to the tensor's largest |G_fd| (over sampled entries).
 */
function checkSampled(
  ck: Checkpoint,
  windows: number[][],
  grads: Map<string, Float32Array>,
  extra: number,
  seed: number,
  layers = Array.from({ length: ck.config.numLayers }, (_, k) => k),
): { worst: number; worstName: string; entries: number } {
  const rand = mulberry32(seed);
  let worst = 0;
  let worstName = '';
  let entries = 0;
  for (const k of layers) {
    for (const name of layerWeightShapes(ck.config, k).keys()) {
      const G = grads.get(name)!;
      const idxs = [argmaxAbs(G), ...Array.from({ length: extra }, () => Math.floor(rand() * G.length))];
      const fd = idxs.map((i) => fdGradient(ck, windows, name, i));
      const err = maxRelError(idxs.map((i) => G[i]), fd);
      entries += idxs.length;
      if (err > worst) [worst, worstName] = [err, name];
      expect(err, name).toBeLessThan(GRAD_TOL);
    }
  }
  return { worst, worstName, entries };
}

// ---------------------------------------------------------------- tiny random models

const tiny = { hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 4, vocabSize: 40 };
const cases: [string, RandomCheckpointOptions][] = [
  ['GQA, untied', { ...tiny, numKvHeads: 2, seed: 11 }],
  ['MQA, tied', { ...tiny, numKvHeads: 1, tie: true, seed: 12 }],
  ['Qwen2 q/k/v biases, head_dim ≠ D/H, tied', { ...tiny, architecture: 'Qwen2ForCausalLM', headDim: 6, numKvHeads: 2, tie: true, seed: 13 }],
  ['Llama attention_bias + mlp_bias', { ...tiny, qkvBias: true, oBias: true, mlpBias: true, numKvHeads: 2, seed: 14 }],
  ['rope_scaling llama3, theta 5e5', { ...tiny, ropeScaling: true, ropeTheta: 500000, numKvHeads: 2, seed: 15 }],
  ['Qwen3 q/k norms, head_dim ≠ D/H, tied', { ...tiny, architecture: 'Qwen3ForCausalLM', headDim: 6, numKvHeads: 2, tie: true, seed: 16 }],
  ['Qwen3 q/k norms + attention_bias, MQA', { ...tiny, architecture: 'Qwen3ForCausalLM', qkvBias: true, oBias: true, numKvHeads: 1, seed: 17 }],
];

describe('Taylor+ gradients vs finite differences (tiny random models)', () => {
  test.each(cases)('%s', async (_, opts) => {
    const ck = randomCheckpoint(opts);
    const windows = randomWindows(3, 10, ck.config.vocabSize, 100 + (opts.seed ?? 0));
    const refLoss = referenceLoss(ck, windows);
    const results = [];
    for (const runtime of runtimes) {
      // batch 2 over 3 windows: gradients summed inside the graph and across runs
      const { grads, loss } = await taylorGradients(ck, runtime, windows, { batch: 2 });
      expect(Math.abs(loss - refLoss) / refLoss, runtime.name).toBeLessThan(1e-5);
      results.push({ runtime: runtime.name, ...checkSampled(ck, windows, grads, 2, opts.seed ?? 0) });
    }
    console.log(`taylor FD ${_}: ${results.map((r) => `${r.runtime} worst ${r.worst.toExponential(2)} (${r.worstName}, ${r.entries} entries)`).join('; ')}`);
  });

  test('scores against scores from finite differences of every entry', async () => {
    const ck = randomCheckpoint({ ...tiny, numHeads: 2, numKvHeads: 1, hiddenSize: 8, intermediateSize: 16, qkvBias: true, oBias: true, seed: 21 });
    const windows = randomWindows(2, 8, ck.config.vocabSize, 5);
    const fdGrads = new Map<string, Float64Array>();
    for (let k = 0; k < ck.config.numLayers; k++) {
      for (const [name, shape] of layerWeightShapes(ck.config, k)) {
        const n = shape.reduce((a, b) => a * b, 1);
        fdGrads.set(name, Float64Array.from({ length: n }, (_, i) => fdGradient(ck, windows, name, i)));
      }
    }
    const oracle = taylorScoresFromGradients(ck, fdGrads);
    for (const runtime of runtimes) {
      const scores = await taylorScores(ck, runtime, windows, { batch: 1 });
      const err = maxRelError(scores, oracle);
      console.log(`taylor scores vs FD oracle, ${runtime.name}: [${[...scores].map((s) => s.toFixed(5))}] vs [${[...oracle].map((s) => s.toFixed(5))}], rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(SCORE_TOL);
      // and elementwise per layer
      for (let k = 0; k < scores.length; k++) expect(Math.abs(scores[k] - oracle[k]) / oracle[k]).toBeLessThan(SCORE_TOL);
    }
  });

  test('rejects windows it cannot score', async () => {
    const ck = randomCheckpoint({ ...tiny, seed: 1 });
    await expect(taylorScores(ck, runtimes[0], [])).rejects.toThrow(/at least one/);
    await expect(taylorScores(ck, runtimes[0], [[1]])).rejects.toThrow(/at least 2 tokens/);
    await expect(taylorScores(ck, runtimes[0], [[1, 2, 3], [1, 2]])).rejects.toThrow(/same length/);
    await expect(taylorScores(ck, runtimes[0], [[1, 40]])).rejects.toThrow(/outside the vocabulary/);
  });
});

// ---------------------------------------------------------------- stories260K

describe('Taylor+ on stories260K', () => {
  test('node and WASM agree; sampled gradients match finite differences', async () => {
    const ck = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
    const ids = ck.tokenizer.encode(readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8').slice(0, 2000));
    const windows = [0, 1].map((m) => [1, ...ids.slice(63 * m, 63 * (m + 1))]); // BOS + 63 tokens each
    expect(windows.every((w) => w.length === 64)).toBe(true);

    const [node, wasm] = await Promise.all(runtimes.map((r) => taylorGradients(ck, r, windows, { batch: 2 })));
    const sNode = taylorScoresFromGradients(ck, node.grads);
    const sWasm = taylorScoresFromGradients(ck, wasm.grads);
    console.log(`stories260K Taylor+ (node): [${[...sNode].map((s) => s.toFixed(4))}]; loss ${node.loss.toFixed(5)}; WASM vs node ${maxRelError(sWasm, sNode).toExponential(2)}`);
    for (const s of [sNode, sWasm]) for (const v of s) expect(Number.isFinite(v) && v > 0).toBe(true);
    expect(maxRelError(sWasm, sNode)).toBeLessThan(RUNTIME_TOL);
    for (let k = 0; k < sNode.length; k++) expect(Math.abs(sWasm[k] - sNode[k]) / sNode[k]).toBeLessThan(RUNTIME_TOL);

    const refLoss = referenceLoss(ck, windows);
    expect(Math.abs(node.loss - refLoss) / refLoss).toBeLessThan(1e-5);
    // FD on the first and last layers only (a Float64 forward of stories260K is ~10 ms)
    const r = checkSampled(ck, windows, node.grads, 0, 3, [0, ck.config.numLayers - 1]);
    console.log(`stories260K FD: worst ${r.worst.toExponential(2)} (${r.worstName}, ${r.entries} entries)`);
  });
});
