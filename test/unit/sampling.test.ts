/**
 * Temperature and top-k sampling (src/engine/runtime/sampler.ts, through Engine.generate)
 * against the distribution they should draw from: softmax(logits / T) over the k most likely
 * tokens, renormalized, with the logits from the Float64 reference (reference/forward.ts) on
 * stories260K.
 *
 * The statistical bound. With N draws, the count of token i is Binomial(N, p_i), so for the
 * 10 most likely tokens of each setting
 *   |p̂_i − p_i| ≤ 4.5·√(p_i(1 − p_i)/N)
 * fails for a correct sampler with probability ≈ 6.8e-6 per token (normal approximation,
 * good here: each of those has N·p_i ≥ 50, asserted). The whole distribution is checked
 * with Pearson's χ² (categories with expected count ≥ 5, the rest pooled) against the χ²
 * quantile at 1 − 1e-4 (Wilson–Hilferty), and draws where p = 0 (outside the top k) must
 * not occur at all. Over the 8 settings below (80 per-token checks, 8 χ², 6 entropies
 * within 4 sd) a correct sampler fails with probability ≈ 1.5e-3. The seeds are fixed, so the
 * outcome is deterministic: the bound says how unlucky a correct sampler would have to be,
 * while a wrong one — temperature ignored or applied twice, top-k not renormalized, an
 * off-by-one in k — is off by many standard deviations (T = 0.8 read as 1 moves the top
 * token's share from 0.302 to 0.250 here, 7 σ at N = 4000; k = 10 read as 11 puts ~100 of
 * the 4000 draws on a token that must get none; T read as √T fails the T = 0.5 setting by 32 σ).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { ReferenceModel } from '../../src/engine/reference/forward';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { makeSampler } from '../../src/engine/runtime/sampler';
import { MODELS } from '../helpers/paths';

let ck: Checkpoint;
let engine: Engine;
/** BOS + "Lily wanted to": a spread next-token distribution (top token 0.19 at T = 1) */
let prompt: number[];
/** the reference's next-token logits after the prompt, float64 */
let logits: Float64Array;

beforeAll(async () => {
  ck = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
  prompt = [1, ...ck.tokenizer.encode('Lily wanted to')];
  const V = ck.config.vocabSize;
  logits = new ReferenceModel(ck).forward(prompt).logits.slice((prompt.length - 1) * V, prompt.length * V);
  engine = new Engine(ck, nodeRuntime(1));
});
afterAll(async () => {
  await engine?.dispose();
});

/** softmax(logits / T) over the k largest logits (all when k = 0), renormalized; 0 elsewhere. */
function expected(l: Float64Array, T: number, k: number): Float64Array {
  const order = [...l.keys()].sort((a, b) => l[b] - l[a]);
  const kept = k > 0 ? order.slice(0, k) : order;
  const p = new Float64Array(l.length);
  const max = l[order[0]];
  let z = 0;
  for (const i of kept) z += p[i] = Math.exp((l[i] - max) / T);
  for (const i of kept) p[i] /= z;
  return p;
}

/** The χ² quantile at 1 − α for `df` degrees of freedom (Wilson–Hilferty; z for α = 1e-4). */
function chiSquareCritical(df: number, z = 3.719): number {
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

/** Counts of each id among `draws`. */
function histogram(draws: number[], V: number): Float64Array {
  const h = new Float64Array(V);
  for (const id of draws) h[id]++;
  return h;
}

/**
 * The checks described at the top: no draw where p = 0; 4.5 σ for each of the 10 most
 * likely tokens (each with N·p ≥ 50); Pearson's χ² with small categories pooled.
 */
function expectMatches(counts: Float64Array, p: Float64Array, what: string) {
  const N = counts.reduce((a, b) => a + b, 0);
  let outside = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === 0) outside += counts[i];
  expect(outside, `${what}: draws of tokens outside the top k`).toBe(0);
  let worst = 0;
  const top = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 10);
  for (const i of top) {
    expect(N * p[i], `${what}: N·p of token ${i}`).toBeGreaterThanOrEqual(50);
    const sd = Math.sqrt((p[i] * (1 - p[i])) / N);
    const z = Math.abs(counts[i] / N - p[i]) / sd;
    worst = Math.max(worst, z);
    expect(z, `${what}: token ${i} (${JSON.stringify(ck.tokenizer.decode([i]))}) drawn ${counts[i]}/${N}, p = ${p[i].toFixed(4)}`).toBeLessThanOrEqual(4.5);
  }
  // Pearson's χ² over categories with expected count ≥ 5, the rest (p > 0) pooled into one
  let chi2 = 0;
  let cats = 0;
  let pooledP = 0;
  let pooledCount = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    if (N * p[i] >= 5) {
      chi2 += (counts[i] - N * p[i]) ** 2 / (N * p[i]);
      cats++;
    } else {
      pooledP += p[i];
      pooledCount += counts[i];
    }
  }
  if (N * pooledP >= 5) {
    chi2 += (pooledCount - N * pooledP) ** 2 / (N * pooledP);
    cats++;
  }
  const crit = chiSquareCritical(cats - 1);
  expect(chi2, `${what}: χ² over ${cats} categories`).toBeLessThanOrEqual(crit);
  console.log(`[sampling] ${what}: N ${N}, top 10 tokens within ${worst.toFixed(2)} σ (bound 4.5), χ² ${chi2.toFixed(1)} ≤ ${crit.toFixed(1)} (df ${cats - 1})`);
}

/** Shannon entropy in nats */
const entropy = (p: ArrayLike<number>) => Array.from(p).reduce((h, q) => (q > 0 ? h - q * Math.log(q) : h), 0);

describe('sampling against softmax(logits/T) over the top k', () => {
  test('Engine.generate, one token per seed (seeds 0..3999), T = 0.8, top-k = 10', async () => {
    const N = 4000;
    const draws: number[] = [];
    for (let seed = 0; seed < N; seed++) {
      for await (const id of engine.generate(prompt, { maxTokens: 1, temperature: 0.8, topK: 10, seed, stopAtEos: false })) draws.push(id);
    }
    expect(draws.length).toBe(N);
    const p = expected(logits, 0.8, 10);
    // the 10th and 11th logits are apart (no float32-vs-float64 tie at the top-k edge)
    const sorted = [...logits].sort((a, b) => b - a);
    expect(sorted[9] - sorted[10]).toBeGreaterThan(0.05);
    expectMatches(histogram(draws, logits.length), p, 'engine T 0.8 k 10');
  }, 120_000);

  test('top-k = 1 is greedy at any temperature and seed (the engine, 50 seeds)', async () => {
    let greedy = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[greedy]) greedy = i;
    for (let seed = 0; seed < 50; seed++) {
      for (const temperature of [0.3, 1, 5]) {
        const got: number[] = [];
        for await (const id of engine.generate(prompt, { maxTokens: 1, temperature, topK: 1, seed, stopAtEos: false })) got.push(id);
        expect(got, `seed ${seed}, T ${temperature}`).toEqual([greedy]);
      }
    }
  });

  test('the sampler on the reference logits, 10 000 successive draws per setting: full vocabulary and top-10 at T = 0.5, 1, 2; top-40 at T = 1', () => {
    const N = 10_000;
    const f32 = Float32Array.from(logits);
    const shares: Record<string, Float64Array> = {};
    const settings: [number, number][] = [0.5, 1, 2].flatMap((T) => [[T, 0], [T, 10]] as [number, number][]);
    for (const [T, k] of [...settings, [1, 40]]) {
      const sample = makeSampler({ temperature: T, topK: k, seed: 1000 + 10 * T + k });
      const draws = Array.from({ length: N }, () => sample(f32));
      const counts = histogram(draws, f32.length);
      expectMatches(counts, expected(logits, T, k), `sampler T ${T} k ${k || 'all'}`);
      shares[`${T}/${k}`] = counts.map((c) => c / N);
    }
    // Temperature spreads the distribution the predicted way: the empirical entropy rises with
    // T, and each is within 4 sd of the entropy of softmax(logits/T) — sd = √(Var(log p)/N) —
    // plus the plug-in estimator's bias (support − 1)/(2N).
    for (const k of [0, 10]) {
      const h = [0.5, 1, 2].map((T) => entropy(shares[`${T}/${k}`]));
      const want = [0.5, 1, 2].map((T) => entropy(expected(logits, T, k)));
      console.log(`[sampling] entropy k ${k || 'all'}: drawn ${h.map((x) => x.toFixed(3))}, predicted ${want.map((x) => x.toFixed(3))} nats`);
      expect(h[0]).toBeLessThan(h[1]);
      expect(h[1]).toBeLessThan(h[2]);
      [0.5, 1, 2].forEach((T, i) => {
        const p = Array.from(expected(logits, T, k)).filter((q) => q > 0);
        const var_ = p.reduce((a, q) => a + q * Math.log(q) ** 2, 0) - want[i] ** 2;
        const bound = 4 * Math.sqrt(var_ / N) + (p.length - 1) / (2 * N);
        expect(Math.abs(h[i] - want[i]), `k ${k || 'all'}, T ${T}: bound ${bound.toFixed(4)}`).toBeLessThanOrEqual(bound);
      });
    }
  });
});
