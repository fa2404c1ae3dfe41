/**
 * The hand-built checkpoint of test/helpers/broken-checkpoint.ts does what the e2e test of
 * the app's numbers (test/e2e/numbers.test.ts) relies on, checked with the Float64
 * reference: dense perplexity ≈ 2.74 on a text of "a"s; layer 1 removed ≈ 1e47; layer 1
 * removed with the paper's fold of s = 0.5 ≈ 1e30 — and the engine agrees.
 */
import { describe, expect, test } from 'vitest';
import { foldScalePaper, removeLayers } from '../../src/engine/prune/surgery';
import { ReferenceModel, referencePerplexity } from '../../src/engine/reference/forward';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { brokenCheckpoint, TARGET } from '../helpers/broken-checkpoint';

const ids = [1, ...Array(300).fill(TARGET)];
const W = 64;

describe('the broken checkpoint', () => {
  test('dense ≈ 2.74, layer 1 removed ≈ 1e47, removed and compensated (s = 0.5) ≈ 1e30; the engine agrees', async () => {
    const ck = brokenCheckpoint();
    const V = ck.config.vocabSize;
    const dense = referencePerplexity(new ReferenceModel(ck), ids, W).ppl;
    const removed = referencePerplexity(new ReferenceModel(removeLayers(ck, [1])), ids, W).ppl;
    const compensated = referencePerplexity(new ReferenceModel(removeLayers(foldScalePaper(ck, 1, 0.5), [1])), ids, W).ppl;
    console.log(`[broken] dense ${dense}, layer 1 removed ${removed.toExponential(4)}, compensated ${compensated.toExponential(4)}`);
    expect(dense).toBeCloseTo(1 + (V - 1) * Math.exp(-5), 2);
    expect(removed).toBeGreaterThan(1e45);
    expect(removed).toBeLessThan(1e50);
    expect(compensated).toBeGreaterThan(1e25);
    expect(compensated).toBeLessThan(1e35);
    const e = new Engine(ck, nodeRuntime(1));
    try {
      const got = await e.perplexity(ids, W);
      expect(Math.abs(got.ppl / dense - 1)).toBeLessThan(1e-4);
    } finally {
      await e.dispose();
    }
  });
});
