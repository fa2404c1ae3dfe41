/**
 * A plain Float64 forward pass of the Llama decoder: the oracle every engine path is
 * checked against. Written to be read, not to be fast (tiny models only), in the spirit
 * of llama2.c's run.c. Notation as in docs/PRUNE_AND_COMP.md; for layer k
 *
 *   h'      = X_k + o_proj(Attn(RMSNorm_att(X_k)))
 *   X_{k+1} = h' + down(SiLU(gate(n)) ⊙ up(n)),   n = RMSNorm_ffn(h')
 *   logits  = lm_head(RMSNorm_final(X_L))
 *
 * RMSNorm(x) = x / sqrt(mean(x²) + eps) · g. RoPE is rotate-half (HF layout), attention is
 * causal with scale 1/sqrt(hd), GQA maps head h to kv head floor(h / (H / Hkv)). With qkNorm
 * (Qwen3) each head's q and k vector [hd] goes through its own RMSNorm (q_norm, k_norm, the
 * model's eps) after the projection and before RoPE.
 * Every matrix is row-major; every weight is HF layout [out, in].
 */
import { LopperError } from '../errors';
import { layerPrefix, lmHeadName, tensor, type Checkpoint } from '../model/checkpoint';
import type { LlamaConfig } from '../model/config';
import { toFloat32, type Tensor } from '../model/tensor';
import { cutWindows } from '../text/windows';
import { ropeTables } from '../model/rope';

// ----------------------------------------------------------------------------
// Weights (D hidden, F intermediate, H heads, Hkv kv heads, hd head dim, V vocab)

interface LayerWeights {
  attnNorm: Float64Array; // [D]        input_layernorm
  wq: Float64Array; //       [H*hd, D]   q_proj
  wk: Float64Array; //       [Hkv*hd, D] k_proj
  wv: Float64Array; //       [Hkv*hd, D] v_proj
  wo: Float64Array; //       [D, H*hd]   o_proj
  bq: Float64Array | null; // [H*hd]     (qkvBias)
  bk: Float64Array | null; // [Hkv*hd]   (qkvBias)
  bv: Float64Array | null; // [Hkv*hd]   (qkvBias)
  bo: Float64Array | null; // [D]        (oBias)
  qNorm: Float64Array | null; // [hd]    q_norm (qkNorm)
  kNorm: Float64Array | null; // [hd]    k_norm (qkNorm)
  ffnNorm: Float64Array; //  [D]        post_attention_layernorm
  wGate: Float64Array; //    [F, D]      gate_proj
  wUp: Float64Array; //      [F, D]      up_proj
  wDown: Float64Array; //    [D, F]      down_proj
  bGate: Float64Array | null; // [F]     (mlpBias)
  bUp: Float64Array | null; //   [F]     (mlpBias)
  bDown: Float64Array | null; // [D]     (mlpBias)
}

const f64 = (t: Tensor): Float64Array => Float64Array.from(toFloat32(t));

// ----------------------------------------------------------------------------
// Building blocks, on row-major [T, n] matrices

/** out[T, n] = x[T, d] · Wᵀ + b, with W [n, d] and b [n] (or none). */
function matmul(x: Float64Array, T: number, d: number, W: Float64Array, n: number, b: Float64Array | null): Float64Array {
  const out = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    const xo = t * d;
    for (let i = 0; i < n; i++) {
      const wo = i * d;
      let sum = 0;
      for (let j = 0; j < d; j++) sum += x[xo + j] * W[wo + j];
      out[t * n + i] = b ? sum + b[i] : sum;
    }
  }
  return out;
}

/** Each row: x / sqrt(mean(x²) + eps) · g. */
function rmsnorm(x: Float64Array, T: number, D: number, g: Float64Array, eps: number): Float64Array {
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[t * D + j] * x[t * D + j];
    const rms = Math.sqrt(ss / D + eps);
    for (let j = 0; j < D; j++) out[t * D + j] = (x[t * D + j] / rms) * g[j];
  }
  return out;
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

const silu = (x: number) => x / (1 + Math.exp(-x));

/**
 * In place on x [T, nHeads*hd]: per head, x' = x · cos + rotate_half(x) · sin, with
 * rotate_half(x) = cat(-x[hd/2:], x[:hd/2]) and cos/sin [T, hd].
 */
function rope(x: Float64Array, T: number, nHeads: number, hd: number, cos: Float64Array, sin: Float64Array): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * hd;
      for (let i = 0; i < half; i++) {
        const x1 = x[o + i];
        const x2 = x[o + half + i];
        x[o + i] = x1 * cos[t * hd + i] - x2 * sin[t * hd + i];
        x[o + half + i] = x2 * cos[t * hd + half + i] + x1 * sin[t * hd + half + i];
      }
    }
  }
}

/**
 * Causal softmax attention. q [T, H*hd], k and v [T, Hkv*hd] → [T, H*hd].
 * Query head h reads kv head floor(h / (H / Hkv)); scores are q·k / sqrt(hd).
 */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, H: number, Hkv: number, hd: number): Float64Array {
  const out = new Float64Array(T * H * hd);
  const group = H / Hkv;
  const scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const qo = (t * H + h) * hd;
      // scores over positions s ≤ t, then softmax
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        const ko = (s * Hkv + kvh) * hd;
        let dot = 0;
        for (let i = 0; i < hd; i++) dot += q[qo + i] * k[ko + i];
        scores[s] = dot * scale;
        if (scores[s] > max) max = scores[s];
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) {
        scores[s] = Math.exp(scores[s] - max);
        sum += scores[s];
      }
      // weighted sum of values
      for (let s = 0; s <= t; s++) {
        const a = scores[s] / sum;
        const vo = (s * Hkv + kvh) * hd;
        for (let i = 0; i < hd; i++) out[qo + i] += a * v[vo + i];
      }
    }
  }
  return out;
}

// ----------------------------------------------------------------------------
// The model

export interface ForwardOptions {
  /** Start at layer `layer` with X_layer = `stream` ([T, D]) instead of the embedding. */
  startLayerStream?: { layer: number; stream: Float64Array };
  /** Layers to skip (identity: X_{k+1} = X_k), as if they had been pruned. */
  skipLayers?: number[];
}

export interface ForwardResult {
  /** [T, V] */
  logits: Float64Array;
  /**
   * X_0 .. X_L, each [T, D]; X_L is before the final norm. With startLayerStream at
   * layer s, X_0 .. X_{s-1} are empty arrays. A skipped layer's output is its input.
   */
  streams: Float64Array[];
}

/** Decoder layer l's weights in Float64. */
function layerWeightsOf(ck: Checkpoint, l: number): LayerWeights {
  return layerWeightsFrom(ck.config, (name) => f64(tensor(ck, name)), l);
}

/** Decoder layer l's weights, each read by its HF name through `w`. */
function layerWeightsFrom(c: LlamaConfig, w: (name: string) => Float64Array, l: number): LayerWeights {
  const opt = (name: string, present: boolean) => (present ? w(name) : null);
  const p = layerPrefix(l);
  return {
    attnNorm: w(p + 'input_layernorm.weight'),
    wq: w(p + 'self_attn.q_proj.weight'),
    wk: w(p + 'self_attn.k_proj.weight'),
    wv: w(p + 'self_attn.v_proj.weight'),
    wo: w(p + 'self_attn.o_proj.weight'),
    bq: opt(p + 'self_attn.q_proj.bias', c.qkvBias),
    bk: opt(p + 'self_attn.k_proj.bias', c.qkvBias),
    bv: opt(p + 'self_attn.v_proj.bias', c.qkvBias),
    bo: opt(p + 'self_attn.o_proj.bias', c.oBias),
    qNorm: opt(p + 'self_attn.q_norm.weight', c.qkNorm),
    kNorm: opt(p + 'self_attn.k_norm.weight', c.qkNorm),
    ffnNorm: w(p + 'post_attention_layernorm.weight'),
    wGate: w(p + 'mlp.gate_proj.weight'),
    wUp: w(p + 'mlp.up_proj.weight'),
    wDown: w(p + 'mlp.down_proj.weight'),
    bGate: opt(p + 'mlp.gate_proj.bias', c.mlpBias),
    bUp: opt(p + 'mlp.up_proj.bias', c.mlpBias),
    bDown: opt(p + 'mlp.down_proj.bias', c.mlpBias),
  };
}

/** One decoder layer with weights w: X_k [T, D] → X_{k+1} [T, D]. */
function decoderLayer(c: LlamaConfig, w: LayerWeights, x: Float64Array, T: number, cos: Float64Array, sin: Float64Array): Float64Array {
  return feedForwardHalf(c, w, attentionHalf(c, w, x, T, cos, sin), T);
}

/** The attention half of a decoder layer: X_k [T, D] → h' [T, D]. */
function attentionHalf(c: LlamaConfig, w: LayerWeights, x: Float64Array, T: number, cos: Float64Array, sin: Float64Array): Float64Array {
  const { hiddenSize: D, numHeads: H, numKvHeads: Hkv, headDim: hd, rmsNormEps: eps } = c;
  // attention: h' = x + o_proj(Attn(RMSNorm_att(x)))
  const xn = rmsnorm(x, T, D, w.attnNorm, eps);
  let q = matmul(xn, T, D, w.wq, H * hd, w.bq); //   [T, H*hd]
  let k = matmul(xn, T, D, w.wk, Hkv * hd, w.bk); // [T, Hkv*hd]
  const v = matmul(xn, T, D, w.wv, Hkv * hd, w.bv); // [T, Hkv*hd]
  // qkNorm: [T, n*hd] is [T*n, hd] row-major, so each row there is one head's vector
  if (w.qNorm) q = rmsnorm(q, T * H, hd, w.qNorm, eps);
  if (w.kNorm) k = rmsnorm(k, T * Hkv, hd, w.kNorm, eps);
  rope(q, T, H, hd, cos, sin);
  rope(k, T, Hkv, hd, cos, sin);
  const att = attention(q, k, v, T, H, Hkv, hd); //    [T, H*hd]
  return add(x, matmul(att, T, H * hd, w.wo, D, w.bo));
}

/** The feed-forward half of a decoder layer: h' [T, D] → X_{k+1} [T, D]. */
function feedForwardHalf(c: LlamaConfig, w: LayerWeights, h: Float64Array, T: number): Float64Array {
  const { hiddenSize: D, intermediateSize: F, rmsNormEps: eps } = c;
  // feed-forward: X_{k+1} = h' + down(SiLU(gate(n)) ⊙ up(n)), n = RMSNorm_ffn(h')
  const n = rmsnorm(h, T, D, w.ffnNorm, eps);
  const gate = matmul(n, T, D, w.wGate, F, w.bGate); // [T, F]
  const up = matmul(n, T, D, w.wUp, F, w.bUp); //       [T, F]
  for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]) * up[i];
  return add(h, matmul(gate, T, F, w.wDown, D, w.bDown));
}

/**
 * Decoder layer l of `ck` alone, in Float64, on the stream X_l [T, D] of positions 0..T−1: X_{l+1}.
 * Reads only that layer's weights, so a layer of a model of any size can be checked.
 */
export function referenceLayer(ck: Checkpoint, l: number, x: Float64Array, T: number): Float64Array {
  const { cos, sin } = ropeTables(ck.config, { start: 0, length: T });
  return decoderLayer(ck.config, layerWeightsOf(ck, l), x, T, cos, sin);
}

/**
 * Decoder layer l in Float64 on the stream X_l [T, D] of positions 0..T−1, in its two halves:
 * y = h' (the stream after attention, [T, D]) and out = X_{l+1} ([T, D]). `weight(name)`
 * gives a tensor by its HF name in Float64, so a model whose weights live in Float64 arrays
 * (edited without rounding, as test/helpers/comp-reference.ts does) runs as it is.
 */
export function referenceLayerParts(
  config: LlamaConfig,
  weight: (name: string) => Float64Array,
  l: number,
  x: Float64Array,
  T: number,
): { y: Float64Array; out: Float64Array } {
  const { cos, sin } = ropeTables(config, { start: 0, length: T });
  const w = layerWeightsFrom(config, weight, l);
  const y = attentionHalf(config, w, x, T, cos, sin);
  return { y, out: feedForwardHalf(config, w, y, T) };
}

export class ReferenceModel {
  readonly config: LlamaConfig;
  private readonly embed: Float64Array; // [V, D]
  private readonly layers: LayerWeights[];
  private readonly finalNorm: Float64Array; // [D]
  private readonly lmHead: Float64Array; // [V, D] (the embedding when tied)

  constructor(ck: Checkpoint) {
    const c = ck.config;
    this.config = c;
    const w = (name: string) => f64(tensor(ck, name));
    this.embed = w('model.embed_tokens.weight');
    this.layers = [];
    for (let l = 0; l < c.numLayers; l++) this.layers.push(layerWeightsOf(ck, l));
    this.finalNorm = w('model.norm.weight');
    this.lmHead = c.tieWordEmbeddings ? this.embed : w(lmHeadName(c));
  }

  /** One decoder layer: X_k [T, D] → X_{k+1} [T, D]. */
  private layer(l: number, x: Float64Array, T: number, cos: Float64Array, sin: Float64Array): Float64Array {
    return decoderLayer(this.config, this.layers[l], x, T, cos, sin);
  }

  forward(tokens: readonly number[], opts: ForwardOptions = {}): ForwardResult {
    const { hiddenSize: D, vocabSize: V, numLayers: L, rmsNormEps: eps } = this.config;
    const T = tokens.length;
    if (T === 0) throw new LopperError('bad-input', 'forward needs at least one token');
    for (const id of tokens) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new LopperError('bad-input', `token id ${id} is outside the vocabulary [0, ${V})`);
    }
    const skip = new Set(opts.skipLayers ?? []);
    const { cos, sin } = ropeTables(this.config, { start: 0, length: T });

    // X_0: the token embedding, or the given stream at a later layer
    const streams: Float64Array[] = [];
    let x: Float64Array;
    let first = 0;
    if (opts.startLayerStream) {
      const { layer, stream } = opts.startLayerStream;
      if (!Number.isInteger(layer) || layer < 0 || layer > L) throw new LopperError('bad-option', `start layer ${layer} is outside [0, ${L}]`);
      if (stream.length !== T * D) throw new LopperError('bad-input', `start stream has ${stream.length} values, expected T·D = ${T * D}`);
      first = layer;
      x = Float64Array.from(stream);
      for (let l = 0; l < layer; l++) streams.push(new Float64Array(0));
    } else {
      x = new Float64Array(T * D);
      for (let t = 0; t < T; t++) x.set(this.embed.subarray(tokens[t] * D, (tokens[t] + 1) * D), t * D);
    }
    streams.push(x);

    // the decoder layers: X_k → X_{k+1}
    for (let l = first; l < L; l++) {
      if (!skip.has(l)) x = this.layer(l, x, T, cos, sin);
      streams.push(x);
    }

    // final norm and LM head
    const xn = rmsnorm(x, T, D, this.finalNorm, eps);
    const logits = matmul(xn, T, D, this.lmHead, V, null); // [T, V]
    return { logits, streams };
  }

  /** Per-token negative log-likelihood of tokens[1..] given their prefix: length T − 1. */
  nll(tokens: readonly number[], opts: ForwardOptions = {}): Float64Array {
    const V = this.config.vocabSize;
    const { logits } = this.forward(tokens, opts);
    const out = new Float64Array(tokens.length - 1);
    for (let t = 0; t + 1 < tokens.length; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (row[i] > max) max = row[i];
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
      out[t] = max + Math.log(sum) - row[tokens[t + 1]];
    }
    return out;
  }
}

/**
 * Perplexity by the windowed protocol (see cutWindows): each window predicts its tokens
 * 2..W from their prefix in the window; PPL = exp(mean NLL over all predicted tokens).
 */
export function referencePerplexity(
  model: ReferenceModel,
  ids: readonly number[],
  window: number,
  maxWindows?: number,
): { ppl: number; tokens: number; windows: number } {
  const windows = cutWindows(ids, window, maxWindows);
  let sum = 0;
  let tokens = 0;
  for (const w of windows) {
    for (const v of model.nll(w)) sum += v;
    tokens += w.length - 1;
  }
  return { ppl: Math.exp(sum / tokens), tokens, windows: windows.length };
}
