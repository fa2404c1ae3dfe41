/**
 * Taylor+ layer scores (Shortened LLaMA; docs/PRUNE_AND_COMP.md §4), without autodiff:
 *
 *   score_k = Σ_{W ∈ layer k} Σ_ij |W_ij · G_ij|,   G = Σ_windows ∂L_m/∂W
 *
 * L_m is window m's mean next-token cross-entropy over its T−1 predicted tokens (HF
 * `model(ids, labels=ids).loss`), and G sums the gradients of all windows *before* the
 * absolute value, as the official code does by calling loss.backward() per window and
 * letting W.grad accumulate. W ranges over q/k/v/o_proj, gate/up/down_proj, both norm
 * gains and any biases (graph/backward.ts, layerWeightShapes). Every layer is scored; the
 * caller applies the eligibility window (officially 4 ≤ k < L−2). Lowest score is pruned.
 *
 * Gradients come from graph/backward.ts: one run handles `batch` windows and sums their
 * gradients inside the graph; runs are summed here, in float32, into the first run's output
 * arrays. Memory on top of the session: one float32 gradient copy of the decoder layers'
 * weights (4 bytes per layer parameter), plus the current run's outputs while adding.
 */
import { LopperError } from '../errors';
import { buildBackwardGraph, gradName } from '../graph/backward';
import { layerWeightShapes, parameterCount, tensor, type Checkpoint } from '../model/checkpoint';
import { toFloat32 } from '../model/tensor';
import { ropeTables } from '../model/rope';
import { WHOLE_GRAPH_BUDGET, type Progress } from '../runtime/engine';
import type { Runtime } from '../runtime/ort';

export interface TaylorOptions {
  /** windows per run (default 4): activation memory grows with batch·T (and batch·T·V for the logits) */
  batch?: number;
  onProgress?: Progress;
}

export interface TaylorGradients {
  /** Σ over windows of ∂L_m/∂W for every decoder-layer weight, HF name and layout */
  grads: Map<string, Float32Array>;
  /** Σ over windows of L_m (mean NLL per window), from the same forward pass */
  loss: number;
}

const MASKED = -1e30;

function checkWindows(ck: Checkpoint, windows: readonly (readonly number[])[]): number {
  const V = ck.config.vocabSize;
  if (windows.length === 0) throw new LopperError('bad-input', 'Taylor+ needs at least one calibration window');
  const T = windows[0].length;
  if (T < 2) throw new LopperError('bad-input', 'Taylor+ windows need at least 2 tokens (one predicted token)');
  for (const w of windows) {
    if (w.length !== T) throw new LopperError('bad-input', 'Taylor+ windows must all have the same length');
    for (const id of w) if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new LopperError('bad-input', `token id ${id} is outside the vocabulary (0..${V - 1})`);
  }
  return T;
}

/** Σ over `windows` of ∂(mean next-token NLL of the window)/∂W, for every decoder-layer weight. */
export async function taylorGradients(
  ck: Checkpoint,
  runtime: Runtime,
  windows: readonly (readonly number[])[],
  opts: TaylorOptions = {},
): Promise<TaylorGradients> {
  const c = ck.config;
  const T = checkWindows(ck, windows);
  // The backward graph holds every weight in fp32 and a gradient of each decoder weight: refused
  // (with what it would need) where a whole forward graph would not fit; a layer-streamed backward is not built yet.
  const fp32 = parameterCount(ck) * 4;
  if (fp32 > WHOLE_GRAPH_BUDGET) {
    throw new LopperError(
      'unsupported-config',
      `Taylor+ builds one backward graph of the whole model: about ${((2 * fp32) / 2 ** 30).toFixed(1)} GiB of fp32 weights and gradients, over the ${(WHOLE_GRAPH_BUDGET / 2 ** 30).toFixed(1)} GiB a graph may hold; choose another metric for a model this size`,
      ck.source,
    );
  }
  const batch = Math.max(1, Math.floor(opts.batch ?? 4));
  const { ort } = runtime;
  const hd = c.headDim;

  // Inputs shared by every run: RoPE tables for positions 0..T−1, causal mask.
  const { cos, sin } = ropeTables(c, { start: 0, length: T });
  const mask = new Float32Array(T * T);
  for (let t = 0; t < T; t++) for (let s = t + 1; s < T; s++) mask[t * T + s] = MASKED;

  const names: [string, number][] = [];
  for (let k = 0; k < c.numLayers; k++) for (const [name, shape] of layerWeightShapes(c, k)) names.push([name, shape.reduce((a, b) => a * b, 1)]);

  const session = await ort.InferenceSession.create(buildBackwardGraph(ck), runtime.sessionOptions);
  const grads = new Map<string, Float32Array>();
  let loss = 0;
  try {
    for (let i = 0; i < windows.length; i += batch) {
      const chunk = windows.slice(i, i + batch);
      const B = chunk.length;
      const ids = new BigInt64Array(B * T);
      const targets = new BigInt64Array(B * T);
      const weight = new Float32Array(B * T);
      chunk.forEach((w, b) => {
        for (let t = 0; t < T; t++) {
          ids[b * T + t] = BigInt(w[t]);
          if (t + 1 < T) {
            targets[b * T + t] = BigInt(w[t + 1]);
            weight[b * T + t] = 1 / (T - 1); // HF loss: mean over the T−1 predicted tokens
          }
        }
      });
      const out = await session.run({
        input_ids: new ort.Tensor('int64', ids, [B, T]),
        targets: new ort.Tensor('int64', targets, [B, T]),
        loss_weight: new ort.Tensor('float32', weight, [B, T]),
        rope_cos: new ort.Tensor('float32', Float32Array.from(cos), [T, hd]),
        rope_sin: new ort.Tensor('float32', Float32Array.from(sin), [T, hd]),
        mask: new ort.Tensor('float32', mask, [T, T]),
      });
      for (const v of out.loss.data as Float32Array) loss += v;
      for (const [name, n] of names) {
        const g = out[gradName(name)].data as Float32Array;
        if (g.length !== n) throw new Error(`gradient ${name}: ${g.length} values, expected ${n}`);
        const acc = grads.get(name);
        if (!acc) grads.set(name, g);
        else for (let j = 0; j < n; j++) acc[j] += g[j];
      }
      opts.onProgress?.(Math.min(i + batch, windows.length), windows.length);
    }
  } finally {
    await session.release();
  }
  return { grads, loss };
}

/** score_k = Σ over layer k's weights of Σ |W ⊙ G| (float64 sums). */
export function taylorScoresFromGradients(ck: Checkpoint, grads: Map<string, ArrayLike<number>>): Float64Array {
  const L = ck.config.numLayers;
  const scores = new Float64Array(L);
  for (let k = 0; k < L; k++) {
    let s = 0;
    for (const name of layerWeightShapes(ck.config, k).keys()) {
      const W = toFloat32(tensor(ck, name));
      const G = grads.get(name);
      if (!G || G.length !== W.length) throw new Error(`no gradient of the right size for ${name}`);
      for (let j = 0; j < W.length; j++) s += Math.abs(W[j] * G[j]);
    }
    scores[k] = s;
  }
  return scores;
}

/** Taylor+ score of every decoder layer (length L) over `windows` (token ids, BOS first, equal lengths). */
export async function taylorScores(
  ck: Checkpoint,
  runtime: Runtime,
  windows: readonly (readonly number[])[],
  opts: TaylorOptions = {},
): Promise<Float64Array> {
  const { grads } = await taylorGradients(ck, runtime, windows, opts);
  return taylorScoresFromGradients(ck, grads);
}
