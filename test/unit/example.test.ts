/**
 * The precomputed example the app ships (src/ui/example/stories260K.json) is what lopper
 * computes today: scripts/example.ts's computeExample — the function `npm run example` writes
 * the file from — runs again here and its result is compared with the shipped copy.
 *
 * Exact: every string, boolean, null and whole number (model, settings, key, plans' removed
 * layers and steps, token and window counts, curve layers). Within 1e-6 relative: other
 * numbers (perplexities, scales, scores, magnitudes), because onnxruntime's thread count —
 * the machine's cores — changes the order of float32 sums (measured: onnxruntime-node and
 * onnxruntime-web differ by 5e-8 on this run). Ignored: what depends on the machine and the
 * moment (computedAt, millis, timings).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { computeExample, EXAMPLE_FILE } from '../../scripts/example';

const REL_TOL = 1e-6;
/** machine- and time-dependent fields of a RunResult (top level) */
const IGNORED = new Set(['computedAt', 'millis', 'timings']);

/** Paths where `got` and `want` differ (numbers: exact when both are whole, else within REL_TOL). */
function differences(got: unknown, want: unknown, path = ''): string[] {
  if (typeof got === 'number' && typeof want === 'number') {
    const same = Number.isInteger(got) && Number.isInteger(want) ? got === want : Math.abs(got - want) <= REL_TOL * Math.max(Math.abs(got), Math.abs(want));
    return same ? [] : [`${path}: ${want} shipped, ${got} computed`];
  }
  if (Array.isArray(got) && Array.isArray(want)) {
    if (got.length !== want.length) return [`${path}: ${want.length} items shipped, ${got.length} computed`];
    return got.flatMap((g, i) => differences(g, want[i], `${path}[${i}]`));
  }
  if (got && want && typeof got === 'object' && typeof want === 'object' && !Array.isArray(got) && !Array.isArray(want)) {
    const g = got as Record<string, unknown>;
    const w = want as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(g), ...Object.keys(w)])].filter((k) => !(path === '' && IGNORED.has(k)));
    return keys.flatMap((k) => (k in g && k in w ? differences(g[k], w[k], `${path}.${k}`) : [`${path}.${k}: ${k in w ? 'shipped only' : 'computed only'}`]));
  }
  return Object.is(got, want) ? [] : [`${path}: ${JSON.stringify(want)} shipped, ${JSON.stringify(got)} computed`];
}

describe('the precomputed example', () => {
  const text = readFileSync(EXAMPLE_FILE, 'utf8');
  const shipped = JSON.parse(text) as Record<string, unknown>;

  it('is small and says what it is', () => {
    expect(text.length, 'bytes of the shipped example').toBeLessThan(50_000);
    expect(shipped.fromCache).toBe(false);
    expect(shipped.timings, 'timings are the generating machine’s, not the visitor’s').toBeUndefined();
  });

  it('equals what lopper computes now (otherwise run `npm run example`)', async () => {
    // JSON round trip: what the file would hold (no undefined fields)
    const computed = JSON.parse(JSON.stringify(await computeExample())) as unknown;
    const diff = differences(computed, shipped);
    expect(diff, `${EXAMPLE_FILE} is stale — run \`npm run example\` and commit it:\n  ${diff.slice(0, 20).join('\n  ')}`).toEqual([]);
  }, 120_000);

  it('the comparison catches an edit (a perplexity 2e-6 off, a removed layer changed)', () => {
    const edited = JSON.parse(text) as { ppl: { prunecomp: { ppl: number } }; plans: { baseline: { removed: number[] } }; millis: number };
    edited.millis += 1000;
    expect(differences(edited, shipped)).toEqual([]);
    edited.ppl.prunecomp.ppl *= 1 + 2e-6;
    edited.plans.baseline.removed[0] += 1;
    expect(differences(edited, shipped).map((d) => d.split(':')[0])).toEqual(['.ppl.prunecomp.ppl', '.plans.baseline.removed[0]']);
  });
});
