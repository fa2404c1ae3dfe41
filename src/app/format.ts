/** Numbers as people read them. */

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '?';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${Math.round(n)} B`;
}

export function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '…';
  if (seconds < 1) return 'under a second';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function rate(bytesPerSecond: number): string {
  return bytesPerSecond > 0 ? `${bytes(bytesPerSecond)}/s` : '';
}

export const int = new Intl.NumberFormat('en-US');

/**
 * A number in one compact form, at most about 9 characters whatever its size, with `sig`
 * significant digits (default 3):
 *
 *   NaN, ±Infinity            "—"
 *   0                         "0"
 *   1e-3 ≤ |x| < 1000         sig significant digits, fixed point: 5.84, 0.0123, 12.3, 999
 *   1000 ≤ |x| < 1e6          rounded to a whole number, with thousands separators: 1,516
 *   otherwise                 sig significant digits, exponent without "+": 7.28e47, 1.00e-5
 *
 * Negative numbers are the same with "-" in front. Where rounding to sig digits carries a
 * number into the next range (999.7 → 1,000; 999,999.6 → 1.00e6) it is written in that range.
 */
export function num(x: number, sig = 3): string {
  if (!Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  const a = Math.abs(x);
  const sign = x < 0 ? '-' : '';
  if (a >= 1e-3 && a < 1000) {
    const r = Number(a.toPrecision(sig));
    if (r < 1000) return sign + r.toFixed(Math.max(0, sig - 1 - Math.floor(Math.log10(r))));
  }
  if (a >= 1e-3 && a < 1e6) {
    const r = Math.round(a);
    if (r < 1e6) return sign + int.format(r);
  }
  return sign + exp(a, sig);
}

/** a ≥ 0 as m.mme±n without the "+" (7.28e47) */
function exp(a: number, sig: number): string {
  return a.toExponential(sig - 1).replace('e+', 'e');
}

/** A perplexity: `num` with 4 significant digits (5.843, 151.6, 1,516, 7.284e47; "—" when not finite). */
export function ppl(x: number): string {
  return num(x, 4);
}
