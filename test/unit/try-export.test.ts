/**
 * "Try it in transformers.js"'s parts outside the browser: where two greedy runs part
 * (src/app/try-export.ts), the EOS transformers.js keeps and lopper does not, which bundle the
 * tab tries, and the worker's Blobs (workers/lib/bundle.ts) holding exactly the export's files.
 * The in-page run itself: test/e2e/try-export.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { compareGreedy, tryDtype, withoutEos } from '../../src/app/try-export';
import { exportOnnxBundle } from '../../src/engine/export/onnx';
import { loadModelPath } from '../../src/engine/formats/load-node';
import { removeLayers } from '../../src/engine/prune/surgery';
import { bundleBlobs } from '../../workers/lib/bundle';
import { MODELS } from '../helpers/paths';

describe('compareGreedy', () => {
  test('the same ids agree, in full', () => {
    expect(compareGreedy([5, 6, 7], [5, 6, 7])).toEqual({ same: true, common: 3, first: null });
    expect(compareGreedy([], [])).toEqual({ same: true, common: 0, first: null });
  });
  test('the first differing position, with each side’s id', () => {
    expect(compareGreedy([5, 6, 7, 8], [5, 6, 9, 8])).toEqual({ same: false, common: 2, first: { index: 2, lopper: 7, tjs: 9 } });
    expect(compareGreedy([1], [2])).toEqual({ same: false, common: 0, first: { index: 0, lopper: 1, tjs: 2 } });
  });
  test('one run stopping earlier is a difference: the other side’s id, null for the one that stopped', () => {
    expect(compareGreedy([5, 6], [5, 6, 7])).toEqual({ same: false, common: 2, first: { index: 2, lopper: null, tjs: 7 } });
    expect(compareGreedy([5, 6, 7], [5, 6])).toEqual({ same: false, common: 2, first: { index: 2, lopper: 7, tjs: null } });
  });
});

describe('withoutEos', () => {
  test('drops one trailing EOS (one id or a list), nothing else', () => {
    expect(withoutEos([4, 5, 2], 2)).toEqual([4, 5]);
    expect(withoutEos([4, 2, 5], 2)).toEqual([4, 2, 5]);
    expect(withoutEos([4, 5, 7], [2, 7])).toEqual([4, 5]);
    expect(withoutEos([4, 5], null)).toEqual([4, 5]);
    expect(withoutEos([], 2)).toEqual([]);
  });
});

describe('tryDtype', () => {
  const GiB = 2 ** 30;
  test('fp32 while it fits; fp16 when asked', () => {
    expect(tryDtype({ fp32: GiB, fp16: GiB / 2 }, GiB)).toEqual({ dtype: 'fp32', note: null });
    expect(tryDtype({ fp32: 100, fp16: 50 }, GiB, 'fp16')).toEqual({ dtype: 'fp16', note: null });
  });
  test('fp32 over the limit falls back to fp16 and says why', () => {
    const c = tryDtype({ fp32: GiB + 1, fp16: GiB / 2 + 1 }, GiB);
    expect(c.dtype).toBe('fp16');
    expect(c.note).toMatch(/fp32 bundle \(1\.00 GiB\) is over the 1\.00 GiB/);
  });
  test('both over the limit: refused with the sizes', () => {
    const c = tryDtype({ fp32: 4.94e9, fp16: 2.47e9 }, GiB);
    expect(c.dtype).toBeNull();
    expect(c.note).toMatch(/too large to try in the tab: 2\.30 GiB with fp16 weights \(4\.60 GiB fp32\), over the 1\.00 GiB/);
    expect(tryDtype({ fp32: 100, fp16: GiB + 1 }, GiB, 'fp16').dtype).toBeNull();
  });
});

describe('bundleBlobs (the worker’s bundle for the tab)', () => {
  test.each([
    ['fp32', [] as number[]],
    ['fp16', [2, 3]],
  ] as const)('stories260K %s (layers %j removed): the export’s files byte for byte, progress to the total', async (dtype, removed) => {
    const ck = removeLayers(await loadModelPath(join(MODELS, 'stories260K/stories260K.bin')), [...removed]);
    const seen: number[] = [];
    const totals = new Set<number>();
    const b = await bundleBlobs(ck, dtype, new AbortController().signal, (done, total) => {
      totals.add(total);
      seen.push(done);
    });
    const want = exportOnnxBundle(ck, { dtypes: [dtype] });
    expect(b.dtype).toBe(dtype);
    expect(b.note).toBeNull();
    expect(b.files.map((f) => f.path)).toEqual([...want.keys()]);
    for (const f of b.files) expect(new Uint8Array(await f.blob.arrayBuffer()), f.path).toEqual(want.get(f.path));
    expect(b.bytes).toBe([...want.values()].reduce((a, x) => a + x.length, 0));
    // the total the progress reports is the bundle's bytes, known before any weight is made
    expect([...totals]).toEqual([b.bytes]);
    expect(seen.at(-1)).toBe(b.bytes);
  });

  test('a cancelled request stops with cancelled', async () => {
    const ck = await loadModelPath(join(MODELS, 'stories260K/stories260K.bin'));
    const c = new AbortController();
    c.abort();
    await expect(bundleBlobs(ck, 'fp32', c.signal, () => undefined)).rejects.toMatchObject({ code: 'cancelled' });
  });
});
