/**
 * The layer playground (issue 13, item 3): remove any decoder layers, in the order a person
 * clicks them, with or without Prune&Comp's compensation, and see what that did — the
 * perplexity on a short text, the magnitude curve and a greedy continuation — fast enough to
 * follow each click.
 *
 * A state is an ordered list of removed ORIGINAL layer indices. Its model is built one
 * removal at a time, in that order: with compensation, each removal first measures the scale
 * s on the CURRENT model (docs/PRUNE_AND_COMP.md §1: the stream entering the layer against
 * the stream leaving it, per channel mean |X| over the calibration windows; scaleFromStats)
 * and folds it (applyCut, the cut the pruning loop makes); without, the layers are simply
 * deleted (removeLayers: the order does not matter then).
 *
 * What is kept between requests (the speed): every model on the way, by its state (a prefix
 * of the order), with the statistics of its calibration pass, so adding a layer to the end of
 * the order measures one new model and restoring the last one measures nothing; the dense
 * model's numbers are computed once. A state's numbers take one calibration pass (its curve,
 * and the next removal's scale), one perplexity pass and one greedy continuation.
 *
 * Windows are kept small (PLAYGROUND): 4 calibration windows and at most 4 evaluation windows of
 * 128 tokens, a 24-token continuation.
 */
import { LopperError } from '../engine/errors';
import type { Checkpoint } from '../engine/model/checkpoint';
import type { Fold } from '../engine/prune/options';
import { scaleFromStats } from '../engine/prune/scale';
import { applyCut, removeLayers } from '../engine/prune/surgery';
import { Engine, type WindowStats } from '../engine/runtime/engine';
import type { Runtime } from '../engine/runtime/ort';
import type { CurvePoint, PerplexityInfo } from './protocol';
import { addToCurve, curvePoints, textWindows, tokenizeText } from './run';

/** The playground's sizes: small enough for a click, large enough to mean something. */
export const PLAYGROUND = {
  /** calibration windows (the scales and the curve) */
  calibWindows: 4,
  /** at most this many evaluation windows (the perplexity) */
  evalWindows: 4,
  /** tokens per window, calibration and evaluation */
  window: 128,
  /** greedy continuation length */
  maxTokens: 24,
  prompt: 'Once upon a time',
} as const;

/** One removal of a state, in click order. */
export interface PlaygroundRemoval {
  /** original index of the removed layer */
  layer: number;
  /** its index in the model it was removed from */
  at: number;
  /** the compensation scale measured on that model (null without compensation) */
  s: number | null;
  /** channels the scale's guard left out (scale.ts) */
  skippedChannels: number;
  /** mean |X_k| and mean |X_{k+1}| around the removed layer in that model (over windows, tokens, channels; null without compensation) */
  meanBefore: number | null;
  meanAfter: number | null;
  /** whether s went into the weights (not when the model's last layer was cut: the final norm cancels any scale) */
  folded: boolean;
}

/** What one model of the playground does. */
export interface PlaygroundNumbers {
  ppl: PerplexityInfo;
  /** mean |X_k| per boundary, ORIGINAL numbering (as RunResult.curves) */
  curve: CurvePoint[];
  /** the greedy continuation of PLAYGROUND's prompt: decoded, and its ids */
  continuation: string;
  continuationIds: number[];
}

export interface PlaygroundResult {
  /** the dense model's layers */
  numLayers: number;
  /** the state: removed original layers in click order */
  removed: number[];
  compensate: boolean;
  fold: Fold;
  dense: PlaygroundNumbers;
  current: PlaygroundNumbers;
  removals: PlaygroundRemoval[];
  prompt: string;
  calibration: { windows: number; window: number };
  evaluation: { windows: number; window: number };
  /** models measured for this answer (0: all from the cache) */
  measured: number;
  millis: number;
}

export interface PlaygroundRequest {
  removed: readonly number[];
  compensate: boolean;
  /** the paper's fold by default */
  fold?: Fold;
}

/** One model on the way: built from its parent by one removal (or from the dense model by all of them, uncompensated). */
interface Node {
  model: Checkpoint;
  removals: PlaygroundRemoval[];
  /** its calibration statistics, once measured */
  stats?: WindowStats[];
  numbers?: PlaygroundNumbers;
}

/** How many models the cache keeps (the dense one always): their tensors are mostly shared. */
const CACHE_NODES = 48;

export class Playground {
  private readonly nodes = new Map<string, Node>();
  private readonly denseNode: Node;
  readonly evalIds: readonly number[];
  readonly evalWindow: number;
  readonly evalWindows: number;
  readonly promptIds: readonly number[];

  /**
   * `calibration`: token windows of equal length (BOS first); `evaluation`: the evaluation
   * text's ids (BOS first), cut into windows of `window` tokens, the first `maxWindows`.
   */
  constructor(
    readonly dense: Checkpoint,
    readonly runtime: Runtime,
    readonly calibration: readonly (readonly number[])[],
    evaluation: { ids: readonly number[]; window: number; maxWindows: number },
    readonly prompt: string = PLAYGROUND.prompt,
    readonly maxTokens: number = PLAYGROUND.maxTokens,
  ) {
    if (calibration.length === 0) throw new LopperError('bad-input', 'the playground needs at least one calibration window');
    this.evalWindows = textWindows(evaluation.ids, evaluation.window, evaluation.maxWindows, 'the evaluation text', 'playground').length;
    this.evalIds = evaluation.ids.slice(0, this.evalWindows * evaluation.window);
    this.evalWindow = evaluation.window;
    this.promptIds = tokenizeText(dense, prompt);
    this.denseNode = { model: dense, removals: [] };
  }

  /** The playground from texts with PLAYGROUND's sizes (the worker, the benchmark, the tests). */
  static fromTexts(ck: Checkpoint, runtime: Runtime, calibText: string, evalText: string): Playground {
    const W = PLAYGROUND.window;
    const calib = textWindows(tokenizeText(ck, calibText), W, PLAYGROUND.calibWindows, 'the calibration text', 'playground');
    return new Playground(ck, runtime, calib, { ids: tokenizeText(ck, evalText), window: W, maxWindows: PLAYGROUND.evalWindows });
  }

  /** A state's order, checked: integers in [0, L), each once, at least one layer left. */
  checkOrder(removed: readonly number[]): number[] {
    const L = this.dense.config.numLayers;
    if (!Array.isArray(removed)) throw new LopperError('bad-option', 'the removed layers must be a list of layer indices');
    const seen = new Set<number>();
    for (const l of removed) {
      if (!Number.isInteger(l) || l < 0 || l >= L) throw new LopperError('bad-option', `layer ${String(l)} does not exist: this model has layers 0 to ${L - 1}`);
      if (seen.has(l)) throw new LopperError('bad-option', `layer ${l} is removed twice`);
      seen.add(l);
    }
    if (seen.size >= L) throw new LopperError('bad-option', `cannot remove all ${L} layers: at least one must remain`);
    return [...removed];
  }

  /** The numbers of a state, the dense model's beside them, and each removal's scale. */
  async compute(req: PlaygroundRequest, o: { signal?: AbortSignal; poll?: () => void } = {}): Promise<PlaygroundResult> {
    const t0 = performance.now();
    const removed = this.checkOrder(req.removed);
    const fold: Fold = req.fold ?? 'paper';
    if (fold !== 'paper' && fold !== 'tied') throw new LopperError('bad-option', `fold must be paper or tied (got "${String(fold)}")`);
    if (typeof req.compensate !== 'boolean') throw new LopperError('bad-option', `compensate must be true or false (got "${String(req.compensate)}")`);
    const poll = () => {
      o.poll?.();
      if (o.signal?.aborted) throw new LopperError('cancelled', 'the playground request was cancelled');
    };
    let measured = 0;
    const numbers = async (node: Node, removedSoFar: readonly number[]) => {
      if (!node.numbers) {
        node.numbers = await this.measure(node, removedSoFar, poll);
        measured++;
      }
      return node.numbers;
    };

    const dense = await numbers(this.denseNode, []);
    let node: Node;
    if (removed.length === 0) node = this.denseNode;
    else if (!req.compensate) {
      // Uncompensated, the order is immaterial: one deletion of the set.
      const key = `none:${[...removed].sort((a, b) => a - b).join(',')}`;
      node = this.cached(key) ?? this.keep(key, { model: removeLayers(this.dense, removed), removals: [] });
      node.removals = removed.map((layer) => ({ layer, at: layer - removed.filter((r) => r < layer).length, s: null, skippedChannels: 0, meanBefore: null, meanAfter: null, folded: false }));
    } else {
      // Compensated: one removal at a time on the model so far, from the longest prefix measured before.
      node = this.denseNode;
      for (let i = 0; i < removed.length; i++) {
        const key = `${fold}:${removed.slice(0, i + 1).join(',')}`;
        const hit = this.cached(key);
        if (hit) {
          node = hit;
          continue;
        }
        poll();
        if (!node.stats) {
          node.stats = await this.stats(node.model, poll);
          measured++;
        }
        const layer = removed[i];
        const at = layer - removed.slice(0, i).filter((r) => r < layer).length; // its index in the current model
        const { s, skippedChannels } = scaleFromStats(node.stats, at, at + 1);
        const curve = meanCurve(node.stats);
        const model = applyCut(node.model, { layers: [at], fold, scale: s });
        const folded = at < node.model.config.numLayers - 1;
        node = this.keep(key, { model, removals: [...node.removals, { layer, at, s, skippedChannels, meanBefore: curve[at], meanAfter: curve[at + 1], folded }] });
      }
    }
    const current = await numbers(node, removed);
    return {
      numLayers: this.dense.config.numLayers,
      removed,
      compensate: req.compensate,
      fold,
      dense,
      current,
      removals: node.removals,
      prompt: this.prompt,
      calibration: { windows: this.calibration.length, window: this.calibration[0].length },
      evaluation: { windows: this.evalWindows, window: this.evalWindow },
      measured,
      millis: performance.now() - t0,
    };
  }

  /** The pruned model of a state (what compute measured), from the cache or built. */
  async model(req: PlaygroundRequest): Promise<Checkpoint> {
    const removed = this.checkOrder(req.removed);
    if (!req.compensate) return removeLayers(this.dense, removed);
    const key = `${req.fold ?? 'paper'}:${removed.join(',')}`;
    if (!this.cached(key)) await this.compute(req);
    return this.cached(key)!.model;
  }

  private cached(key: string): Node | undefined {
    const node = this.nodes.get(key);
    if (node) {
      this.nodes.delete(key); // most recently used last
      this.nodes.set(key, node);
    }
    return node;
  }

  private keep(key: string, node: Node): Node {
    this.nodes.set(key, node);
    while (this.nodes.size > CACHE_NODES) this.nodes.delete(this.nodes.keys().next().value!);
    return node;
  }

  private async stats(model: Checkpoint, poll: () => void): Promise<WindowStats[]> {
    const engine = new Engine(model, this.runtime);
    try {
      return await engine.stats(this.calibration);
    } finally {
      await engine.dispose();
      poll();
    }
  }

  /** A model's statistics (kept for the next removal's scale), curve, perplexity and continuation: one engine, three passes. */
  private async measure(node: Node, removed: readonly number[], poll: () => void): Promise<PlaygroundNumbers> {
    const engine = new Engine(node.model, this.runtime);
    try {
      node.stats ??= await engine.stats(this.calibration);
      poll();
      const p = await engine.perplexity(this.evalIds, this.evalWindow, { batch: this.evalWindows });
      poll();
      const ids: number[] = [];
      for await (const id of engine.generate(this.promptIds, { maxTokens: this.maxTokens, temperature: 0 })) ids.push(id);
      const tok = this.dense.tokenizer;
      const promptText = tok.decode(this.promptIds);
      const full = tok.decode([...this.promptIds, ...ids]);
      return {
        ppl: { ppl: p.ppl, tokens: p.tokens, windows: p.windows },
        curve: curvePoints(meanCurve(node.stats), this.dense.config.numLayers, removed),
        continuation: full.startsWith(promptText) ? full.slice(promptText.length) : full,
        continuationIds: ids,
      };
    } finally {
      await engine.dispose();
    }
  }
}

/** Mean |X_k| over windows, tokens and channels, k = 0..L, from one calibration pass's statistics (run.ts's curve). */
function meanCurve(stats: readonly WindowStats[]): number[] {
  const sums = new Float64Array(stats[0].absMean.length);
  for (const st of stats) addToCurve(sums, st, stats.length);
  return [...sums];
}
