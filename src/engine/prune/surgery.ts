/**
 * Model surgery for Prune&Comp (docs/PRUNE_AND_COMP.md §2): delete decoder layers and fold
 * the compensation scale `s` into existing weights. Every function is pure: it returns a
 * new Checkpoint (new config, new tensor Map) that shares every tensor it did not change
 * with its input, and never writes into the input's tensors. Nothing is copied: a folded
 * tensor is derived (lazy), its product computed from the original's values when a pass, an
 * export or a test reads it.
 *
 * Tensors touched (D hidden, F intermediate, H heads, hd head dim, V vocab):
 *   model.embed_tokens.weight            [V, D]     ×s   (foldScalePaper)
 *   lm_head.weight                       [V, D]     the embedding's values (untieEmbeddings)
 *   model.layers.{l}.self_attn.o_proj.weight [D, H*hd]  ×s (l < cut, paper) or ×1/s (l ≥ cut, tied)
 *   model.layers.{l}.self_attn.o_proj.bias   [D]        the same factor (oBias)
 *   model.layers.{l}.mlp.down_proj.weight    [D, F]     the same factor
 *   model.layers.{l}.mlp.down_proj.bias      [D]        the same factor (mlpBias)
 *
 * These are exactly the tensors that write into the residual stream (X_0 and each layer's
 * two residual updates), so scaling them scales the stream; every layer reads the stream
 * through an RMSNorm, which cancels a positive scalar up to its ε term.
 */
import { LopperError } from '../errors';
import { layerPrefix, type Checkpoint } from '../model/checkpoint';
import { elements, f32Tensor, fromFloat32, lazyTensor, toFloat32, type Tensor } from '../model/tensor';
import type { CompMap } from './fit';
import type { Fold } from './options';

const EMBED = 'model.embed_tokens.weight';
const LM_HEAD = 'lm_head.weight';
const LAYER_NAME = /^model\.layers\.(\d+)\.(.+)$/;

/** Suffixes (after `model.layers.{l}.`) of the tensors that write into the residual stream. */
const RESIDUAL_WRITERS = ['self_attn.o_proj.weight', 'self_attn.o_proj.bias', 'mlp.down_proj.weight', 'mlp.down_proj.bias'];

// ----------------------------------------------------------------------------
// Layer deletion

/**
 * Delete the decoder layers at `layers` (indices in `ck`'s current numbering, any order)
 * and renumber the rest contiguously: with L = 5 and layers [1, 3], old layers 0, 2, 4
 * become 0, 1, 2. config.numLayers becomes L − layers.length. Throws on an index outside
 * [0, L), on duplicates, and when no layer would remain. config.layerTypes (HF
 * `layer_types`), when present, loses the removed layers' entries.
 */
export function removeLayers(ck: Checkpoint, layers: readonly number[]): Checkpoint {
  const L = ck.config.numLayers;
  const drop = new Set<number>();
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= L) throw new LopperError('bad-option', `layer ${l} is outside [0, ${L})`, ck.source);
    if (drop.has(l)) throw new LopperError('bad-option', `layer ${l} is listed twice`, ck.source);
    drop.add(l);
  }
  if (drop.size >= L) throw new LopperError('bad-option', `cannot remove all ${L} layers: at least one must remain`, ck.source);
  if (drop.size === 0) return { ...ck, config: { ...ck.config }, tensors: new Map(ck.tensors) };

  // newIndex[old] = position among the kept layers, or -1 for a removed one
  const newIndex: number[] = [];
  let next = 0;
  for (let l = 0; l < L; l++) newIndex.push(drop.has(l) ? -1 : next++);

  const tensors = new Map<string, Tensor>();
  for (const [name, t] of ck.tensors) {
    const m = LAYER_NAME.exec(name);
    if (!m) {
      tensors.set(name, t);
      continue;
    }
    const to = newIndex[Number(m[1])];
    if (to === undefined) throw new LopperError('corrupt', `tensor "${name}" belongs to no layer of ${L}`, ck.source);
    if (to >= 0) tensors.set(layerPrefix(to) + m[2], t);
  }
  const config = { ...ck.config, numLayers: L - drop.size };
  if (ck.config.layerTypes) config.layerTypes = ck.config.layerTypes.filter((_, l) => !drop.has(l));
  return { ...ck, config, tensors };
}

// ----------------------------------------------------------------------------
// Untying

/**
 * Give the model its own LM head: lm_head.weight [V, D] = the embedding (the same tensor: a fold derives new ones), and
 * tieWordEmbeddings false. Logits are unchanged. An untied model is returned as a
 * shallow copy (nothing to do).
 */
export function untieEmbeddings(ck: Checkpoint): Checkpoint {
  const tensors = new Map(ck.tensors);
  if (!ck.config.tieWordEmbeddings) return { ...ck, config: { ...ck.config }, tensors };
  // Tensors are never written into (a fold derives a new one), so the head shares the embedding's.
  tensors.set(LM_HEAD, getTensor(ck, EMBED));
  return { ...ck, config: { ...ck.config, tieWordEmbeddings: false }, tensors };
}

// ----------------------------------------------------------------------------
// Folding the compensation scale

/**
 * Whether folding at `cut` changes nothing: cut === numLayers means the removed layer was
 * the last one, its output X_L only feeds the final RMSNorm, which cancels any positive
 * scalar (up to ε), so there is nothing to compensate. Both folds return their input
 * unchanged (the same object) in that case; callers can test this up front, or test
 * `folded === input` afterwards.
 */
export function foldIsNoop(ck: Checkpoint, cut: number): boolean {
  checkCut(ck, cut);
  return cut === ck.config.numLayers;
}

/**
 * The official Prune&Comp fold (magcomp.py), after deleting the layer that sat before
 * index `cut` (indices in the new, shorter list: `cut` is the first layer after the
 * removed one, 0 ≤ cut ≤ numLayers):
 *
 *   embed_tokens ×= s
 *   for l < cut:  o_proj ×= s,  down_proj ×= s   (and their biases)
 *
 * so the stream that reaches layer `cut` is s·X_cut. Exact up to the RMSNorm ε terms of
 * layers < cut (their inputs are s times larger).
 *
 * Requires an untied model: with tied embeddings, scaling embed_tokens would also scale
 * the LM head (a temperature change on the logits). A tied model throws 'bad-option';
 * call untieEmbeddings first, or use foldScaleTied. At cut === numLayers (the last layer
 * was removed) this is a no-op and returns `ck` itself (see foldIsNoop), tied or not.
 *
 * Scaled tensors keep their storage dtype: values are scaled in float64 and rounded back
 * to the dtype (f32, or f16/bf16 round-to-nearest-even through f32, so the product can be
 * double-rounded at an exact tie: at most 1 ulp, and only then). Unless s is a power of two
 * this rounding is the one inexactness the fold adds over an explicit ×s.
 */
export function foldScalePaper(ck: Checkpoint, cut: number, s: number): Checkpoint {
  checkScale(ck, s);
  if (foldIsNoop(ck, cut)) return ck;
  if (ck.config.tieWordEmbeddings) {
    throw new LopperError(
      'bad-option',
      'the paper fold scales embed_tokens, which a tied model shares with its LM head: untie the embeddings first (untieEmbeddings) or use the tie-preserving fold (foldScaleTied)',
      ck.source,
    );
  }
  const tensors = new Map(ck.tensors);
  tensors.set(EMBED, scaleTensor(getTensor(ck, EMBED), s, EMBED, ck.source));
  for (let l = 0; l < cut; l++) scaleResidualWriters(ck, tensors, l, s);
  return { ...ck, config: { ...ck.config }, tensors };
}

/**
 * The tie-preserving fold [ours]: instead of making everything before the cut s times
 * larger, make everything from the cut on 1/s times smaller:
 *
 *   for l ≥ cut:  o_proj ×= 1/s,  down_proj ×= 1/s   (and their biases)
 *
 * The stream from layer `cut` on is then (1/s) times the explicitly compensated one; the
 * RMSNorms of layers ≥ cut and the final norm cancel that global factor, so the logits
 * are the same up to those norms' ε terms. The embedding is untouched, so tied and untied
 * models both work. At cut === numLayers it is a no-op and returns `ck` itself. Storage
 * dtypes are kept as in foldScalePaper.
 */
export function foldScaleTied(ck: Checkpoint, cut: number, s: number): Checkpoint {
  checkScale(ck, s);
  if (foldIsNoop(ck, cut)) return ck;
  const tensors = new Map(ck.tensors);
  for (let l = cut; l < ck.config.numLayers; l++) scaleResidualWriters(ck, tensors, l, 1 / s);
  return { ...ck, config: { ...ck.config }, tensors };
}

/**
 * Fold a linear (or diagonal) compensation map into layer `map.layer`'s MLP output (fit.ts):
 *
 *   down_proj [D, F] ← Tᵀ · down_proj,   down_proj.bias [D] ← Tᵀ · bias
 *
 * so the layer writes M·T where it wrote M. Values are computed in float64 and rounded once to
 * the tensor's dtype (f32, or on to f16/bf16); an overflow of the dtype is refused. The product
 * is computed when the tensor is first read and kept (a D×D map mixes every row of down_proj).
 */
export function foldMap(ck: Checkpoint, map: CompMap): Checkpoint {
  const { hiddenSize: D, numLayers: L } = ck.config;
  if (!Number.isInteger(map.layer) || map.layer < 0 || map.layer >= L) throw new LopperError('bad-option', `map layer ${map.layer} is outside [0, ${L})`, ck.source);
  if (map.T.length !== (map.kind === 'diag' ? D : D * D)) throw new LopperError('bad-option', `a ${map.kind} map for hidden size ${D} has ${map.kind === 'diag' ? D : D * D} values, not ${map.T.length}`, ck.source);
  for (const v of map.T) if (!Number.isFinite(v)) throw new LopperError('bad-option', `the ${map.kind} map for layer ${map.layer} has a non-finite entry`, ck.source);
  const tensors = new Map(ck.tensors);
  for (const suffix of ['mlp.down_proj.weight', 'mlp.down_proj.bias']) {
    const name = layerPrefix(map.layer) + suffix;
    const t = ck.tensors.get(name);
    if (t) tensors.set(name, mappedTensor(t, map, name, ck.source));
    else if (suffix.endsWith('.weight')) throw new LopperError('missing-tensor', `missing tensor "${name}"`, ck.source);
  }
  return { ...ck, config: { ...ck.config }, tensors };
}

/** Layer `l` with its MLP writing nothing (down_proj and its bias zero): its output is its post-attention stream Y (fit.ts). */
export function zeroMlpOutput(ck: Checkpoint, l: number): Checkpoint {
  const tensors = new Map(ck.tensors);
  for (const suffix of ['mlp.down_proj.weight', 'mlp.down_proj.bias']) {
    const name = layerPrefix(l) + suffix;
    const t = ck.tensors.get(name);
    if (t) tensors.set(name, f32Tensor([...t.shape]));
    else if (suffix.endsWith('.weight')) throw new LopperError('missing-tensor', `missing tensor "${name}"`, ck.source);
  }
  return { ...ck, config: { ...ck.config }, tensors };
}

/** Tᵀ · t for t [D, F] (or [D]), computed once on first read (see foldMap). */
function mappedTensor(t: Tensor, map: CompMap, name: string, source: string): Tensor {
  const D = t.shape[0];
  const F = t.shape.length === 2 ? t.shape[1] : 1;
  let values: Float32Array | Uint16Array | undefined;
  const compute = () => {
    const w = toFloat32(t); // [D, F]
    const out = new Float32Array(D * F);
    if (map.kind === 'diag') {
      for (let i = 0; i < D; i++) for (let f = 0; f < F; f++) out[i * F + f] = map.T[i] * w[i * F + f];
    } else {
      // rows i..i+3 of Tᵀ·W = Σ_j T[j, i..i+3] · W[j, :], four output rows per read of W
      const acc = new Float64Array(4 * F);
      for (let i = 0; i < D; i += 4) {
        const n = Math.min(4, D - i);
        acc.fill(0);
        for (let j = 0; j < D; j++) {
          const tj = j * D + i;
          const [t0, t1, t2, t3] = [map.T[tj], n > 1 ? map.T[tj + 1] : 0, n > 2 ? map.T[tj + 2] : 0, n > 3 ? map.T[tj + 3] : 0];
          if (t0 === 0 && t1 === 0 && t2 === 0 && t3 === 0) continue;
          const row = j * F;
          for (let f = 0; f < F; f++) {
            const v = w[row + f];
            acc[f] += t0 * v;
            acc[F + f] += t1 * v;
            acc[2 * F + f] += t2 * v;
            acc[3 * F + f] += t3 * v;
          }
        }
        out.set(Float32Array.from(acc.subarray(0, n * F)), i * F);
      }
    }
    const stored = fromFloat32(out, [...t.shape], t.dtype);
    const check = t.dtype === 'f32' ? out : toFloat32(stored);
    for (let i = 0; i < check.length; i++) {
      if (!Number.isFinite(check[i])) throw new LopperError('bad-option', `folding the ${map.kind} map into "${name}" overflows its ${t.dtype} storage`, source);
    }
    return stored.data;
  };
  return lazyTensor(t.dtype, [...t.shape], (start, n) => (values ??= compute()).subarray(start, start + n));
}

// ----------------------------------------------------------------------------
// One cut: the unit every pruned model is built from

/**
 * One cut of a plan: delete `layers` (indices in `ck`'s current numbering), then fold
 * `scale` at the first removed index the way `fold` says ('none': no compensation). The
 * paper's fold unties tied embeddings first. Removing the last layer(s) folds nothing
 * (the final RMSNorm cancels any scalar; see foldIsNoop) and unties nothing.
 *
 * The pruning loop (Calibrated.removeLayer, plan.ts) and applyPlan (apply.ts) both build
 * their models with this function, so a model rebuilt from a plan is the same floats.
 */
export interface Cut {
  /** current indices of the layers removed together (one layer, or a contiguous block) */
  layers: readonly number[];
  fold: Fold | 'none';
  /** the compensation scale (ignored when fold is 'none') */
  scale: number;
  /** a linear/diag map folded into the layer before the cut instead of a scale (fit.ts; fold is then 'none') */
  map?: CompMap;
}

export function applyCut(ck: Checkpoint, cut: Cut): Checkpoint {
  const out = removeLayers(ck, cut.layers);
  if (cut.map) return foldMap(out, cut.map);
  if (cut.fold === 'none' || cut.layers.length === 0) return out;
  const at = Math.min(...cut.layers);
  if (foldIsNoop(out, at)) return out;
  if (cut.fold === 'paper') return foldScalePaper(untieEmbeddings(out), at, cut.scale);
  return foldScaleTied(out, at, cut.scale);
}

// ----------------------------------------------------------------------------
// Helpers

function checkCut(ck: Checkpoint, cut: number): void {
  const L = ck.config.numLayers;
  if (!Number.isInteger(cut) || cut < 0 || cut > L) throw new LopperError('bad-option', `cut ${cut} is outside [0, ${L}]`, ck.source);
}

/** RMSNorm(αx) = RMSNorm(x) only for α > 0: a zero, negative or non-finite scale is refused. */
function checkScale(ck: Checkpoint, s: number): void {
  if (!Number.isFinite(s) || s <= 0) throw new LopperError('bad-option', `compensation scale ${s} must be a finite positive number`, ck.source);
}

function getTensor(ck: Checkpoint, name: string): Tensor {
  const t = ck.tensors.get(name);
  if (!t) throw new LopperError('missing-tensor', `missing tensor "${name}"`, ck.source);
  return t;
}

/** Put layer l's o_proj and down_proj (and their biases, if present) × f into `tensors`. */
function scaleResidualWriters(ck: Checkpoint, tensors: Map<string, Tensor>, l: number, f: number): void {
  for (const suffix of RESIDUAL_WRITERS) {
    const name = layerPrefix(l) + suffix;
    const t = ck.tensors.get(name);
    if (t) tensors.set(name, scaleTensor(t, f, name, ck.source));
    else if (suffix.endsWith('.weight')) throw new LopperError('missing-tensor', `missing tensor "${name}"`, ck.source);
  }
}

/**
 * t × f in t's own dtype, as a lazy tensor (model/tensor.ts) that computes the product from t's
 * values when it is read: a fold copies nothing, and a model larger than memory (t itself
 * lazy, on disk) folds for free. The values are those of scaledValues.
 */
function scaleTensor(t: Tensor, f: number, name: string, source: string): Tensor {
  return lazyTensor(t.dtype, t.shape, (start, n) => scaledValues({ dtype: t.dtype, shape: [n], data: elements(t, start, n) }, f, name, source).data);
}

/**
 * A new tensor = t × f in t's own dtype (float64 product, rounded once to f32, and for
 * f16/bf16 on to 16 bits). Throws if a finite value overflows the dtype (f16 tops out at
 * 65504) rather than silently writing Inf.
 */
function scaledValues(t: Tensor, f: number, name: string, source: string): Tensor {
  const src = toFloat32(t);
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] * f;
  const scaled = fromFloat32(out, [...t.shape], t.dtype);
  const check = t.dtype === 'f32' ? out : toFloat32(scaled);
  for (let i = 0; i < src.length; i++) {
    if (Number.isFinite(src[i]) && !Number.isFinite(check[i])) {
      throw new LopperError('bad-option', `scaling "${name}" by ${f} overflows its ${t.dtype} storage (value ${src[i]})`, source);
    }
  }
  return scaled;
}
