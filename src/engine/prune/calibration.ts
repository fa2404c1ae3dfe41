import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { Engine, type Progress, type WindowResult, type WindowStats } from '../runtime/engine';
import type { Runtime } from '../runtime/ort';
import { scaleFromStats, type ScaleResult } from './scale';
import type { Fold } from './options';
import { applyCut, removeLayers } from './surgery';

export interface CalibrationOptions {
  /** Reuse statistics and stream checkpoints across cuts (default true); false recomputes everything each step. */
  reuse?: boolean;
  /** Windows per onnxruntime run (default 1). */
  batch?: number;
  /** Memory for stream checkpoints (default 1 GiB); past it, only every m-th boundary is kept. */
  maxCacheBytes?: number;
  onProgress?: Progress;
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
    return new Calibrated(ck, windows, stats, checkpoints, factors, engine, runtime, opts);
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
  async removeLayer(k: number, fold: Fold | 'none', s = 1): Promise<Calibrated> {
    const L = this.numLayers;
    if (k < 0 || k >= L) throw new LopperError('bad-option', `layer ${k} does not exist (the model has ${L})`);
    if (L === 1) throw new LopperError('bad-option', 'cannot remove the only layer');
    // The last layer: the final RMSNorm cancels any scalar, so there is nothing to fold (applyCut folds nothing there).
    if (k === L - 1) fold = 'none';
    const ck = applyCut(this.checkpoint, { layers: [k], fold, scale: s });
    const engine = new Engine(ck, this.runtime);
    await this.engine.dispose();
    if (this.opts.reuse === false) {
      const results = await disposeOnError(engine, () => runBatched(engine, this.windows, 0, undefined, this.opts));
      return Calibrated.fromResults(ck, this.windows, results, 0, [], [], [], engine, this.runtime, this.opts);
    }
    // Streams before the cut are α·X (α = s for the paper's fold); restart from the last kept one.
    const alpha = fold === 'paper' ? s : 1;
    let c = k;
    while (!this.checkpoints[c]) c--;
    const keptStats = this.stats.map((st) => ({
      cos: st.cos.slice(0, c),
      absMean: st.absMean.slice(0, c).map((a) => scaledArray(a, alpha)),
    }));
    const keptFactors = this.factors.slice(0, c + 1).map((f) => f * alpha);
    const start = c === 0 ? undefined : scaled(this.checkpoints[c]!, keptFactors[c]);
    const results = await disposeOnError(engine, () => runBatched(engine, this.windows, c, start, this.opts));
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
  opts: CalibrationOptions & { want?: { nll: true } },
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
    const want = opts.want ?? { stats: true, streams: true };
    const start = from === 0 || fromTokens ? undefined : { from, streams: streams!.slice(i, i + batch) };
    out.push(...(await engine.pass(ws, want, start, onStep)));
    opts.onProgress?.(Math.min(i + batch, windows.length), windows.length);
  }
  return out;
}
