/**
 * The independent Float64 compensation reference (test/helpers/comp-reference.ts), checked
 * on its own before it checks the engine:
 *  1. its scalar loop is today's Prune&Comp: the engine's BI prunecomp plan (removed layers,
 *     scales) and the pruned model's eval perplexity, on stories260K and llama2xs;
 *  2. the fits on real data: the folded model's new X_k reproduces the dense X_{k+1} with
 *     MSE linear ≤ diag ≤ none (least squares, exact on the fitted tokens), T solves its
 *     normal equations, a large α drives T to 0, and the fold (down_proj ← Tᵀ·down_proj, bias
 *     included) turns layer p's MLP output M into M·T;
 *  3. a singular fit (fewer tokens than D, or repeated tokens, with α = 0) is refused;
 *  4. the contiguous span and the perplexity budget;
 *  5. the engine against it: `lopper compare --comp linear|diag --calib-windows 100000` on
 *     stories260K and llama2xs gives the reference's plans and perplexities (within 0.1 %; the
 *     engine's maps within 1e-5), the cl span's one map, and `lopper prune --budget 20` stops
 *     at the reference's n.
 * Data: calib.txt / eval.txt of TinyStories cut into windows of 256 tokens, BOS first: ALL of
 * them where the checks say so (linear and diag on both models), else the CLI's
 * default 8 calibration windows and the first 8 evaluation windows (the reference is plain
 * Float64 loops: every window for every check would take minutes).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test, vi } from 'vitest';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import type { CompMap } from '../../src/engine/prune/fit';
import { prune } from '../../src/engine/prune/plan';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { cutWindows } from '../../src/engine/text/windows';
import {
  biScores,
  normalEquations,
  referenceBudget,
  referenceLoop,
  referenceSpanFit,
  refModel,
  refPerplexity,
  removeWithComp,
  runWindow,
  solveLinear,
  type Comp,
  type NormalEquations,
  type WindowRun,
} from '../helpers/comp-reference';
import { lopper } from '../helpers/cli';
import { maxRelError } from '../helpers/compare';
import { DATA, MODELS } from '../helpers/paths';
import { randomCheckpoint } from '../helpers/random-checkpoint';

// The Float64 reference is plain loops: a test that runs its loop on all windows takes up to
// about a minute on a busy 2-core machine, so this file allows more than the project's 120 s.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const runtime = nodeRuntime(1);
const W = 256;
const CALIB = join(DATA, 'tinystories/calib.txt');
const EVAL = join(DATA, 'tinystories/eval.txt');
const MODEL_FILES: Record<string, string> = {
  stories260K: join(MODELS, 'stories260K/stories260K.bin'),
  llama2xs: join(MODELS, 'llama2xs-tinystories/model.bin'),
};
interface Loaded {
  ck: Checkpoint;
  /** every calibration window */
  calib: number[][];
  /** the first 8: the CLI's default --calib-windows */
  calib8: number[][];
  evalIds: number[];
  evalWindows: number[][];
  eval8: number[][];
}
const models: Record<string, Loaded> = {};

beforeAll(async () => {
  for (const [name, file] of Object.entries(MODEL_FILES)) {
    const ck = await loadLlama2cFile(file);
    const ids = (f: string) => [ck.tokenizer.bosId, ...ck.tokenizer.encode(readFileSync(join(DATA, 'tinystories', f), 'utf8'))];
    const evalIds = ids('eval.txt');
    const calib = cutWindows(ids('calib.txt'), W);
    const evalWindows = cutWindows(evalIds, W);
    models[name] = { ck, calib, calib8: calib.slice(0, 8), evalIds, evalWindows, eval8: evalWindows.slice(0, 8) };
  }
});

/** The reference's n = 2 loop and its eval perplexity, computed once per (model, comp, windows): every window, or 8. */
const loops = new Map<string, ReturnType<typeof referenceLoop> & { ppl: number }>();
function loopOf(name: string, comp: Comp, windows: 'all' | 8 = 'all') {
  const key = `${name} ${comp} ${windows}`;
  if (!loops.has(key)) {
    const m = models[name];
    const r = referenceLoop(m.ck, windows === 'all' ? m.calib : m.calib8, { n: 2, comp });
    loops.set(key, { ...r, ppl: refPerplexity(r.model, windows === 'all' ? m.evalWindows : m.eval8) });
  }
  return loops.get(key)!;
}

/** The dense model's streams on its calibration windows, computed once per model. */
const dense = new Map<string, WindowRun[]>();
function denseRuns(name: string): WindowRun[] {
  if (!dense.has(name)) {
    const m = refModel(models[name].ck);
    dense.set(name, models[name].calib8.map((w) => runWindow(m, w)));
  }
  return dense.get(name)!;
}

/** The reference's budget run on stories260K (B = 20, scalar), computed once. */
let budget20: ReturnType<typeof referenceBudget> | undefined;
const budgetOf20 = () => (budget20 ??= referenceBudget(models.stories260K.ck, models.stories260K.calib8, { comp: 'scalar', budget: 20 }));

const densePpl = new Map<string, number>();
const densePerplexity = (name: string) => densePpl.get(name) ?? densePpl.set(name, refPerplexity(refModel(models[name].ck), models[name].eval8)).get(name)!;

const rel = (a: number, b: number) => Math.abs(a / b - 1);
const frob = (a: Float64Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));

/** Mean squared error per element between stream `l` of each run and stream `l2` of the matching run. */
function streamMse(a: readonly WindowRun[], l: number, b: readonly WindowRun[], l2: number): number {
  let s = 0;
  let n = 0;
  a.forEach((r, m) => {
    const x = r.xs[l];
    const y = b[m].xs[l2];
    for (let i = 0; i < x.length; i++) s += (x[i] - y[i]) ** 2;
    n += x.length;
  });
  return s / n;
}

/** ‖(G + αI)T − B‖_F / ‖B‖_F: how well T solves its normal equations. */
function normalResidual({ G, B }: NormalEquations, T: Float64Array, D: number, alpha: number): number {
  const r = new Float64Array(D * D);
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < D; j++) {
      let s = alpha * T[i * D + j] - B[i * D + j];
      for (let q = 0; q < D; q++) s += G[i * D + q] * T[q * D + j];
      r[i * D + j] = s;
    }
  }
  return frob(r) / frob(B);
}

describe('comp reference: scalar is today’s Prune&Comp', () => {
  test.each(Object.keys(MODEL_FILES))('%s: BI prunecomp, 2 layers: the engine’s plan and eval perplexity', async (name) => {
    const { ck, calib8, eval8 } = models[name];
    // reuse: false — with the paper fold, reused statistics differ from a recompute by the
    // RMSNorm ε term (plan.test.ts: up to 1.5e-5 on stories260K); the reference recomputes.
    const got = await prune(ck, runtime, calib8, { metric: 'bi', mode: 'prunecomp', layers: 2, reuse: false });
    const want = loopOf(name, 'scalar', 8);
    const pplEngine = refPerplexity(refModel(got.checkpoint), eval8);
    const pplRef = want.ppl;
    const dScale = Math.max(...got.plan.scales.map((s, i) => rel(s, want.steps[i].scale)));
    console.log(
      `${name} scalar n=2: removed ${want.removed} (engine ${got.plan.removed}), scales ${want.steps.map((s) => s.scale.toFixed(6))}, max rel diff ${dScale.toExponential(2)}; ` +
        `eval ppl dense ${densePerplexity(name).toFixed(4)}, reference ${pplRef.toFixed(6)}, engine ${pplEngine.toFixed(6)} (rel ${rel(pplEngine, pplRef).toExponential(2)})`,
    );
    expect(got.plan.removed).toEqual(want.removed);
    expect(dScale).toBeLessThan(1e-6);
    expect(rel(pplEngine, pplRef)).toBeLessThan(1e-5);
  });
});

describe('comp reference: the fits on real data (stories260K, dense model, calibration tokens)', () => {
  let dense: WindowRun[];
  let k: number;
  let D: number;
  beforeAll(() => {
    D = models.stories260K.ck.config.hiddenSize;
    dense = denseRuns('stories260K');
    k = biScores(dense, D).reduce((best, v, i, all) => (v < all[best] ? i : best), 0); // the loop's first cut
  });

  test('the first BI cut has a layer before it (the fits apply)', () => {
    expect(k).toBeGreaterThanOrEqual(1);
  });

  test('MSE (8 windows) of the folded model’s X_k against the dense X_{k+1}: linear ≤ diag ≤ none, and = ‖Y + M·T − X_{k+1}‖²', () => {
    const mse: Partial<Record<Comp, number>> = {};
    for (const comp of ['none', 'diag', 'linear'] as const) {
      const r = removeWithComp(refModel(models.stories260K.ck), dense, k, k + 1, comp);
      const folded = models.stories260K.calib8.map((w) => runWindow(r.model, w));
      mse[comp] = streamMse(folded, k, dense, k + 1);
      if (r.map) {
        // the fold is exact: the new X_k is Y_p + M·T with the dense Y_p and M (p = k − 1)
        let err = 0;
        let scale = 0;
        dense.forEach((run, m) => {
          const y = run.ys[k - 1];
          for (let t = 0; t < run.T; t++) {
            for (let j = 0; j < D; j++) {
              let mt = 0;
              for (let i = 0; i < D; i++) mt += (run.xs[k][t * D + i] - y[t * D + i]) * r.map![i * D + j];
              err = Math.max(err, Math.abs(folded[m].xs[k][t * D + j] - (y[t * D + j] + mt)));
              scale = Math.max(scale, Math.abs(y[t * D + j] + mt));
            }
          }
        });
        expect(err / scale).toBeLessThan(1e-12);
      }
    }
    const tokens = dense.reduce((s, r) => s + r.T, 0);
    console.log(`stories260K k=${k}, ${tokens} tokens: MSE of X_k' vs dense X_{k+1}: none ${mse.none!.toExponential(4)}, diag ${mse.diag!.toExponential(4)}, linear ${mse.linear!.toExponential(4)}`);
    expect(mse.linear!).toBeLessThanOrEqual(mse.diag!);
    expect(mse.diag!).toBeLessThanOrEqual(mse.none!);
    expect(mse.linear!).toBeLessThan(mse.none!);
  });

  test('T = (MᵀM + αI)⁻¹MᵀA solves its normal equations; a large α drives T to 0', () => {
    const eq = normalEquations(dense, k - 1, k + 1, D);
    const trace = Array.from({ length: D }, (_, i) => eq.G[i * D + i]).reduce((a, b) => a + b, 0);
    for (const alpha of [0, 1e-3 * (trace / D), trace / D]) {
      const T = solveLinear(eq, D, alpha);
      const res = normalResidual(eq, T, D, alpha);
      console.log(`stories260K k=${k} α=${alpha.toExponential(2)}: normal-equation residual ${res.toExponential(2)}, ‖T‖_F ${frob(T).toFixed(4)}`);
      expect(res).toBeLessThan(1e-9);
    }
    // ‖(G + αI)⁻¹‖₂ ≤ 1/α for G ⪰ 0, so every |T_ij| ≤ ‖T‖₂ ≤ ‖B‖_F / α
    const alpha = 1e12 * (trace / D);
    const T = solveLinear(eq, D, alpha);
    const maxT = Math.max(...T.map(Math.abs));
    expect(maxT).toBeGreaterThan(0);
    expect(maxT).toBeLessThanOrEqual(frob(eq.B) / alpha);
  });

  test('on a random model with biases: the map fold carries down_proj’s bias (M·T exactly); the last layer; k = 0', () => {
    const ck = randomCheckpoint({ hiddenSize: 16, intermediateSize: 24, numLayers: 3, numHeads: 4, numKvHeads: 2, vocabSize: 40, qkvBias: true, oBias: true, mlpBias: true, seed: 7 });
    const m = refModel(ck);
    const windows = [Array.from({ length: 20 }, (_, t) => (t * 7 + 1) % 40), Array.from({ length: 20 }, (_, t) => (t * 11 + 3) % 40)];
    const runs = windows.map((w) => runWindow(m, w));
    const r = removeWithComp(m, runs, 1, 2, 'linear');
    const after = windows.map((w) => runWindow(r.model, w));
    let err = 0;
    runs.forEach((run, w) => {
      for (let t = 0; t < run.T; t++) {
        for (let j = 0; j < 16; j++) {
          let mt = 0;
          for (let i = 0; i < 16; i++) mt += (run.xs[1][t * 16 + i] - run.ys[0][t * 16 + i]) * r.map![i * 16 + j];
          err = Math.max(err, Math.abs(after[w].xs[1][t * 16 + j] - (run.ys[0][t * 16 + j] + mt)));
        }
      }
    });
    expect(err).toBeLessThan(1e-12);
    // and without the bias fold it would be off: the bias is not zero
    expect(Math.max(...m.tensors.get('model.layers.0.mlp.down_proj.bias')!.map(Math.abs))).toBeGreaterThan(0.01);

    // the last layer (k = L − 1 = 2): scalar folds nothing; linear still fits X_L, into layer 1
    const last = (comp: Comp) => removeWithComp(m, runs, 2, 3, comp);
    const cut = last('none').model;
    const scalar = last('scalar');
    expect(scalar.scale).not.toBe(1);
    for (const [name, w] of cut.tensors) expect(scalar.model.tensors.get(name)).toBe(w);
    const mseLast = (comp: Comp) => streamMse(windows.map((w) => runWindow(last(comp).model, w)), 2, runs, 3);
    expect(mseLast('linear')).toBeLessThan(mseLast('none'));
    // k = 0 (no layer before): linear and diag fall back to the scalar fold
    const first = removeWithComp(m, runs, 0, 1, 'linear');
    expect(first.map).toBeNull();
    expect(first.scale).toBe(removeWithComp(m, runs, 0, 1, 'scalar').scale);
    expect(Array.from(first.model.tensors.get('model.embed_tokens.weight')!)).toEqual(Array.from(m.tensors.get('model.embed_tokens.weight')!.map((v) => v * first.scale)));
  });
});

describe('comp reference: singular fits are refused', () => {
  test('fewer tokens than D with α = 0: an Error naming the tokens and D; α > 0 solves it', () => {
    const { ck, calib } = models.stories260K;
    const few = [calib[0].slice(0, 32)];
    expect(() => referenceSpanFit(ck, few, 1, 1, 'linear')).toThrow(/singular fit: 32 tokens for D = 64/);
    const ok = referenceSpanFit(ck, few, 1, 1, 'linear', { alpha: 1e-2 });
    expect(ok.map.every(Number.isFinite)).toBe(true);
  });

  test('more tokens than D but rank < D (a window repeated) with α = 0: refused at a pivot', () => {
    const { ck, calib } = models.stories260K;
    const w = calib[0].slice(0, 40);
    expect(() => referenceSpanFit(ck, [w, w], 1, 1, 'linear')).toThrow(/singular fit: pivot \d+ of MᵀM \+ αI .*80 tokens, D = 64/);
  });
});

describe('comp reference: the loop on both models, the span, the budget', () => {
  test.each(Object.keys(MODEL_FILES))('%s: n = 2, every window, diag and linear: the plan’s structure and the eval perplexity', (name) => {
    const { ck } = models[name];
    const L = ck.config.numLayers;
    const line: string[] = [];
    for (const comp of ['diag', 'linear'] as const) {
      const r = loopOf(name, comp);
      expect(new Set(r.removed).size).toBe(2);
      expect(r.model.config.numLayers).toBe(L - 2);
      for (const st of r.steps) {
        expect(st.map !== null).toBe((comp === 'linear' || comp === 'diag') && st.at >= 1);
        if (st.map) expect(st.map.every(Number.isFinite)).toBe(true);
        if (comp === 'diag' && st.map) expect(st.map.every((v, i) => v === 0 || i % (ck.config.hiddenSize + 1) === 0)).toBe(true);
      }
      expect(Number.isFinite(r.ppl)).toBe(true);
      line.push(`${comp} removed ${r.removed} ppl ${r.ppl.toFixed(4)}`);
    }
    console.log(`${name} n=2 eval: ${line.join('; ')}`);
  });

  test('span 1..2 (p = 0, A = X_3 − Y_0): the map solves its normal equations; the block is gone', () => {
    const { ck, calib8: calib, eval8: evalWindows } = models.stories260K;
    const D = ck.config.hiddenSize;
    const eq = normalEquations(denseRuns('stories260K'), 0, 3, D);
    const two = referenceSpanFit(ck, calib, 1, 2, 'linear', { evalWindows });
    const twoDiag = referenceSpanFit(ck, calib, 1, 2, 'diag', { evalWindows });
    expect(normalResidual(eq, two.map, D, 0)).toBeLessThan(1e-9);
    expect(Array.from(twoDiag.map).filter((_, i) => i % (D + 1) === 0)).toEqual(Array.from({ length: D }, (_, c) => eq.B[c * D + c] / eq.G[c * D + c]));
    expect(two.model.config.numLayers).toBe(ck.config.numLayers - 2);
    console.log(`stories260K span 1..2: eval ppl linear ${two.ppl.toFixed(4)}, diag ${twoDiag.ppl.toFixed(4)}`);
    expect(() => referenceSpanFit(ck, calib, 0, 2, 'linear')).toThrow(/block 0..1 must lie in 1..4/);
  });

  test('budget B = 20, scalar: stops before the first cut over 20 × the dense calibration perplexity', () => {
    const { ck } = models.stories260K;
    const B = 20;
    const r = budgetOf20();
    console.log(`stories260K budget ${B} scalar: n = ${r.n}, removed ${r.removed}, dense calib ppl ${r.dense.toFixed(4)}, after each cut ${r.perplexities.map((p) => p.toFixed(4))}`);
    expect(r.perplexities.slice(0, r.n).every((p) => p <= B * r.dense)).toBe(true);
    if (r.n < ck.config.numLayers - 1) expect(r.perplexities[r.n]).toBeGreaterThan(B * r.dense);
    expect(r.model.config.numLayers).toBe(ck.config.numLayers - r.n);
  });
});

/**
 * The engine (float32 streams from onnxruntime, Gram sums and solve in Float64, default reuse)
 * against the reference (Float64 throughout). Measured: maps within 1.6e-6 (max abs difference
 * over max |T|), eval perplexities within 1.3e-8, budget perplexities within 1e-7. A map fold
 * leaves every layer before the cut as it was, so reused statistics are exact there (default
 * reuse); the scalar budget run recomputes (reuse: false) as the scalar test above does.
 */
describe('the engine’s compensation against the reference', () => {
  /** The engine's map as a full [D, D] matrix (diag keeps only its diagonal). */
  const fullMap = (map: CompMap, D: number) => (map.kind === 'linear' ? map.T : Float64Array.from({ length: D * D }, (_, i) => (i % (D + 1) === 0 ? map.T[i / (D + 1)] : 0)));

  const cases = Object.keys(MODEL_FILES).flatMap((name) => (['linear', 'diag'] as const).map((comp) => [name, comp] as const));
  test.each(cases)('%s: BI prunecomp, 2 layers, comp %s, every window: removed layers and maps', async (name, comp) => {
    const { ck, calib } = models[name];
    const D = ck.config.hiddenSize;
    const got = await prune(ck, runtime, calib, { metric: 'bi', mode: 'prunecomp', layers: 2, comp });
    const want = loopOf(name, comp);
    const dMap = got.plan.steps.map((st, i) => (st.map ? maxRelError(fullMap(st.map, D), want.steps[i].map!) : null));
    console.log(`${name} ${comp} n=2: removed ${want.removed} (engine ${got.plan.removed}), map max rel diff ${dMap.map((d) => d?.toExponential(2))}`);
    expect(got.plan.removed).toEqual(want.removed);
    got.plan.steps.forEach((st, i) => {
      expect(st.map !== undefined).toBe(want.steps[i].map !== null);
      if (st.map) expect(st.map.layer).toBe(want.steps[i].at - 1);
    });
    for (const d of dMap) if (d !== null) expect(d).toBeLessThan(1e-5);
  });

  test.each(cases)('%s: lopper compare --comp %s --calib-windows 100000: the reference’s plans and perplexities within 1e-3 (the issue’s 0.1 %)', async (name, comp) => {
    const r = await lopper('compare', '--model', MODEL_FILES[name], '--metric', 'bi', '--layers', '2', '--calib', CALIB, '--eval', EVAL, '--calib-windows', '100000', '--comp', comp, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const want = loopOf(name, comp);
    // the baseline: the dense model's two lowest BI scores, removed together
    const m = refModel(models[name].ck);
    const scores = biScores(models[name].calib.map((w) => runWindow(m, w)), models[name].ck.config.hiddenSize);
    const baseline = { removed: [...scores.keys()].sort((a, b) => scores[a] - scores[b] || a - b).slice(0, 2) };
    expect(out.calibration.windows).toBe(models[name].calib.length);
    expect(out.prunecomp.comp).toBe(comp);
    expect(out.prunecomp.removed).toEqual(want.removed);
    expect(out.baseline.removed).toEqual(baseline.removed);
    const [dense, pruned] = [refPerplexity(refModel(models[name].ck), models[name].evalWindows), want.ppl];
    console.log(`${name} compare --comp ${comp}: ppl dense ${out.dense.ppl.toFixed(6)} vs ${dense.toFixed(6)}, compensated ${out.prunecomp.ppl.toFixed(6)} vs ${pruned.toFixed(6)} (rel ${rel(out.prunecomp.ppl, pruned).toExponential(2)})`);
    expect(rel(out.dense.ppl, dense)).toBeLessThan(1e-3);
    expect(rel(out.prunecomp.ppl, pruned)).toBeLessThan(1e-3);
  });

  test.each(Object.keys(MODEL_FILES))('%s: cl, 2 layers, comp linear: one map for the engine’s block, eval perplexity', async (name) => {
    const { ck, calib8: calib, eval8: evalWindows } = models[name];
    const got = await prune(ck, runtime, calib, { metric: 'cl', mode: 'prunecomp', layers: 2, comp: 'linear' });
    const i = got.plan.steps[0].at; // the block start is the engine's CL choice
    const want = referenceSpanFit(ck, calib, i, 2, 'linear', { evalWindows });
    const maps = got.plan.steps.filter((st) => st.map);
    expect(maps.length).toBe(1);
    const map = maps[0].map!;
    const pplEngine = refPerplexity(refModel(got.checkpoint), evalWindows);
    const dMap = maxRelError(map.T, want.map);
    console.log(`${name} cl linear n=2: block ${got.plan.removed}, map max rel diff ${dMap.toExponential(2)}; eval ppl reference ${want.ppl.toFixed(6)}, engine ${pplEngine.toFixed(6)} (rel ${rel(pplEngine, want.ppl).toExponential(2)})`);
    expect(got.plan.removed).toEqual([i, i + 1]);
    expect(map.layer).toBe(i - 1);
    expect(dMap).toBeLessThan(1e-5);
    expect(rel(pplEngine, want.ppl)).toBeLessThan(1e-5);
  });

  test('stories260K budget B = 20, scalar: the engine keeps the reference’s n cuts', async () => {
    const { ck, calib8: calib } = models.stories260K;
    const want = budgetOf20();
    // reuse: false, as in the scalar test above: with reuse the perplexities differ by the ε term (measured 1.3e-5)
    const got = await prune(ck, runtime, calib, { metric: 'bi', mode: 'prunecomp', layers: ck.config.numLayers - 1, comp: 'scalar', budget: 20, reuse: false });
    const b = got.plan.budget!;
    const engine = [b.densePpl, ...b.ppls, ...(b.rejected ? [b.rejected.ppl] : [])];
    const reference = [want.dense, ...want.perplexities];
    const d = Math.max(...engine.map((p, i) => rel(p, reference[i])));
    console.log(
      `stories260K budget 20 scalar: reference n ${want.n} (${want.removed}), calib ppl dense ${want.dense.toFixed(4)} then ${want.perplexities.map((p) => p.toFixed(4))}; ` +
        `engine ${got.plan.removed}, stopped ${b.stopped}, rejected ${b.rejected?.removed}; max rel diff of the perplexities ${d.toExponential(2)}`,
    );
    expect(got.plan.removed).toEqual(want.removed);
    expect(b.stopped).toBe(want.n < ck.config.numLayers - 1 ? 'budget' : 'layers');
    expect(engine.length).toBe(reference.length);
    expect(d).toBeLessThan(1e-6);
  });

  test('lopper prune --budget 20 on stories260K (8 calibration windows) stops at the reference’s n', async () => {
    const want = budgetOf20();
    const r = await lopper('prune', '--model', MODEL_FILES.stories260K, '--metric', 'bi', '--mode', 'prunecomp', '--calib', CALIB, '--budget', '20', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    console.log(`stories260K prune --budget 20: removed ${out.removed} (reference ${want.removed}, n = ${want.n}); stopped ${out.budget.stopped}`);
    expect(out.removed).toEqual(want.removed);
    expect(out.budget.stopped).toBe(want.n < models.stories260K.ck.config.numLayers - 1 ? 'budget' : 'layers');
    expect(out.budget.ppls).toHaveLength(want.n);
  });
});
