/**
 * The names a pruning run is described by — metrics, their eligibility barriers, modes,
 * folds — with nothing else attached, so the page can list them without loading the engine.
 * What each one means: metrics.ts (metrics, barriers), plan.ts (modes), surgery.ts (folds).
 */

export const METRICS = ['bi', 'angular', 'cl', 'mag', 'ppl', 'taylor', 'reverse', 'random'] as const;
export type Metric = (typeof METRICS)[number];

export function isMetric(m: string): m is Metric {
  return (METRICS as readonly string[]).includes(m);
}

export interface Barriers {
  /** the first `skipFirst` layers of the current model are not eligible */
  skipFirst: number;
  /** the last `skipLast` layers of the current model are not eligible */
  skipLast: number;
}

/** The paper's / official code's eligibility per metric. */
export const METRIC_BARRIERS: Readonly<Record<Metric, Readonly<Barriers>>> = {
  bi: { skipFirst: 0, skipLast: 0 },
  angular: { skipFirst: 0, skipLast: 0 },
  cl: { skipFirst: 1, skipLast: 1 }, // i ∈ [1, L−n−1]
  mag: { skipFirst: 4, skipLast: 2 }, // 4 ≤ k < L−2
  ppl: { skipFirst: 1, skipLast: 1 }, // j ∈ [1, L−2]
  taylor: { skipFirst: 4, skipLast: 2 }, // 4 ≤ k < L−2
  reverse: { skipFirst: 0, skipLast: 0 },
  random: { skipFirst: 0, skipLast: 0 },
};

export const MODES = ['prunecomp', 'baseline', 'iterative', 'oneshot-comp'] as const;
export type Mode = (typeof MODES)[number];

export function isMode(m: string): m is Mode {
  return (MODES as readonly string[]).includes(m);
}

/** Whether a mode compensates each removal (folds a scale). */
export const compensates = (mode: Mode): boolean => mode === 'prunecomp' || mode === 'oneshot-comp';

/** How a compensation scale is folded into the weights: the paper's fold or the tie-preserving one (surgery.ts). */
export const FOLDS = ['paper', 'tied'] as const;
export type Fold = (typeof FOLDS)[number];

export function isFold(f: string): f is Fold {
  return (FOLDS as readonly string[]).includes(f);
}

/**
 * What a compensated mode folds at each cut (fit.ts):
 *   scalar  Prune&Comp's one scale s (scale.ts), folded the `Fold` way
 *   linear  ReplaceMe's least-squares map T (D×D) folded into down_proj of the layer before the cut
 *   diag    its diagonal variant (one factor per channel), folded the same way
 * The CLI's `--comp none` names a compensated mode's uncompensated twin (compWithMode).
 */
export const COMPS = ['scalar', 'linear', 'diag'] as const;
export type Comp = (typeof COMPS)[number];

export function isComp(c: string): c is Comp {
  return (COMPS as readonly string[]).includes(c);
}

/** `--comp` values: 'none' and the compensations. */
export const COMP_CHOICES = ['none', ...COMPS] as const;
export type CompChoice = (typeof COMP_CHOICES)[number];

/**
 * The mode and compensation a `--comp` choice gives `mode`: 'none' turns the compensated
 * modes into their uncompensated twins (prunecomp → iterative, oneshot-comp → baseline),
 * a compensation keeps the mode. The uncompensated modes ignore the choice.
 */
export function compWithMode(mode: Mode, choice: CompChoice): { mode: Mode; comp: Comp } {
  if (choice !== 'none') return { mode, comp: choice };
  return { mode: mode === 'prunecomp' ? 'iterative' : mode === 'oneshot-comp' ? 'baseline' : mode, comp: 'scalar' };
}
