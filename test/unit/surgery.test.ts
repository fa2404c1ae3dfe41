/**
 * Model surgery for Prune&Comp (src/engine/prune/surgery.ts) and the compensation scale
 * (src/engine/prune/scale.ts), checked against the Float64 reference forward.
 *
 * Fold equivalence. The "explicit" model is the pruned model with an explicit ×s on the
 * stream at the cut: the reference runs the pruned model up to X_cut, multiplies it by s,
 * and continues from there (ForwardOptions.startLayerStream). Each fold must give the
 * same logits:
 *   - with every RMSNorm ε set to 0 the folds are exact in exact arithmetic. The weights
 *     are stored in f32, so a folded weight s·w is rounded to f32 unless the product is
 *     exactly representable. The exactness test therefore uses weights with 12 significant
 *     bits and scales whose fold factor has ≤ 3 significant bits (paper fold: s = 2 and
 *     s = 1.25; tied fold, which multiplies by 1/s: s = 2 and s = 4/3, i.e. 1/s = 0.75),
 *     so every folded weight is exact in f32 and what is left is float64 rounding:
 *     asserted ≤ 1e-9 relative (measured ~1e-15). Separately, ordinary f32 weights with
 *     s = 1.3 measure the f32 rounding of the folded weights themselves (asserted ≤ 1e-5).
 *   - with the model's own ε (1e-5) the folds differ from the explicit model (and from
 *     each other) because RMSNorm(αx) ≠ RMSNorm(x) once ε matters: the relative size of ε
 *     is ε / mean(x²), large on a model whose stream is small (babyllama-tok105's stream
 *     has rms ≈ 0.04–0.1). Measured on the three llama2.c models and printed; asserted
 *     ≤ 1e-2. Measured (layer 2 of 5 removed, 64 tokens of calib.txt, s = 1.3):
 *       stories260K           paper 4.5e-5   tied 6.5e-6   paper↔tied 4.4e-5
 *       llama2xs-tinystories  paper 8.8e-5   tied 3.3e-8   paper↔tied 8.8e-5
 *       babyllama-tok105      paper 2.7e-3   tied 2.2e-3   paper↔tied 2.9e-3
 *     (ε = 0 on the same models: ≤ 7e-8, the f32 rounding of the folded weights.)
 * Relative error is maxRelError: largest |Δ| over the largest reference magnitude.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { expectedTensors, layerPrefix, type Checkpoint } from '../../src/engine/model/checkpoint';
import { f16ToF32, fromFloat32, toFloat32, type DType, type Tensor } from '../../src/engine/model/tensor';
import { ReferenceModel } from '../../src/engine/reference/forward';
import type { WindowStats } from '../../src/engine/runtime/engine';
import { compensationScale, scaleFromStats } from '../../src/engine/prune/scale';
import { foldIsNoop, foldScalePaper, foldScaleTied, removeLayers, untieEmbeddings } from '../../src/engine/prune/surgery';
import { maxRelError } from '../helpers/compare';
import { DATA, LLAMA2C_MODELS } from '../helpers/paths';
import { randomCheckpoint, type RandomCheckpointOptions } from '../helpers/random-checkpoint';

// ----------------------------------------------------------------------------
// Helpers

/** Byte-tokenizer ids of a short text, BOS first (random checkpoints have V = 259). */
const TOKENS = [1, ...[...'Once upon a time, a fox'].map((ch) => ch.charCodeAt(0) + 3)];

const withEps = (ck: Checkpoint, eps: number): Checkpoint => ({ ...ck, config: { ...ck.config, rmsNormEps: eps } });

/** Logits of `ck` with the stream at layer `cut` multiplied by s (the explicit compensation). */
function explicitLogits(ck: Checkpoint, cut: number, s: number, tokens: readonly number[]): Float64Array {
  const model = new ReferenceModel(ck);
  const { streams } = model.forward(tokens);
  const stream = streams[cut].map((v) => v * s);
  return model.forward(tokens, { startLayerStream: { layer: cut, stream } }).logits;
}

const logits = (ck: Checkpoint, tokens: readonly number[]) => new ReferenceModel(ck).forward(tokens).logits;

/** Round every value to `bits` significant bits (so products with short scales stay exact in f32). */
function shortMantissa(ck: Checkpoint, bits: number): Checkpoint {
  const round = (v: number) => {
    if (v === 0) return 0;
    const q = 2 ** (Math.floor(Math.log2(Math.abs(v))) - (bits - 1));
    return Math.round(v / q) * q;
  };
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of ck.tensors) tensors.set(name, fromFloat32(toFloat32(t).map(round), t.shape, 'f32'));
  return { ...ck, tensors };
}

/** A model with layer `removed` of a random checkpoint deleted: the fold cut is `removed`. */
function prunedRandom(opts: RandomCheckpointOptions, removed: number): Checkpoint {
  return removeLayers(randomCheckpoint({ numLayers: 4, ...opts }), [removed]);
}

const fmt = (x: number) => x.toExponential(2);

// ----------------------------------------------------------------------------
// removeLayers

describe('removeLayers', () => {
  test('renumbers the kept layers; the pruned forward equals skipLayers on the original', () => {
    const ck = randomCheckpoint({ numLayers: 5, seed: 3, oBias: true, qkvBias: true, mlpBias: true });
    const pruned = removeLayers(ck, [3, 1]);
    expect(pruned.config.numLayers).toBe(3);
    expect([...pruned.tensors.keys()].sort()).toEqual([...expectedTensors(pruned.config).keys()].sort());
    // old layers 0, 2, 4 → 0, 1, 2, sharing the tensor objects
    for (const [from, to] of [[0, 0], [2, 1], [4, 2]]) {
      for (const suffix of ['self_attn.q_proj.weight', 'mlp.down_proj.bias', 'input_layernorm.weight']) {
        expect(pruned.tensors.get(layerPrefix(to) + suffix)).toBe(ck.tensors.get(layerPrefix(from) + suffix));
      }
    }
    expect(pruned.tensors.get('model.embed_tokens.weight')).toBe(ck.tensors.get('model.embed_tokens.weight'));
    const skipped = new ReferenceModel(ck).forward(TOKENS, { skipLayers: [1, 3] }).logits;
    expect(logits(pruned, TOKENS)).toEqual(skipped);
  });

  test('refuses bad indices, duplicates and removing every layer', () => {
    const ck = randomCheckpoint({ numLayers: 3 });
    expect(() => removeLayers(ck, [3])).toThrow(LopperError);
    expect(() => removeLayers(ck, [-1])).toThrow(LopperError);
    expect(() => removeLayers(ck, [0.5])).toThrow(LopperError);
    expect(() => removeLayers(ck, [1, 1])).toThrow(/twice/);
    expect(() => removeLayers(ck, [0, 1, 2])).toThrow(/at least one/);
    expect(removeLayers(ck, []).config.numLayers).toBe(3);
  });

  test('drops the removed layers\' layer_types entries, leaving the input\'s list alone', () => {
    const base = randomCheckpoint({ numLayers: 4 });
    const layerTypes = ['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention'];
    const ck = { ...base, config: { ...base.config, layerTypes } };
    expect(removeLayers(ck, [2, 1]).config.layerTypes).toEqual(['full_attention', 'sliding_attention']);
    expect(removeLayers(ck, [3]).config.layerTypes).toEqual(['full_attention', 'sliding_attention', 'full_attention']);
    expect(ck.config.layerTypes).toEqual(['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention']);
    expect('layerTypes' in removeLayers(base, [1]).config).toBe(false);
  });
});

// ----------------------------------------------------------------------------
// untieEmbeddings

describe('untieEmbeddings', () => {
  test('gives lm_head the embedding (the same tensor: nothing is copied) and keeps the logits', () => {
    const ck = randomCheckpoint({ numLayers: 2, tie: true, seed: 4 });
    const untied = untieEmbeddings(ck);
    expect(untied.config.tieWordEmbeddings).toBe(false);
    expect(ck.config.tieWordEmbeddings).toBe(true);
    const head = untied.tensors.get('lm_head.weight')!;
    const embed = ck.tensors.get('model.embed_tokens.weight')!;
    expect(head).toBe(embed);
    expect(ck.tensors.has('lm_head.weight')).toBe(false);
    expect(logits(untied, TOKENS)).toEqual(logits(ck, TOKENS));
    // an untied model is left as it is
    expect(untieEmbeddings(untied).tensors.get('lm_head.weight')).toBe(head);
  });
});

// ----------------------------------------------------------------------------
// Fold equivalence

describe('fold equivalence with an explicit ×s at the cut', () => {
  // ε = 0, weights with 12 significant bits: every folded weight is exact in f32.
  for (const tie of [false, true]) {
    for (const bias of [false, true]) {
      const label = `${tie ? 'tied' : 'untied'}${bias ? ', o/mlp biases' : ''}`;
      test(`ε = 0, exact fold factors: both folds ≤ 1e-9 (${label})`, () => {
        const opts: RandomCheckpointOptions = { tie, seed: tie ? 11 : 12, ...(bias ? { qkvBias: true, oBias: true, mlpBias: true } : {}) };
        const worst: string[] = [];
        for (const removed of [0, 1, 2]) {
          const pruned = withEps(shortMantissa(prunedRandom(opts, removed), 12), 0);
          const cut = removed;
          for (const s of [2, 1.25]) {
            const err = maxRelError(logits(foldScalePaper(untieEmbeddings(pruned), cut, s), TOKENS), explicitLogits(pruned, cut, s, TOKENS));
            worst.push(`paper cut ${cut} s ${s}: ${fmt(err)}`);
            expect(err).toBeLessThanOrEqual(1e-9);
          }
          for (const s of [2, 4 / 3]) {
            const err = maxRelError(logits(foldScaleTied(pruned, cut, s), TOKENS), explicitLogits(pruned, cut, s, TOKENS));
            worst.push(`tied cut ${cut} s ${s.toFixed(4)}: ${fmt(err)}`);
            expect(err).toBeLessThanOrEqual(1e-9);
          }
        }
        console.log(`[surgery] ε=0 exact-factor folds (${label}): ${worst.join('; ')}`);
      });
    }
  }

  // Qwen3's q/k norms read q = W_q·RMSNorm(X) and k, never the stream itself: the folds neither touch them nor change what they see.
  test('Qwen3 (q/k norms, GQA, head_dim ≠ D/H): ε = 0 exact fold factors ≤ 1e-9; own ε measured; q_norm/k_norm untouched', () => {
    const out: string[] = [];
    for (const tie of [false, true]) {
      const opts: RandomCheckpointOptions = { architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 16, tie, seed: tie ? 41 : 42 };
      for (const removed of [0, 1, 2]) {
        const cut = removed;
        const pruned = prunedRandom(opts, removed);
        const exact = withEps(shortMantissa(pruned, 12), 0);
        const paper = foldScalePaper(untieEmbeddings(exact), cut, 2);
        const tied = foldScaleTied(exact, cut, 4 / 3);
        const errPaper = maxRelError(logits(paper, TOKENS), explicitLogits(exact, cut, 2, TOKENS));
        const errTied = maxRelError(logits(tied, TOKENS), explicitLogits(exact, cut, 4 / 3, TOKENS));
        expect(errPaper).toBeLessThanOrEqual(1e-9);
        expect(errTied).toBeLessThanOrEqual(1e-9);
        for (const folded of [paper, tied]) {
          for (let l = 0; l < folded.config.numLayers; l++) {
            for (const n of ['q_norm', 'k_norm']) {
              const name = `${layerPrefix(l)}self_attn.${n}.weight`;
              expect(folded.tensors.get(name), name).toBe(exact.tensors.get(name));
            }
          }
        }
        // the model's own ε (1e-5), f32 weights, s = 1.3
        const explicit = explicitLogits(pruned, cut, 1.3, TOKENS);
        const ownPaper = maxRelError(logits(foldScalePaper(untieEmbeddings(pruned), cut, 1.3), TOKENS), explicit);
        const ownTied = maxRelError(logits(foldScaleTied(pruned, cut, 1.3), TOKENS), explicit);
        expect(ownPaper).toBeLessThanOrEqual(1e-4); // measured ≤ 7e-6
        expect(ownTied).toBeLessThanOrEqual(1e-4);
        out.push(`${tie ? 'tied' : 'untied'} cut ${cut}: ε=0 paper ${fmt(errPaper)}, tied ${fmt(errTied)}; own ε paper ${fmt(ownPaper)}, tied ${fmt(ownTied)}`);
      }
    }
    console.log(`[surgery] Qwen3 folds vs explicit: ${out.join('; ')}`);
  });

  test('ε = 0, ordinary f32 weights, s = 1.3: only the f32 rounding of folded weights (≤ 1e-5)', () => {
    const out: string[] = [];
    for (const tie of [false, true]) {
      const pruned = withEps(prunedRandom({ tie, seed: 21, qkvBias: true, oBias: true, mlpBias: true }, 1), 0);
      const explicit = explicitLogits(pruned, 1, 1.3, TOKENS);
      const paper = maxRelError(logits(foldScalePaper(untieEmbeddings(pruned), 1, 1.3), TOKENS), explicit);
      const tied = maxRelError(logits(foldScaleTied(pruned, 1, 1.3), TOKENS), explicit);
      out.push(`${tie ? 'tied' : 'untied'}: paper ${fmt(paper)}, tied ${fmt(tied)}`);
      expect(paper).toBeLessThanOrEqual(1e-5);
      expect(tied).toBeLessThanOrEqual(1e-5);
    }
    console.log(`[surgery] ε=0, f32 weights, s=1.3: ${out.join('; ')}`);
  });

  test('the paper fold refuses a tied model (untie first, or use the tied fold)', () => {
    const pruned = prunedRandom({ tie: true }, 1);
    expect(() => foldScalePaper(pruned, 1, 1.3)).toThrow(/untie/);
    expect(() => foldScaleTied(pruned, 1, 0)).toThrow(LopperError);
    expect(() => foldScaleTied(pruned, 1, -2)).toThrow(LopperError);
    expect(() => foldScaleTied(pruned, 1, NaN)).toThrow(LopperError);
    expect(() => foldScaleTied(pruned, 4, 1.3)).toThrow(/cut/);
  });

  test('last layer removed: both folds are no-ops (the final RMSNorm cancels the scalar)', () => {
    for (const tie of [false, true]) {
      const pruned = prunedRandom({ tie }, 3); // 3 layers left; cut = 3 = numLayers
      expect(foldIsNoop(pruned, 3)).toBe(true);
      expect(foldIsNoop(pruned, 2)).toBe(false);
      expect(foldScalePaper(pruned, 3, 1.7)).toBe(pruned); // even tied: nothing to scale
      expect(foldScaleTied(pruned, 3, 1.7)).toBe(pruned);
      // and indeed an explicit ×s on X_L only changes the logits through ε
      const err = maxRelError(explicitLogits(withEps(pruned, 0), 3, 1.7, TOKENS), logits(withEps(pruned, 0), TOKENS));
      expect(err).toBeLessThanOrEqual(1e-12);
    }
  });

  // The model's own ε: measured on the real llama2.c models, remove the middle layer (2 of 5).
  const CALIB = join(DATA, 'tinystories/calib.txt');
  for (const [name, file] of LLAMA2C_MODELS) {
    test.skipIf(!existsSync(file))(`own ε on ${name}: folds vs explicit, measured`, async () => {
      const ck = await loadLlama2cFile(file);
      const text = existsSync(CALIB) ? readFileSync(CALIB, 'utf8').slice(0, 600) : 'Once upon a time, there was a little girl named Lily.';
      const tokens = [ck.tokenizer.bosId, ...ck.tokenizer.encode(text)].slice(0, 64);
      const k = 2;
      // a realistic s: the Prune&Comp scale of layer k on this text (one window)
      const { streams } = new ReferenceModel(ck).forward(tokens);
      const absMean = (x: Float64Array) => {
        const D = ck.config.hiddenSize;
        const out = new Float64Array(D);
        for (let i = 0; i < x.length; i++) out[i % D] += Math.abs(x[i]) / (x.length / D);
        return out;
      };
      const measured = compensationScale([absMean(streams[k])], [absMean(streams[k + 1])]);
      expect(measured.skippedChannels).toBe(0);
      const pruned = removeLayers(ck, [k]);
      const lines: string[] = [];
      for (const s of [1.3, measured.s]) {
        const explicit = explicitLogits(pruned, k, s, tokens);
        const paperLogits = logits(foldScalePaper(untieEmbeddings(pruned), k, s), tokens);
        const tiedLogits = logits(foldScaleTied(pruned, k, s), tokens);
        const paper = maxRelError(paperLogits, explicit);
        const tied = maxRelError(tiedLogits, explicit);
        const between = maxRelError(tiedLogits, paperLogits);
        // the same with ε = 0: what is left is the f32 rounding of the folded weights
        const p0 = withEps(pruned, 0);
        const explicit0 = explicitLogits(p0, k, s, tokens);
        const paper0 = maxRelError(logits(foldScalePaper(untieEmbeddings(p0), k, s), tokens), explicit0);
        const tied0 = maxRelError(logits(foldScaleTied(p0, k, s), tokens), explicit0);
        lines.push(
          `s=${s.toFixed(4)}: ε=${ck.config.rmsNormEps} paper ${fmt(paper)}, tied ${fmt(tied)}, paper↔tied ${fmt(between)}; ε=0 paper ${fmt(paper0)}, tied ${fmt(tied0)}`,
        );
        expect(paper).toBeLessThanOrEqual(1e-2);
        expect(tied).toBeLessThanOrEqual(1e-2);
        expect(between).toBeLessThanOrEqual(1e-2);
        expect(paper0).toBeLessThanOrEqual(1e-5);
        expect(tied0).toBeLessThanOrEqual(1e-5);
      }
      console.log(`[surgery] ${name} (remove layer ${k} of ${ck.config.numLayers}, T=${tokens.length}, measured s=${measured.s.toFixed(4)}):\n  ${lines.join('\n  ')}`);
    });
  }
});

// ----------------------------------------------------------------------------
// What the folds touch

describe('fold details', () => {
  const O = 'self_attn.o_proj.';
  const DOWN = 'mlp.down_proj.';

  test('biases of o_proj and down_proj scale with their weights; nothing else changes', () => {
    const pruned = prunedRandom({ seed: 31, qkvBias: true, oBias: true, mlpBias: true }, 2); // 3 layers, cut 2
    const s = 1.5;
    const paper = foldScalePaper(pruned, 2, s);
    const tied = foldScaleTied(pruned, 2, s);
    const scaled = (name: string, f: number) => Float32Array.from(toFloat32(pruned.tensors.get(name)!), (v) => v * f);
    for (let l = 0; l < 3; l++) {
      for (const suffix of [O + 'weight', O + 'bias', DOWN + 'weight', DOWN + 'bias']) {
        const name = layerPrefix(l) + suffix;
        if (l < 2) {
          expect(paper.tensors.get(name)!.data).toEqual(scaled(name, s));
          expect(tied.tensors.get(name)).toBe(pruned.tensors.get(name));
        } else {
          expect(paper.tensors.get(name)).toBe(pruned.tensors.get(name));
          expect(tied.tensors.get(name)!.data).toEqual(scaled(name, 1 / s));
        }
      }
      for (const suffix of ['self_attn.q_proj.bias', 'self_attn.v_proj.weight', 'mlp.up_proj.bias', 'mlp.gate_proj.weight', 'input_layernorm.weight']) {
        const name = layerPrefix(l) + suffix;
        expect(paper.tensors.get(name)).toBe(pruned.tensors.get(name));
        expect(tied.tensors.get(name)).toBe(pruned.tensors.get(name));
      }
    }
    expect(paper.tensors.get('model.embed_tokens.weight')!.data).toEqual(scaled('model.embed_tokens.weight', s));
    expect(tied.tensors.get('model.embed_tokens.weight')).toBe(pruned.tensors.get('model.embed_tokens.weight'));
    expect(paper.tensors.get('lm_head.weight')).toBe(pruned.tensors.get('lm_head.weight'));
    expect(paper.tensors.get('model.norm.weight')).toBe(pruned.tensors.get('model.norm.weight'));
  });

  for (const dtype of ['f16', 'bf16'] as DType[]) {
    test(`${dtype} storage keeps its dtype (values re-rounded)`, () => {
      const pruned = prunedRandom({ seed: 41, dtype, tie: true }, 1);
      const s = 1.3;
      for (const [folded, name, f] of [
        [foldScalePaper(untieEmbeddings(pruned), 1, s), 'model.embed_tokens.weight', s],
        [foldScalePaper(untieEmbeddings(pruned), 1, s), layerPrefix(0) + DOWN + 'weight', s],
        [foldScaleTied(pruned, 1, s), layerPrefix(2) + O + 'weight', 1 / s],
      ] as [Checkpoint, string, number][]) {
        const before = pruned.tensors.get(name)!;
        const after = folded.tensors.get(name)!;
        expect(after.dtype).toBe(dtype);
        expect(after.data).toBeInstanceOf(Uint16Array);
        expect(after.shape).toEqual(before.shape);
        // exactly the dtype's rounding of the scaled values
        const want = fromFloat32(Float32Array.from(toFloat32(before), (v) => v * f), before.shape, dtype);
        expect(after.data).toEqual(want.data);
        // and within half an ulp of the exact product (f16: 2^-11, bf16: 2^-8 relative)
        const a = toFloat32(after);
        const b = toFloat32(before);
        const ulp = dtype === 'f16' ? 2 ** -11 : 2 ** -8;
        for (let i = 0; i < a.length; i++) {
          if (Math.abs(b[i] * f) > 2 ** -14) expect(Math.abs(a[i] - b[i] * f)).toBeLessThanOrEqual(Math.abs(b[i] * f) * ulp * 1.0001);
        }
      }
    });
  }

  test('f16 overflow is refused, not written as Inf', () => {
    const ck = randomCheckpoint({ numLayers: 2, dtype: 'f16' });
    const big = fromFloat32(new Float32Array(ck.config.hiddenSize * ck.config.hiddenSize).fill(60000), [ck.config.hiddenSize, ck.config.hiddenSize], 'f16');
    expect(f16ToF32((big.data as Uint16Array)[0])).toBe(60000); // representable; ×2 is not (max 65504)
    const tensors = new Map(ck.tensors).set(layerPrefix(0) + O + 'weight', big);
    // The fold is derived (nothing is computed until read); the first read refuses, naming the tensor.
    const folded = foldScalePaper({ ...ck, tensors }, 1, 2);
    expect(() => folded.tensors.get(layerPrefix(0) + O + 'weight')!.data).toThrow(/scaling "model\.layers\.0\.self_attn\.o_proj\.weight" by 2 overflows its f16 storage/);
    expect(() => logits(folded, TOKENS)).toThrow(/overflow/);
  });

  test('the input checkpoint is never modified', () => {
    const ck = randomCheckpoint({ numLayers: 4, seed: 51, tie: true, qkvBias: true, oBias: true, mlpBias: true });
    const watched = ['model.embed_tokens.weight', layerPrefix(0) + O + 'weight', layerPrefix(0) + DOWN + 'bias', layerPrefix(3) + DOWN + 'weight', 'model.norm.weight'];
    const snapshot = new Map(watched.map((n) => [n, { ...ck.tensors.get(n)!, data: ck.tensors.get(n)!.data.slice(), shape: [...ck.tensors.get(n)!.shape] }]));
    const config = structuredClone(ck.config);
    const names = [...ck.tensors.keys()];

    const pruned = removeLayers(ck, [2]);
    const untied = untieEmbeddings(pruned);
    foldScalePaper(untied, 2, 1.7);
    foldScaleTied(pruned, 2, 1.7);
    foldScaleTied(ck, 1, 0.6);
    foldScalePaper(untieEmbeddings(ck), 3, 2.5);

    expect(ck.config).toEqual(config);
    expect([...ck.tensors.keys()]).toEqual(names);
    for (const [n, t] of snapshot) expect(ck.tensors.get(n)).toEqual(t);
    // nor the intermediate ones
    expect(pruned.config.numLayers).toBe(3);
    expect(pruned.config.tieWordEmbeddings).toBe(true);
    expect(untied.tensors.get(layerPrefix(0) + O + 'weight')).toBe(ck.tensors.get(layerPrefix(0) + O + 'weight'));
  });
});

// ----------------------------------------------------------------------------
// compensationScale

describe('compensationScale', () => {
  test('mean over channels of the mean over windows of a/b (hand-computed)', () => {
    // window ratios: m0 [2/1, 2/2] = [2, 1]; m1 [3/2, 8/4] = [1.5, 2]
    // per channel over windows: [1.75, 1.5]; s = 1.625
    const r = compensationScale([new Float32Array([1, 2]), new Float32Array([2, 4])], [new Float32Array([2, 2]), new Float32Array([3, 8])]);
    expect(r.s).toBeCloseTo(1.625, 14);
    expect(r.skippedChannels).toBe(0);
    // one window, plain arrays, Float64
    expect(compensationScale([Float64Array.of(0.5, 4)], [Float64Array.of(1, 2)]).s).toBe((2 + 0.5) / 2);
    // it is not the ratio of means: (1+3)/(1+1) = 2 there, here (1 + 3)/2 … per channel
    expect(compensationScale([[1, 1]], [[1, 3]]).s).toBe(2);
    expect(compensationScale([[1, 4]], [[2, 4]]).s).toBe(1.5); // ratio of means would be 6/5
  });

  test('the guard skips near-zero channels and counts them', () => {
    // channel 1 is 0 in window 0 and tiny in window 1: skipped; s from channels 0 and 2
    const before = [Float32Array.of(1, 0, 2), Float32Array.of(1, 1e-9, 2)];
    const after = [Float32Array.of(2, 5, 2), Float32Array.of(2, 5, 6)];
    expect(compensationScale(before, after)).toEqual({ s: (2 + (1 + 3) / 2) / 2, skippedChannels: 1 });
    // threshold is relative to the mean b: 1e-4 of a mean ≈ 0.67 is below the default 1e-3
    const b = [[1, 1e-4, 1]];
    const a = [[1, 1, 1]];
    expect(compensationScale(b, a)).toEqual({ s: 1, skippedChannels: 1 });
    // minChannel 1e-6 keeps it, and it inflates s (the official behaviour)
    const loose = compensationScale(b, a, { minChannel: 1e-6 });
    expect(loose.skippedChannels).toBe(0);
    expect(loose.s).toBeCloseTo((1 + 1e4 + 1) / 3, 8);
    // minChannel 0 still skips exact zeros (a/0 is ∞ or NaN)
    expect(compensationScale([[0, 1]], [[1, 1]], { minChannel: 0 })).toEqual({ s: 1, skippedChannels: 1 });
    // the guard scales with the model: the same shape at 1e-6 overall magnitude behaves the same
    expect(compensationScale([[1e-6, 1e-10, 1e-6]], [[1e-6, 1e-6, 1e-6]])).toEqual({ s: 1, skippedChannels: 1 });
  });

  test('refuses empty, ragged, non-finite input and all-skipped channels', () => {
    expect(() => compensationScale([], [])).toThrow(LopperError);
    expect(() => compensationScale([[1, 2]], [])).toThrow(LopperError);
    expect(() => compensationScale([[1, 2]], [[1]])).toThrow(LopperError);
    expect(() => compensationScale([[1, NaN]], [[1, 1]])).toThrow(LopperError);
    expect(() => compensationScale([[1, 1]], [[1, Infinity]])).toThrow(LopperError);
    expect(() => compensationScale([[1, -1]], [[1, 1]])).toThrow(LopperError);
    expect(() => compensationScale([[0, 0]], [[1, 1]])).toThrow(/no compensation scale/);
    expect(() => compensationScale([[1]], [[1]], { minChannel: -1 })).toThrow(LopperError);
  });

  test('scaleFromStats reads absMean[k] and absMean[j] of each window', () => {
    const win = (rows: number[][]): WindowStats => ({ cos: [], absMean: rows.map((r) => Float32Array.from(r)) });
    const stats = [
      win([[9, 9], [1, 2], [2, 2], [4, 8]]),
      win([[9, 9], [2, 4], [3, 8], [1, 1]]),
    ];
    expect(scaleFromStats(stats, 1, 2).s).toBeCloseTo(1.625, 14); // the hand-computed case above
    // a block 1..2 removed: X_1 → X_3
    expect(scaleFromStats(stats, 1, 3)).toEqual(compensationScale([stats[0].absMean[1], stats[1].absMean[1]], [stats[0].absMean[3], stats[1].absMean[3]]));
    expect(() => scaleFromStats(stats, 2, 2)).toThrow(LopperError);
    expect(() => scaleFromStats(stats, 0, 4)).toThrow(LopperError);
    expect(() => scaleFromStats([], 0, 1)).toThrow(LopperError);
  });
});
