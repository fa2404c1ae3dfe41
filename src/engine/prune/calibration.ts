import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { Engine, type PassOutputs, type Progress, type WindowResult, type WindowStats } from '../runtime/engine';
import type { Runtime } from '../runtime/ort';
import { GramAccumulator, type CompMap } from './fit';
import { scaleFromStats, type ScaleResult } from './scale';
import type { Fold } from './options';
import { applyCut, removeLayers, zeroMlpOutput } from './surgery';

export interface CalibrationOptions {
  /** Reuse statistics and stream checkpoints across cuts (default true); false recomputes everything each step. */
  reuse?: boolean;
  /** Windows per onnxruntime run (default 1). */
  batch?: number;
  /** Memory for stream checkpoints (default 1 GiB); past it, only every m-th boundary is kept. */
  maxCacheBytes?: number;
  /** Also compute each state's calibration NLL (the last layers and the head run anyway in every pass): `perplexity()`. */
  nll?: boolean;
  onProgress?: Progress;
  /**
   * After each pass over the windows: `layers` decoder layers ran over `windows` windows;
   * `reused`: the layers before the cut that a removal did not run again thanks to reuse
   * (with reuse off it runs them). Counts what calibration costs (app/lab.ts).
   */
  onLayers?: (layers: number, windows: number, reused: number) => void;
}

/**
 * A model and what calibration knows about it: per-window statistics at every boundary
 * X_0..X_L (see WindowStats) and stream checkpoints to restart from. `removeLayer` returns
 * the next state and leaves this one untouched (a cancelled run keeps its input).
 *
 * Reuse: after cutting layer k and folding s the paper's way, every stream before the cut
 * is s times what it was (RMSNorm ignores the scalar, up to ε): cosines there are unchanged,
 * mean |X| scales by s, and only layers from the cut on are run again, from s·X_k. With the
 * tie-preserving fold nothing before the cut changes at all, so reuse is exact; with the
 * paper's fold it is exact up to the ε term.
 */
export class Calibrated {
  private constructor(
    readonly checkpoint: Checkpoint,
    readonly windows: readonly (readonly number[])[],
    /** per window, statistics at every boundary of the current model */
    readonly stats: readonly WindowStats[],
    /** per boundary k: the cached X_k of every window (undefined when not kept) */
    private readonly checkpoints: readonly (readonly Float32Array[] | undefined)[],
    /** per boundary k: the factor its cached streams must be multiplied by */
    private readonly factors: readonly number[],
    /** Σ NLL over the windows' predicted tokens (nats), when opts.nll */
    private readonly nllSum: number | null,
    private readonly engine: Engine,
    private readonly runtime: Runtime,
    private readonly opts: CalibrationOptions,
  ) {}

  /** Calibrate `ck` on `windows`: one full pass (statistics and stream checkpoints). */
  static async create(ck: Checkpoint, runtime: Runtime, windows: readonly (readonly number[])[], opts: CalibrationOptions = {}): Promise<Calibrated> {
    if (windows.length === 0) throw new LopperError('bad-input', 'calibration needs at least one window of text');
    const engine = new Engine(ck, runtime);
    const results = await disposeOnError(engine, () => runBatched(engine, windows, 0, undefined, opts));
    return Calibrated.fromResults(ck, windows, results, 0, [], [], [], engine, runtime, opts);
  }

  /** Assemble a state from a pass that started at boundary `from` plus what was kept before it. */
  private static fromResults(
    ck: Checkpoint,
    windows: readonly (readonly number[])[],
    results: WindowResult[],
    from: number,
    keptStats: readonly WindowStats[],
    keptCheckpoints: readonly (readonly Float32Array[] | undefined)[],
    keptFactors: readonly number[],
    engine: Engine,
    runtime: Runtime,
    opts: CalibrationOptions,
  ): Calibrated {
    const L = ck.config.numLayers;
    const stats = results.map((r, w) => ({
      cos: [...(keptStats[w]?.cos.slice(0, from) ?? []), ...r.cos.slice(from)],
      absMean: [...(keptStats[w]?.absMean.slice(0, from) ?? []), ...r.absMean.slice(from)],
    }));
    // which boundaries to keep: all when they fit in the budget, else every m-th
    const bytesPerBoundary = windows.length * windows[0].length * ck.config.hiddenSize * 4;
    const m = Math.max(1, Math.ceil(((L + 1) * bytesPerBoundary) / (opts.maxCacheBytes ?? 2 ** 30)));
    const checkpoints: (readonly Float32Array[] | undefined)[] = [];
    const factors: number[] = [];
    for (let k = 0; k <= L; k++) {
      if (k <= from) {
        checkpoints[k] = keptCheckpoints[k];
        factors[k] = keptFactors[k] ?? 1;
      } else {
        checkpoints[k] = k % m === 0 && k < L ? results.map((r) => r.streams[k]) : undefined;
        factors[k] = 1;
      }
    }
    if (from === 0) checkpoints[0] = results.map((r) => r.streams[0]);
    const nllSum = opts.nll ? results.reduce((a, r) => a + r.nll!.reduce((b, v) => b + v, 0), 0) : null;
    return new Calibrated(ck, windows, stats, checkpoints, factors, nllSum, engine, runtime, opts);
  }

  get numLayers(): number {
    return this.checkpoint.config.numLayers;
  }

  /** The magnitude curve: mean |X_k| over windows, tokens and channels, for k = 0..L. */
  magnitudes(): number[] {
    return Array.from({ length: this.numLayers + 1 }, (_, k) => {
      let sum = 0;
      for (const st of this.stats) sum += st.absMean[k].reduce((a, v) => a + v, 0) / st.absMean[k].length;
      return sum / this.stats.length;
    });
  }

  /** The calibration windows' perplexity under this model (needs opts.nll): exp(mean NLL over predicted tokens). */
  perplexity(): number {
    if (this.nllSum === null) throw new LopperError('bad-option', 'this calibration was not asked for its NLL (CalibrationOptions.nll)');
    return Math.exp(this.nllSum / (this.windows.length * (this.windows[0].length - 1)));
  }

  /**
   * Fit a linear or diagonal map (fit.ts) for removing layers k..j−1 (k ≥ 1): Y, layer p =
   * k−1's stream after its attention, comes from one run of layer p alone with its down_proj
   * zeroed (so it writes M = 0 and outputs Y); M = X_k − Y and A = X_j − Y per token.
   */
  async fitMap(k: number, j: number, kind: CompMap['kind'], alpha: number): Promise<CompMap> {
    const L = this.numLayers;
    if (!Number.isInteger(k) || !Number.isInteger(j) || k < 1 || j <= k || j > L) throw new LopperError('bad-option', `a map for layers ${k}..${j - 1} needs 1 ≤ k < j ≤ ${L}`);
    const p = k - 1;
    const D = this.checkpoint.config.hiddenSize;
    const xp = await this.streamAt(p);
    // layers 0..p with layer p's MLP output zeroed: a pass from X_p runs layer p alone and gives Y
    const upToP = removeLayers(this.checkpoint, [...Array(L - k).keys()].map((i) => k + i));
    const halfLayer = zeroMlpOutput(upToP, p);
    // the execution this state runs with: layer by layer, only layer p's weights are widened and run
    const engine = new Engine(halfLayer, this.runtime, { execution: this.engine.execution });
    let ys: Float32Array[];
    try {
      const results = await runBatched(engine, this.windows, p, p === 0 ? undefined : xp, { ...this.opts, onProgress: undefined, want: { streams: true } });
      ys = results.map((r) => r.streams[p + 1]);
    } finally {
      await engine.dispose();
    }
    const xk = await this.streamAt(k);
    const xj = await this.streamAt(j);
    const acc = new GramAccumulator(D);
    for (let w = 0; w < this.windows.length; w++) {
      // differences in Float64: the runtime's float32 streams are the last rounding
      const m = new Float64Array(ys[w].length);
      const a = new Float64Array(ys[w].length);
      for (let i = 0; i < m.length; i++) {
        m[i] = xk[w][i] - ys[w][i];
        a[i] = xj[w][i] - ys[w][i];
      }
      acc.add(m, a);
    }
    return acc.solve(kind, alpha, p, j === k + 1 ? `removing layer ${k}` : `removing layers ${k}..${j - 1}`);
  }

  /** Compensation scale for removing layers k..j−1 (default one layer), from the statistics. */
  scale(k: number, j = k + 1): ScaleResult {
    return scaleFromStats(this.stats, k, j);
  }

  /** X_k for every window, from a checkpoint or recomputed from the nearest one before it. */
  async streamAt(k: number): Promise<Float32Array[]> {
    let c = k;
    while (!this.checkpoints[c]) c--;
    const at = (b: number) => scaled(this.checkpoints[b]!, this.factors[b]);
    if (c === k) return at(k);
    const results = await runBatched(this.engine, this.windows, c, at(c), this.opts);
    return results.map((r) => r.streams[k]);
  }

  /** Per-window NLL of the current model with layer j bypassed (the PPL metric), from X_j. */
  async bypassNll(j: number): Promise<Float32Array[]> {
    const L = this.numLayers;
    if (j < 0 || j >= L) throw new LopperError('bad-option', `layer ${j} does not exist (the model has ${L})`);
    const bypassed = removeLayers(this.checkpoint, [j]);
    const engine = new Engine(bypassed, this.runtime);
    try {
      const x = await this.streamAt(j);
      const results = await runBatched(engine, this.windows, j, j === 0 ? undefined : x, { ...this.opts, want: { nll: true } }, j === 0);
      return results.map((r) => r.nll!);
    } finally {
      await engine.dispose();
    }
  }

  /**
   * Remove layer k; fold `s` (paper: embedding and o/down_proj before the cut ×s; tied:
   * o/down_proj after the cut ×1/s; none: no compensation). Returns the next state.
   */
  async removeLayer(k: number, fold: Fold | 'none', s = 1, opts: { map?: CompMap; keep?: boolean } = {}): Promise<Calibrated> {
    const L = this.numLayers;
    const { map } = opts;
    if (k < 0 || k >= L) throw new LopperError('bad-option', `layer ${k} does not exist (the model has ${L})`);
    if (L === 1) throw new LopperError('bad-option', 'cannot remove the only layer');
    if (map && map.layer !== k - 1) throw new LopperError('bad-option', `a map for removing layer ${k} folds into layer ${k - 1}, not ${map.layer}`);
    // The last layer: the final RMSNorm cancels any scalar, so there is nothing to fold (applyCut folds nothing there).
    if (k === L - 1) fold = 'none';
    const ck = applyCut(this.checkpoint, { layers: [k], fold, scale: s, map });
    const engine = new Engine(ck, this.runtime);
    // `keep`: this state stays usable (another run starts from it too); otherwise the removal consumes it
    if (!opts.keep) await this.engine.dispose();
    if (this.opts.reuse === false) {
      const results = await disposeOnError(engine, () => runBatched(engine, this.windows, 0, undefined, this.opts));
      return Calibrated.fromResults(ck, this.windows, results, 0, [], [], [], engine, this.runtime, this.opts);
    }
    // Streams before the cut are α·X (α = s for the paper's fold); restart from the last kept one.
    // A map changes layer p = k−1: streams up to X_p are unchanged, restart from the last kept one ≤ p.
    const alpha = !map && fold === 'paper' ? s : 1;
    let c = map ? k - 1 : k;
    while (!this.checkpoints[c]) c--;
    const keptStats = this.stats.map((st) => ({
      cos: st.cos.slice(0, c),
      absMean: st.absMean.slice(0, c).map((a) => scaledArray(a, alpha)),
    }));
    const keptFactors = this.factors.slice(0, c + 1).map((f) => f * alpha);
    const start = c === 0 ? undefined : scaled(this.checkpoints[c]!, keptFactors[c]);
    const results = await disposeOnError(engine, () => runBatched(engine, this.windows, c, start, { ...this.opts, reused: c }));
    return Calibrated.fromResults(ck, this.windows, results, c, keptStats, this.checkpoints.slice(0, c + 1), keptFactors, engine, this.runtime, this.opts);
  }

  async dispose(): Promise<void> {
    await this.engine.dispose();
  }
}

/** Run `work`; if it throws (a cancelled or failed pass), release the engine's sessions first. */
async function disposeOnError<T>(engine: Engine, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    await engine.dispose();
    throw e;
  }
}

function scaledArray(a: Float32Array, f: number): Float32Array {
  return f === 1 ? a : a.map((v) => v * f);
}
function scaled(xs: readonly Float32Array[], f: number): Float32Array[] {
  return xs.map((x) => scaledArray(x, f));
}

/** Run the windows through layers from..L−1 in batches; statistics and streams by default. */
async function runBatched(
  engine: Engine,
  windows: readonly (readonly number[])[],
  from: number,
  streams: readonly Float32Array[] | undefined,
  opts: CalibrationOptions & { want?: PassOutputs; reused?: number },
  fromTokens = false,
): Promise<WindowResult[]> {
  // Layer-streamed engines take every window at once (each layer's session is built once per
  // pass) and report per layer, as a fraction of the windows, short of the end until it is.
  const streamed = engine.execution === 'streamed';
  const batch = streamed ? windows.length : (opts.batch ?? 1);
  const onStep: Progress | undefined = streamed ? (d, t) => d < t && opts.onProgress?.((windows.length * d) / t, windows.length) : undefined;
  const out: WindowResult[] = [];
  for (let i = 0; i < windows.length; i += batch) {
    const ws = windows.slice(i, i + batch);
    const want = opts.want ?? { stats: true, streams: true, nll: opts.nll };
    const start = from === 0 || fromTokens ? undefined : { from, streams: streams!.slice(i, i + batch) };
    out.push(...(await engine.pass(ws, want, start, onStep)));
    opts.onProgress?.(Math.min(i + batch, windows.length), windows.length);
  }
  opts.onLayers?.(engine.checkpoint.config.numLayers - (fromTokens ? 0 : from), windows.length, opts.reused ?? 0);
  return out;
}
