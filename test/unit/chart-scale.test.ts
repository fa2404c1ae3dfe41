/**
 * The charts' value axis (src/app/charts/scale.ts): linear while the values are within 100×
 * of each other, log beyond; a larger value never gets a shorter bar.
 */
import { describe, expect, test } from 'vitest';
import { LOG_RATIO, valueScale } from '../../src/app/charts/scale';
import { mulberry32 } from '../../src/engine/runtime/sampler';

/**
 * frac never decreases over the sorted finite values, and strictly increases wherever two
 * values are apart by more than floating-point resolution of the axis (1e-9 of its length,
 * in data units on a linear axis and in decades on a log one)
 */
function expectStrictlyMonotone(values: number[]) {
  const s = valueScale(values);
  const sorted = [...new Set(values.filter(Number.isFinite))].sort((a, b) => a - b);
  const apart = (a: number, b: number) =>
    s.kind === 'log' ? Math.log10(b / a) > 1e-9 * Math.log10(s.hi / s.lo) : b - a > 1e-9 * (s.hi - s.lo);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    expect(s.frac(b), `${s.kind}: ${a} < ${b}`).toBeGreaterThanOrEqual(s.frac(a));
    if (apart(a, b)) expect(s.frac(b), `${s.kind}: ${a} < ${b}`).toBeGreaterThan(s.frac(a));
  }
  for (const v of sorted) {
    expect(s.frac(v)).toBeGreaterThanOrEqual(0);
    expect(s.frac(v)).toBeLessThanOrEqual(1);
  }
}

describe('valueScale', () => {
  test('perplexities within 100× of each other: linear from 0 to the largest', () => {
    const s = valueScale([5.84, 12.6, 300]);
    expect(s.kind).toBe('linear');
    expect([s.lo, s.hi]).toEqual([0, 300]);
    expect(s.frac(300)).toBe(1);
    expect(s.frac(150)).toBe(0.5);
    expect(s.frac(0)).toBe(0);
    expect(s.ticks).toEqual([0, 75, 150, 225, 300]);
  });

  test('exactly 100× is still linear; just above is log', () => {
    expect(valueScale([1, LOG_RATIO]).kind).toBe('linear');
    expect(valueScale([1, LOG_RATIO * 1.0001]).kind).toBe('log');
  });

  test('a broken model (1e0 … 1e50): log, powers of ten from a decade below the smallest to the decade above the largest', () => {
    const values = [5.84, 7.28e47, 3.1e29];
    const s = valueScale(values);
    expect(s.kind).toBe('log');
    expect(s.lo).toBe(1);
    expect(s.hi).toBe(1e48);
    // the bar length is the position of log10(v) between 0 and 48
    expect(s.frac(5.84)).toBeCloseTo(Math.log10(5.84) / 48, 12);
    expect(s.frac(3.1e29)).toBeCloseTo(Math.log10(3.1e29) / 48, 12);
    expect(s.frac(7.28e47)).toBeCloseTo(Math.log10(7.28e47) / 48, 12);
    // the smallest bar is visible (more than 0.5% of the axis), the largest nearly full
    expect(s.frac(5.84)).toBeGreaterThan(0.005);
    expect(s.frac(7.28e47)).toBeGreaterThan(0.99);
    // at most 6 ticks, all powers of ten inside the axis, starting at its low end
    expect(s.ticks.length).toBeLessThanOrEqual(6);
    expect(s.ticks[0]).toBe(1);
    for (const t of s.ticks) {
      expect(Number.isInteger(Math.log10(t))).toBe(true);
      expect(t).toBeGreaterThanOrEqual(s.lo);
      expect(t).toBeLessThanOrEqual(s.hi);
    }
    expectStrictlyMonotone(values);
  });

  test('the smallest value never lands on the axis start, even when it is a power of ten', () => {
    for (const min of [1, 10, 1e-5, 0.001, 2.5, 9.99]) {
      const s = valueScale([min, min * 1e6]);
      expect(s.kind).toBe('log');
      expect(s.lo).toBeLessThan(min);
      expect(s.frac(min)).toBeGreaterThan(0);
      expect(s.lo).toBeGreaterThanOrEqual((min / 10) * (1 - 1e-12));
    }
  });

  test('zero or negative values keep the axis linear (from the smallest value when it is negative)', () => {
    const withZero = valueScale([0, 1e-6, 50]);
    expect(withZero.kind).toBe('linear');
    const negative = valueScale([-2, 0.5, 6]);
    expect(negative.kind).toBe('linear');
    expect([negative.lo, negative.hi]).toEqual([-2, 6]);
    expect(negative.frac(-2)).toBe(0);
    expect(negative.frac(2)).toBe(0.5);
    expectStrictlyMonotone([-2, 0.5, 6, -1.5, 0]);
  });

  test('non-finite values: +Infinity a full bar, NaN and −Infinity none; they do not stretch the axis', () => {
    const s = valueScale([5, 10, Infinity, NaN]);
    expect(s.kind).toBe('linear');
    expect(s.hi).toBe(10);
    expect(s.frac(Infinity)).toBe(1);
    expect(s.frac(NaN)).toBe(0);
    expect(s.frac(-Infinity)).toBe(0);
    expect(valueScale([5, 1e60, Infinity]).frac(Infinity)).toBe(1);
  });

  test('degenerate inputs: nothing, one value, all equal', () => {
    for (const values of [[], [NaN], [7], [3, 3, 3], [0, 0]]) {
      const s = valueScale(values);
      expect(s.kind).toBe('linear');
      expect(s.hi).toBeGreaterThan(s.lo);
      for (const v of values) expect(Number.isFinite(s.frac(v))).toBe(true);
    }
  });

  test('monotone on random value sets spanning up to 1e±60 (linear and log)', () => {
    const rand = mulberry32(7);
    let logs = 0;
    for (let trial = 0; trial < 500; trial++) {
      const n = 1 + Math.floor(rand() * 6);
      const span = rand() * 60;
      const values = Array.from({ length: n }, () => 10 ** (span * (2 * rand() - 1)) * (trial % 5 === 0 ? 2 * rand() - 1 : 1));
      if (valueScale(values).kind === 'log') logs++;
      expectStrictlyMonotone(values);
    }
    expect(logs).toBeGreaterThan(100);
  });
});
