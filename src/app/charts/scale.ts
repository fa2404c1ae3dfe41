/**
 * The value axis of the bar and line charts, as plain maths (no DOM), so it can be tested in
 * Node: which scale, and where a value lands on it.
 *
 * The rule: a **log** axis when every finite value is > 0 and the largest is more than
 * LOG_RATIO (100) times the smallest — perplexities of a broken model (1e47 beside 5.8) or
 * magnitudes spanning decades; a linear bar would leave all but the largest at zero width.
 * Otherwise a **linear** axis from min(0, smallest) to the largest. Either way `frac` is
 * increasing in the value over the finite values (a larger value never gets a shorter bar;
 * strictly, down to floating-point resolution of the axis) and lies in [0, 1]; +Infinity
 * maps to 1, −Infinity and NaN to 0 (the charts print "—" for those).
 *
 * The log axis runs from one decade below the smallest value's decade start (so the smallest
 * value still has a visible bar: lo = 10^(ceil(log10 min) − 1) < min) to the decade at or
 * above the largest value (hi = 10^ceil(log10 max)); its ticks are powers of ten.
 */

/** The largest/smallest ratio above which the axis becomes logarithmic. */
export const LOG_RATIO = 100;

export interface Scale {
  kind: 'linear' | 'log';
  /** the axis' ends (data units) */
  lo: number;
  hi: number;
  /** where a value lands: 0 at lo, 1 at hi (clamped) */
  frac(v: number): number;
  /** tick values inside [lo, hi]: powers of ten on a log axis, 0…hi in quarters on a linear one */
  ticks: number[];
}

/** log10 snapped to a whole number when within 1e-9 of one (Math.log10(1e-5) is not always −5 exactly). */
function log10(x: number): number {
  const l = Math.log10(x);
  const r = Math.round(l);
  return Math.abs(l - r) < 1e-9 ? r : l;
}

/** The axis for `values` (non-finite values are ignored for its extent). */
export function valueScale(values: readonly number[], opts: { logRatio?: number; maxTicks?: number; log?: boolean } = {}): Scale {
  const logRatio = opts.logRatio ?? LOG_RATIO;
  const maxTicks = opts.maxTicks ?? 6;
  const finite = values.filter((v) => Number.isFinite(v));
  const min = finite.length ? Math.min(...finite) : 0;
  const max = finite.length ? Math.max(...finite) : 1;
  const edge = (v: number) => (Number.isNaN(v) || v === -Infinity ? 0 : v === Infinity ? 1 : null);

  if (opts.log && finite.length > 0 && min > 0) return niceLogScale(min, max, maxTicks, edge);

  if (finite.length > 0 && min > 0 && max / min > logRatio) {
    const e0 = Math.ceil(log10(min)) - 1;
    const e1 = Math.max(e0 + 1, Math.ceil(log10(max)));
    const lo = 10 ** e0;
    const hi = 10 ** e1;
    const step = Math.max(1, Math.ceil((e1 - e0) / Math.max(1, maxTicks - 1)));
    const ticks: number[] = [];
    for (let e = e0; e <= e1; e += step) ticks.push(10 ** e);
    return {
      kind: 'log',
      lo,
      hi,
      ticks,
      frac: (v) => edge(v) ?? (v <= 0 ? 0 : Math.min(1, Math.max(0, (Math.log10(v) - e0) / (e1 - e0)))),
    };
  }
  const lo = Math.min(0, min);
  const hi = max > lo ? max : lo + Math.max(1, Math.abs(lo));
  return {
    kind: 'linear',
    lo,
    hi,
    ticks: [0, 0.25, 0.5, 0.75, 1].map((t) => lo + t * (hi - lo)),
    frac: (v) => edge(v) ?? Math.min(1, Math.max(0, (v - lo) / (hi - lo))),
  };
}

/** The 1-2-5 values (1, 2, 5, 10, 20, …) at or below (`down`) or at or above v > 0. */
function nice125(v: number, down: boolean): number {
  const e = Math.floor(log10(v));
  const steps = [1, 2, 5, 10].map((m) => m * 10 ** e);
  const hit = steps.find((s) => Math.abs(s - v) <= 1e-12 * v);
  if (hit !== undefined) return hit;
  return down ? steps.filter((s) => s < v).at(-1)! : steps.find((s) => s > v)!;
}

/**
 * A log axis asked for (`log: true`, the curve's perplexity) whatever the values' span: ends
 * on the 1-2-5 values around them (lo ≤ min, hi ≥ max, hi > lo), ticks the 1-2-5 values
 * between (thinned to powers of ten, and the ends, when there are more than maxTicks), so a
 * narrow range (5.8…40) is not squashed into one decade's corner.
 */
function niceLogScale(min: number, max: number, maxTicks: number, edge: (v: number) => number | null): Scale {
  const lo = nice125(min, true);
  let hi = nice125(max, false);
  if (!(hi > lo)) hi = nice125(lo * 1.0001, false);
  const all: number[] = [];
  for (let v = lo; v <= hi * (1 + 1e-12); v = nice125(v * 1.0001, false)) all.push(v);
  const decades = all.filter((v) => Number.isInteger(log10(v)));
  const ticks = all.length <= maxTicks ? all : [...new Set([lo, ...decades, hi])].sort((a, b) => a - b);
  const l0 = Math.log10(lo);
  const l1 = Math.log10(hi);
  return {
    kind: 'log',
    lo,
    hi,
    ticks,
    frac: (v) => edge(v) ?? (v <= 0 ? 0 : Math.min(1, Math.max(0, (Math.log10(v) - l0) / (l1 - l0)))),
  };
}
