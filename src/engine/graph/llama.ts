import { LopperError } from '../errors';
import { layerPrefix, lmHeadName, tensor, type Checkpoint } from '../model/checkpoint';
import type { LlamaConfig } from '../model/config';
import type { DecodeWeights } from '../model/cost';
import { numel, toFloat32, widenedRange, widenInto, type Tensor } from '../model/tensor';
import { ropeInvFreq } from '../model/rope';
import { ElemType, GraphBuilder } from './builder';
import { quantizeQ8, type Q8Weight } from './quantize';

/**
 * What a graph computes. Both run the same decoder; they differ in inputs and outputs.
 *
 * window: B windows of T tokens each, no cache, through layers `from`..L−1 (default 0).
 *   Inputs input_ids [B,T] (int64) when from = 0, else stream_in [B,T,D] (the stream X_from
 *   entering layer `from`); targets [B,T] when nll; the attention inputs below with P = 0.
 *   Outputs any of
 *     logits [B,T,V];
 *     nll [B,T]: −log p(targets[b,t] | tokens ≤ t);
 *     stats: stats.cos.{k} [B,T] (cosine between X_k and X_{k+1} per token, from ≤ k < L) and
 *            stats.absmean.{k} [B,D] (mean over tokens of |X_k| per channel, from ≤ k ≤ L),
 *            so whole hidden states need not leave the runtime;
 *     streams: stream.{k} [B,T,D], the streams X_k the graph computes (from < k ≤ L, and X_0
 *            when from = 0): checkpoints that let pruning restart mid-model.
 *
 * layer: one decoder layer whose weights are graph inputs, named as layer 0's (`l0.att_norm`,
 *   `l0.wqkv`, … as layerWeights(ck, i) gives them, in Hugging Face layout [out, in], each
 *   linear map a Gemm with transB), so one session runs every layer of a model, pass after
 *   pass (layer-streamed execution, runtime/engine.ts): stream_in [B,T,D] = X_i and the
 *   attention inputs → stream.1 [B,T,D] = X_{i+1}, and with stats stats.cos.0 [B,T] and
 *   stats.absmean.0 [B,D] (of X_i).
 * head: the final norm, its gain an input (`final_norm` [D]): stream_in [B,T,D] = X_L →
 *   normed [B,T,D] = RMSNorm(X_L)·g, and with stats stats.absmean.{L}, as a window program
 *   from L would.
 * vocab: one slice of the LM head, rows c0..c0+n−1 of lm_head [V,D] as the input `lm_head`
 *   [n,D] (n varies): normed [N,D] → lse [N] = log Σ_v exp(logits[·,v]) over the slice's n
 *   logits (max-shifted), picked [N] = logits[i, targets[i]] (targets [N], int64, indices
 *   into the slice), and logits [N,n] when asked. The engine runs the slices one after the
 *   other and combines lse and picked into the NLL, so no more than one slice of the head is
 *   ever in fp32 (a Llama-3-8B head is 2.1 GB in fp32).
 *
 * decode: generation with a KV cache. Inputs input_ids [B,T] at positions P..P+T−1,
 *   past.{i}.key/value [B,Hkv,P,hd] (P may be 0), the attention inputs. Outputs logits
 *   [B,V] of the last position and present.{i}.key/value [B,Hkv,P+T,hd]. With weights 'q8'
 *   every linear map, the embedding and the LM head hold 8-bit rows (graph/quantize.ts),
 *   dequantized as they are used (the embedding's gathered rows; a tied head reads the
 *   embedding's codes): about one byte a parameter, for generation where fp32 does not fit.
 *
 * decode with io 'transformers': the decoder-with-past graph transformers.js runs for a
 *   Llama-family model (export/onnx.ts), ops attention only. Inputs input_ids [B,T],
 *   attention_mask [B,S] (1 token, 0 padding; S = P + T), position_ids [B,T] (all int64),
 *   past_key_values.{i}.key/value [B,Hkv,P,hd]; outputs logits [B,T,V] (every position) and
 *   present.{i}.key/value [B,Hkv,S,hd]. RoPE is computed in the graph from position_ids, the
 *   causal + padding mask from attention_mask (query t is token P+t and sees keys s ≤ P+t
 *   whose attention_mask is 1), so left-padded batches work. Dims are named as transformers.js
 *   expects (batch_size, sequence_length, past_sequence_length, total_sequence_length): it
 *   sizes the empty first cache from those names.
 *
 * decode with weights 'fp16' (either io): every matrix — the linear maps, the embedding, the LM
 *   head — is stored in float16 and multiplied in float16 (its input cast to float16, the
 *   product cast back), so the runtime holds half the bytes and a WebGPU adapter with
 *   shader-f16 runs float16 kernels; norms, their gains, biases, RoPE, attention and the cache
 *   stay float32. onnxruntime's CPU kernels (node, WASM) widen the float16 weights and multiply
 *   in fp32 (they drop the cast pair around the activations), so there the logits are within
 *   about 1e-3 of fp32 — the weights' rounding (test/unit/quantized.test.ts, export-onnx.test.ts);
 *   a GPU's float16 kernels round the activations too. It is
 *   transformers.js's dtype 'fp16' file (onnx/model_fp16.onnx) and the engine's decoder on
 *   WebGPU where fp32 does not fit.
 *
 * Attention inputs, by implementation (S = P + T):
 *   ops:   rope_cos/rope_sin [T,hd] for positions P..P+T−1, mask [T,S] (additive, causal);
 *          or, with io 'transformers', from position_ids and attention_mask as above;
 *   fused: onnxruntime's GroupQueryAttention (com.microsoft), which applies RoPE and the
 *          causal mask itself: cos_cache/sin_cache [S,hd/2] for positions 0..S−1,
 *          seqlens_k [B] (int32, S − 1), total_sequence_length (int32 scalar, S).
 *          Faster (no T×S score tensor), but its CPU kernel needs hd a multiple of 16.
 */
export type Program =
  | { kind: 'window'; from?: number; logits?: boolean; nll?: boolean; stats?: boolean; streams?: boolean }
  | { kind: 'layer'; stats?: boolean }
  | { kind: 'head'; stats?: boolean }
  | { kind: 'vocab'; logits?: boolean }
  | { kind: 'decode'; io?: 'engine' | 'transformers'; weights?: DecodeWeights };
export type AttentionImpl = 'ops' | 'fused';

export function programKey(p: Program, attention: AttentionImpl): string {
  const outs = (q: { logits?: boolean; nll?: boolean; stats?: boolean }) => `${q.logits ? 'L' : ''}${q.nll ? 'N' : ''}${q.stats ? 'S' : ''}`;
  const what =
    p.kind === 'layer' || p.kind === 'head' || p.kind === 'vocab'
      ? `${p.kind}_${outs(p)}`
      : p.kind === 'decode'
      ? `decode${p.io === 'transformers' ? '_transformers' : ''}${p.weights && p.weights !== 'fp32' ? '_' + p.weights : ''}`
      : `window${p.from ?? 0}_${outs(p)}${p.streams ? 'X' : ''}`;
  return `${what}_${attention}`;
}

/** [out, in] row-major → [in, out], so the graph can use MatMul(x [.., in], W [in, out]). */
export function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[src + c];
  }
  return out;
}

/**
 * Tensors stacked along their first axis, each widened to fp32 and multiplied by its scale (1
 * when absent), written into `into` when given (a buffer reused layer after layer: fresh
 * memory costs a page fault per 4 KiB, more than the widening itself).
 */
export function stacked(parts: { t: Tensor; scale?: number }[], into?: Float32Array): Float32Array {
  const n = parts.reduce((s, p) => s + numel(p.t.shape), 0);
  if (into && into.length !== n) throw new Error(`stacked: ${n} values do not fit a buffer of ${into.length}`);
  if (!into && parts.length === 1 && (parts[0].scale ?? 1) === 1 && parts[0].t.dtype === 'f32') return toFloat32(parts[0].t); // the stored array itself
  const out = into ?? new Float32Array(n);
  let off = 0;
  for (const { t, scale } of parts) off = widenInto(out, off, t, scale);
  return out;
}

/** Arrays side by side, each multiplied by its scale. */
export function concat(parts: Float32Array[], scales: number[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  parts.forEach((p, i) => {
    for (let j = 0; j < p.length; j++) out[off + j] = p[j] * scales[i];
    off += p.length;
  });
  return out;
}

/** Largest part of a weight made at once when a graph's weights are written lazily (16 MiB of fp32). */
const PART_FLOATS = 2 ** 22;

/** A tensor's values widened to fp32 part by part, in order (a large matrix kept in its layout: the embedding, the LM head). */
function widenedParts(t: Tensor): () => Iterable<Float32Array> {
  return function* () {
    const n = numel(t.shape);
    for (let start = 0; start < n; start += PART_FLOATS) yield widenedRange(t, start, Math.min(PART_FLOATS, n - start));
  };
}

/** One weight as a graph takes it: its shape and fp32 values. */
export interface GraphWeight {
  shape: number[];
  /** computed when called (a graph with weights as inputs only reads the shape); written into `into` when given */
  values: (into?: Float32Array) => Float32Array;
}

/**
 * Decoder layer i's weights as the graphs take them (fp32, Hugging Face layout [out, in];
 * q/k/v and gate/up fused along `out`; 1/√hd folded into W_q and b_q, or into q_norm's gain
 * when the model has q/k norms, which would cancel it in W_q). Keys, after `l{i}.`:
 *   att_norm [D], wqkv [H*hd + 2·Hkv*hd, D], bqkv [H*hd + 2·Hkv*hd] (qkvBias),
 *   q_norm [hd], k_norm [hd] (qkNorm), wo [D, H*hd], bo [D] (oBias), ffn_norm [D],
 *   wgu [2F, D], bgu [2F] (mlpBias), wdown [D, F], bdown [D] (mlpBias)
 * Widened from the storage dtype here, for this layer only.
 */
export function layerWeights(ck: Checkpoint, i: number): Map<string, GraphWeight> {
  const c = ck.config;
  const { hiddenSize: D, intermediateSize: F, headDim: hd } = c;
  const qkv = (c.numHeads + 2 * c.numKvHeads) * hd;
  const p = layerPrefix(i);
  const t = (name: string) => tensor(ck, p + name);
  const scale = 1 / Math.sqrt(hd);
  const qScale = c.qkNorm ? 1 : scale;
  const out = new Map<string, GraphWeight>();
  const set = (key: string, shape: number[], parts: { t: Tensor; scale?: number }[]) => out.set(key, { shape, values: (into) => stacked(parts, into) });
  set('att_norm', [D], [{ t: t('input_layernorm.weight') }]);
  set('wqkv', [qkv, D], [{ t: t('self_attn.q_proj.weight'), scale: qScale }, { t: t('self_attn.k_proj.weight') }, { t: t('self_attn.v_proj.weight') }]);
  if (c.qkvBias) set('bqkv', [qkv], [{ t: t('self_attn.q_proj.bias'), scale: qScale }, { t: t('self_attn.k_proj.bias') }, { t: t('self_attn.v_proj.bias') }]);
  if (c.qkNorm) {
    set('q_norm', [hd], [{ t: t('self_attn.q_norm.weight'), scale }]);
    set('k_norm', [hd], [{ t: t('self_attn.k_norm.weight') }]);
  }
  set('wo', [D, c.numHeads * hd], [{ t: t('self_attn.o_proj.weight') }]);
  if (c.oBias) set('bo', [D], [{ t: t('self_attn.o_proj.bias') }]);
  set('ffn_norm', [D], [{ t: t('post_attention_layernorm.weight') }]);
  set('wgu', [2 * F, D], [{ t: t('mlp.gate_proj.weight') }, { t: t('mlp.up_proj.weight') }]);
  if (c.mlpBias) set('bgu', [2 * F], [{ t: t('mlp.gate_proj.bias') }, { t: t('mlp.up_proj.bias') }]);
  set('wdown', [D, F], [{ t: t('mlp.down_proj.weight') }]);
  if (c.mlpBias) set('bdown', [D], [{ t: t('mlp.down_proj.bias') }]);
  return out;
}

/** The head's weights as the graphs take them: final_norm [D], lm_head [V, D] (the embedding when tied), fp32. */
export function headWeights(ck: Checkpoint): Map<string, GraphWeight> {
  const c = ck.config;
  return new Map([
    ['final_norm', { shape: [c.hiddenSize], values: (into) => stacked([{ t: tensor(ck, 'model.norm.weight') }], into) }],
    ['lm_head', { shape: [c.vocabSize, c.hiddenSize], values: (into) => stacked([{ t: tensor(ck, lmHeadName(c)) }], into) }],
  ]);
}

/** The ONNX model bytes of `program` for `ck`. */
export function buildLlamaGraph(ck: Checkpoint, program: Program, attention: AttentionImpl): Uint8Array {
  return llamaGraph(ck, program, attention).encode();
}

/** Names of the transformers.js IO's symbolic dims. */
const HF_DIMS = { B: 'batch_size', T: 'sequence_length', P: 'past_sequence_length', S: 'total_sequence_length' };

/** The graph of `program` for `ck`, not yet encoded (export/onnx.ts may put its weights in external data). */
export function llamaGraph(ck: Checkpoint, program: Program, attention: AttentionImpl): GraphBuilder {
  if (program.kind === 'vocab') return vocabGraph(ck.config.hiddenSize, !!program.logits);
  const c = ck.config;
  const D = c.hiddenSize;
  const F = c.intermediateSize;
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const hd = c.headDim;
  const V = c.vocabSize;
  const L = c.numLayers;
  const qDim = H * hd;
  const kvDim = Hkv * hd;
  const decode = program.kind === 'decode';
  const hfIO = program.kind === 'decode' && program.io === 'transformers';
  const fp16 = program.kind === 'decode' && program.weights === 'fp16';
  // Weights are given as functions, made when the model is written, one at a time (graph/builder.ts):
  // the graph holds no copy of them.
  const g = new GraphBuilder(`lopper_${programKey(program, attention)}`);
  const toHalf = (t: string) => g.op('Cast', [t], { to: ElemType.FLOAT16 });
  const toFloat = (t: string) => g.op('Cast', [t], { to: ElemType.FLOAT });
  // Layers from..to−1, then the head unless this is a 'layer' program (layer 0's slot, for any layer).
  const from = program.kind === 'window' ? (program.from ?? 0) : program.kind === 'head' ? L : 0;
  const to = program.kind === 'layer' ? 1 : L;
  const streamIn = (program.kind === 'window' && from > 0) || program.kind === 'layer' || program.kind === 'head';
  const want: { logits?: boolean; nll?: boolean; stats?: boolean } = program.kind === 'window' || program.kind === 'layer' || program.kind === 'head' ? program : {};

  // Weights: initializers (transposed to [in, out] for MatMul, which onnxruntime prepacks), or
  // for 'layer' and 'head' graph inputs in Hugging Face layout [out, in], fed per run.
  const weightsIn = program.kind === 'layer' || program.kind === 'head';
  let lead = ''; // 'layer': the [B, T] of stream_in, to shape a Gemm's [B·T, out] back
  const param = (name: string, wt: GraphWeight) => (weightsIn ? g.input(name, ElemType.FLOAT, wt.shape) : g.weight(name, wt.shape, () => [wt.values()]));
  const q8 = program.kind === 'decode' && program.weights === 'q8';
  // q8: each weight widened into one reused buffer, then quantized (fresh memory costs a page fault per 4 KiB)
  let spare = new Float32Array(0);
  const scratch = (n: number) => (spare.length >= n ? spare : (spare = new Float32Array(n))).subarray(0, n);
  if (q8 && hfIO) throw new LopperError('bad-option', 'the transformers.js decoder has fp32 or fp16 weights');
  /** x [B,T,in] · Wᵀ for W [out, in] → [B,T,out]. */
  const linear = (x: string, name: string, wt: GraphWeight): string => {
    const [out, inDim] = wt.shape;
    if (q8) return q8MatMul(g, x, q8Weights(g, name, quantizeQ8(wt.values(scratch(out * inDim)), out, inDim)));
    if (fp16) return toFloat(g.matmul(toHalf(x), g.weight(name, [inDim, out], () => [transposed(wt.values(), out, inDim)], 'fp16')));
    if (!weightsIn) return g.matmul(x, g.weight(name, [inDim, out], () => [transposed(wt.values(), out, inDim)]));
    const flat = g.op('Gemm', [g.reshape(x, [-1, inDim]), g.input(name, ElemType.FLOAT, wt.shape)], { transB: 1 }); // [B·T, out]
    return g.op('Reshape', [flat, g.op('Concat', [lead, g.ints([out])], { axis: 0 })]);
  };

  let inputIds: string | undefined;
  if (hfIO) {
    if (attention !== 'ops') throw new LopperError('bad-option', "the transformers.js graph computes RoPE and the mask itself: it needs the 'ops' attention");
    inputIds = g.input('input_ids', ElemType.INT64, [HF_DIMS.B, HF_DIMS.T]); // first, in the order transformers.js lists them
  }
  const attend =
    program.kind === 'head'
      ? undefined // the head alone declares no attention inputs
      : attention === 'fused'
        ? fusedAttention(g, c, decode)
        : opsAttention(g, c, decode, inputIds !== undefined ? { inputIds } : undefined);

  // RMSNorm(x)·gain, as the pattern onnxruntime fuses into SimplifiedLayerNormalization.
  // Returns the mean square too: the calibration statistics reuse it for ‖x‖.
  const eps = g.scalar(c.rmsNormEps);
  const rmsNorm = (x: string, gain: string) => {
    const ms = g.reduceMean(g.op('Pow', [x, g.scalar(2)]), [-1]); // [B,T,1]
    const y = g.mul(g.div(x, g.op('Sqrt', [g.add(ms, eps)])), gain);
    return { y, ms };
  };
  // qkNorm: RMSNorm of each head's vector of t [B,T,n·hd] over its hd channels (Qwen3's q_norm, k_norm).
  const headNorm = (t: string, n: number, gain: string) => g.reshape(rmsNorm(g.reshape(t, [0, 0, n, hd]), gain).y, [0, 0, n * hd]);

  // ---- embedding, or the stream entering layer `from` ----
  let x: string; // X_from [B,T,D]
  let embed = '';
  let embedQ8: Q8Names | null = null;
  if (!streamIn && q8) {
    // model.embed_tokens.weight [V, D] as 8-bit rows: gather each token's codes and scale, dequantize
    const ids = g.input('input_ids', ElemType.INT64, ['B', 'T']);
    const e = scratch(V * D);
    widenInto(e, 0, tensor(ck, 'model.embed_tokens.weight'));
    embedQ8 = q8Weights(g, 'embed', quantizeQ8(e, V, D));
    const codes = g.op('Cast', [g.op('Gather', [embedQ8.q, ids], { axis: 0 })], { to: ElemType.FLOAT }); // [B,T,D]
    const scales = g.op('Unsqueeze', [g.op('Gather', [embedQ8.scales, ids], { axis: 0 }), g.ints([2])]); // [B,T,1]
    x = g.mul(g.op('Sub', [codes, g.scalar(128)]), scales);
  } else if (!streamIn) {
    // model.embed_tokens.weight [V, D]
    embed = g.weight('embed', [V, D], widenedParts(tensor(ck, 'model.embed_tokens.weight')), fp16 ? 'fp16' : 'fp32');
    x = g.op('Gather', [embed, inputIds ?? g.input('input_ids', ElemType.INT64, ['B', 'T'])], { axis: 0 });
    if (fp16) x = toFloat(x); // the gathered rows [B,T,D]
  } else {
    x = g.input('stream_in', ElemType.FLOAT, ['B', 'T', D]);
    if (program.kind === 'layer') lead = g.op('Slice', [g.op('Shape', [x]), g.ints([0]), g.ints([2])]);
  }

  const stats = !!want.stats;
  const ms: string[] = []; // ms[k − from]: mean square of X_k over the hidden axis [B,T,1]
  const streams: string[] = [x]; // streams[k − from] = X_k

  for (let i = from; i < to; i++) {
    const wts = layerWeights(ck, program.kind === 'layer' ? 0 : i); // a 'layer' graph reads only the shapes
    const wt = (key: string) => wts.get(key)!;
    const n = (key: string) => `l${i}.${key}`;

    // ---- attention ----
    const attNorm = rmsNorm(x, param(n('att_norm'), wt('att_norm')));
    ms.push(attNorm.ms);
    // W_qkv [H*hd + 2·Hkv*hd, D] (1/√hd in W_q and b_q, or in q_norm)
    let qkv = linear(attNorm.y, n('wqkv'), wt('wqkv')); // [B,T,qDim+2kvDim]
    if (c.qkvBias) qkv = g.add(qkv, param(n('bqkv'), wt('bqkv')));
    const [qp, kp, v0] = g.opN('Split', [qkv, g.ints([qDim, kvDim, kvDim])], 3, { axis: -1 });
    // q_norm [hd], k_norm [hd] (qkNorm): before RoPE, which both attention implementations apply after this
    const q0 = c.qkNorm ? headNorm(qp, H, param(n('q_norm'), wt('q_norm'))) : qp;
    const k0 = c.qkNorm ? headNorm(kp, Hkv, param(n('k_norm'), wt('k_norm'))) : kp;
    const merged = attend!(i, q0, k0, v0); // [B,T,H*hd]
    // o_proj [D, H*hd]
    let o = linear(merged, n('wo'), wt('wo'));
    if (c.oBias) o = g.add(o, param(n('bo'), wt('bo')));
    const h = g.add(x, o);

    // ---- feed-forward ----
    const ffnNorm = rmsNorm(h, param(n('ffn_norm'), wt('ffn_norm')));
    // W_gu [2F, D]: gate_proj [F, D] over up_proj [F, D]
    let gu = linear(ffnNorm.y, n('wgu'), wt('wgu')); // [B,T,2F]
    if (c.mlpBias) gu = g.add(gu, param(n('bgu'), wt('bgu')));
    const [gate, up] = g.opN('Split', [gu, g.ints([F, F])], 2, { axis: -1 });
    const act = g.mul(g.mul(gate, g.op('Sigmoid', [gate])), up); // SiLU(gate) ⊙ up
    // down_proj [D, F]
    let down = linear(act, n('wdown'), wt('wdown'));
    if (c.mlpBias) down = g.add(down, param(n('bdown'), wt('bdown')));
    x = g.add(h, down); // X_{i+1}
    streams.push(x);
  }

  if (program.kind === 'layer') {
    // One layer alone (layer-streamed execution): X_1 and the statistics of X_0, no head.
    if (stats) {
      ms.push(g.reduceMean(g.op('Pow', [x, g.scalar(2)]), [-1])); // ms of X_1
      statsOutputs(g, D, 0, 1, streams, ms, 0);
    }
    g.output(x, 'stream.1', ElemType.FLOAT, ['B', 'T', D]);
    return g;
  }

  // ---- final norm and LM head ----
  const head = headWeights(ck);
  if (decode && !hfIO) x = g.op('Slice', [x, g.ints([-1]), g.ints([2 ** 62]), g.ints([1])]); // last position [B,1,D]
  const finalNorm = rmsNorm(x, param('final_norm', head.get('final_norm')!));
  ms.push(finalNorm.ms);

  if (stats) statsOutputs(g, D, from, L, streams, ms, L);
  if (program.kind === 'window' && program.streams) {
    for (let k = streamIn ? from + 1 : 0; k <= L; k++) g.output(streams[k - from], `stream.${k}`, ElemType.FLOAT, ['B', 'T', D]);
  }
  if (program.kind === 'head') {
    g.output(finalNorm.y, 'normed', ElemType.FLOAT, ['B', 'T', D]);
    return g;
  }

  if (hfIO || fp16) {
    // lm_head [V, D] as stored — the embedding itself when tied, so the model holds it once —
    // through Gemm (transB) on [B·T, D] (with fp16 weights, in float16), then back to [B,T,V].
    const lmHead = c.tieWordEmbeddings ? embed : g.weight('lm_head', [V, D], widenedParts(tensor(ck, lmHeadName(c))), fp16 ? 'fp16' : 'fp32');
    const rows = g.reshape(finalNorm.y, [-1, D]);
    const flat = fp16 ? toFloat(g.op('Gemm', [toHalf(rows), lmHead], { transB: 1 })) : g.op('Gemm', [rows, lmHead], { transB: 1 }); // [B·T, V]
    if (hfIO) {
      const shape = g.op('Concat', [g.op('Shape', [inputIds!]), g.ints([V])], { axis: 0 });
      g.output(g.op('Reshape', [flat, shape]), 'logits', ElemType.FLOAT, [HF_DIMS.B, HF_DIMS.T, V]);
    } else {
      g.output(flat, 'logits', ElemType.FLOAT, ['B', V]); // the last position of each row: [B·1, V]
    }
    return g;
  }
  if (decode || want.logits || want.nll) {
    // lm_head [V, D] (the embedding when tied: with 8-bit weights, the embedding's own codes)
    const logits =
      q8 && c.tieWordEmbeddings && embedQ8 ? q8MatMul(g, finalNorm.y, embedQ8) : linear(finalNorm.y, 'lm_head', head.get('lm_head')!); // [B,T,V]
    if (decode) {
      g.output(g.op('Squeeze', [logits, g.ints([1])]), 'logits', ElemType.FLOAT, ['B', V]);
    } else {
      if (want.logits) g.output(logits, 'logits', ElemType.FLOAT, ['B', 'T', V]);
      if (want.nll) {
        const targets = g.input('targets', ElemType.INT64, ['B', 'T']);
        const logp = g.op('LogSoftmax', [logits], { axis: -1 });
        const picked = g.op('GatherElements', [logp, g.op('Unsqueeze', [targets, g.ints([2])])], { axis: 2 }); // [B,T,1]
        g.output(g.op('Neg', [g.op('Squeeze', [picked, g.ints([2])])]), 'nll', ElemType.FLOAT, ['B', 'T']);
      }
    }
  }
  return g;
}


/** An 8-bit weight's initializers (graph/quantize.ts layout), by name. */
interface Q8Names {
  q: string;
  scales: string;
  zeros: string;
  rows: number;
  cols: number;
}

function q8Weights(g: GraphBuilder, name: string, w: Q8Weight): Q8Names {
  return {
    q: g.rawWeight(`${name}.q8`, ElemType.UINT8, [w.rows, w.cols], w.q),
    scales: g.floats(`${name}.scales`, [w.rows], w.scales),
    zeros: g.rawWeight(`${name}.zeros`, ElemType.UINT8, [w.rows], w.zeros),
    rows: w.rows,
    cols: w.cols,
  };
}

/** Rows of an 8-bit weight dequantized at once: at most 2^25 floats (128 MiB) of fp32 in flight (a 1B model's tied head takes 8 slices). */
const Q8_SLICE_FLOATS = 2 ** 25;

/**
 * x [B,T,K] · Wᵀ for an 8-bit W [N, K] → [B,T,N]: W's rows dequantized (DequantizeLinear, axis
 * 0) then Gemm with transB — in slices of rows for a large W (the LM head), so no more than
 * Q8_SLICE_FLOATS of it is ever fp32.
 */
function q8MatMul(g: GraphBuilder, x: string, w: Q8Names): string {
  const flat = g.reshape(x, [-1, w.cols]); // [B·T, K]
  const rows = Math.max(1, Math.floor(Q8_SLICE_FLOATS / w.cols));
  const parts: string[] = [];
  for (let r0 = 0; r0 < w.rows; r0 += rows) {
    const slice = (t: string) => (rows >= w.rows ? t : g.op('Slice', [t, g.ints([r0]), g.ints([Math.min(w.rows, r0 + rows)]), g.ints([0])]));
    const dq = g.op('DequantizeLinear', [slice(w.q), slice(w.scales), slice(w.zeros)], { axis: 0 }); // [n, K] fp32
    parts.push(g.op('Gemm', [flat, dq], { transB: 1 })); // [B·T, n]
  }
  const y = parts.length === 1 ? parts[0] : g.op('Concat', parts, { axis: 1 });
  const lead = g.op('Slice', [g.op('Shape', [x]), g.ints([0]), g.ints([-1])]);
  return g.op('Reshape', [y, g.op('Concat', [lead, g.ints([w.rows])], { axis: 0 })]);
}

/** The 'vocab' program (see Program): one slice of the LM head over normed streams, as lse and picked logits. */
function vocabGraph(D: number, logitsOut: boolean): GraphBuilder {
  const g = new GraphBuilder(`lopper_vocab${logitsOut ? '_L' : ''}`);
  const normed = g.input('normed', ElemType.FLOAT, ['N', D]);
  const lmHead = g.input('lm_head', ElemType.FLOAT, ['n', D]); // rows c0..c0+n−1 of lm_head [V, D]
  const targets = g.input('targets', ElemType.INT64, ['N']);
  const logits = g.op('Gemm', [normed, lmHead], { transB: 1 }); // [N, n]
  const max = g.op('ReduceMax', [logits, g.ints([-1])], { keepdims: 1 }); // [N, 1]
  const sumExp = g.reduceSum(g.op('Exp', [g.sub(logits, max)]), [-1]); // [N, 1]
  g.output(g.op('Squeeze', [g.add(g.op('Log', [sumExp]), max), g.ints([1])]), 'lse', ElemType.FLOAT, ['N']);
  const picked = g.op('GatherElements', [logits, g.op('Unsqueeze', [targets, g.ints([1])])], { axis: 1 }); // [N, 1]
  g.output(g.op('Squeeze', [picked, g.ints([1])]), 'picked', ElemType.FLOAT, ['N']);
  if (logitsOut) g.output(logits, 'logits', ElemType.FLOAT, ['N', 'n']);
  return g;
}

/**
 * The calibration statistics of streams[k − from] = X_k, k = from..to, with ms[k − from] their
 * mean squares [B,T,1]: stats.cos.{k} [B,T] = <X_k, X_{k+1}> / (D·sqrt(ms_k·ms_{k+1})) for
 * from ≤ k < to, and stats.absmean.{k} [B,D] = mean over tokens of |X_k| for from ≤ k ≤ lastAbs.
 */
function statsOutputs(g: GraphBuilder, D: number, from: number, to: number, streams: string[], ms: string[], lastAbs: number): void {
  for (let k = from; k < to; k++) {
    const [a, b] = [k - from, k + 1 - from];
    const dim = g.scalar(D); // one constant, made where it is used (the head alone has no cosines)
    const dot = g.reduceSum(g.mul(streams[a], streams[b]), [-1], 0); // [B,T]
    const norms = g.mul(g.op('Sqrt', [g.mul(ms[a], ms[b])]), dim); // [B,T,1]
    g.output(g.div(dot, g.op('Squeeze', [norms, g.ints([-1])])), `stats.cos.${k}`, ElemType.FLOAT, ['B', 'T']);
  }
  for (let k = from; k <= lastAbs; k++) {
    g.output(g.reduceMean(g.op('Abs', [streams[k - from]]), [1], 0), `stats.absmean.${k}`, ElemType.FLOAT, ['B', D]);
  }
}

/** Attention of layer i: q [B,T,H*hd] (already scaled by 1/√hd, q/k already normed with qkNorm; RoPE not yet applied), k, v [B,T,Hkv*hd] → [B,T,H*hd]. */
type Attend = (i: number, q: string, k: string, v: string) => string;

/**
 * KV cache in and out of layer i (decode only): past.{i}.* inputs and present.{i}.* outputs,
 * or with `hf` transformers.js's past_key_values.{i}.* and present.{i}.*.
 */
function pastInputs(g: GraphBuilder, c: LlamaConfig, i: number, hf = false): [string, string] {
  const dims = hf ? [HF_DIMS.B, c.numKvHeads, HF_DIMS.P, c.headDim] : ['B', c.numKvHeads, 'P', c.headDim];
  const prefix = hf ? 'past_key_values' : 'past';
  return [g.input(`${prefix}.${i}.key`, ElemType.FLOAT, dims), g.input(`${prefix}.${i}.value`, ElemType.FLOAT, dims)];
}
function presentOutputs(g: GraphBuilder, c: LlamaConfig, i: number, k: string, v: string, hf = false) {
  const dims = hf ? [HF_DIMS.B, c.numKvHeads, HF_DIMS.S, c.headDim] : ['B', c.numKvHeads, 'S', c.headDim];
  g.output(k, `present.${i}.key`, ElemType.FLOAT, dims);
  g.output(v, `present.${i}.value`, ElemType.FLOAT, dims);
}

/**
 * RoPE tables and the additive mask, as the ops attention uses them: cos4 and sin4
 * (sin with rotate_half's sign folded in: [−sin₁, sin₂]) broadcastable to [B,h,T,hd], mask
 * broadcastable to [B,Hkv,G,T,S].
 */
interface RopeAndMask {
  cos4: string;
  sin4: string;
  mask: string;
}

/** From the engine's inputs: rope_cos/rope_sin [T,hd] and mask [T,S]. */
function ropeAndMaskInputs(g: GraphBuilder, hd: number): RopeAndMask {
  const cos = g.input('rope_cos', ElemType.FLOAT, ['T', hd]);
  const sin = g.input('rope_sin', ElemType.FLOAT, ['T', hd]);
  const mask = g.input('mask', ElemType.FLOAT, ['T', 'S']);

  // rotate_half(x)·sin = concat(x2, x1)·[−sin₁, sin₂]: fold the sign into the table once.
  const [sin1, sin2] = g.opN('Split', [sin, g.ints([hd / 2, hd / 2])], 2, { axis: -1 });
  const sinSigned = g.op('Concat', [g.op('Neg', [sin1]), sin2], { axis: -1 });
  const cos4 = g.reshape(cos, [1, 1, -1, hd]); // [1,1,T,hd]
  const sin4 = g.reshape(sinSigned, [1, 1, -1, hd]);
  return { cos4, sin4, mask };
}

/** Additive mask value of a hidden key (finite: a row with no visible key softmaxes to uniform, not NaN). */
const MASKED = -1e30;

/**
 * Computed in the graph from transformers.js's inputs: attention_mask [B,S] and position_ids
 * [B,T] (input_ids [B,T] gives T).
 *
 *   θ[b,t,i] = position_ids[b,t] · inv_freq[i]   (inv_freq of model/rope.ts, llama3 scaling included)
 *   cos4 = cat(cos θ, cos θ), sin4 = cat(−sin θ, sin θ)     [B,1,T,hd]
 *   mask[b,t,s] = 0 if s ≤ P + t and attention_mask[b,s] = 1, else MASKED   [B,1,1,T,S]
 *
 * θ is float32, as in transformers' own rotary embedding (onnxruntime-web has no float64
 * Cast): |θ − θ_exact| ≤ p·f·2⁻²³ against the engine's float64 tables, ~1e-5 rad at p = 100.
 */
function ropeAndMaskFromPositions(g: GraphBuilder, c: LlamaConfig, inputIds: string): RopeAndMask {
  const attentionMask = g.input('attention_mask', ElemType.INT64, [HF_DIMS.B, HF_DIMS.S]);
  const positionIds = g.input('position_ids', ElemType.INT64, [HF_DIMS.B, HF_DIMS.T]);

  const invFreq = g.floats('rope_inv_freq', [c.headDim / 2], Float32Array.from(ropeInvFreq(c)));
  const pos = g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: ElemType.FLOAT }), g.ints([-1])]); // [B,T,1]
  const theta = g.mul(pos, invFreq); // [B,T,hd/2]
  const cosHalf = g.op('Cos', [theta]);
  const sinHalf = g.op('Sin', [theta]);
  const heads = (t: string) => g.op('Unsqueeze', [t, g.ints([1])]); // [B,1,T,hd]
  const cos4 = heads(g.op('Concat', [cosHalf, cosHalf], { axis: -1 }));
  const sin4 = heads(g.op('Concat', [g.op('Neg', [sinHalf]), sinHalf], { axis: -1 }));

  // key s is visible to query t (token P + t) when s ≤ P + t and attention_mask[b, s] = 1
  const S = g.op('Gather', [g.op('Shape', [attentionMask]), g.int(1)], { axis: 0 }); // scalar
  const T = g.op('Gather', [g.op('Shape', [inputIds]), g.int(1)], { axis: 0 });
  const keys = g.op('Range', [g.int(0), S, g.int(1)]); // [S]: 0..S−1
  const queries = g.op('Unsqueeze', [g.op('Range', [g.sub(S, T), S, g.int(1)]), g.ints([1])]); // [T,1]: P..S−1
  const causal = g.op('LessOrEqual', [keys, queries]); // [T,S]
  const present = g.op('Cast', [g.op('Unsqueeze', [attentionMask, g.ints([1])])], { to: ElemType.BOOL }); // [B,1,S]
  const visible = g.op('And', [causal, present]); // [B,T,S]
  const additive = g.op('Where', [visible, g.scalar(0), g.scalar(MASKED)]);
  const mask = g.op('Unsqueeze', [additive, g.ints([1, 2])]); // [B,1,1,T,S]
  return { cos4, sin4, mask };
}

/**
 * Attention from standard ONNX ops: runs on every execution provider and any head size.
 * RoPE and the mask come from the engine's inputs, or with `positions` from transformers.js's
 * (then the cache is named as transformers.js names it too).
 */
function opsAttention(g: GraphBuilder, c: LlamaConfig, decode: boolean, positions?: { inputIds: string }): Attend {
  const { numHeads: H, numKvHeads: Hkv, headDim: hd } = c;
  const G = H / Hkv; // query heads per kv head
  const hf = positions !== undefined;
  const { cos4, sin4, mask } = hf ? ropeAndMaskFromPositions(g, c, positions.inputIds) : ropeAndMaskInputs(g, hd);
  const rope = (x: string) => {
    // x [B,h,T,hd]
    const [x1, x2] = g.opN('Split', [x, g.ints([hd / 2, hd / 2])], 2, { axis: -1 });
    return g.add(g.mul(x, cos4), g.mul(g.op('Concat', [x2, x1], { axis: -1 }), sin4));
  };
  const heads = (t: string, n: number) => g.transpose(g.reshape(t, [0, 0, n, hd]), [0, 2, 1, 3]); // [B,n,T,hd]

  return (i, q0, k0, v0) => {
    const q = rope(heads(q0, H)); // [B,H,T,hd]
    let k = rope(heads(k0, Hkv)); // [B,Hkv,T,hd]
    let v = heads(v0, Hkv);
    if (decode) {
      const [pastK, pastV] = pastInputs(g, c, i, hf);
      k = g.op('Concat', [pastK, k], { axis: 2 }); // [B,Hkv,S,hd]
      v = g.op('Concat', [pastV, v], { axis: 2 });
      presentOutputs(g, c, i, k, v, hf);
    }
    // GQA without copying K/V: group the query heads of each kv head and let MatMul broadcast.
    const qg = g.reshape(q, [0, Hkv, G, -1, hd]); // [B,Hkv,G,T,hd]
    const kT = g.op('Unsqueeze', [g.transpose(k, [0, 1, 3, 2]), g.ints([2])]); // [B,Hkv,1,hd,S]
    const vg = g.op('Unsqueeze', [v, g.ints([2])]); // [B,Hkv,1,S,hd]
    const scores = g.add(g.matmul(qg, kT), mask); // [B,Hkv,G,T,S]
    const att = g.matmul(g.op('Softmax', [scores], { axis: -1 }), vg); // [B,Hkv,G,T,hd]
    return g.reshape(g.transpose(g.reshape(att, [0, H, -1, hd]), [0, 2, 1, 3]), [0, 0, H * hd]);
  };
}

/** onnxruntime's fused GroupQueryAttention: RoPE, causal mask, GQA and the cache in one op. */
function fusedAttention(g: GraphBuilder, c: LlamaConfig, decode: boolean): Attend {
  const { numHeads: H, numKvHeads: Hkv, headDim: hd } = c;
  const seqlensK = g.input('seqlens_k', ElemType.INT32, ['B']);
  const totalLength = g.input('total_sequence_length', ElemType.INT32, []);
  const cosCache = g.input('cos_cache', ElemType.FLOAT, ['S', hd / 2]);
  const sinCache = g.input('sin_cache', ElemType.FLOAT, ['S', hd / 2]);
  return (i, q, k, v) => {
    const past = decode ? pastInputs(g, c, i) : ['', '']; // '' = optional input left out
    const [out, presentK, presentV] = g.opN(
      'GroupQueryAttention',
      [q, k, v, ...past, seqlensK, totalLength, cosCache, sinCache],
      3,
      { num_heads: H, kv_num_heads: Hkv, scale: { float: 1 }, do_rotary: 1, rotary_interleaved: 0 },
      { domain: 'com.microsoft' },
    );
    if (decode) presentOutputs(g, c, i, presentK, presentV);
    return out;
  };
}

/** The attention implementation the engine uses for this model on this runtime. */
export function attentionFor(c: LlamaConfig, runtimeHasFused: boolean): AttentionImpl {
  return runtimeHasFused && c.headDim % 16 === 0 ? 'fused' : 'ops';
}
