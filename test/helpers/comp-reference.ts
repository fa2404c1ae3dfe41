/**
 * An independent Float64 reference for layer pruning with compensation (issue 14): the BI
 * loop of docs/PRUNE_AND_COMP.md §3 with four ways to compensate a removed layer k, written
 * on Float64 weight arrays without anything from src/engine/prune (it checks that code).
 *
 * Streams are row vectors over every token of every window, BOS included. For removing layer
 * k ≥ 1 of the CURRENT model (already pruned and compensated), with p = k − 1:
 *
 *   Y = X_p + Attn_p(X_p)          post-attention stream of layer p        [N, D]
 *   M = MLP_p(RMSNorm_ffn(Y))      its feed-forward output, X_k = Y + M    [N, D]
 *   A = X_{k+1} − Y                what the feed-forward output should be  [N, D]
 *
 *   linear  T = (MᵀM + αI)⁻¹ MᵀA   (least squares, α ≥ 0)                  [D, D]
 *   diag    T = diag((MᵀA)_cc / ((MᵀM)_cc + α))   (the same objective, T restricted to a diagonal)
 *   fold    down_proj_p ← Tᵀ · down_proj_p (and its bias b ← Tᵀ b), then delete layer k,
 *           so the new X_k = Y + M·T ≈ X_{k+1}.
 *
 * For k = 0 (nothing before it) linear and diag fall back to the scalar fold.
 *   scalar  s = mean_c mean_m a_m[c] / b_m[c], a_m = mean_t |X_{k+1}|, b_m = mean_t |X_k| per
 *           window m; embed ×s and o_proj, down_proj (+ biases) of every layer < k ×s (tied
 *           embeddings untied first); nothing is folded when k is the last layer.
 *   none    just delete.
 *
 * Matrices are row-major; T is stored T[i*D + j]. Tiny models only (written to be read).
 */
import { lmHeadName, type Checkpoint } from '../../src/engine/model/checkpoint';
import type { LlamaConfig } from '../../src/engine/model/config';
import { toFloat32 } from '../../src/engine/model/tensor';
import { referenceLayerParts } from '../../src/engine/reference/forward';

export type Comp = 'none' | 'scalar' | 'linear' | 'diag';

/** A model in Float64: its config and every tensor by HF name (an lm_head only when untied). */
export interface RefModel {
  config: LlamaConfig;
  tensors: Map<string, Float64Array>;
}

export function refModel(ck: Checkpoint): RefModel {
  const tensors = new Map<string, Float64Array>();
  for (const [name, t] of ck.tensors) tensors.set(name, Float64Array.from(toFloat32(t)));
  return { config: { ...ck.config }, tensors };
}

function weight(m: RefModel, name: string): Float64Array {
  const w = m.tensors.get(name);
  if (!w) throw new Error(`reference model has no tensor ${name}`);
  return w;
}

const layerName = (l: number, rest: string) => `model.layers.${l}.${rest}`;

// ----------------------------------------------------------------------------
// Forward

/** One window's streams: xs = X_0..X_L and ys = Y_0..Y_{L−1} (post-attention), each [T, D]. */
export interface WindowRun {
  T: number;
  xs: Float64Array[];
  ys: Float64Array[];
}

export function runWindow(m: RefModel, tokens: readonly number[]): WindowRun {
  const { hiddenSize: D, numLayers: L } = m.config;
  const T = tokens.length;
  const embed = weight(m, 'model.embed_tokens.weight'); // [V, D]
  let x: Float64Array = new Float64Array(T * D);
  tokens.forEach((id, t) => x.set(embed.subarray(id * D, (id + 1) * D), t * D));
  const xs = [x];
  const ys: Float64Array[] = [];
  for (let l = 0; l < L; l++) {
    const { y, out } = referenceLayerParts(m.config, (name) => weight(m, name), l, x, T);
    ys.push(y);
    xs.push((x = out));
  }
  return { T, xs, ys };
}

/** Σ over predicted tokens of the NLL of tokens[1..] given their prefix, and their count. */
function windowNll(m: RefModel, tokens: readonly number[]): { sum: number; count: number } {
  const { hiddenSize: D, vocabSize: V, rmsNormEps: eps } = m.config;
  const x = runWindow(m, tokens).xs[m.config.numLayers]; // X_L [T, D]
  const g = weight(m, 'model.norm.weight');
  const head = weight(m, m.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : lmHeadName(m.config)); // [V, D]
  const logits = new Float64Array(V);
  const xn = new Float64Array(D);
  let sum = 0;
  for (let t = 0; t + 1 < tokens.length; t++) {
    let ss = 0;
    for (let c = 0; c < D; c++) ss += x[t * D + c] ** 2;
    const rms = Math.sqrt(ss / D + eps);
    for (let c = 0; c < D; c++) xn[c] = (x[t * D + c] / rms) * g[c];
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let dot = 0;
      for (let c = 0; c < D; c++) dot += xn[c] * head[v * D + c];
      logits[v] = dot;
      if (dot > max) max = dot;
    }
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[v] - max);
    sum += max + Math.log(z) - logits[tokens[t + 1]];
  }
  return { sum, count: tokens.length - 1 };
}

/** exp(mean NLL over every predicted token of every window). */
export function refPerplexity(m: RefModel, windows: readonly (readonly number[])[]): number {
  let sum = 0;
  let count = 0;
  for (const w of windows) {
    const r = windowNll(m, w);
    sum += r.sum;
    count += r.count;
  }
  return Math.exp(sum / count);
}

// ----------------------------------------------------------------------------
// Scores and statistics, over runs (one per window)

/** BI_k = mean over windows and tokens of 1 − cos(X_k[t], X_{k+1}[t]); a NaN cosine counts 0.5. */
export function biScores(runs: readonly WindowRun[], D: number): number[] {
  const L = runs[0].xs.length - 1;
  return Array.from({ length: L }, (_, k) => {
    let sum = 0;
    let count = 0;
    for (const { T, xs } of runs) {
      for (let t = 0; t < T; t++) {
        let ab = 0;
        let aa = 0;
        let bb = 0;
        for (let c = t * D; c < (t + 1) * D; c++) {
          ab += xs[k][c] * xs[k + 1][c];
          aa += xs[k][c] ** 2;
          bb += xs[k + 1][c] ** 2;
        }
        const cos = ab / Math.sqrt(aa * bb);
        sum += 1 - (Number.isNaN(cos) ? 0.5 : cos);
        count++;
      }
    }
    return sum / count;
  });
}

/** The lowest index of the smallest value. */
const argmin = (v: readonly number[]) => v.reduce((best, x, i) => (x < v[best] ? i : best), 0);

/**
 * s = mean_c mean_m a_m[c] / b_m[c] with a_m[c] = mean_t |X_j[t, c]|, b_m[c] = mean_t |X_k[t, c]|.
 * The engine skips channels whose b is below 1e-3 × the mean b; the reference refuses them instead.
 */
export function scalarScale(runs: readonly WindowRun[], k: number, j: number, D: number): number {
  const absMean = (x: Float64Array, T: number, c: number) => {
    let s = 0;
    for (let t = 0; t < T; t++) s += Math.abs(x[t * D + c]);
    return s / T;
  };
  const b = runs.map((r) => Array.from({ length: D }, (_, c) => absMean(r.xs[k], r.T, c))); // [N][D]
  const a = runs.map((r) => Array.from({ length: D }, (_, c) => absMean(r.xs[j], r.T, c))); // [N][D]
  const meanB = b.flat().reduce((x, y) => x + y, 0) / (runs.length * D);
  let s = 0;
  for (let c = 0; c < D; c++) {
    let ratio = 0;
    for (let m = 0; m < runs.length; m++) {
      if (!(b[m][c] >= 1e-3 * meanB)) throw new Error(`channel ${c} of window ${m} has mean |X_${k}| ${b[m][c]}, near zero: no reference scale`);
      ratio += a[m][c] / b[m][c];
    }
    s += ratio / runs.length;
  }
  return s / D;
}

/** The normal equations of the fit into layer p's down_proj with target X_j: G = MᵀM, B = MᵀA ([D, D] each). */
export interface NormalEquations {
  G: Float64Array;
  B: Float64Array;
  /** rows of M and A: every token of every window */
  tokens: number;
}

export function normalEquations(runs: readonly WindowRun[], p: number, j: number, D: number): NormalEquations {
  const G = new Float64Array(D * D);
  const B = new Float64Array(D * D);
  const mRow = new Float64Array(D);
  const aRow = new Float64Array(D);
  let tokens = 0;
  for (const { T, xs, ys } of runs) {
    const y = ys[p];
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < D; c++) {
        mRow[c] = xs[p + 1][t * D + c] - y[t * D + c]; // M = X_{p+1} − Y
        aRow[c] = xs[j][t * D + c] - y[t * D + c]; //     A = X_j − Y
      }
      for (let r = 0; r < D; r++) {
        for (let c = 0; c < D; c++) {
          G[r * D + c] += mRow[r] * mRow[c];
          B[r * D + c] += mRow[r] * aRow[c];
        }
      }
      tokens++;
    }
  }
  return { G, B, tokens };
}

/**
 * T = (G + αI)⁻¹ B by Cholesky (G + αI is symmetric positive definite unless M is rank
 * deficient). Throws when it is singular: fewer tokens than D with α = 0, or a pivot that
 * is not clearly positive.
 */
export function solveLinear({ G, B, tokens }: NormalEquations, D: number, alpha = 0): Float64Array {
  if (!(alpha >= 0)) throw new Error(`alpha must be ≥ 0 (got ${alpha})`);
  if (alpha === 0 && tokens < D) throw new Error(`singular fit: ${tokens} tokens for D = ${D} channels (MᵀM has rank < D); add tokens or use alpha > 0`);
  // lower-triangular C with C Cᵀ = G + αI
  const C = new Float64Array(D * D);
  let maxDiag = 0;
  for (let i = 0; i < D; i++) maxDiag = Math.max(maxDiag, G[i * D + i] + alpha);
  for (let i = 0; i < D; i++) {
    for (let j = 0; j <= i; j++) {
      let s = G[i * D + j] + (i === j ? alpha : 0);
      for (let q = 0; q < j; q++) s -= C[i * D + q] * C[j * D + q];
      if (i === j) {
        if (!(s > 1e-13 * maxDiag)) throw new Error(`singular fit: pivot ${i} of MᵀM + αI is ${s} (${tokens} tokens, D = ${D}); use alpha > 0`);
        C[i * D + i] = Math.sqrt(s);
      } else C[i * D + j] = s / C[j * D + j];
    }
  }
  // each column of B: forward (C z = b) then back (Cᵀ t = z) substitution
  const T = new Float64Array(D * D);
  const z = new Float64Array(D);
  for (let col = 0; col < D; col++) {
    for (let i = 0; i < D; i++) {
      let s = B[i * D + col];
      for (let q = 0; q < i; q++) s -= C[i * D + q] * z[q];
      z[i] = s / C[i * D + i];
    }
    for (let i = D - 1; i >= 0; i--) {
      let s = z[i];
      for (let q = i + 1; q < D; q++) s -= C[q * D + i] * T[q * D + col];
      T[i * D + col] = s / C[i * D + i];
    }
  }
  return T;
}

/** T = diag(B_cc / (G_cc + α)), stored as a full [D, D] matrix. */
export function solveDiag({ G, B }: NormalEquations, D: number, alpha = 0): Float64Array {
  if (!(alpha >= 0)) throw new Error(`alpha must be ≥ 0 (got ${alpha})`);
  const T = new Float64Array(D * D);
  for (let c = 0; c < D; c++) {
    const g = G[c * D + c] + alpha;
    if (!(g > 0)) throw new Error(`singular diagonal fit: channel ${c} of the feed-forward output is zero on every token (α = 0)`);
    T[c * D + c] = B[c * D + c] / g;
  }
  return T;
}

// ----------------------------------------------------------------------------
// Surgery (pure: every function returns a new model and shares only untouched arrays)

/** Delete decoder layers from..to−1; later layers move down. */
export function deleteLayers(m: RefModel, from: number, to: number): RefModel {
  const n = to - from;
  const tensors = new Map<string, Float64Array>();
  for (const [name, w] of m.tensors) {
    const hit = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    if (!hit) tensors.set(name, w);
    else if (+hit[1] < from) tensors.set(name, w);
    else if (+hit[1] >= to) tensors.set(layerName(+hit[1] - n, hit[2]), w);
  }
  return { config: { ...m.config, numLayers: m.config.numLayers - n }, tensors };
}

/** A tied model gets its own LM head (a copy of the embedding), so the embedding can change alone. */
function untie(m: RefModel): RefModel {
  if (!m.config.tieWordEmbeddings) return m;
  const config = { ...m.config, tieWordEmbeddings: false };
  const tensors = new Map(m.tensors);
  tensors.set(lmHeadName(config), Float64Array.from(weight(m, 'model.embed_tokens.weight')));
  return { config, tensors };
}

const scaled = (w: Float64Array, s: number) => w.map((v) => v * s);

/** The paper's fold: embed ×s and the residual writes (o_proj, down_proj, their biases) of layers < k ×s. */
export function foldScalar(m0: RefModel, k: number, s: number): RefModel {
  const m = untie(m0);
  const tensors = new Map(m.tensors);
  const names = ['model.embed_tokens.weight'];
  for (let l = 0; l < k; l++) {
    for (const rest of ['self_attn.o_proj.weight', 'self_attn.o_proj.bias', 'mlp.down_proj.weight', 'mlp.down_proj.bias']) names.push(layerName(l, rest));
  }
  for (const name of names) if (tensors.has(name)) tensors.set(name, scaled(weight(m, name), s));
  return { config: m.config, tensors };
}

/** down_proj_p [D, F] ← Tᵀ · down_proj_p and its bias b ← Tᵀ b, so layer p's MLP output becomes M·T. */
export function foldMap(m: RefModel, p: number, T: Float64Array): RefModel {
  const { hiddenSize: D, intermediateSize: F } = m.config;
  const tensors = new Map(m.tensors);
  const W = weight(m, layerName(p, 'mlp.down_proj.weight'));
  const W2 = new Float64Array(D * F);
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < D; j++) {
      const tji = T[j * D + i]; // (Tᵀ)_ij
      if (tji === 0) continue;
      for (let f = 0; f < F; f++) W2[i * F + f] += tji * W[j * F + f];
    }
  }
  tensors.set(layerName(p, 'mlp.down_proj.weight'), W2);
  const b = m.tensors.get(layerName(p, 'mlp.down_proj.bias'));
  if (b) {
    const b2 = new Float64Array(D);
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) b2[i] += T[j * D + i] * b[j];
    tensors.set(layerName(p, 'mlp.down_proj.bias'), b2);
  }
  return { config: m.config, tensors };
}

// ----------------------------------------------------------------------------
// One removal, the loop, a contiguous span, the budget

export interface RefStep {
  /** ORIGINAL index of the removed layer */
  removed: number;
  /** its index in the model the step ran on */
  at: number;
  /** BI of every layer of that model */
  scores: number[];
  /** scalar (and linear/diag at k = 0): s, measured even where nothing is folded; otherwise 1 */
  scale: number;
  /** linear/diag at k ≥ 1: T [D, D] row-major; otherwise null */
  map: Float64Array | null;
}

/**
 * Remove layers k..j−1 of m (j = k + 1 for one layer) with `comp`, statistics from `runs`
 * (m's streams on the calibration windows): the folded model, the scale and the map.
 */
export function removeWithComp(
  m: RefModel,
  runs: readonly WindowRun[],
  k: number,
  j: number,
  comp: Comp,
  alpha = 0,
): { model: RefModel; scale: number; map: Float64Array | null } {
  const { hiddenSize: D, numLayers: L } = m.config;
  const cut = deleteLayers(m, k, j);
  if (comp === 'none') return { model: cut, scale: 1, map: null };
  if (comp === 'scalar' || k === 0) {
    const s = scalarScale(runs, k, j, D);
    // removing the last layers: the final RMSNorm cancels a scalar, nothing to fold
    return { model: j < L ? foldScalar(cut, k, s) : cut, scale: s, map: null };
  }
  const eq = normalEquations(runs, k - 1, j, D);
  const T = comp === 'linear' ? solveLinear(eq, D, alpha) : solveDiag(eq, D, alpha);
  return { model: foldMap(cut, k - 1, T), scale: 1, map: T };
}

export interface LoopOptions {
  comp: Comp;
  /** ridge term α of the linear and diagonal fits (default 0) */
  alpha?: number;
}

/** One step of the loop on the current model: BI, k = argmin, compensate, delete. */
export function referenceStep(m: RefModel, windows: readonly (readonly number[])[], original: number[], opts: LoopOptions): { model: RefModel; step: RefStep } {
  const runs = windows.map((w) => runWindow(m, w));
  const scores = biScores(runs, m.config.hiddenSize);
  const k = argmin(scores);
  const r = removeWithComp(m, runs, k, k + 1, opts.comp, opts.alpha);
  const step: RefStep = { removed: original[k], at: k, scores, scale: r.scale, map: r.map };
  original.splice(k, 1);
  return { model: r.model, step };
}

/** n iterative steps (docs §3) from the checkpoint: the removed original indices, the steps, the pruned model. */
export function referenceLoop(ck: Checkpoint, windows: readonly (readonly number[])[], opts: LoopOptions & { n: number }) {
  let model = refModel(ck);
  const original = [...Array(ck.config.numLayers).keys()];
  const steps: RefStep[] = [];
  for (let i = 0; i < opts.n; i++) {
    const r = referenceStep(model, windows, original, opts);
    model = r.model;
    steps.push(r.step);
  }
  return { removed: steps.map((s) => s.removed), steps, model };
}

/**
 * One map for the contiguous block i..i+n−1 (i ≥ 1): p = i − 1, A = X_{i+n} − Y_p, folded into
 * down_proj_p, the block deleted. Perplexity of the result on `evalWindows` (default: `windows`).
 */
export function referenceSpanFit(
  ck: Checkpoint,
  windows: readonly (readonly number[])[],
  i: number,
  n: number,
  comp: 'linear' | 'diag',
  opts: { alpha?: number; evalWindows?: readonly (readonly number[])[] } = {},
) {
  const L = ck.config.numLayers;
  if (!(Number.isInteger(i) && Number.isInteger(n) && i >= 1 && n >= 1 && i + n <= L)) throw new Error(`block ${i}..${i + n - 1} must lie in 1..${L - 1}`);
  const m = refModel(ck);
  const runs = windows.map((w) => runWindow(m, w));
  const r = removeWithComp(m, runs, i, i + n, comp, opts.alpha);
  return { map: r.map as Float64Array, model: r.model, ppl: refPerplexity(r.model, opts.evalWindows ?? windows) };
}

/**
 * The loop one cut at a time while the calibration perplexity stays within budget × the
 * dense one: n = the cuts kept (it stops BEFORE the first cut over budget, or at maxLayers).
 * perplexities[i] is the calibration perplexity after i + 1 cuts, the rejected cut's included.
 */
export function referenceBudget(ck: Checkpoint, calibWindows: readonly (readonly number[])[], opts: LoopOptions & { budget: number; maxLayers?: number }) {
  const maxLayers = opts.maxLayers ?? ck.config.numLayers - 1;
  let model = refModel(ck);
  const dense = refPerplexity(model, calibWindows);
  const original = [...Array(ck.config.numLayers).keys()];
  const steps: RefStep[] = [];
  const perplexities: number[] = [];
  while (steps.length < maxLayers) {
    const r = referenceStep(model, calibWindows, original, opts);
    const ppl = refPerplexity(r.model, calibWindows);
    perplexities.push(ppl);
    if (ppl > opts.budget * dense) break;
    model = r.model;
    steps.push(r.step);
  }
  return { n: steps.length, removed: steps.map((s) => s.removed), steps, dense, perplexities, model };
}
