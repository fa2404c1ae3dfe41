/**
 * Linear compensation (src/engine/prune/fit.ts, surgery.ts foldMap, Calibrated.fitMap, the
 * loop's comp and budget options in plan.ts), part by part:
 *
 *   the fit     T against an independent Float64 solve of the normal equations (Gaussian
 *               elimination with partial pivoting), the residuals against a direct
 *               ‖M·T − A‖², diag's formula, and the least-squares order linear ≤ diag ≤ none;
 *               a singular MᵀM is refused with the tokens it needs, α makes it solvable
 *   the fold    layer p of the folded model writes Y + M·T: against the Float64 reference's
 *               two halves of the layer (referenceLayerParts), with and without MLP biases
 *   fitMap      the engine's map (Y from a run of layer p alone) against one fitted on the
 *               Float64 reference's Y and streams
 *   the loop    a plan rebuilds its model bit for bit (applyPlan); reuse against a full
 *               recompute; onnxruntime-node whole-graph, layer-streamed and onnxruntime-web
 *               WASM give the same plan and maps; the budget's perplexities are the pruned
 *               models' measured ones, and it stops where they say
 * The end-to-end check against an independent implementation of the whole loop is
 * test/unit/comp-reference.test.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { layerPrefix, tensor, type Checkpoint } from '../../src/engine/model/checkpoint';
import { toFloat32 } from '../../src/engine/model/tensor';
import { applyPlan } from '../../src/engine/prune/apply';
import { Calibrated } from '../../src/engine/prune/calibration';
import { GramAccumulator, type CompMap } from '../../src/engine/prune/fit';
import { prune, type PruneOptions } from '../../src/engine/prune/plan';
import { foldMap } from '../../src/engine/prune/surgery';
import { ReferenceModel, referenceLayerParts } from '../../src/engine/reference/forward';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import type { Runtime } from '../../src/engine/runtime/ort';
import { webWasmRuntime } from '../../src/engine/runtime/web-node';
import { cutWindows } from '../../src/engine/text/windows';
import { maxRelError } from '../helpers/compare';
import { DATA, MODELS } from '../helpers/paths';
import { mulberry32, randomCheckpoint } from '../helpers/random-checkpoint';

const node = nodeRuntime(1);
const CALIB = readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8');
let stories: Checkpoint;
let windows: number[][];

beforeAll(async () => {
  stories = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
  windows = cutWindows([1, ...stories.tokenizer.encode(CALIB)], 128, 6);
});

const lopperError = (code: string, message: RegExp) => expect.objectContaining({ name: 'LopperError', code, message: expect.stringMatching(message) });
const f64 = (ck: Checkpoint) => (name: string) => Float64Array.from(toFloat32(tensor(ck, name)));

/** Seeded [T, D] rows: M random, A = M·T0 + noise (a map to recover). */
function problem(T: number, D: number, seed: number) {
  const rand = mulberry32(seed);
  const m = new Float64Array(T * D).map(() => rand() * 2 - 1);
  const t0 = new Float64Array(D * D).map((_, i) => (i % (D + 1) === 0 ? 1.2 : 0) + (rand() - 0.5) * 0.3);
  const a = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let j = 0; j < D; j++) {
    let s = (rand() - 0.5) * 0.1;
    for (let i = 0; i < D; i++) s += m[t * D + i] * t0[i * D + j];
    a[t * D + j] = s;
  }
  return { m, a };
}

/** X with G·X = B (G [D, D], B [D, D]) by Gaussian elimination with partial pivoting, Float64. */
function gaussSolve(g: Float64Array, b: Float64Array, D: number): Float64Array {
  const aug = Array.from({ length: D }, (_, i) => [...g.subarray(i * D, (i + 1) * D), ...b.subarray(i * D, (i + 1) * D)]);
  for (let c = 0; c < D; c++) {
    let piv = c;
    for (let r = c + 1; r < D; r++) if (Math.abs(aug[r][c]) > Math.abs(aug[piv][c])) piv = r;
    [aug[c], aug[piv]] = [aug[piv], aug[c]];
    for (let r = 0; r < D; r++) {
      if (r === c) continue;
      const f = aug[r][c] / aug[c][c];
      for (let k = c; k < 2 * D; k++) aug[r][k] -= f * aug[c][k];
    }
  }
  const x = new Float64Array(D * D);
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) x[i * D + j] = aug[i][D + j] / aug[i][i];
  return x;
}

/** MᵀM (+αI) and MᵀA, and ‖M·T − A‖² / ‖A‖², computed directly. */
function direct(m: Float64Array, a: Float64Array, T: number, D: number) {
  const g = new Float64Array(D * D);
  const b = new Float64Array(D * D);
  for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) {
    g[i * D + j] += m[t * D + i] * m[t * D + j];
    b[i * D + j] += m[t * D + i] * a[t * D + j];
  }
  const residual = (map: CompMap | 'none') => {
    let num = 0;
    let den = 0;
    for (let t = 0; t < T; t++) for (let j = 0; j < D; j++) {
      let y = 0;
      if (map === 'none') y = m[t * D + j];
      else if (map.kind === 'diag') y = m[t * D + j] * map.T[j];
      else for (let i = 0; i < D; i++) y += m[t * D + i] * map.T[i * D + j];
      num += (y - a[t * D + j]) ** 2;
      den += a[t * D + j] ** 2;
    }
    return num / den;
  };
  return { g, b, residual };
}

describe('the least-squares fit', () => {
  const [T, D] = [300, 12];
  const { m, a } = problem(T, D, 7);
  const fit = (kind: CompMap['kind'], alpha = 0, chunks = 3) => {
    const acc = new GramAccumulator(D);
    const rows = T / chunks;
    for (let c = 0; c < chunks; c++) acc.add(m.subarray(c * rows * D, (c + 1) * rows * D), a.subarray(c * rows * D, (c + 1) * rows * D));
    return acc.solve(kind, alpha, 0, 'the test');
  };
  const d = direct(m, a, T, D);

  test.each([0, 0.5, 30])('linear, α = %s: T solves (MᵀM + αI)·T = MᵀA (Gaussian elimination) to 1e-10; the residual is ‖M·T − A‖²/‖A‖²', (alpha) => {
    const map = fit('linear', alpha);
    const g = Float64Array.from(d.g);
    for (let c = 0; c < D; c++) g[c * D + c] += alpha;
    expect(maxRelError(map.T, gaussSolve(g, d.b, D))).toBeLessThan(1e-10);
    expect(map.tokens).toBe(T);
    expect(Math.abs(map.residual - d.residual(map))).toBeLessThan(1e-10);
    expect(Math.abs(map.residualNone - d.residual('none'))).toBeLessThan(1e-10);
  });

  test('diag: T_cc = (MᵀA)_cc / ((MᵀM)_cc + α); linear ≤ diag ≤ none (each minimises over a set holding the next)', () => {
    for (const alpha of [0, 2]) {
      const map = fit('diag', alpha);
      expect(map.T).toHaveLength(D);
      for (let c = 0; c < D; c++) expect(map.T[c]).toBeCloseTo(d.b[c * D + c] / (d.g[c * D + c] + alpha), 12);
      expect(Math.abs(map.residual - d.residual(map))).toBeLessThan(1e-10);
    }
    const [lin, dia] = [fit('linear'), fit('diag')];
    expect(lin.residual).toBeLessThan(dia.residual);
    expect(dia.residual).toBeLessThan(dia.residualNone);
    console.log(`[fit] ${T}×${D} rows: residual linear ${lin.residual.toExponential(3)}, diag ${dia.residual.toExponential(3)}, none ${dia.residualNone.toExponential(3)}`);
  });

  test('a singular MᵀM (fewer tokens than D) is refused with what it needs; a ridge term makes it solvable', () => {
    const acc = new GramAccumulator(D);
    acc.add(m.subarray(0, 5 * D), a.subarray(0, 5 * D));
    expect(() => acc.solve('linear', 0, 2, 'removing layer 3')).toThrow(lopperError('bad-input', /12×12 linear map for removing layer 3.*over 5 calibration tokens.*--alpha/));
    const ridge = acc.solve('linear', 1e-3, 2, 'removing layer 3');
    expect(ridge.T.every(Number.isFinite)).toBe(true);
    expect(() => acc.solve('linear', -1, 2, 'x')).toThrow(lopperError('bad-option', /α/));
    expect(() => new GramAccumulator(4).add(new Float32Array(8), new Float32Array(12))).toThrow(lopperError('bad-input', /\[tokens, 4\]/));
  });
});

describe('folding a map into down_proj', () => {
  test.each([false, true])('layer p then writes Y + M·T (Float64 reference halves; MLP biases %s), within f32 rounding', (mlpBias) => {
    const ck = randomCheckpoint({ numLayers: 3, hiddenSize: 16, intermediateSize: 40, mlpBias, seed: 3 });
    const D = ck.config.hiddenSize;
    const rand = mulberry32(11);
    const map: CompMap = { kind: 'linear', layer: 1, T: new Float64Array(D * D).map((_, i) => (i % (D + 1) === 0 ? 1 : 0) + (rand() - 0.5) * 0.4), alpha: 0, tokens: 0, residual: 0, residualNone: 0 };
    const folded = foldMap(ck, map);
    // only layer 1's down_proj (and bias) changed, shapes and dtypes kept
    for (const [name, t] of ck.tensors) {
      const same = !name.startsWith(layerPrefix(1) + 'mlp.down_proj');
      expect(folded.tensors.get(name) === t, name).toBe(same);
      expect(folded.tensors.get(name)!.shape).toEqual(t.shape);
    }
    const T = 9;
    const x = new Float64Array(T * D).map(() => rand() * 2 - 1);
    const before = referenceLayerParts(ck.config, f64(ck), 1, x, T);
    const after = referenceLayerParts(folded.config, f64(folded), 1, x, T);
    const want = new Float64Array(T * D);
    for (let t = 0; t < T; t++) for (let j = 0; j < D; j++) {
      let s = before.y[t * D + j];
      for (let i = 0; i < D; i++) s += (before.out[t * D + i] - before.y[t * D + i]) * map.T[i * D + j];
      want[t * D + j] = s;
    }
    expect(maxRelError(after.y, before.y)).toBe(0);
    expect(maxRelError(after.out, want)).toBeLessThan(1e-5);
  });

  test('bad maps are refused: wrong size, a non-finite entry, a layer outside the model', () => {
    const ck = randomCheckpoint({ numLayers: 2, hiddenSize: 8, seed: 1 });
    const base = { kind: 'linear' as const, layer: 0, alpha: 0, tokens: 0, residual: 0, residualNone: 0 };
    expect(() => foldMap(ck, { ...base, T: new Float64Array(10) })).toThrow(lopperError('bad-option', /64 values, not 10/));
    expect(() => foldMap(ck, { ...base, T: new Float64Array(64).fill(NaN) })).toThrow(lopperError('bad-option', /non-finite/));
    expect(() => foldMap(ck, { ...base, layer: 2, T: new Float64Array(64) })).toThrow(lopperError('bad-option', /outside \[0, 2\)/));
  });
});

describe('fitMap on stories260K', () => {
  test('the engine\'s map equals one fitted on the Float64 reference\'s Y and streams (T within 2e-3, residual within 1e-4)', async () => {
    const cal = await Calibrated.create(stories, node, windows);
    try {
      for (const [k, kind] of [[3, 'linear'], [2, 'diag'], [1, 'linear']] as const) {
        const got = await cal.fitMap(k, k + 1, kind, 0);
        const ref = new ReferenceModel(stories);
        const acc = new GramAccumulator(stories.config.hiddenSize);
        for (const w of windows) {
          const { streams } = ref.forward(w);
          const { y } = referenceLayerParts(stories.config, f64(stories), k - 1, streams[k - 1], w.length);
          acc.add(streams[k].map((v, i) => v - y[i]), streams[k + 1].map((v, i) => v - y[i]));
        }
        const want = acc.solve(kind, 0, k - 1, 'ref');
        const err = maxRelError(got.T, want.T);
        console.log(`[fit] stories260K ${kind} map for layer ${k}: T max rel error ${err.toExponential(2)}, residual ${got.residual.toFixed(6)} vs ${want.residual.toFixed(6)}`);
        expect(got.layer).toBe(k - 1);
        expect(got.tokens).toBe(windows.length * 128);
        expect(err).toBeLessThan(2e-3);
        expect(Math.abs(got.residual - want.residual)).toBeLessThan(1e-4);
      }
      await expect(cal.fitMap(0, 1, 'linear', 0)).rejects.toThrow(lopperError('bad-option', /1 ≤ k/));
    } finally {
      await cal.dispose();
    }
  });
});

describe('the loop with maps', () => {
  const opts = (comp: PruneOptions['comp'], extra: Partial<PruneOptions> = {}): PruneOptions => ({ metric: 'bi', mode: 'prunecomp', layers: 3, comp, ...extra });
  const sameTensors = (a: Checkpoint, b: Checkpoint) => {
    expect([...a.tensors.keys()]).toEqual([...b.tensors.keys()]);
    for (const [n, t] of a.tensors) expect(Buffer.from(toFloat32(t).buffer).equals(Buffer.from(toFloat32(b.tensors.get(n)!).buffer)), n).toBe(true);
  };

  test.each(['linear', 'diag'] as const)('%s: the plan rebuilds its model bit for bit; layer 0 gets the scalar; reuse equals a full recompute', async (comp) => {
    // 3 of stories260K's 5 layers by BI: linear removes 2, 4, 0 — the cut at 0 has no layer before it and folds the scalar
    const r = await prune(stories, node, windows, opts(comp));
    expect(r.plan.comp).toBe(comp);
    for (const st of r.plan.steps) {
      expect(st.folded).toBe(true);
      if (st.at === 0) expect(st.map).toBeUndefined();
      else expect(st.map).toMatchObject({ kind: comp, layer: st.at - 1, tokens: windows.length * 128 });
    }
    sameTensors(applyPlan(stories, r.plan), r.checkpoint);
    const naive = await prune(stories, node, windows, opts(comp, { reuse: false }));
    expect(naive.plan.removed).toEqual(r.plan.removed);
    r.plan.steps.forEach((st, i) => st.map && expect(maxRelError(st.map.T, naive.plan.steps[i].map!.T)).toBeLessThan(1e-5));
    console.log(`[fit] ${comp}: removed ${r.plan.removed.join(', ')}; residuals ${r.plan.steps.map((s) => s.map?.residual.toFixed(4) ?? `scalar ${s.scale.toFixed(4)}`).join(', ')}`);
  });

  test('reverse: every cut has a layer before it, so every step is a map; cl: one map for the whole span', async () => {
    const r = await prune(stories, node, windows, { metric: 'reverse', mode: 'prunecomp', layers: 4, comp: 'linear' });
    // reverse removes the last layer first: 4, 3, 2, 1 — each has a layer before it
    expect(r.plan.removed).toEqual([4, 3, 2, 1]);
    expect(r.plan.steps.every((s) => s.map?.kind === 'linear')).toBe(true);
    const cl = await prune(stories, node, windows, { metric: 'cl', mode: 'prunecomp', layers: 2, comp: 'linear', barriers: { skipFirst: 0, skipLast: 0 } });
    const first = cl.plan.steps[0];
    // one map for the whole block (ReplaceMe's one-shot span), or the scalar when the block starts at 0
    if (first.at === 0) expect(first.map).toBeUndefined();
    else expect(first.map).toMatchObject({ kind: 'linear', layer: first.at - 1 });
    expect(cl.plan.steps.slice(1).every((s) => !s.map)).toBe(true);
    sameTensors(applyPlan(stories, cl.plan), cl.checkpoint);
  });

  const runtimes: [string, () => Promise<Runtime>][] = [
    ['onnxruntime-node, layer-streamed', async () => ({ ...node, execution: 'streamed' })],
    ['onnxruntime-web WASM', async () => webWasmRuntime(1)],
  ];
  test.each(runtimes)('%s gives the whole-graph plan and maps (T within 1e-3, calibration ppl within 1e-5)', async (_, make) => {
    const runtime = await make();
    const base = await prune(stories, node, windows, opts('linear', { layers: 2 }));
    const other = await prune(stories, runtime, windows, opts('linear', { layers: 2 }));
    expect(other.plan.removed).toEqual(base.plan.removed);
    base.plan.steps.forEach((st, i) => expect(maxRelError(other.plan.steps[i].map!.T, st.map!.T)).toBeLessThan(1e-3));
    const ppl = async (ck: Checkpoint) => {
      const e = new Engine(ck, node);
      try {
        return (await e.perplexity(windows.flatMap((w) => w), 128)).ppl;
      } finally {
        await e.dispose();
      }
    };
    const [a, b] = [await ppl(base.checkpoint), await ppl(other.checkpoint)];
    expect(Math.abs(a / b - 1)).toBeLessThan(1e-5);
  });
});

describe('the perplexity budget', () => {
  /** Calibration perplexity of a model on the windows, measured afresh. */
  async function calibPpl(ck: Checkpoint): Promise<number> {
    const e = new Engine(ck, node);
    try {
      return (await e.windowsPerplexity(windows)).ppl;
    } finally {
      await e.dispose();
    }
  }

  test.each(['scalar', 'linear'] as const)('%s: each kept cut\'s perplexity is its model\'s, and the run stops before the first that exceeds B × dense', async (comp) => {
    const dense = await calibPpl(stories);
    // scalar with the tied fold: with the paper's, reused streams before a cut are s·X only up to RMSNorm's ε
    // (plan.test.ts), which over 4 cuts moves the perplexity by 3e-4; the tied fold's reuse is exact
    const fold = 'tied';
    const full = await prune(stories, node, windows, { metric: 'bi', mode: 'prunecomp', layers: 4, comp, fold, budget: Number.MAX_VALUE });
    const b = full.plan.budget!;
    expect(b.stopped).toBe('layers');
    expect(b.ppls).toHaveLength(4);
    expect(Math.abs(b.densePpl / dense - 1)).toBeLessThan(1e-6);
    // each kept cut's perplexity is that of the model after those cuts
    for (let i = 0; i < 4; i++) {
      const plan = { ...full.plan, steps: full.plan.steps.slice(0, i + 1), removed: full.plan.removed.slice(0, i + 1) };
      expect(Math.abs(b.ppls[i] / (await calibPpl(applyPlan(stories, plan))) - 1)).toBeLessThan(1e-6);
    }
    // a budget between the 2nd and 3rd cut's perplexity keeps 2 cuts, and names the 3rd
    const B = Math.sqrt(b.ppls[1] * b.ppls[2]) / dense;
    const r = await prune(stories, node, windows, { metric: 'bi', mode: 'prunecomp', layers: 4, comp, fold, budget: B });
    expect(r.plan.removed).toEqual(full.plan.removed.slice(0, 2));
    expect(r.plan.budget).toMatchObject({ stopped: 'budget', rejected: { removed: full.plan.removed[2] } });
    expect(r.plan.budget!.rejected!.ppl).toBeGreaterThan(B * dense);
    expect(r.checkpoint.config.numLayers).toBe(3);
    console.log(`[fit] budget, ${comp}: dense ${dense.toFixed(4)}, after each cut ${b.ppls.map((p) => p.toFixed(3)).join(', ')}; B = ${B.toFixed(3)} keeps ${r.plan.removed.length}`);
  });

  test('a budget is refused where it means nothing: one-shot modes, the cl block, a factor below 1', async () => {
    await expect(prune(stories, node, windows, { metric: 'bi', mode: 'baseline', layers: 2, budget: 5 })).rejects.toThrow(lopperError('bad-option', /one layer at a time/));
    await expect(prune(stories, node, windows, { metric: 'cl', mode: 'prunecomp', layers: 2, budget: 5 })).rejects.toThrow(lopperError('bad-option', /cl metric/));
    await expect(prune(stories, node, windows, { metric: 'bi', mode: 'prunecomp', layers: 2, budget: 0.5 })).rejects.toThrow(lopperError('bad-option', /factor ≥ 1/));
    await expect(prune(stories, node, windows, { metric: 'bi', mode: 'prunecomp', layers: 2, comp: 'cubic' as 'linear' })).rejects.toThrow(lopperError('bad-option', /unknown compensation "cubic"/));
  });
});
