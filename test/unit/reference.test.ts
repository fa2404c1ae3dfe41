/**
 * Make the Float64 reference trustworthy without an external oracle:
 *  (a) stories260K greedy-decodes the known story from BOS;
 *  (b) an independent port of llama2.c run.c's forward (interleaved RoPE, llama2.c weight
 *      layout, one token at a time with a KV cache) gives the same logits as the reference
 *      on the HF-permuted checkpoint — this checks the q/k permutation and the RoPE layout;
 *  (c) llama3 rope scaling against hand-computed values;
 *  (d) the perplexity windowing.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { layerPrefix } from '../../src/engine/model/checkpoint';
import type { LlamaConfig } from '../../src/engine/model/config';
import { f32Tensor, type Tensor } from '../../src/engine/model/tensor';
import type { Tokenizer } from '../../src/engine/model/tokenizer';
import { ReferenceModel, referencePerplexity } from '../../src/engine/reference/forward';
import { ropeInvFreq, ropeTables } from '../../src/engine/model/rope';
import { cutWindows } from '../../src/engine/text/windows';

const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const read = (path: string) => new Uint8Array(readFileSync(MODELS + path));

// ----------------------------------------------------------------------------
// A private llama2.c reader (src/engine/formats/llama2c.ts is being written beside this;
// the test keeps its own so that (b) compares against an independent conversion).

/** A model in llama2.c layout: interleaved RoPE pairs, weights [out, in], Float32. */
interface L2cModel {
  dim: number;
  hidden: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocab: number;
  seqLen: number;
  headSize: number;
  theta: number;
  eps: number;
  emb: Float32Array; // [V, dim]
  rmsAtt: Float32Array[]; // [dim]
  wq: Float32Array[]; // [nHeads*hs, dim]
  wk: Float32Array[]; // [nKvHeads*hs, dim]
  wv: Float32Array[]; // [nKvHeads*hs, dim]
  wo: Float32Array[]; // [dim, nHeads*hs]
  rmsFfn: Float32Array[]; // [dim]
  w1: Float32Array[]; // [hidden, dim]
  w2: Float32Array[]; // [dim, hidden]
  w3: Float32Array[]; // [hidden, dim]
  rmsFinal: Float32Array; // [dim]
  wcls: Float32Array | null; // [V, dim], null when shared with emb
  /** Not in llama2.c: optional biases, for the synthetic model (same interleaved layout). */
  bias?: { q: Float32Array[]; k: Float32Array[]; v: Float32Array[]; o: Float32Array[]; w1: Float32Array[]; w2: Float32Array[]; w3: Float32Array[] };
}

function readL2c(bytes: Uint8Array): L2cModel {
  const buf = bytes.slice().buffer; // aligned copy
  const [dim, hidden, nLayers, nHeads, nKvHeads, vocabSigned, seqLen] = new Int32Array(buf, 0, 7);
  const vocab = Math.abs(vocabSigned);
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;
  const f = new Float32Array(buf, 28);
  let off = 0;
  const take = (n: number) => f.subarray(off, (off += n));
  const perLayer = (n: number) => Array.from({ length: nLayers }, () => take(n));
  const emb = take(vocab * dim);
  const rmsAtt = perLayer(dim);
  const wq = perLayer(dim * dim);
  const wk = perLayer(kvDim * dim);
  const wv = perLayer(kvDim * dim);
  const wo = perLayer(dim * dim);
  const rmsFfn = perLayer(dim);
  const w1 = perLayer(hidden * dim);
  const w2 = perLayer(dim * hidden);
  const w3 = perLayer(hidden * dim);
  const rmsFinal = take(dim);
  take((seqLen * headSize) / 2); // freq_cis_real [seq_len, hs/2] (unused, recomputed)
  take((seqLen * headSize) / 2); // freq_cis_imag
  const wcls = vocabSigned > 0 ? null : take(vocab * dim);
  if (off !== f.length) throw new Error(`llama2.c file: ${f.length - off} floats left over`);
  return { dim, hidden, nLayers, nHeads, nKvHeads, vocab, seqLen, headSize, theta: 10000, eps: 1e-5, emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, wcls };
}

/**
 * HF convert_llama_weights_to_hf.py `permute`: w.view(n, rows/n/2, 2, cols).transpose(1, 2)
 * .reshape(rows, cols) — row 2i+j of each head moves to row j·hd/2 + i (cols = 1 for a bias).
 */
function permute(w: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hd = rows / nHeads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) out.set(w.subarray((h * hd + 2 * i + j) * cols, (h * hd + 2 * i + j + 1) * cols), (h * hd + j * half + i) * cols);
  return out;
}

const stubTokenizer = (vocabSize: number): Tokenizer => ({
  kind: 'llama2c',
  vocabSize,
  bosId: 1,
  eosId: 2,
  encode: () => {
    throw new Error('test tokenizer stub');
  },
  decode: () => '',
  files: () => ({}),
});

/** llama2.c layout → HF Checkpoint (q/k rows permuted from interleaved to rotate-half). */
function toCheckpoint(m: L2cModel): Checkpoint {
  const q = m.nHeads * m.headSize;
  const kv = m.nKvHeads * m.headSize;
  const config: LlamaConfig = {
    architecture: 'LlamaForCausalLM',
    hiddenSize: m.dim,
    intermediateSize: m.hidden,
    numLayers: m.nLayers,
    numHeads: m.nHeads,
    numKvHeads: m.nKvHeads,
    headDim: m.headSize,
    vocabSize: m.vocab,
    maxPositions: m.seqLen,
    rmsNormEps: m.eps,
    ropeTheta: m.theta,
    ropeScaling: null,
    tieWordEmbeddings: m.wcls === null,
    qkvBias: !!m.bias,
    oBias: !!m.bias,
    mlpBias: !!m.bias,
    qkNorm: false,
    bosTokenId: 1,
    eosTokenId: 2,
  };
  const t = new Map<string, Tensor>();
  const put = (name: string, shape: number[], data: Float32Array) => t.set(name, f32Tensor(shape, Float32Array.from(data)));
  put('model.embed_tokens.weight', [m.vocab, m.dim], m.emb);
  for (let l = 0; l < m.nLayers; l++) {
    const p = layerPrefix(l);
    put(p + 'input_layernorm.weight', [m.dim], m.rmsAtt[l]);
    put(p + 'self_attn.q_proj.weight', [q, m.dim], permute(m.wq[l], m.nHeads, q, m.dim));
    put(p + 'self_attn.k_proj.weight', [kv, m.dim], permute(m.wk[l], m.nKvHeads, kv, m.dim));
    put(p + 'self_attn.v_proj.weight', [kv, m.dim], m.wv[l]);
    put(p + 'self_attn.o_proj.weight', [m.dim, q], m.wo[l]);
    put(p + 'post_attention_layernorm.weight', [m.dim], m.rmsFfn[l]);
    put(p + 'mlp.gate_proj.weight', [m.hidden, m.dim], m.w1[l]);
    put(p + 'mlp.down_proj.weight', [m.dim, m.hidden], m.w2[l]);
    put(p + 'mlp.up_proj.weight', [m.hidden, m.dim], m.w3[l]);
    if (m.bias) {
      put(p + 'self_attn.q_proj.bias', [q], permute(m.bias.q[l], m.nHeads, q, 1));
      put(p + 'self_attn.k_proj.bias', [kv], permute(m.bias.k[l], m.nKvHeads, kv, 1));
      put(p + 'self_attn.v_proj.bias', [kv], m.bias.v[l]);
      put(p + 'self_attn.o_proj.bias', [m.dim], m.bias.o[l]);
      put(p + 'mlp.gate_proj.bias', [m.hidden], m.bias.w1[l]);
      put(p + 'mlp.down_proj.bias', [m.dim], m.bias.w2[l]);
      put(p + 'mlp.up_proj.bias', [m.hidden], m.bias.w3[l]);
    }
  }
  put('model.norm.weight', [m.dim], m.rmsFinal);
  if (m.wcls) put('lm_head.weight', [m.vocab, m.dim], m.wcls);
  return { config, tensors: t, tokenizer: stubTokenizer(m.vocab), source: 'test', format: 'llama2c' };
}

// ----------------------------------------------------------------------------
// An independent forward: a direct Float64 port of llama2.c run.c's forward(), one token
// at a time with a KV cache, interleaved RoPE on unpermuted weights (+ optional biases).

function runcLogits(m: L2cModel, tokens: number[]): Float64Array {
  const { dim, hidden, nLayers, nHeads, nKvHeads, vocab, headSize: hs } = m;
  const kvDim = nKvHeads * hs;
  const qDim = nHeads * hs;
  const kvMul = nHeads / nKvHeads;
  const matmul = (w: Float32Array, x: Float64Array, n: number, d: number, b?: Float32Array) => {
    const o = new Float64Array(d); // W (d,n) @ x (n,) -> (d,)
    for (let i = 0; i < d; i++) {
      let v = 0;
      for (let j = 0; j < n; j++) v += w[i * n + j] * x[j];
      o[i] = b ? v + b[i] : v;
    }
    return o;
  };
  const rmsnorm = (x: Float64Array, w: Float32Array) => {
    let ss = 0;
    for (let j = 0; j < x.length; j++) ss += x[j] * x[j];
    ss = 1 / Math.sqrt(ss / x.length + m.eps);
    return x.map((v, j) => w[j] * (ss * v));
  };
  const keyCache = Array.from({ length: nLayers }, () => new Float64Array(tokens.length * kvDim));
  const valueCache = Array.from({ length: nLayers }, () => new Float64Array(tokens.length * kvDim));
  const out = new Float64Array(tokens.length * vocab);
  tokens.forEach((token, pos) => {
    let x = Float64Array.from(m.emb.subarray(token * dim, (token + 1) * dim));
    for (let l = 0; l < nLayers; l++) {
      let xb = rmsnorm(x, m.rmsAtt[l]);
      const q = matmul(m.wq[l], xb, dim, qDim, m.bias?.q[l]);
      const k = matmul(m.wk[l], xb, dim, kvDim, m.bias?.k[l]);
      const v = matmul(m.wv[l], xb, dim, kvDim, m.bias?.v[l]);
      // RoPE relative positional encoding: complex-valued rotate q and k in each head
      for (let i = 0; i < qDim; i += 2) {
        const freq = 1 / Math.pow(m.theta, (i % hs) / hs);
        const fcr = Math.cos(pos * freq);
        const fci = Math.sin(pos * freq);
        for (const vec of i < kvDim ? [q, k] : [q]) {
          const v0 = vec[i];
          const v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      keyCache[l].set(k, pos * kvDim);
      valueCache[l].set(v, pos * kvDim);
      // multihead attention
      xb = new Float64Array(qDim);
      for (let h = 0; h < nHeads; h++) {
        const kvo = Math.floor(h / kvMul) * hs;
        const att = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let score = 0;
          for (let i = 0; i < hs; i++) score += q[h * hs + i] * keyCache[l][t * kvDim + kvo + i];
          att[t] = score / Math.sqrt(hs);
        }
        const max = Math.max(...att);
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += att[t] = Math.exp(att[t] - max);
        for (let t = 0; t <= pos; t++)
          for (let i = 0; i < hs; i++) xb[h * hs + i] += (att[t] / sum) * valueCache[l][t * kvDim + kvo + i];
      }
      const xb2 = matmul(m.wo[l], xb, qDim, dim, m.bias?.o[l]);
      x = x.map((val, j) => val + xb2[j]);
      // ffn: w2(silu(w1(x)) * w3(x))
      xb = rmsnorm(x, m.rmsFfn[l]);
      const hb = matmul(m.w1[l], xb, dim, hidden, m.bias?.w1[l]);
      const hb2 = matmul(m.w3[l], xb, dim, hidden, m.bias?.w3[l]);
      for (let i = 0; i < hidden; i++) hb[i] = (hb[i] * (1 / (1 + Math.exp(-hb[i])))) * hb2[i];
      const ffn = matmul(m.w2[l], hb, hidden, dim, m.bias?.w2[l]);
      x = x.map((val, j) => val + ffn[j]);
    }
    x = rmsnorm(x, m.rmsFinal);
    out.set(matmul(m.wcls ?? m.emb, x, dim, vocab), pos * vocab);
  });
  return out;
}

function maxRelDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Deterministic pseudo-random tokens (LCG) for forward comparisons. */
function someTokens(n: number, vocab: number, seed = 7): number[] {
  let s = seed;
  const ids = [1];
  while (ids.length < n) {
    s = (s * 1103515245 + 12345) % 2147483648;
    ids.push(s % vocab);
  }
  return ids;
}

// ----------------------------------------------------------------------------
// llama2.c tokenizer pieces (tok512.bin), read directly to check decoded text

function readPieces(bytes: Uint8Array): string[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: string[] = [];
  let off = 4; // int32 max_token_length
  while (off < bytes.length) {
    const len = dv.getInt32(off + 4, true); // float32 score, then int32 length
    pieces.push(new TextDecoder().decode(bytes.subarray(off + 8, off + 8 + len)));
    off += 8 + len;
  }
  return pieces;
}

/** run.c's decode: drop the leading space after BOS, turn <0xXX> pieces into bytes. */
function decodeIds(pieces: string[], ids: number[]): string {
  let text = '';
  for (let i = 1; i < ids.length; i++) {
    let piece = pieces[ids[i]];
    if (ids[i - 1] === 1 && piece.startsWith(' ')) piece = piece.slice(1);
    const byte = /^<0x([0-9A-F]{2})>$/.exec(piece);
    text += byte ? String.fromCharCode(parseInt(byte[1], 16)) : piece;
  }
  return text;
}

function argmax(row: Float64Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

// ----------------------------------------------------------------------------

const stories = readL2c(read('stories260K/stories260K.bin'));
const storiesRef = new ReferenceModel(toCheckpoint(stories));

describe('(a) stories260K greedy decoding', () => {
  const pieces = readPieces(read('stories260K/tok512.bin'));

  test('tok512 pieces: "Once upon a time" is [1, 403, 407, 261, 378]', () => {
    expect(pieces.length).toBe(512);
    expect(decodeIds(pieces, [1, 403, 407, 261, 378])).toBe('Once upon a time');
  });

  test('greedy from BOS for 40 tokens tells the known story', () => {
    const V = stories.vocab;
    const ids = [1];
    for (let i = 0; i < 40; i++) {
      const { logits } = storiesRef.forward(ids);
      ids.push(argmax(logits.subarray((ids.length - 1) * V, ids.length * V)));
    }
    const text = decodeIds(pieces, ids);
    expect(text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
    expect(text.startsWith('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.')).toBe(true);
  });
});

describe('(b) reference vs an independent llama2.c run.c port', () => {
  test('stories260K: same logits within 1e-10', () => {
    const tokens = someTokens(48, stories.vocab);
    const rel = maxRelDiff(storiesRef.forward(tokens).logits, runcLogits(stories, tokens));
    expect(rel).toBeLessThan(1e-10);
  });

  test('babyllama-tok105 model5000: same logits within 1e-10', () => {
    const baby = readL2c(read('babyllama-tok105/model5000.bin'));
    expect([baby.dim, baby.hidden, baby.nLayers, baby.nHeads, baby.nKvHeads, baby.vocab]).toEqual([128, 352, 5, 8, 4, 105]);
    const tokens = someTokens(40, baby.vocab, 3);
    const rel = maxRelDiff(new ReferenceModel(toCheckpoint(baby)).forward(tokens).logits, runcLogits(baby, tokens));
    expect(rel).toBeLessThan(1e-10);
  });

  test('a synthetic model with biases, untied head, GQA 3:1, hd != D/H, theta 5e5: same logits', () => {
    let s = 12345;
    const rnd = (n: number, scale = 0.3) =>
      Float32Array.from({ length: n }, () => {
        s = (s * 1103515245 + 12345) % 2147483648;
        return (s / 2147483648 - 0.5) * 2 * scale;
      });
    const [dim, hidden, nLayers, nHeads, nKvHeads, vocab, hs] = [24, 40, 2, 6, 2, 37, 6];
    const per = (n: number, scale?: number) => Array.from({ length: nLayers }, () => rnd(n, scale));
    const ones = (n: number) => Array.from({ length: nLayers }, () => rnd(n, 0.2).map((v) => 1 + v));
    const q = nHeads * hs;
    const kv = nKvHeads * hs;
    const m: L2cModel = {
      dim, hidden, nLayers, nHeads, nKvHeads, vocab, seqLen: 64, headSize: hs, theta: 500000, eps: 1e-6,
      emb: rnd(vocab * dim, 1), rmsAtt: ones(dim), wq: per(q * dim), wk: per(kv * dim), wv: per(kv * dim), wo: per(dim * q),
      rmsFfn: ones(dim), w1: per(hidden * dim), w2: per(dim * hidden), w3: per(hidden * dim), rmsFinal: ones(dim)[0], wcls: rnd(vocab * dim, 1),
      bias: { q: per(q), k: per(kv), v: per(kv), o: per(dim), w1: per(hidden), w2: per(dim), w3: per(hidden) },
    };
    const ck = toCheckpoint(m);
    expect(ck.config.tieWordEmbeddings).toBe(false);
    const tokens = someTokens(20, vocab, 11);
    const rel = maxRelDiff(new ReferenceModel(ck).forward(tokens).logits, runcLogits(m, tokens));
    expect(rel).toBeLessThan(1e-10);
  });
});

describe('reference forward options, nll and perplexity', () => {
  const tokens = someTokens(24, stories.vocab, 5);
  const full = storiesRef.forward(tokens);
  const { hiddenSize: D, vocabSize: V, numLayers: L } = storiesRef.config;

  test('streams are X_0..X_L; X_0 is the embedding', () => {
    expect(full.streams.length).toBe(L + 1);
    for (const x of full.streams) expect(x.length).toBe(tokens.length * D);
    expect(Array.from(full.streams[0].subarray(D, 2 * D))).toEqual(Array.from(stories.emb.subarray(tokens[1] * D, (tokens[1] + 1) * D)));
  });

  test('startLayerStream at X_k reproduces the logits exactly', () => {
    for (const k of [0, 2, L]) {
      const r = storiesRef.forward(tokens, { startLayerStream: { layer: k, stream: full.streams[k] } });
      expect(Array.from(r.logits)).toEqual(Array.from(full.logits));
      expect(r.streams.length).toBe(L + 1);
      expect(r.streams[k - 1]?.length ?? 0).toBe(0);
    }
  });

  test('skipLayers equals the checkpoint with those layers removed', () => {
    const ck = toCheckpoint(stories);
    const kept = [0, 1, 3]; // drop layers 2 and 4
    const pruned = new Map<string, Tensor>();
    for (const [name, t] of ck.tensors) {
      const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
      if (!m) pruned.set(name, t);
      else if (kept.includes(Number(m[1]))) pruned.set(layerPrefix(kept.indexOf(Number(m[1]))) + m[2], t);
    }
    const small = new ReferenceModel({ ...ck, config: { ...ck.config, numLayers: kept.length }, tensors: pruned });
    const skipped = storiesRef.forward(tokens, { skipLayers: [2, 4] });
    expect(Array.from(skipped.logits)).toEqual(Array.from(small.forward(tokens).logits));
    expect(skipped.streams[3]).toEqual(skipped.streams[2]);
  });

  test('nll is log-sum-exp minus the target logit; perplexity follows the window protocol', () => {
    const nll = storiesRef.nll(tokens);
    expect(nll.length).toBe(tokens.length - 1);
    for (const t of [0, 7, tokens.length - 2]) {
      const row = Array.from(full.logits.subarray(t * V, (t + 1) * V));
      const p = Math.exp(row[tokens[t + 1]]) / row.reduce((a, z) => a + Math.exp(z), 0);
      expect(nll[t]).toBeCloseTo(-Math.log(p), 10);
    }
    const ids = someTokens(50, V, 9); // 3 windows of 16, tail of 2 dropped
    const r = referencePerplexity(storiesRef, ids, 16);
    expect(r.windows).toBe(3);
    expect(r.tokens).toBe(45);
    let sum = 0;
    for (let w = 0; w < 3; w++) for (const v of storiesRef.nll(ids.slice(16 * w, 16 * w + 16))) sum += v;
    expect(r.ppl).toBeCloseTo(Math.exp(sum / 45), 10);
    const r1 = referencePerplexity(storiesRef, ids, 16, 1);
    expect([r1.windows, r1.tokens]).toEqual([1, 15]);
  });
});

describe('(c) rope', () => {
  test('default inv_freq and HF table layout', () => {
    const c = { headDim: 8, ropeTheta: 10000, ropeScaling: null };
    expect(Array.from(ropeInvFreq(c))).toEqual([1, 0.1, 0.01, 0.001].map((v, i) => expect.closeTo(v, 15 - i)));
    const { cos, sin } = ropeTables(c, { start: 3, length: 2 });
    expect(cos.length).toBe(16);
    expect(cos[0]).toBeCloseTo(Math.cos(3), 15);
    expect(cos[4]).toBe(cos[0]); // emb = cat(freqs, freqs)
    expect(sin[8 + 1]).toBeCloseTo(Math.sin(4 * 0.1), 15);
    expect(sin[8 + 5]).toBe(sin[8 + 1]);
    const listed = ropeTables(c, [3, 4]);
    expect(listed.cos).toEqual(cos);
    expect(listed.sin).toEqual(sin);
  });

  test('llama3 scaling (Llama-3.2 settings) against hand-computed values', () => {
    // theta 5e5, hd 64, factor 32, low 1, high 4, original 8192:
    // low_freq_wavelen = 8192, high_freq_wavelen = 2048; wavelen_i = 2π·5e5^(i/32).
    const c = {
      headDim: 64,
      ropeTheta: 500000,
      ropeScaling: { type: 'llama3' as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    };
    const f = ropeInvFreq(c);
    expect(f.length).toBe(32);
    // high frequencies (wavelen < 2048: i ≤ 14) are unchanged
    expect(f[0]).toBe(1);
    expect(f[14]).toBeCloseTo(500000 ** (-14 / 32), 17);
    // i = 16: f = 1/sqrt(5e5) = 0.0014142135623731, wavelen = 4442.88 (medium),
    // smooth = (8192/4442.88 − 1)/3 = 0.281284, f·((1 − smooth)/32 + smooth) = 0.000429556797
    expect(f[16]).toBeCloseTo(0.00042955679655936815, 15);
    // i = 15, 17: medium too
    expect(f[15]).toBeCloseTo(0.001290547928209264, 15);
    expect(f[17]).toBeCloseTo(9.70828780262767e-5, 16);
    // low frequencies (wavelen > 8192: i ≥ 18) are divided by the factor
    expect(f[18]).toBeCloseTo(0.000622772421914596 / 32, 17);
    expect(f[31]).toBeCloseTo(500000 ** (-62 / 64) / 32, 20);
  });

  test('llama3 scaling (Llama-3.1 settings, hd 128, factor 8)', () => {
    const c = {
      headDim: 128,
      ropeTheta: 500000,
      ropeScaling: { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    };
    const f = ropeInvFreq(c);
    expect(f[28]).toBeCloseTo(0.0032114459947525913, 17); // unchanged
    expect(f[29]).toBeCloseTo(0.002166570763503359, 16); // first medium
    expect(f[35]).toBeCloseTo(9.556212353964683e-5, 18); // last medium
    expect(f[36]).toBeCloseTo(7.78465527393245e-5, 18); // first low: f/8
    expect(f[63]).toBeCloseTo(3.068925988914511e-7, 21);
  });
});

describe('(d) cutWindows', () => {
  const ids = Array.from({ length: 10 }, (_, i) => i);

  test('consecutive, non-overlapping, tail dropped', () => {
    expect(cutWindows(ids, 3)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
    expect(cutWindows(ids, 5)).toEqual([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]);
    expect(cutWindows(ids, 10)).toEqual([ids]);
  });

  test('maxWindows takes the first K', () => {
    expect(cutWindows(ids, 3, 2)).toEqual([[0, 1, 2], [3, 4, 5]]);
    expect(cutWindows(ids, 3, 99)).toHaveLength(3);
  });

  test('too short a text is bad-input naming the token count and W', () => {
    let err: unknown;
    try {
      cutWindows(ids, 11);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LopperError);
    expect((err as LopperError).code).toBe('bad-input');
    expect((err as LopperError).message).toMatch(/10 tokens.*11/);
    expect(() => cutWindows([], 2)).toThrow(/0 tokens/);
  });

  test('a window below 2 or a bad maxWindows is bad-option', () => {
    for (const bad of [() => cutWindows(ids, 1), () => cutWindows(ids, 2.5), () => cutWindows(ids, 3, 0)]) {
      expect(bad).toThrow(LopperError);
      try {
        bad();
      } catch (e) {
        expect((e as LopperError).code).toBe('bad-option');
      }
    }
  });
});
