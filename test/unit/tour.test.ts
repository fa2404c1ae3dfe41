/**
 * The guided tour's texts (src/ui/tour/steps.ts) on a real run — the precomputed stories260K
 * example, which test/unit/example.test.ts keeps equal to what lopper computes: every formula
 * typesets, the numbers plugged in are the run's (checked against the plan and curves
 * directly), the layers named are the ones the engine chose, and the hash of each step opens it.
 */
import katex from 'katex';
import { describe, expect, it } from 'vitest';
import { EXAMPLE } from '../../src/ui/example';
import { num } from '../../src/app/format';
import { largestRescore, tourHash, tourStepFromHash, TOUR_STEPS, type TourContext } from '../../src/ui/tour/steps';

const model = { name: 'stories260K', numLayers: 5, hiddenSize: 64 };
const contexts: [string, TourContext][] = [
  ['nothing loaded, no run', { model: null, result: null, example: false, playground: null }],
  ['a first visit (the example)', { model: null, result: EXAMPLE, example: true, playground: null }],
  ['stories260K loaded, a layer removed in the playground', { model, result: EXAMPLE, example: false, playground: { removed: [3], compensate: true, densePpl: 19.5, ppl: 23.25, removals: [{ layer: 3, at: 3, s: 1.25, skippedChannels: 0, meanBefore: 0.8, meanAfter: 1, folded: true }] } }],
];
const text = (ctx: TourContext, id: string) =>
  TOUR_STEPS.find((s) => s.id === id)!
    .body(ctx)
    .map((b) => ('p' in b ? b.p : b.math))
    .join('\n');

describe('the guided tour', () => {
  it('has 6–9 steps with distinct ids, each pointing at parts of the page', () => {
    expect(TOUR_STEPS.length).toBeGreaterThanOrEqual(6);
    expect(TOUR_STEPS.length).toBeLessThanOrEqual(9);
    expect(new Set(TOUR_STEPS.map((s) => s.id)).size).toBe(TOUR_STEPS.length);
    for (const s of TOUR_STEPS) expect(s.targets.length).toBeGreaterThan(0);
  });

  it.each(contexts)('%s: every step says something, with no missing number, and every formula typesets', (_, ctx) => {
    for (const step of TOUR_STEPS) {
      const blocks = step.body(ctx);
      expect(blocks.length).toBeGreaterThan(0);
      for (const b of blocks) {
        const s = 'p' in b ? b.p : b.math;
        expect(s, `${step.id}: ${s}`).not.toMatch(/NaN|undefined|null|\[object/);
        if ('math' in b) expect(() => katex.renderToString(b.math, { output: 'mathml', displayMode: true, throwOnError: true })).not.toThrow();
      }
    }
  });

  it('plugs in the run’s numbers: the scale of the first cut, and the magnitudes around it', () => {
    const ctx = contexts[1][1];
    const st = EXAMPLE.plans.prunecomp!.steps[0];
    const k = st.removed;
    const b = EXAMPLE.curves.dense.find((p) => p.layer === k)!.value;
    const a = EXAMPLE.curves.dense.find((p) => p.layer === k + 1)!.value;
    const t = text(ctx, 'scale');
    expect(t).toContain(`first cut in the precomputed example (stories260K, bi, n = 2) is layer ${k}`);
    expect(t).toContain(`\\frac{${num(a, 4)}}{${num(b, 4)}} = ${num(a / b, 4)}`);
    expect(t).toContain(`s = ${num(st.scale, 4)}`);
    // the two measures of the gap differ (a mean of ratios is not a ratio of means) but not by much
    expect(Math.abs(a / b - st.scale) / st.scale).toBeLessThan(0.2);
    expect(text(ctx, 'fold')).toContain(`Scales: ${EXAMPLE.plans.prunecomp!.scales.map((s) => num(s, 4)).join(', ')}`);
  });

  it('names the layers the engine chose: the lowest score is the baseline’s first removal', () => {
    const t = text(contexts[1][1], 'scores');
    const base = EXAMPLE.plans.baseline;
    expect(t).toContain(`layer ${base.removed[0]} changes the stream least`);
    expect(t).toContain(`layer${base.removed.length > 1 ? 's' : ''} ${base.removed.join(' and ')}.`);
    const g = text(contexts[1][1], 'compare');
    expect(g).toContain(`dense ${num(EXAMPLE.ppl.dense.ppl, 4)}, baseline ${num(EXAMPLE.ppl.baseline.ppl, 4)}, Prune&Comp ${num(EXAMPLE.ppl.prunecomp!.ppl, 4)}`);
  });

  it('maps the second step’s scores back to original layers when it says how a score changed', () => {
    const plan = EXAMPLE.plans.prunecomp!;
    const [s0, s1] = plan.steps;
    // the second step ran on the model without s0.removed: its `at` index names its removal
    const kept = Array.from({ length: plan.layersBefore }, (_, k) => k).filter((k) => k !== s0.removed);
    expect(kept[s1.at]).toBe(s1.removed);
    const c = largestRescore(EXAMPLE)!;
    expect(c.firstCut).toBe(s0.removed);
    expect(c.layer).not.toBe(s0.removed);
    expect(c.before).toBe(s0.scores[c.layer]);
    expect(c.after).toBe(s1.scores[kept.indexOf(c.layer)]);
    // and it is the largest relative change among the layers scored twice
    for (const [i, after] of s1.scores.entries()) {
      const before = s0.scores[kept[i]];
      if (after === null || before === null) continue;
      expect(Math.abs(after - before) / Math.abs(before)).toBeLessThanOrEqual(Math.abs(c.after - c.before) / Math.abs(c.before));
    }
    expect(text(contexts[1][1], 'recompute')).toContain(`after removing layer ${c.firstCut}, layer ${c.layer}’s score went from ${num(c.before, 4)} to ${num(c.after, 4)}`);
  });

  it('offers to load the model, then to remove the lowest-scored layer, then to restore', () => {
    const stack = TOUR_STEPS.find((s) => s.id === 'stack')!;
    const remove = TOUR_STEPS.find((s) => s.id === 'remove')!;
    expect(stack.action!(contexts[0][1])).toEqual({ kind: 'load-stories', label: 'Load stories260K (1 MB)' });
    expect(stack.action!(contexts[2][1])).toBeNull();
    const empty = { ...contexts[2][1], playground: { removed: [], compensate: false, densePpl: 19.5, ppl: 19.5, removals: [] } };
    expect(remove.action!(empty)).toEqual({ kind: 'remove-layer', layer: EXAMPLE.plans.baseline.removed[0], label: `Remove layer ${EXAMPLE.plans.baseline.removed[0]} for me` });
    expect(remove.action!(contexts[2][1])).toEqual({ kind: 'restore-all', label: 'Restore every layer' });
    // the fold step offers compensation for an uncompensated removal, and then shows the measured s
    const fold = TOUR_STEPS.find((s) => s.id === 'fold')!;
    const uncompensated = { ...contexts[2][1], playground: { ...contexts[2][1].playground!, compensate: false, removals: [] } };
    expect(fold.action!(uncompensated)).toEqual({ kind: 'compensate', label: 'Compensate the playground’s removal' });
    expect(fold.action!(contexts[2][1])).toBeNull();
    expect(text(contexts[2][1], 'fold')).toContain('In the playground, compensated: layer 3 with s = 1.250 (1.000 / 0.8000 in mean |X|); perplexity 23.25 against the dense model’s 19.50.');
  });

  it('opens the step a hash names, and nothing else', () => {
    for (let i = 0; i < TOUR_STEPS.length; i++) expect(tourStepFromHash(tourHash(i))).toBe(i);
    for (const h of ['', '#', '#tour=0', `#tour=${TOUR_STEPS.length + 1}`, '#tour=2x', '#tour=-1', '#tour=1.5', '#results', '#tour=99999']) expect(tourStepFromHash(h)).toBeNull();
  });
});
