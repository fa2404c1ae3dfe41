/**
 * The app's number formats (src/app/format.ts): one compact form with significant digits,
 * whatever the size — a perplexity of 7.28e47 is not a 48-digit integer.
 */
import { describe, expect, test } from 'vitest';
import { num, ppl } from '../../src/app/format';

describe('num: one compact form, 3 significant digits by default', () => {
  test.each([
    [0, '0'],
    [-0, '0'],
    [1, '1.00'],
    [5.8432, '5.84'],
    [0.1, '0.100'],
    [0.00123, '0.00123'],
    [12.345, '12.3'],
    [123.4, '123'],
    [999.4, '999'],
    // rounding to 3 digits carries 999.7 into the whole-number range
    [999.7, '1,000'],
    [1516.4, '1,516'],
    [999_999.4, '999,999'],
    // … and 999,999.6 into the exponent range
    [999_999.6, '1.00e6'],
    [1e6, '1.00e6'],
    [7.2834e47, '7.28e47'],
    [1e300, '1.00e300'],
    [1e-5, '1.00e-5'],
    [0.0009996, '1.00e-3'],
    [5e-324, '4.94e-324'],
  ])('%s → %s', (x, text) => {
    expect(num(x)).toBe(text);
    // negatives (layer scores can be) are the same with a minus sign
    if (x !== 0) expect(num(-x)).toBe(`-${text}`);
  });

  test('NaN and ±Infinity are a dash, not "NaN" or "Infinity"', () => {
    for (const x of [NaN, Infinity, -Infinity]) expect(num(x)).toBe('—');
  });

  test('other significant digits', () => {
    expect(num(5.8432, 2)).toBe('5.8');
    expect(num(123, 2)).toBe('120'); // not "1.2e+2"
    expect(num(7.2834e47, 1)).toBe('7e47');
    expect(num(1000, 1)).toBe('1,000');
    expect(num(0.5, 4)).toBe('0.5000');
  });

  test('at most sig + 7 characters (-1.00e-300) and never a run of 7+ digits, over 1e-300 … 1e308 and both signs', () => {
    for (let e = -300; e <= 308; e += 0.37) {
      for (const sign of [1, -1]) {
        const x = sign * 10 ** e;
        for (const sig of [3, 4]) {
          const s = num(x, sig);
          expect(s.length, `${x} → ${s}`).toBeLessThanOrEqual(sig + 7);
          expect(s, `${x} → ${s}`).not.toMatch(/\d{7}/);
          expect(s).not.toMatch(/e\+|NaN|Infinity/);
          // it reads back as x to its significant digits (thousands separators dropped)
          const back = Number(s.replace(/,/g, ''));
          expect(Math.abs(back - x) / Math.abs(x), `${x} → ${s}`).toBeLessThanOrEqual(0.5 * 10 ** (1 - sig) + 1e-12);
        }
      }
    }
  });
});

describe('ppl: perplexities with 4 significant digits', () => {
  test.each([
    [5.84321, '5.843'],
    [151.64, '151.6'],
    [1516.4, '1,516'],
    [7.2834e47, '7.283e47'],
    [1.0000005, '1.000'],
    [NaN, '—'],
    [Infinity, '—'],
  ])('%s → %s', (x, text) => expect(ppl(x)).toBe(text));
});
