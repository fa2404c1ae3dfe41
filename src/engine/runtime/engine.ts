import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { LopperError } from '../errors';
import { attentionFor, buildLlamaGraph, headWeights, layerWeights, programKey, type AttentionImpl, type GraphWeight, type Program } from '../graph/llama';
import { lmHeadName, parameterCount, tensor, type Checkpoint } from '../model/checkpoint';
import { elements, numel, toFloat32, widenInto } from '../model/tensor';
import { ropeTables } from '../model/rope';
import { cutWindows } from '../text/windows';
import type { Runtime } from './ort';
import { HEAD_SLICE_FLOATS, STREAM_GROUP_TOKENS, type DecodeWeights, type Execution } from '../model/cost';
import { makeSampler, type SamplerOptions } from './sampler';

/** Per-window calibration statistics, computed inside the graph. */
export interface WindowStats {
  /** cos[k][t]: cosine between X_k[t] and X_{k+1}[t], k = 0..L−1 */
  cos: Float32Array[];
  /** absMean[k][c]: mean over the window's tokens of |X_k[t, c]|, k = 0..L (X_L before the final norm) */
  absMean: Float32Array[];
}

/** What a pass returns (each optional). */
export interface PassOutputs {
  stats?: boolean;
  nll?: boolean;
  /** true: [T, V] per window; 'last': the last position's [V] only (streamed: the head runs on that row alone) */
  logits?: boolean | 'last';
  streams?: boolean;
}

/** One window's results from a pass; arrays are indexed by absolute boundary k. */
export interface WindowResult extends WindowStats {
  /** X_k [T·D] for every boundary the pass computed */
  streams: Float32Array[];
  /** W − 1 values */
  nll?: Float32Array;
  /** [T, V], or [V] when the pass asked for the 'last' position's */
  logits?: Float32Array;
}

export interface PerplexityResult {
  ppl: number;
  /** predicted tokens: windows × (W − 1) */
  tokens: number;
  windows: number;
  /** Σ NLL over predicted tokens (nats) */
  nllSum: number;
}

export interface GenerateOptions extends SamplerOptions {
  maxTokens?: number;
  /** stop at EOS (default true) */
  stopAtEos?: boolean;
}

export type Progress = (done: number, total: number) => void;

const MASKED = -1e30;

/** RoPE angles for positions 0..n−1 as float32: full [n, hd] rows and cos/sin-cache [n, hd/2] rows. */
interface RopeTable {
  n: number;
  cos: Float32Array;
  sin: Float32Array;
  cosHalf: Float32Array;
  sinHalf: Float32Array;
}

/**
 * How passes run: 'whole', one graph holding every weight in fp32 (the fastest where it
 * fits), or 'streamed', one decoder layer at a time — one session for every layer, whose
 * weights are inputs, fed layer after layer (widened to fp32 from their storage dtype for that
 * layer only) on every window, then the LM head in slices of its rows, so the runtime holds one
 * layer's weights or one slice of the head at any moment; the embedding rows are gathered
 * outside the runtime. Passes, statistics, streams, NLL, logits, generation and shared-context
 * scoring give the same numbers either way (layer by layer there is no KV cache: a new token
 * runs the sequence again). The type's home is model/cost.ts, with what each one costs.
 */
export type { Execution };

/**
 * fp32 weight bytes above which a model is streamed: a whole graph holds its weights in fp32
 * once in the protobuf and once in the session, and a protobuf cannot exceed 2 GiB.
 */
export const WHOLE_GRAPH_BUDGET = 1.5 * 2 ** 30;

/** The execution a model gets by default: the whole graph where its fp32 weights fit the budget, else streamed. */
export function chooseExecution(ck: Checkpoint, budgetBytes: number = WHOLE_GRAPH_BUDGET): Execution {
  return executionFor(parameterCount(ck), budgetBytes);
}

/** chooseExecution from a parameter count (before a model is downloaded). */
export function executionFor(parameters: number, budgetBytes: number = WHOLE_GRAPH_BUDGET): Execution {
  return parameters * 4 > budgetBytes ? 'streamed' : 'whole';
}

export type { DecodeWeights };

/** onnxruntime sessions the engine holds open now, over all Engines of this thread (released by dispose()). */
let openSessions = 0;
export const liveSessions = (): number => openSessions;

/**
 * Runs a Checkpoint with onnxruntime (web or node, any execution provider) through graphs
 * built from it. Sessions are built on first use per program and kept until dispose().
 */
export class Engine {
  private sessions = new Map<string, Promise<InferenceSession>>();
  private ropeTable: RopeTable = { n: 0, cos: new Float32Array(0), sin: new Float32Array(0), cosHalf: new Float32Array(0), sinHalf: new Float32Array(0) };
  /** Which attention the graphs use (see graph/llama.ts). */
  readonly attention: AttentionImpl;
  /** Whole graph or layer by layer (see Execution; default chooseExecution). */
  readonly execution: Execution;

  /**
   * The weights generation decodes with: 'fp32' (a KV cache on the whole graph; layer by layer
   * without one), 'q8' (every layer resident as 8-bit weights with a KV cache, whatever the
   * execution: generation where fp32 does not fit on WASM; graph/quantize.ts), or 'fp16'
   * (every matrix resident in float16, multiplied in float16, with a KV cache: WebGPU with
   * shader-f16 where fp32 does not fit; graph/llama.ts).
   */
  readonly decodeWeights: DecodeWeights;

  /** Streamed: the most floats of LM-head weights, or of logits, one slice of the head holds (vocabPass). */
  readonly headSliceFloats: number;
  /** Streamed: about how many tokens (whole windows, at least one) go through a layer or a head slice in one run. */
  readonly streamGroupTokens: number;

  constructor(
    readonly checkpoint: Checkpoint,
    readonly runtime: Runtime,
    opts: { attention?: AttentionImpl; execution?: Execution; headSliceFloats?: number; streamGroupTokens?: number; decodeWeights?: DecodeWeights } = {},
  ) {
    this.decodeWeights = opts.decodeWeights ?? 'fp32';
    this.attention = opts.attention ?? attentionFor(checkpoint.config, runtime.fusedAttention);
    this.execution = opts.execution ?? runtime.execution ?? chooseExecution(checkpoint, runtime.wholeGraphBudget);
    this.headSliceFloats = opts.headSliceFloats ?? HEAD_SLICE_FLOATS;
    this.streamGroupTokens = opts.streamGroupTokens ?? STREAM_GROUP_TOKENS;
  }

  /** X_0 of a window: its embedding rows [T·D], widened to fp32 from the storage dtype. */
  private embedRows(window: readonly number[]): Float32Array {
    const D = this.checkpoint.config.hiddenSize;
    const e = tensor(this.checkpoint, 'model.embed_tokens.weight');
    const x = new Float32Array(window.length * D);
    window.forEach((id, t) => x.set(toFloat32({ dtype: e.dtype, shape: [1, D], data: elements(e, id * D, D) }), t * D)); // row `id` alone, also of a lazy tensor
    return x;
  }

  private session(program: Program, attention = this.attention): Promise<InferenceSession> {
    const key = programKey(program, attention);
    let s = this.sessions.get(key);
    if (!s) {
      const bytes = buildLlamaGraph(this.checkpoint, program, attention);
      // The 8-bit decoder with basic graph optimizations: 'all' spent 20 s building a 1B model's
      // session ('basic': 1 s) and decoded no faster (1.42 vs 1.52 tok/s, one run each, side by
      // side, onnxruntime-web WASM).
      const options = program.kind === 'decode' && program.weights === 'q8' ? { ...this.runtime.sessionOptions, graphOptimizationLevel: 'basic' as const } : this.runtime.sessionOptions;
      s = this.runtime.ort.InferenceSession.create(bytes, options);
      s.then(() => openSessions++, () => undefined);
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  private f32(data: Float32Array, dims: number[]): Tensor {
    return new this.runtime.ort.Tensor('float32', data, dims);
  }
  private i64(ids: readonly (readonly number[])[]): Tensor {
    const B = ids.length;
    const T = ids[0].length;
    const data = new BigInt64Array(B * T);
    ids.forEach((row, b) => row.forEach((id, t) => (data[b * T + t] = BigInt(id))));
    return new this.runtime.ort.Tensor('int64', data, [B, T]);
  }

  /** The RoPE table, grown to cover positions 0..n−1. */
  private rope(n: number): RopeTable {
    if (this.ropeTable.n < n) {
      // Grown as runs need positions (doubling, up to max_position_embeddings), never allocated up front.
      const size = Math.max(n, Math.min(2 * this.ropeTable.n, this.checkpoint.config.maxPositions));
      const { cos, sin } = ropeTables(this.checkpoint.config, { start: 0, length: size });
      const hd = this.checkpoint.config.headDim;
      const half = (t: Float64Array) => Float32Array.from({ length: (size * hd) / 2 }, (_, i) => t[Math.floor(i / (hd / 2)) * hd + (i % (hd / 2))]);
      this.ropeTable = { n: size, cos: Float32Array.from(cos), sin: Float32Array.from(sin), cosHalf: half(cos), sinHalf: half(sin) };
    }
    return this.ropeTable;
  }

  /** Attention inputs for B sequences of T new tokens after P cached ones (see graph/llama.ts). */
  private attentionFeeds(B: number, P: number, T: number): Record<string, Tensor> {
    const S = P + T;
    const hd = this.checkpoint.config.headDim;
    const rope = this.rope(S);
    const ort = this.runtime.ort;
    if (this.attention === 'fused') {
      return {
        seqlens_k: new ort.Tensor('int32', new Int32Array(B).fill(S - 1), [B]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(S), []),
        cos_cache: this.f32(rope.cosHalf.subarray(0, (S * hd) / 2), [S, hd / 2]),
        sin_cache: this.f32(rope.sinHalf.subarray(0, (S * hd) / 2), [S, hd / 2]),
      };
    }
    const mask = new Float32Array(T * S);
    for (let t = 0; t < T; t++) mask.fill(MASKED, t * S + P + t + 1, (t + 1) * S); // query t sees keys ≤ P+t
    return {
      rope_cos: this.f32(rope.cos.subarray(P * hd, S * hd), [T, hd]),
      rope_sin: this.f32(rope.sin.subarray(P * hd, S * hd), [T, hd]),
      mask: this.f32(mask, [T, S]),
    };
  }

  /** A zero-length KV cache for B sequences: {prefix}.{i}.key/value [B, Hkv, 0, hd]. */
  private emptyPast(B: number, prefix: 'past' | 'past_key_values'): Record<string, Tensor> {
    const { numLayers: L, numKvHeads: Hkv, headDim: hd } = this.checkpoint.config;
    const past: Record<string, Tensor> = {};
    for (let i = 0; i < L; i++) for (const kv of ['key', 'value']) past[`${prefix}.${i}.${kv}`] = this.f32(new Float32Array(0), [B, Hkv, 0, hd]);
    return past;
  }

  private checkIds(windows: readonly (readonly number[])[]) {
    const V = this.checkpoint.config.vocabSize;
    const T = windows[0]?.length ?? 0;
    if (T === 0) throw new LopperError('bad-input', 'no tokens to run');
    for (const w of windows) {
      if (w.length !== T) throw new LopperError('bad-input', 'windows in one batch must have the same length');
      for (const id of w) if (!(id >= 0 && id < V)) throw new LopperError('bad-input', `token id ${id} is outside the vocabulary (0..${V - 1})`);
    }
  }

  /**
   * One pass over a batch of equal-length windows through layers `from`..L−1: from the
   * tokens (from = 0) or from given streams X_from (one [T·D] array per window). `want`
   * picks the outputs (see graph/llama.ts); results are split per window and indexed by
   * absolute boundary k, so callers never deal with offsets.
   */
  async pass(
    windows: readonly (readonly number[])[],
    want: PassOutputs,
    start?: { from: number; streams: readonly Float32Array[] },
    onStep?: Progress,
  ): Promise<WindowResult[]> {
    if (this.execution === 'streamed') return this.streamedPass(windows, want, start, onStep);
    this.checkIds(windows);
    const { numLayers: L, hiddenSize: D, vocabSize: V } = this.checkpoint.config;
    const B = windows.length;
    const T = windows[0].length;
    const from = start?.from ?? 0;
    const program: Program = { kind: 'window', from, ...want, logits: !!want.logits };
    const feeds: Record<string, Tensor> = this.attentionFeeds(B, 0, T);
    if (from === 0) feeds.input_ids = this.i64(windows);
    else {
      if (!start || start.streams.length !== B || start.streams.some((x) => x.length !== T * D)) {
        throw new LopperError('bad-input', `a pass from layer ${from} needs one [${T}×${D}] stream per window`);
      }
      const x = new Float32Array(B * T * D);
      start.streams.forEach((s, b) => x.set(s, b * T * D));
      feeds.stream_in = this.f32(x, [B, T, D]);
    }
    if (want.nll) feeds.targets = this.i64(windows.map((w) => [...w.slice(1), 0]));
    const out = await (await this.session(program)).run(feeds);
    const part = (name: string, b: number, n: number) => (out[name].data as Float32Array).slice(b * n, (b + 1) * n);
    return windows.map((_, b) => {
      const r: WindowResult = { cos: [], absMean: [], streams: [] };
      if (want.stats) {
        for (let k = from; k < L; k++) r.cos[k] = part(`stats.cos.${k}`, b, T);
        for (let k = from; k <= L; k++) r.absMean[k] = part(`stats.absmean.${k}`, b, D);
        for (let k = from; k <= L; k++) checkFinite(sumOf(r.absMean[k]), `the mean magnitude of the stream at layer boundary ${k}`);
      }
      if (want.streams) for (let k = from === 0 ? 0 : from + 1; k <= L; k++) r.streams[k] = part(`stream.${k}`, b, T * D);
      if (want.nll) r.nll = part('nll', b, T).subarray(0, T - 1);
      if (want.logits) r.logits = part('logits', b, T * V).subarray(want.logits === 'last' ? (T - 1) * V : 0);
      return r;
    });
  }

  /**
   * pass() layer by layer: every window through layer k, then layer k+1, then the final norm
   * and the LM head slice by slice (vocabPass) when NLL, logits or the last statistics are
   * wanted. One session runs every layer, one the final norm, one every slice of the head: their
   * weights are inputs, widened to fp32 from the storage dtype for the layer (or slice) being
   * run only, into buffers the engine reuses, so the runtime holds one layer's weights or one
   * slice of the head at any moment and nothing is rebuilt between layers or passes. Each
   * layer's output stream is the next one's input as it came from the runtime; results are
   * views of the outputs, not copies. `onStep` reports layers done of (layers + 1).
   */
  private async streamedPass(
    windows: readonly (readonly number[])[],
    want: PassOutputs,
    start: { from: number; streams: readonly Float32Array[] } | undefined,
    onStep?: Progress,
  ): Promise<WindowResult[]> {
    this.checkIds(windows);
    const { numLayers: L, hiddenSize: D } = this.checkpoint.config;
    const B = windows.length;
    const T = windows[0].length;
    const from = start?.from ?? 0;
    if (start && (start.streams.length !== B || start.streams.some((s) => s.length !== T * D))) {
      throw new LopperError('bad-input', `a pass from layer ${from} needs one [${T}×${D}] stream per window`);
    }
    const results: WindowResult[] = windows.map(() => ({ cos: [], absMean: [], streams: [] }));
    // X_from of every window, stacked [B,T,D]
    let x: Float32Array = new Float32Array(B * T * D);
    (from === 0 ? windows.map((w) => this.embedRows(w)) : start!.streams).forEach((s, b) => x.set(s, b * T * D));
    const view = (data: Float32Array, b: number, n: number) => data.subarray(b * n, (b + 1) * n);
    if (want.streams && from === 0) windows.forEach((_, b) => (results[b].streams[0] = view(x, b, T * D)));
    const steps = L - from + 1;

    if (from < L) {
      const layer = await this.session({ kind: 'layer', stats: want.stats });
      // Windows go through a layer in groups of about streamGroupTokens tokens: the runtime's
      // activations stay those of one group, however many windows a pass has.
      const G = Math.max(1, Math.floor(this.streamGroupTokens / T));
      const attention = this.attentionFeeds(Math.min(G, B), 0, T);
      const spare = want.streams ? undefined : new Float32Array(B * T * D); // ping-pong when no stream is kept
      for (let k = from; k < L; k++) {
        const weights = this.weightFeeds(layerWeights(this.checkpoint, k), 'l0.', layer);
        const next: Float32Array = spare && x !== spare ? spare : new Float32Array(B * T * D); // X_{k+1} [B,T,D]
        for (let g0 = 0; g0 < B; g0 += G) {
          const n = Math.min(G, B - g0);
          const feeds = { ...(n === Math.min(G, B) ? attention : this.attentionFeeds(n, 0, T)), ...weights };
          const out = await layer.run({ ...feeds, stream_in: this.f32(x.subarray(g0 * T * D, (g0 + n) * T * D), [n, T, D]) });
          next.set(out['stream.1'].data as Float32Array, g0 * T * D);
          for (let j = 0; j < n && want.stats; j++) {
            const r = results[g0 + j];
            r.cos[k] = view(out['stats.cos.0'].data as Float32Array, j, T);
            r.absMean[k] = view(out['stats.absmean.0'].data as Float32Array, j, D);
            checkFinite(sumOf(r.absMean[k]), `the mean magnitude of the stream at layer boundary ${k}`);
          }
        }
        x = next;
        if (want.streams) windows.forEach((_, b) => (results[b].streams[k + 1] = view(x, b, T * D)));
        onStep?.(k - from + 1, steps);
      }
    }
    if (want.stats || want.nll || want.logits) {
      // The final norm of every window at once, then the LM head slice by slice (vocabPass).
      const head = await this.session({ kind: 'head', stats: want.stats });
      const out = await head.run({ stream_in: this.f32(x, [B, T, D]), ...this.weightFeeds(headWeights(this.checkpoint), '', head) });
      windows.forEach((_, b) => {
        if (!want.stats) return;
        const r = results[b];
        r.absMean[L] = view(out[`stats.absmean.${L}`].data as Float32Array, b, D);
        checkFinite(sumOf(r.absMean[L]), `the mean magnitude of the stream at layer boundary ${L}`);
      });
      const normed = out.normed.data as Float32Array; // [B·T·D]
      if (want.nll || want.logits === true) {
        const { nll, logits } = await this.vocabPass(normed, windows, want.logits === true);
        windows.forEach((_, b) => {
          if (want.nll) results[b].nll = view(nll, b, T).subarray(0, T - 1);
          if (want.logits) results[b].logits = logits![b];
        });
      } else if (want.logits === 'last') {
        // The head on each window's last row alone ([B·D]): generation's cost is the layers', not V·T logits.
        const last = new Float32Array(B * D);
        windows.forEach((_, b) => last.set(normed.subarray(((b + 1) * T - 1) * D, (b + 1) * T * D), b * D));
        const { logits } = await this.vocabPass(last, windows.map((w) => [w[T - 1]]), true);
        windows.forEach((_, b) => (results[b].logits = logits![b]));
      }
    }
    onStep?.(steps, steps);
    return results;
  }

  /**
   * Graph inputs for weights (a 'layer' or 'head' program): each widened into a buffer this
   * engine keeps per input name and reuses, pass after pass (released with the engine).
   */
  private weightBuffers = new Map<string, Float32Array>();
  private weightFeeds(weights: Map<string, GraphWeight>, prefix: string, session: InferenceSession): Record<string, Tensor> {
    const feeds: Record<string, Tensor> = {};
    for (const [key, w] of weights) {
      const name = prefix + key;
      if (!session.inputNames.includes(name)) continue; // not computed when the graph does not take it
      let buffer = this.weightBuffers.get(name);
      if (!buffer) this.weightBuffers.set(name, (buffer = new Float32Array(numel(w.shape))));
      feeds[name] = this.f32(w.values(buffer), w.shape);
    }
    return feeds;
  }

  /**
   * The LM head over the normed streams of B windows of T tokens ([B·T·D]), one slice of its
   * rows at a time ('vocab' program): each slice widened from the storage dtype into one reused
   * buffer, its log-sum-exp and the targets' logits combined in float64 across slices into
   * −log p(next token) at every position (NLL [B·T], the last position of each window against
   * a dummy target), and the logits [T·V] per window when asked. A slice is at most
   * headSliceFloats (2^26: 256 MiB) of weights and of logits, whatever the vocabulary.
   */
  private async vocabPass(normed: Float32Array, windows: readonly (readonly number[])[], wantLogits: boolean): Promise<{ nll: Float32Array; logits?: Float32Array[] }> {
    const { hiddenSize: D, vocabSize: V } = this.checkpoint.config;
    const T = windows[0].length;
    const N = windows.length * T;
    const session = await this.session({ kind: 'vocab', logits: wantLogits });
    const lmHead = tensor(this.checkpoint, lmHeadName(this.checkpoint.config));
    // Tokens in groups of whole windows (as the layers run them), rows in slices: at most
    // headSliceFloats of weights, and of logits for one group.
    const M = Math.max(1, Math.floor(this.streamGroupTokens / T)) * T;
    const rows = Math.max(1, Math.min(V, Math.floor(this.headSliceFloats / D), Math.floor(this.headSliceFloats / Math.min(M, N))));
    const targets = windows.flatMap((w) => [...w.slice(1), 0]); // token i + 1 follows token i
    const lseMax = new Float64Array(N).fill(-Infinity); // running log-sum-exp: max and Σ exp(· − max)
    const lseSum = new Float64Array(N);
    const picked = new Float64Array(N);
    const logits = wantLogits ? windows.map(() => new Float32Array(T * V)) : undefined;
    let buffer = this.weightBuffers.get('vocab.lm_head');
    if (!buffer || buffer.length < rows * D) this.weightBuffers.set('vocab.lm_head', (buffer = new Float32Array(rows * D)));
    const local = new BigInt64Array(N);
    for (let c0 = 0; c0 < V; c0 += rows) {
      const n = Math.min(rows, V - c0);
      const w = buffer.subarray(0, n * D);
      widenInto(w, 0, { dtype: lmHead.dtype, shape: [n, D], data: elements(lmHead, c0 * D, n * D) });
      for (let i = 0; i < N; i++) local[i] = BigInt(Math.min(n - 1, Math.max(0, targets[i] - c0)));
      for (let i0 = 0; i0 < N; i0 += M) {
        const m = Math.min(M, N - i0);
        const out = await session.run({
          normed: this.f32(normed.subarray(i0 * D, (i0 + m) * D), [m, D]),
          lm_head: this.f32(w, [n, D]),
          targets: new this.runtime.ort.Tensor('int64', local.subarray(i0, i0 + m), [m]),
        });
        const lse = out.lse.data as Float32Array;
        const pick = out.picked.data as Float32Array;
        for (let j = 0; j < m; j++) {
          const i = i0 + j;
          const top = Math.max(lseMax[i], lse[j]);
          lseSum[i] = lseSum[i] * Math.exp(lseMax[i] - top) + Math.exp(lse[j] - top);
          lseMax[i] = top;
          if (targets[i] >= c0 && targets[i] < c0 + n) picked[i] = pick[j];
        }
        if (logits) {
          const part = out.logits.data as Float32Array; // [m, n]
          for (let j = 0; j < m; j++) logits[Math.floor((i0 + j) / T)].set(part.subarray(j * n, (j + 1) * n), ((i0 + j) % T) * V + c0);
        }
      }
    }
    const nll = new Float32Array(N);
    for (let i = 0; i < N; i++) nll[i] = lseMax[i] + Math.log(lseSum[i]) - picked[i];
    return { nll, logits };
  }

  /** Logits [T, V] for one window. */
  async logits(window: readonly number[]): Promise<Float32Array> {
    return (await this.pass([window], { logits: true }))[0].logits!;
  }

  /** Per-token NLL of tokens 2..W of each window given their prefix: W − 1 values per window. */
  async nll(windows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    return (await this.pass(windows, { nll: true })).map((r) => r.nll!);
  }

  /** Calibration statistics for each window (see WindowStats). */
  async stats(windows: readonly (readonly number[])[]): Promise<WindowStats[]> {
    return (await this.pass(windows, { stats: true })).map(({ cos, absMean }) => ({ cos, absMean }));
  }

  /**
   * Σ log p(continuation | context) for continuations of one context (lm-eval's
   * loglikelihood). The context runs once: its first C − 1 tokens fill a KV cache, which is
   * copied to a batch of one row per continuation, row j = [context[C−1], cont_j[0..n_j−2]]
   * padded at its end (causal attention keeps padding from changing what precedes it).
   * Runs the decoder-with-past graph with transformers.js's IO (logits at every position).
   */
  async continuationLogprobs(context: readonly number[], continuations: readonly (readonly number[])[]): Promise<number[]> {
    const { numLayers: L, numKvHeads: Hkv, headDim: hd, vocabSize: V } = this.checkpoint.config;
    const C = context.length;
    if (C === 0) throw new LopperError('bad-input', 'the context must have at least one token (BOS)');
    if (continuations.some((c) => c.length === 0)) throw new LopperError('bad-input', 'a continuation has no tokens');
    this.checkIds([context]);
    for (const c of continuations) this.checkIds([c]);
    if (this.execution === 'streamed') return this.continuationLogprobsLayerByLayer(context, continuations);
    const session = await this.session({ kind: 'decode', io: 'transformers' }, 'ops');
    const ort = this.runtime.ort;
    const ids = (rows: number[][]) => this.i64(rows);
    const ones = (B: number, S: number) => new ort.Tensor('int64', new BigInt64Array(B * S).fill(1n), [B, S]);
    const positions = (B: number, P: number, T: number) =>
      new ort.Tensor('int64', BigInt64Array.from({ length: B * T }, (_, i) => BigInt(P + (i % T))), [B, T]);

    // 1. the context but its last token, once: the cache [1, Hkv, P, hd] per layer and k/v
    const P = C - 1;
    const cache: Float32Array[] = [];
    if (P > 0) {
      const out = await session.run({ input_ids: ids([context.slice(0, P)]), attention_mask: ones(1, P), position_ids: positions(1, 0, P), ...this.emptyPast(1, 'past_key_values') });
      for (let i = 0; i < L; i++) for (const kv of ['key', 'value']) cache.push(out[`present.${i}.${kv}`].data as Float32Array);
      for (const t of Object.values(out)) t.dispose();
    }

    // 2. every continuation in one batch, after a copy of the cache per row
    const B = continuations.length;
    const T = Math.max(...continuations.map((c) => c.length));
    const rows = continuations.map((c) => [context[C - 1], ...c.slice(0, -1), ...new Array<number>(T - c.length).fill(0)]);
    const feeds: Record<string, Tensor> = { input_ids: ids(rows), attention_mask: ones(B, P + T), position_ids: positions(B, P, T) };
    let n = 0;
    for (let i = 0; i < L; i++) {
      for (const kv of ['key', 'value']) {
        const batch = new Float32Array(B * Hkv * P * hd);
        if (P > 0) for (let b = 0; b < B; b++) batch.set(cache[n], b * cache[n].length);
        feeds[`past_key_values.${i}.${kv}`] = this.f32(batch, [B, Hkv, P, hd]);
        n++;
      }
    }
    const out = await session.run(feeds);
    const logits = out.logits.data as Float32Array; // [B, T, V]
    const sums = continuations.map((c, b) => {
      let sum = 0;
      c.forEach((id, t) => (sum += logSoftmaxAt(logits, (b * T + t) * V, V, id)));
      checkFinite(sum, 'a continuation\'s log-likelihood');
      return sum;
    });
    for (const t of Object.values(out)) t.dispose();
    return sums;
  }

  /**
   * continuationLogprobs layer by layer, where no KV cache can be kept: one window per
   * continuation, context + continuation padded at its end (causal attention keeps padding
   * from changing what precedes it), and the continuation's NLL summed (float64 log-sum-exp).
   */
  private async continuationLogprobsLayerByLayer(context: readonly number[], continuations: readonly (readonly number[])[]): Promise<number[]> {
    const C = context.length;
    const T = C + Math.max(...continuations.map((c) => c.length));
    const windows = continuations.map((c) => [...context, ...c, ...new Array<number>(T - C - c.length).fill(0)]);
    const results = await this.pass(windows, { nll: true });
    return continuations.map((c, j) => {
      const nll = results[j].nll!; // nll[i] = −log p(window[i + 1] | window[..i])
      let sum = 0;
      for (let t = 0; t < c.length; t++) sum -= nll[C - 1 + t];
      checkFinite(sum, "a continuation's log-likelihood");
      return sum;
    });
  }

  /** Perplexity of a text's token ids under the protocol of text/windows.ts. */
  async perplexity(ids: readonly number[], W: number, opts: { maxWindows?: number; batch?: number; onProgress?: Progress } = {}): Promise<PerplexityResult> {
    return this.windowsPerplexity(cutWindows(ids, W, opts.maxWindows), opts);
  }

  /** Perplexity over given windows (equal lengths, BOS first): exp of the mean NLL over every predicted token. */
  async windowsPerplexity(windows: readonly (readonly number[])[], opts: { batch?: number; onProgress?: Progress } = {}): Promise<PerplexityResult> {
    // Streamed: every window through each layer once (a layer's session is built once per pass).
    const batch = this.execution === 'streamed' ? windows.length : (opts.batch ?? 1);
    let nllSum = 0;
    let tokens = 0;
    // Streamed, progress comes per layer: as a fraction of the windows, short of the end until it is.
    const onStep: Progress | undefined =
      this.execution === 'streamed' ? (d, t) => d < t && opts.onProgress?.((windows.length * d) / t, windows.length) : undefined;
    for (let i = 0; i < windows.length; i += batch) {
      const nlls = (await this.pass(windows.slice(i, i + batch), { nll: true }, undefined, onStep)).map((r) => r.nll!);
      nlls.forEach((nll, j) => {
        let sum = 0;
        for (const v of nll) sum += v;
        checkFinite(sum, `the loss of window ${i + j + 1}`);
        nllSum += sum;
        tokens += nll.length;
      });
      opts.onProgress?.(Math.min(i + batch, windows.length), windows.length);
    }
    const ppl = Math.exp(nllSum / tokens);
    checkFinite(ppl, 'the perplexity');
    return { ppl, tokens, windows: windows.length, nllSum };
  }

  /**
   * Generate after `prompt` (token ids, BOS included); yields each new id. The decoder keeps a
   * KV cache (fp32 weights on the whole graph, or 8-bit or fp16 weights with decodeWeights 'q8', 'fp16'); layer
   * by layer with fp32 weights no cache is kept: each new token runs the sequence so far through
   * every layer again (the same fp32 numbers; for short generations the cost is widening each
   * layer's weights per token, not the attention).
   */
  async *generate(prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number> {
    const c = this.checkpoint.config;
    if (prompt.length === 0) throw new LopperError('bad-input', 'the prompt must have at least one token (BOS)');
    this.checkIds([prompt]);
    const maxTokens = Math.min(opts.maxTokens ?? 256, c.maxPositions - prompt.length);
    const sample = makeSampler(opts);
    const stop = (id: number) => id === c.eosTokenId && opts.stopAtEos !== false;
    if (this.execution === 'streamed' && this.decodeWeights === 'fp32') {
      const sequence = [...prompt];
      for (let n = 0; n < maxTokens; n++) {
        const logits = (await this.pass([sequence], { logits: 'last' }))[0].logits!; // [V]
        checkFinite(sumOf(logits), `the logits of generated token ${n + 1}`);
        const next = sample(logits);
        if (stop(next)) return;
        yield next;
        sequence.push(next);
      }
      return;
    }
    const decoder = await this.decoder();
    let input = [...prompt];
    for (let n = 0; n < maxTokens; n++) {
      const logits = await decoder.step(input);
      checkFinite(sumOf(logits), `the logits of generated token ${n + 1}`);
      const next = sample(logits);
      if (stop(next)) return decoder.release();
      yield next;
      input = [next];
    }
    decoder.release();
  }

  /**
   * The logits after each of `ids` [T·V], fed one token at a time through the KV-cache decoder
   * (decodeWeights: the weights generation uses) — what generation computes at each position
   * had it chosen these tokens; the tests hold the 8-bit decoder against the fp32 engine with it.
   */
  async decoderLogits(ids: readonly number[]): Promise<Float32Array> {
    this.checkIds([ids]);
    const V = this.checkpoint.config.vocabSize;
    const out = new Float32Array(ids.length * V);
    const decoder = await this.decoder();
    try {
      for (let t = 0; t < ids.length; t++) out.set(await decoder.step([ids[t]]), t * V);
    } finally {
      decoder.release();
    }
    return out;
  }

  /** A KV-cache decoder on this engine's decode session: step(tokens) → the last position's logits [V]. */
  private async decoder(): Promise<{ step: (input: readonly number[]) => Promise<Float32Array>; release: () => void }> {
    const L = this.checkpoint.config.numLayers;
    const session = await this.session({ kind: 'decode', weights: this.decodeWeights });
    const past = this.emptyPast(1, 'past');
    let P = 0; // tokens in the cache
    return {
      step: async (input) => {
        const T = input.length;
        const out = await session.run({ input_ids: this.i64([input]), ...this.attentionFeeds(1, P, T), ...past });
        for (let i = 0; i < L; i++) {
          for (const kv of ['key', 'value']) {
            past[`past.${i}.${kv}`].dispose();
            past[`past.${i}.${kv}`] = out[`present.${i}.${kv}`];
          }
        }
        P += T;
        const logits = (out.logits.data as Float32Array).slice();
        out.logits.dispose();
        return logits;
      },
      release: () => Object.values(past).forEach((t) => t.dispose()),
    };
  }

  async dispose(): Promise<void> {
    this.weightBuffers.clear();
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of sessions) {
      await (await s).release();
      openSessions--;
    }
  }
}

/**
 * A number the model computed, as a 'non-finite' LopperError when it is NaN or ±Infinity
 * (weights that overflow float32 somewhere in the model): never reported as a result.
 */
function checkFinite(value: number, what: string): void {
  if (!Number.isFinite(value)) {
    throw new LopperError('non-finite', `${what} is ${value}: the model's activations overflow float32 (its weights are finite but too large)`);
  }
}

function sumOf(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum;
}

/** log softmax(row)[id] for the row of V values at `offset`, accumulated in float64. */
function logSoftmaxAt(data: Float32Array, offset: number, V: number, id: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (data[offset + v] > max) max = data[offset + v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(data[offset + v] - max);
  return data[offset + id] - max - Math.log(sum);
}
