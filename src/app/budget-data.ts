/**
 * The perplexity budget's data: the calibration perplexity after each cut of one run to the
 * most layers the settings allow (the worker's 'budget' op: prune with `budget:
 * Number.MAX_VALUE`, so every cut is kept and plan.budget lists them all), from which any
 * budget B reads its number of layers at once — the same number `prune --budget B` stops at,
 * since a budgeted run is that run stopped before its first cut over B × dense. Nothing here
 * loads the engine, so the page imports it.
 */
import { METRIC_BARRIERS, type Comp, type Metric, type Mode } from '../engine/prune/options';
import type { RunSettings } from './protocol';
import type { RunIdentity } from './run-identity';

/** The calibration perplexity after every cut of one run, from the dense model on. */
export interface BudgetCurve {
  metric: Metric;
  /** prunecomp, or iterative for compensation 'none' */
  mode: Mode;
  comp: Comp | 'none';
  /** the cuts made: the most the settings allow */
  layers: number;
  /** the dense model's calibration perplexity */
  densePpl: number;
  /** after cut 1, 2, … layers */
  ppls: number[];
  /** the layers cut, original indices in removal order */
  removed: number[];
  /** the calibration windows the perplexities are over */
  calibration: { windows: number; window: number };
}

/**
 * The most layers one-at-a-time cuts can remove from L layers under the settings' barriers
 * (every step must leave an eligible layer: n ≤ L − skipFirst − skipLast), at least one layer
 * kept; 0 or less when the barriers leave none.
 */
export function maxCuts(L: number, s: Pick<RunSettings, 'metric' | 'skipFirst' | 'skipLast'>): number {
  const b = METRIC_BARRIERS[s.metric];
  return Math.min(L - 1, L - (s.skipFirst ?? b.skipFirst) - (s.skipLast ?? b.skipLast));
}

/**
 * n(B): the number of leading cuts whose calibration perplexity stays within `factor` × the
 * dense model's — where `prune --budget factor` stops (plan.ts compares `ppl > factor × dense`).
 */
export function budgetLayers(c: Pick<BudgetCurve, 'densePpl' | 'ppls'>, factor: number): number {
  let n = 0;
  while (n < c.ppls.length && !(c.ppls[n] > factor * c.densePpl)) n++;
  return n;
}

/**
 * The parts of a budget curve's cache key (store/cache.ts resultKey): the model and the run's
 * identity without what the curve does not depend on — n and the mode (it cuts as far as it
 * can, prunecomp or, with compensation 'none', iterative) and the evaluation text.
 */
export function budgetKeyParts(modelKey: string, id: RunIdentity): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...id };
  delete rest.layers;
  delete rest.mode;
  delete rest.eval;
  return { kind: 'budget-v1', model: modelKey, ...rest };
}
