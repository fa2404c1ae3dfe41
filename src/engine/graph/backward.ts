/**
 * The gradient graph for Taylor+ (docs/PRUNE_AND_COMP.md §4): the decoder's forward pass
 * and a hand-written reverse-mode backward pass, op by op, as one ONNX graph (onnxruntime
 * has no autodiff in the browser). It outputs ∂L/∂W for every weight of every decoder
 * layer, in Hugging Face naming and layout, where
 *
 *   L = Σ_b Σ_t loss_weight[b,t] · nll[b,t],    nll[b,t] = −log p(targets[b,t] | tokens ≤ t)
 *
 * With loss_weight[b,t] = 1/(T−1) for t < T−1 and 0 for the last position, L is the sum over
 * the batch's windows of HF's `model(ids, labels=ids).loss` (mean over the T−1 predicted
 * tokens), and ∂L/∂W is what the official Taylor+ code accumulates in W.grad by calling
 * loss.backward() once per window.
 *
 * Design: every weight gradient is a sum over the rows of the flattened batch
 * (dW = dYᵀ·X with X [B·T, in]), so running B windows at once sums their gradients inside
 * the graph for free; there is no per-window gradient anywhere. Gradients of more windows
 * than fit in one run are summed by the caller (prune/taylor.ts) before |W ⊙ G| is taken.
 *
 * Inputs   input_ids [B,T] int64, targets [B,T] int64, loss_weight [B,T],
 *          rope_cos, rope_sin [T,hd], mask [T,T] (additive causal, as in llama.ts)
 * Outputs  loss [B]: Σ_t loss_weight·nll per window (to check the forward);
 *          grad.<name> for each layer weight <name> (see layerWeightShapes in model/checkpoint.ts), shape of <name>.
 *
 * Same maths as graph/llama.ts, built differently so that each step has an obvious
 * transpose: activations are kept 2-D as [N, ·] with N = B·T rows, and every weight stays
 * in HF layout [out, in] (no transposed copy), used as
 *   forward   Y  = Gemm(X, W, b, transB=1)     = X·Wᵀ + b        [N,out]
 *   backward  dX = MatMul(dY, W)                                  [N,in]
 *             dW = Gemm(dY, X, transA=1)       = dYᵀ·X           [out,in]  (HF layout)
 *             db = ReduceSum(dY, axis 0)                          [out]
 * q/k/v and gate/up are fused row-wise ([Q+2K, D], [2F, D]) as in llama.ts, and their
 * gradients split back. 1/sqrt(hd) is applied to the attention scores (not folded into W_q)
 * so W_q's gradient needs no rescaling. With qkNorm (Qwen3) each head's q and k go through
 * RMSNorm with gains q_norm/k_norm [hd] before RoPE; their backward is the same RMSNorm
 * backward as the layer norms', on [B,n,T,hd] over the last axis, and the gains' gradients
 * sum over batch, heads and positions.
 *
 * Memory (float32; D hidden, F intermediate, H/Hkv heads, hd, V vocab, L layers):
 *   weights: once, as initializers (plus ORT's own copy at session creation);
 *   activations kept for the backward: per layer about N·(6D + 2(Q+2K) + 5F) + 3·B·H·T²
 *     (softmax P, dP, dS), and N·V three or four times for the logits / log-softmax /
 *     one-hot / dlogits (the biggest term for large vocabularies: keep B·T modest);
 *   outputs: one gradient copy of all decoder-layer weights (no embedding / LM head /
 *     final-norm gradients are computed).
 */
import { layerPrefix, lmHeadName, tensor, type Checkpoint } from '../model/checkpoint';
import { toFloat32 } from '../model/tensor';
import { ElemType, GraphBuilder } from './builder';
import { concat } from './llama';

/** Graph output name of the gradient of weight `name`. */
export const gradName = (name: string) => `grad.${name}`;

/** What the forward of one layer keeps for its backward. */
interface Saved {
  r1: string; //     1/rms(X_k)     [N,1]
  xh1: string; //    X_k·r1         [N,D]
  n1: string; //     xh1 ⊙ g_att    [N,D]
  qkNorm?: QkNormSaved; // qkNorm only
  qg: string; //     roped q        [B,Hkv,G,T,hd]
  kg: string; //     roped k        [B,Hkv,1,T,hd]
  vg: string; //     v              [B,Hkv,1,T,hd]
  P: string; //      softmax        [B,Hkv,G,T,T]
  merged: string; // attention out  [N,Q]
  r2: string; //     1/rms(h')      [N,1]
  xh2: string; //    h'·r2          [N,D]
  n2: string; //     xh2 ⊙ g_ffn    [N,D]
  gate: string; //   gate pre-act   [N,F]
  sg: string; //     sigmoid(gate)  [N,F]
  up: string; //                    [N,F]
  a: string; //      SiLU(gate)⊙up  [N,F]
  // weights (initializer names)
  gAtt: string; //   [D]
  wqkv: string; //   [Q+2K, D]
  wo: string; //     [D, Q]
  gFfn: string; //   [D]
  wgu: string; //    [2F, D]
  wdown: string; //  [D, F]
}

/** What the per-head q/k RMSNorms keep for the backward (qkNorm). */
interface QkNormSaved {
  rq: string; //  1/rms of each q head  [B,H,T,1]
  xhq: string; // q·rq                  [B,H,T,hd]
  gQ: string; //  q_norm gain           [hd]
  rk: string; //  1/rms of each k head  [B,Hkv,T,1]
  xhk: string; // k·rk                  [B,Hkv,T,hd]
  gK: string; //  k_norm gain           [hd]
}

export function buildBackwardGraph(ck: Checkpoint): Uint8Array {
  const c = ck.config;
  const D = c.hiddenSize;
  const F = c.intermediateSize;
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const hd = c.headDim;
  const G = H / Hkv; // query heads per kv head
  const V = c.vocabSize;
  const L = c.numLayers;
  const Q = H * hd;
  const K = Hkv * hd;
  const w = (name: string) => toFloat32(tensor(ck, name));
  const g = new GraphBuilder('lopper_taylor_backward');

  // ---- inputs ----
  const ids = g.input('input_ids', ElemType.INT64, ['B', 'T']);
  const targets = g.input('targets', ElemType.INT64, ['B', 'T']);
  const lossWeight = g.input('loss_weight', ElemType.FLOAT, ['B', 'T']);
  const cos = g.input('rope_cos', ElemType.FLOAT, ['T', hd]);
  const sin = g.input('rope_sin', ElemType.FLOAT, ['T', hd]);
  const mask = g.input('mask', ElemType.FLOAT, ['T', 'T']);
  const bt = g.op('Shape', [ids]); // [B, T] as int64 [2]

  const one = g.scalar(1);
  const eps = g.scalar(c.rmsNormEps);
  const scale = g.scalar(1 / Math.sqrt(hd));
  const sumRows = (t: string) => g.reduceSum(t, [0], 0); // [N,n] → [n]: bias and gain gradients

  // ---- linear maps (W in HF layout [out, in]) ----
  const linear = (x: string, W: string, b?: string) => g.op('Gemm', b ? [x, W, b] : [x, W], { transB: 1 }); // x·Wᵀ + b
  const linearBackX = (dy: string, W: string) => g.matmul(dy, W); // dX = dY·W
  const linearBackW = (dy: string, x: string) => g.op('Gemm', [dy, x], { transA: 1 }); // dW = dYᵀ·X [out,in]

  // ---- RMSNorm: n = xh ⊙ gain, xh = x·r, r = (mean(x²) + eps)^(−1/2) ----
  const rmsNorm = (x: string) => {
    const ms = g.reduceMean(g.mul(x, x), [-1]); // [N,1]
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.add(ms, eps)])]);
    return { r, xh: g.mul(x, r) };
  };
  // dx = r·(dxh − xh·mean(dxh ⊙ xh)), from ∂r/∂x_i = −r³x_i/D.
  const rmsNormBack = (r: string, xh: string, dxh: string) =>
    g.mul(r, g.sub(dxh, g.mul(xh, g.reduceMean(g.mul(dxh, xh), [-1]))));

  // ---- RoPE and its transpose ----
  // forward   y1 = x1·cos1 − x2·sin1,  y2 = x2·cos2 + x1·sin2
  //           y  = x ⊙ cos + swap(x) ⊙ [−sin1, sin2]
  // transpose dx1 = dy1·cos1 + dy2·sin2, dx2 = dy2·cos2 − dy1·sin1   (rotation by −angle)
  //           dx = dy ⊙ cos + swap(dy) ⊙ [sin2, −sin1]
  const [sin1, sin2] = g.opN('Split', [sin, g.ints([hd / 2, hd / 2])], 2, { axis: -1 });
  const cos4 = g.reshape(cos, [1, 1, -1, hd]); // [1,1,T,hd]
  const sinFwd = g.reshape(g.op('Concat', [g.op('Neg', [sin1]), sin2], { axis: -1 }), [1, 1, -1, hd]);
  const sinBwd = g.reshape(g.op('Concat', [sin2, g.op('Neg', [sin1])], { axis: -1 }), [1, 1, -1, hd]);
  const swapHalves = (x: string) => {
    const [x1, x2] = g.opN('Split', [x, g.ints([hd / 2, hd / 2])], 2, { axis: -1 });
    return g.op('Concat', [x2, x1], { axis: -1 });
  };
  const rope = (x: string) => g.add(g.mul(x, cos4), g.mul(swapHalves(x), sinFwd));
  const ropeBack = (dy: string) => g.add(g.mul(dy, cos4), g.mul(swapHalves(dy), sinBwd));

  // [N, n·hd] ↔ [B, n, T, hd]
  const heads = (t: string, n: number) =>
    g.transpose(g.op('Reshape', [t, g.op('Concat', [bt, g.ints([n, hd])], { axis: 0 })]), [0, 2, 1, 3]);
  const unheads = (t: string, n: number) => g.reshape(g.transpose(t, [0, 2, 1, 3]), [-1, n * hd]);
  const swapLast = [0, 1, 2, 4, 3]; // transpose the last two axes of a 5-D tensor

  // ================================================================ forward
  // model.embed_tokens.weight [V, D]
  const embed = g.weight('embed', [V, D], w('model.embed_tokens.weight'));
  let x = g.reshape(g.op('Gather', [embed, ids], { axis: 0 }), [-1, D]); // X_0 [N,D]

  const saved: Saved[] = [];
  for (let i = 0; i < L; i++) {
    const p = layerPrefix(i);
    // input_layernorm [D]
    const gAtt = g.weight(`l${i}.att_norm`, [D], w(p + 'input_layernorm.weight'));
    const { r: r1, xh: xh1 } = rmsNorm(x);
    const n1 = g.mul(xh1, gAtt);
    // q_proj [Q, D], k_proj [K, D], v_proj [K, D] → W_qkv [Q+2K, D] (rows stacked)
    const wqkv = g.weight(
      `l${i}.wqkv`,
      [Q + 2 * K, D],
      concat([w(p + 'self_attn.q_proj.weight'), w(p + 'self_attn.k_proj.weight'), w(p + 'self_attn.v_proj.weight')], [1, 1, 1]),
    );
    const bqkv = c.qkvBias
      ? g.weight(
          `l${i}.bqkv`,
          [Q + 2 * K],
          concat([w(p + 'self_attn.q_proj.bias'), w(p + 'self_attn.k_proj.bias'), w(p + 'self_attn.v_proj.bias')], [1, 1, 1]),
        )
      : undefined;
    const qkv = linear(n1, wqkv, bqkv); // [N, Q+2K]
    const [q0, k0, v0] = g.opN('Split', [qkv, g.ints([Q, K, K])], 3, { axis: -1 });
    let qh = heads(q0, H); // [B,H,T,hd]
    let kh = heads(k0, Hkv); // [B,Hkv,T,hd]
    let qkNorm: QkNormSaved | undefined;
    if (c.qkNorm) {
      // q_norm [hd], k_norm [hd]: RMSNorm of each head's vector, before RoPE
      const gQ = g.weight(`l${i}.q_norm`, [hd], w(p + 'self_attn.q_norm.weight'));
      const gK = g.weight(`l${i}.k_norm`, [hd], w(p + 'self_attn.k_norm.weight'));
      const nq = rmsNorm(qh);
      const nk = rmsNorm(kh);
      qkNorm = { rq: nq.r, xhq: nq.xh, gQ, rk: nk.r, xhk: nk.xh, gK };
      qh = g.mul(nq.xh, gQ);
      kh = g.mul(nk.xh, gK);
    }
    const qr = rope(qh); // [B,H,T,hd]
    const kr = rope(kh); // [B,Hkv,T,hd]
    // GQA by broadcasting: query heads grouped under their kv head.
    const qg = g.reshape(qr, [0, Hkv, G, -1, hd]); // [B,Hkv,G,T,hd]
    const kg = g.op('Unsqueeze', [kr, g.ints([2])]); // [B,Hkv,1,T,hd]
    const vg = g.op('Unsqueeze', [heads(v0, Hkv), g.ints([2])]); // [B,Hkv,1,T,hd]
    const S = g.add(g.mul(g.matmul(qg, g.transpose(kg, swapLast)), scale), mask); // [B,Hkv,G,T,T]
    const P = g.op('Softmax', [S], { axis: -1 });
    const att = g.matmul(P, vg); // [B,Hkv,G,T,hd]
    const merged = unheads(g.reshape(att, [0, H, -1, hd]), H); // [N,Q]
    // o_proj [D, Q]
    const wo = g.weight(`l${i}.wo`, [D, Q], w(p + 'self_attn.o_proj.weight'));
    const bo = c.oBias ? g.weight(`l${i}.bo`, [D], w(p + 'self_attn.o_proj.bias')) : undefined;
    const h = g.add(x, linear(merged, wo, bo)); // h' [N,D]

    // post_attention_layernorm [D]
    const gFfn = g.weight(`l${i}.ffn_norm`, [D], w(p + 'post_attention_layernorm.weight'));
    const { r: r2, xh: xh2 } = rmsNorm(h);
    const n2 = g.mul(xh2, gFfn);
    // gate_proj [F, D], up_proj [F, D] → W_gu [2F, D]
    const wgu = g.weight(`l${i}.wgu`, [2 * F, D], concat([w(p + 'mlp.gate_proj.weight'), w(p + 'mlp.up_proj.weight')], [1, 1]));
    const bgu = c.mlpBias
      ? g.weight(`l${i}.bgu`, [2 * F], concat([w(p + 'mlp.gate_proj.bias'), w(p + 'mlp.up_proj.bias')], [1, 1]))
      : undefined;
    const [gate, up] = g.opN('Split', [linear(n2, wgu, bgu), g.ints([F, F])], 2, { axis: -1 }); // [N,F] each
    const sg = g.op('Sigmoid', [gate]);
    const a = g.mul(g.mul(gate, sg), up); // SiLU(gate) ⊙ up [N,F]
    // down_proj [D, F]
    const wdown = g.weight(`l${i}.wdown`, [D, F], w(p + 'mlp.down_proj.weight'));
    const bdown = c.mlpBias ? g.weight(`l${i}.bdown`, [D], w(p + 'mlp.down_proj.bias')) : undefined;
    saved.push({ r1, xh1, n1, qkNorm, qg, kg, vg, P, merged, r2, xh2, n2, gate, sg, up, a, gAtt, wqkv, wo, gFfn, wgu, wdown });
    x = g.add(h, linear(a, wdown, bdown)); // X_{i+1} [N,D]
  }

  // final norm [D], LM head [V, D] (the embedding initializer itself when tied)
  const gFinal = g.weight('final_norm', [D], w('model.norm.weight'));
  const head = c.tieWordEmbeddings ? embed : g.weight('lm_head', [V, D], w(lmHeadName(c)));
  const fin = rmsNorm(x);
  const logits = linear(g.mul(fin.xh, gFinal), head); // [N,V]
  const logp = g.op('LogSoftmax', [logits], { axis: -1 });
  const tgt = g.reshape(targets, [-1, 1]); // [N,1]
  const lw = g.reshape(lossWeight, [-1, 1]); // [N,1]
  const nll = g.op('Neg', [g.op('GatherElements', [logp, tgt], { axis: 1 })]); // [N,1]
  g.output(g.reduceSum(g.op('Reshape', [g.mul(nll, lw), bt]), [1], 0), 'loss', ElemType.FLOAT, ['B']);

  // ================================================================ backward
  // ∂L/∂logits = (softmax − onehot(target)) · loss_weight                  [N,V]
  const arange = g.ints(Array.from({ length: V }, (_, i) => i)); // [V]
  const onehot = g.op('Cast', [g.op('Equal', [tgt, arange])], { to: ElemType.FLOAT }); // [N,V]
  const dlogits = g.mul(g.sub(g.op('Exp', [logp]), onehot), lw);
  const dy = linearBackX(dlogits, head); // [N,D]
  let dx = rmsNormBack(fin.r, fin.xh, g.mul(dy, gFinal)); // ∂L/∂X_L

  const grad = (value: string, name: string, dims: number[]) => g.output(value, gradName(name), ElemType.FLOAT, dims);

  for (let i = L - 1; i >= 0; i--) {
    const s = saved[i];
    const p = layerPrefix(i);
    // dx is ∂L/∂X_{i+1}; X_{i+1} = h' + down(a)

    // ---- down_proj: grad [D, F] ----
    grad(linearBackW(dx, s.a), p + 'mlp.down_proj.weight', [D, F]);
    if (c.mlpBias) grad(sumRows(dx), p + 'mlp.down_proj.bias', [D]);
    const da = linearBackX(dx, s.wdown); // [N,F]

    // ---- a = SiLU(gate) ⊙ up; SiLU'(z) = σ(z)·(1 + z·(1 − σ(z))) ----
    const dup = g.mul(da, g.mul(s.gate, s.sg));
    const dgate = g.mul(g.mul(da, s.up), g.mul(s.sg, g.add(one, g.mul(s.gate, g.sub(one, s.sg)))));
    const dgu = g.op('Concat', [dgate, dup], { axis: -1 }); // [N,2F]

    // ---- gate_proj, up_proj: grads [F, D] each ----
    const [dWgate, dWup] = g.opN('Split', [linearBackW(dgu, s.n2), g.ints([F, F])], 2, { axis: 0 });
    grad(dWgate, p + 'mlp.gate_proj.weight', [F, D]);
    grad(dWup, p + 'mlp.up_proj.weight', [F, D]);
    if (c.mlpBias) {
      const [dbg, dbu] = g.opN('Split', [sumRows(dgu), g.ints([F, F])], 2, { axis: 0 });
      grad(dbg, p + 'mlp.gate_proj.bias', [F]);
      grad(dbu, p + 'mlp.up_proj.bias', [F]);
    }
    const dn2 = linearBackX(dgu, s.wgu); // [N,D]

    // ---- post_attention_layernorm: grad [D]; residual h' → X_{i+1} ----
    grad(sumRows(g.mul(dn2, s.xh2)), p + 'post_attention_layernorm.weight', [D]);
    const dh = g.add(dx, rmsNormBack(s.r2, s.xh2, g.mul(dn2, s.gFfn))); // ∂L/∂h' [N,D]

    // ---- o_proj: grad [D, Q] ----
    grad(linearBackW(dh, s.merged), p + 'self_attn.o_proj.weight', [D, Q]);
    if (c.oBias) grad(sumRows(dh), p + 'self_attn.o_proj.bias', [D]);
    const dmerged = linearBackX(dh, s.wo); // [N,Q]

    // ---- attention: A = P·V, P = softmax(S), S = q·kᵀ/sqrt(hd) + mask ----
    const dA = g.reshape(heads(dmerged, H), [0, Hkv, G, -1, hd]); // [B,Hkv,G,T,hd]
    const dP = g.matmul(dA, g.transpose(s.vg, swapLast)); // [B,Hkv,G,T,T]
    const dv = g.reduceSum(g.matmul(g.transpose(s.P, swapLast), dA), [2], 0); // Σ over the group [B,Hkv,T,hd]
    // softmax: dS = P ⊙ (dP − Σ_s dP ⊙ P); masked entries have P = 0 and get no gradient
    const dS = g.mul(g.mul(s.P, g.sub(dP, g.reduceSum(g.mul(dP, s.P), [-1]))), scale); // ∂L/∂(q·kᵀ)
    const dq = g.reshape(g.matmul(dS, s.kg), [0, H, -1, hd]); // [B,H,T,hd]
    const dk = g.reduceSum(g.matmul(g.transpose(dS, swapLast), s.qg), [2], 0); // [B,Hkv,T,hd]
    let dqh = ropeBack(dq); // ∂L/∂q before RoPE [B,H,T,hd]
    let dkh = ropeBack(dk); // [B,Hkv,T,hd]
    if (s.qkNorm) {
      // ---- q_norm, k_norm: grads [hd] (Σ over batch, heads, positions) ----
      const n = s.qkNorm;
      const sumHeads = (t: string) => g.reduceSum(t, [0, 1, 2], 0); // [B,n,T,hd] → [hd]
      grad(sumHeads(g.mul(dqh, n.xhq)), p + 'self_attn.q_norm.weight', [hd]);
      grad(sumHeads(g.mul(dkh, n.xhk)), p + 'self_attn.k_norm.weight', [hd]);
      dqh = rmsNormBack(n.rq, n.xhq, g.mul(dqh, n.gQ));
      dkh = rmsNormBack(n.rk, n.xhk, g.mul(dkh, n.gK));
    }
    const dqkv = g.op('Concat', [unheads(dqh, H), unheads(dkh, Hkv), unheads(dv, Hkv)], { axis: -1 }); // [N, Q+2K]

    // ---- q_proj [Q, D], k_proj [K, D], v_proj [K, D] ----
    const [dWq, dWk, dWv] = g.opN('Split', [linearBackW(dqkv, s.n1), g.ints([Q, K, K])], 3, { axis: 0 });
    grad(dWq, p + 'self_attn.q_proj.weight', [Q, D]);
    grad(dWk, p + 'self_attn.k_proj.weight', [K, D]);
    grad(dWv, p + 'self_attn.v_proj.weight', [K, D]);
    if (c.qkvBias) {
      const [dbq, dbk, dbv] = g.opN('Split', [sumRows(dqkv), g.ints([Q, K, K])], 3, { axis: 0 });
      grad(dbq, p + 'self_attn.q_proj.bias', [Q]);
      grad(dbk, p + 'self_attn.k_proj.bias', [K]);
      grad(dbv, p + 'self_attn.v_proj.bias', [K]);
    }
    const dn1 = linearBackX(dqkv, s.wqkv); // [N,D]

    // ---- input_layernorm: grad [D]; residual X_i → h' ----
    grad(sumRows(g.mul(dn1, s.xh1)), p + 'input_layernorm.weight', [D]);
    if (i > 0) dx = g.add(dh, rmsNormBack(s.r1, s.xh1, g.mul(dn1, s.gAtt))); // ∂L/∂X_i (not needed below layer 0)
  }
  return g.encode();
}
