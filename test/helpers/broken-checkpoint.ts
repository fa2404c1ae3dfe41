/**
 * A tiny Llama checkpoint built by hand so that pruning one layer breaks it by ~47 orders of
 * magnitude in perplexity while the dense model is good: for tests of how the app shows
 * numbers and bars that span 1e0 … 1e50 (test/e2e/numbers.test.ts).
 *
 * Three layers, D = 32, and every token has the same embedding e0, so the stream is the same
 * at every position whatever the text; attention writes nothing (o_proj = 0). Each MLP has one
 * live unit whose gate and up rows read a single channel (silu(κ)·κ, κ = 3, where the
 * normalized input has that channel ≈ √D):
 *
 *   layer 0 (A)  reads e0, writes +F·e1            X_1 = e0 + F·e1
 *   layer 1 (B)  reads e1, writes −F·e1 (cancels)  X_2 = e0 (+ float32 rounding)
 *   layer 2 (Z)  reads e1, writes +M·e2 when e1 dominates its input, ≈ 0 on the dense stream
 *
 * lm_head: the row of TARGET ("a") is (z/√D)·e0, the row of WRONG is (g/√D)·e1, all others 0.
 * On a text of "a"s:
 *   dense               X_3 = e0: logit_a = z = 5, the rest 0 → PPL = 1 + (V−1)·e^−5 ≈ 2.74
 *   layer 1 removed     X = e0 + F e1 + M e2: logit_WRONG = g·F/|X| ≈ 110 → PPL ≈ e^110 ≈ 1e47
 *   … and compensated   the paper's fold scales e0 and A's write by s (≈ 0.5: the mean of the
 *                       per-channel ratios 1 and ≈ 0), Z's write is not scaled: the e1 share
 *                       drops to ≈ 0.45 → PPL ≈ e^70 ≈ 1e30
 * Remove layer 1 with the `reverse` metric and skipLast = 1 (the last layer is kept).
 */
import { writeHfFolder } from '../../src/engine/formats/hf';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { fromFloat32 } from '../../src/engine/model/tensor';
import { randomCheckpoint } from './random-checkpoint';

/** the byte tokenizer's id of "a" (byte 0x61 + 3) and of the token pruning makes likely ("Z") */
export const TARGET = 0x61 + 3;
export const WRONG = 0x5a + 3;

export const BROKEN = { D: 32, F: 100, M: 100, z: 5, g: 155, kappa: 3 } as const;

const silu = (x: number) => x / (1 + Math.exp(-x));

export function brokenCheckpoint(): Checkpoint {
  const { D, F, M, z, g, kappa } = BROKEN;
  const ck = randomCheckpoint({ hiddenSize: D, numHeads: 4, intermediateSize: 64, numLayers: 3, tie: false, seed: 5 });
  const c = ck.config;
  const set = (name: string, fill: (v: Float32Array) => void) => {
    const t = ck.tensors.get(name);
    if (!t) throw new Error(`brokenCheckpoint: no tensor ${name}`);
    const v = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
    fill(v);
    ck.tensors.set(name, fromFloat32(v, t.shape, 'f32'));
  };
  const sqrtD = Math.sqrt(D);
  // every token's embedding is e0
  set('model.embed_tokens.weight', (v) => {
    for (let t = 0; t < c.vocabSize; t++) v[t * D] = 1;
  });
  set('model.norm.weight', (v) => v.fill(1));
  set('lm_head.weight', (v) => {
    v[TARGET * D + 0] = z / sqrtD;
    v[WRONG * D + 1] = g / sqrtD;
  });
  const eps = c.rmsNormEps;
  const w = Math.fround(kappa / sqrtD); // the live unit's gate and up weight, as stored
  const unit = (x: number) => silu(w * x) * (w * x); // its output for normalized input channel x
  /** channel `read` of RMSNorm(X) for a stream X with the given channel values (unit norm gains) */
  const normed = (stream: number[], read: number) => stream[read] / Math.sqrt(stream.reduce((a, x) => a + x * x, 0) / D + eps);
  // A writes F·e1 into e0 (exactly: its unit's output on RMSNorm(e0), ε included); B reads
  // e0 + F_A·e1 and writes exactly −F_A (in float64; float32 leaves ~1e-5); Z writes M·e2 when e1 dominates.
  const hA = unit(normed([1], 0));
  const downA = Math.fround(F / hA);
  const FA = downA * hA;
  const downB = Math.fround(-FA / unit(normed([1, FA], 1)));
  const downZ = Math.fround(M / unit(normed([1, FA], 1)));
  /** [layer]: [the channel read, the channel written, the down_proj entry] */
  const units: [number, number, number][] = [
    [0, 1, downA],
    [1, 1, downB],
    [1, 2, downZ],
  ];
  units.forEach(([read, write, down], l) => {
    const p = `model.layers.${l}.`;
    set(p + 'self_attn.o_proj.weight', () => {});
    set(p + 'input_layernorm.weight', (v) => v.fill(1));
    set(p + 'post_attention_layernorm.weight', (v) => v.fill(1));
    for (const m of ['gate_proj', 'up_proj']) set(p + `mlp.${m}.weight`, (v) => (v[read] = w)); // row 0 of [I, D]
    set(p + 'mlp.down_proj.weight', (v) => (v[write * c.intermediateSize] = down)); // column 0 of [D, I]
  });
  return { ...ck, source: 'broken (pruning layer 1 blows perplexity up)' };
}

/** The checkpoint's Hugging Face folder (config.json, model.safetensors, tokenizer.json, …). */
export function brokenHfFolder(): Map<string, Uint8Array> {
  return writeHfFolder(brokenCheckpoint());
}
