/**
 * Linear compensation maps (ReplaceMe, arXiv 2505.02819) fitted by least squares. For removing
 * layers k..j−1 of the current model (j = k+1 for one layer), with p = k − 1 the kept layer
 * before the cut, over every calibration token (every position of every window, BOS included;
 * rows are tokens, D the hidden size):
 *
 *   Y = X_p + Attn_p(X_p)          layer p's stream after its attention residual   [tokens, D]
 *   M = MLP_p(RMSNorm_ffn(Y))      layer p's MLP output, so X_k = Y + M           [tokens, D]
 *   A = X_j − Y                    what layer p's MLP would have to write for the stream to
 *                                  reach X_j with layers k..j−1 gone              [tokens, D]
 *
 *   linear  T = (MᵀM + αI)⁻¹ MᵀA   (D×D)        minimises ‖M·T − A‖² + α‖T‖²
 *   diag    T = diag((MᵀA)_cc / ((MᵀM)_cc + α))  the same, T restricted to a diagonal
 *
 * Since M = h·W_downᵀ (h the MLP's hidden activations [tokens, F], W_down [D, F]), M·T =
 * h·(Tᵀ·W_down)ᵀ: folding is `down_proj_p ← Tᵀ · down_proj_p` (bias b ← Tᵀ·b), after which
 * layer p writes Y + M·T ≈ X_j and layers k..j−1 are deleted (surgery.ts, foldMap).
 * Gram matrices are accumulated and the system solved in Float64.
 */
import { LopperError } from '../errors';
import type { Comp } from './options';

/** A fitted map, as a plan step keeps it (enough to fold it again: apply.ts). */
export interface CompMap {
  kind: Exclude<Comp, 'scalar'>;
  /** the layer whose down_proj it folds into: p, in the numbering of the model the step ran on */
  layer: number;
  /** linear: T [D, D] row-major (T[i·D + j]); diag: its diagonal [D] */
  T: Float64Array;
  /** the ridge term α */
  alpha: number;
  /** calibration tokens fitted on */
  tokens: number;
  /** ‖M·T − A‖² / ‖A‖² on those tokens: how much of the removed layers' effect the map cannot express */
  residual: number;
  /** the same for T = I (no compensation: the layers simply deleted), to compare */
  residualNone: number;
}

/** Running sums over tokens of MᵀM, MᵀA and AᵀA's trace, in Float64. */
export class GramAccumulator {
  /** MᵀM [D, D] (only i ≤ j is accumulated; `solve` mirrors it) */
  private readonly mm: Float64Array;
  /** MᵀA [D, D] */
  private readonly ma: Float64Array;
  /** Σ ‖A_t‖², Σ ‖A_t − M_t‖² */
  private aa = 0;
  private none = 0;
  tokens = 0;

  constructor(readonly D: number) {
    this.mm = new Float64Array(D * D);
    this.ma = new Float64Array(D * D);
  }

  /** Add `T` tokens: m = M rows, a = A rows, both [T, D] row-major. */
  add(m: Float32Array | Float64Array, a: Float32Array | Float64Array): void {
    const D = this.D;
    if (m.length !== a.length || m.length % D !== 0) throw new LopperError('bad-input', `M and A must both be [tokens, ${D}] (got ${m.length} and ${a.length} values)`);
    const T = m.length / D;
    for (let i = 0; i < m.length; i++) {
      this.aa += a[i] * a[i];
      this.none += (a[i] - m[i]) ** 2;
    }
    // tokens four at a time: each row of the sums is read and written once per four tokens
    const mt = new Float64Array(4 * D);
    const at = new Float64Array(4 * D);
    for (let t0 = 0; t0 < T; t0 += 4) {
      const n = Math.min(4, T - t0);
      mt.fill(0);
      at.fill(0);
      for (let i = 0; i < n * D; i++) {
        mt[i] = m[t0 * D + i];
        at[i] = a[t0 * D + i];
      }
      const [m1, m2, m3] = [D, 2 * D, 3 * D];
      for (let i = 0; i < D; i++) {
        const p0 = mt[i];
        const p1 = mt[m1 + i];
        const p2 = mt[m2 + i];
        const p3 = mt[m3 + i];
        if (p0 === 0 && p1 === 0 && p2 === 0 && p3 === 0) continue;
        const row = i * D;
        for (let j = i; j < D; j++) this.mm[row + j] += p0 * mt[j] + p1 * mt[m1 + j] + p2 * mt[m2 + j] + p3 * mt[m3 + j];
        for (let j = 0; j < D; j++) this.ma[row + j] += p0 * at[j] + p1 * at[m1 + j] + p2 * at[m2 + j] + p3 * at[m3 + j];
      }
    }
    this.tokens += T;
  }

  /** Solve for T (see the file comment). `what` names the cut in error messages. */
  solve(kind: CompMap['kind'], alpha: number, layer: number, what: string): CompMap {
    const D = this.D;
    if (!(alpha >= 0) || !Number.isFinite(alpha)) throw new LopperError('bad-option', `the ridge term α must be a finite number ≥ 0 (got ${alpha})`);
    if (this.tokens === 0) throw new LopperError('bad-input', `no calibration tokens to fit the map for ${what}`);
    const mm = this.mm;
    for (let i = 0; i < D; i++) for (let j = 0; j < i; j++) mm[i * D + j] = mm[j * D + i];
    let T: Float64Array;
    if (kind === 'diag') {
      T = new Float64Array(D);
      // a channel M never writes (MᵀM_cc = 0) is unaffected by its factor: keep it at 1
      for (let c = 0; c < D; c++) T[c] = mm[c * D + c] + alpha > 0 ? this.ma[c * D + c] / (mm[c * D + c] + alpha) : 1;
    } else {
      const g = Float64Array.from(mm);
      for (let c = 0; c < D; c++) g[c * D + c] += alpha;
      const chol = cholesky(g, D);
      if (!chol) {
        throw new LopperError(
          'bad-input',
          `cannot fit the ${D}×${D} linear map for ${what}: MᵀM over ${this.tokens} calibration tokens is singular or ill-conditioned ` +
            `(a ${D}×${D} map needs well over ${D} tokens whose MLP outputs span all ${D} channels); calibrate on more text (--calib-windows) or add a ridge term (--alpha, e.g. 1e-4)`,
        );
      }
      T = choleskySolve(chol, D, this.ma);
    }
    return { kind, layer, T, alpha, tokens: this.tokens, residual: this.residualOf(kind, T), residualNone: this.none / this.aa };
  }

  /** ‖M·T − A‖² / ‖A‖² = (tr(TᵀMᵀM T) − 2 tr(TᵀMᵀA) + tr(AᵀA)) / tr(AᵀA), from the sums. */
  private residualOf(kind: CompMap['kind'], T: Float64Array): number {
    const D = this.D;
    const mm = this.mm;
    const ma = this.ma;
    let quad = 0;
    let cross = 0;
    if (kind === 'diag') {
      for (let c = 0; c < D; c++) {
        quad += T[c] * T[c] * mm[c * D + c];
        cross += T[c] * ma[c * D + c];
      }
    } else {
      // tr(Tᵀ G T) = Σ_c (T[:,c])ᵀ G T[:,c]; tr(Tᵀ B) = Σ_ij T_ij B_ij
      const gt = new Float64Array(D);
      for (let c = 0; c < D; c++) {
        gt.fill(0);
        for (let i = 0; i < D; i++) {
          let s = 0;
          for (let j = 0; j < D; j++) s += mm[i * D + j] * T[j * D + c];
          gt[i] = s;
        }
        for (let i = 0; i < D; i++) quad += T[i * D + c] * gt[i];
      }
      for (let i = 0; i < D * D; i++) cross += T[i] * ma[i];
    }
    return Math.max(0, quad - 2 * cross + this.aa) / this.aa;
  }
}

/**
 * Lower-triangular L with L·Lᵀ = g (g symmetric [D, D]), or null when g is not numerically
 * positive definite: a pivot ≤ 1e-12 × the largest diagonal entry (then the least-squares
 * problem has no unique solution at Float64 precision).
 */
export function cholesky(g: Float64Array, D: number): Float64Array | null {
  let maxDiag = 0;
  for (let i = 0; i < D; i++) maxDiag = Math.max(maxDiag, g[i * D + i]);
  if (!(maxDiag > 0)) return null;
  const tol = 1e-12 * maxDiag;
  const l = new Float64Array(D * D);
  for (let j = 0; j < D; j++) {
    let d = g[j * D + j];
    for (let k = 0; k < j; k++) d -= l[j * D + k] * l[j * D + k];
    if (!(d > tol)) return null;
    const ljj = Math.sqrt(d);
    l[j * D + j] = ljj;
    for (let i = j + 1; i < D; i++) {
      let s = g[i * D + j];
      for (let k = 0; k < j; k++) s -= l[i * D + k] * l[j * D + k];
      l[i * D + j] = s / ljj;
    }
  }
  return l;
}

/**
 * X [D, D] with (L·Lᵀ)·X = B: forward (L·Y = B) then back (Lᵀ·X = Y) substitution, all D
 * right-hand sides at once, row by row (inner loops run along contiguous rows, four earlier
 * rows folded into a row per pass over it).
 */
export function choleskySolve(l: Float64Array, D: number, b: Float64Array): Float64Array {
  const x = Float64Array.from(b); // Y, then X, in place
  /** x[i,:] −= Σ_{k in ks} coef(k)·x[k,:], four k at a time */
  const subtractRows = (i: number, ks: number[], coef: (k: number) => number) => {
    const xi = i * D;
    for (let q = 0; q < ks.length; q += 4) {
      const n = Math.min(4, ks.length - q);
      const k0 = ks[q] * D;
      const k1 = n > 1 ? ks[q + 1] * D : k0;
      const k2 = n > 2 ? ks[q + 2] * D : k0;
      const k3 = n > 3 ? ks[q + 3] * D : k0;
      const c0 = coef(ks[q]);
      const c1 = n > 1 ? coef(ks[q + 1]) : 0;
      const c2 = n > 2 ? coef(ks[q + 2]) : 0;
      const c3 = n > 3 ? coef(ks[q + 3]) : 0;
      for (let c = 0; c < D; c++) x[xi + c] -= c0 * x[k0 + c] + c1 * x[k1 + c] + c2 * x[k2 + c] + c3 * x[k3 + c];
    }
    const inv = 1 / l[i * D + i];
    for (let c = 0; c < D; c++) x[xi + c] *= inv;
  };
  const ks: number[] = [];
  // forward: Y[i,:] = (B[i,:] − Σ_{k<i} L[i,k]·Y[k,:]) / L[i,i]
  for (let i = 0; i < D; i++) {
    ks.length = 0;
    for (let k = 0; k < i; k++) ks.push(k);
    subtractRows(i, ks, (k) => l[i * D + k]);
  }
  // back: X[i,:] = (Y[i,:] − Σ_{k>i} L[k,i]·X[k,:]) / L[i,i]
  for (let i = D - 1; i >= 0; i--) {
    ks.length = 0;
    for (let k = i + 1; k < D; k++) ks.push(k);
    subtractRows(i, ks, (k) => l[k * D + i]);
  }
  return x;
}
