/**
 * The layer playground (src/app/playground.ts) on stories260K: a state's model is explicit
 * surgery with the scales it reports (weights bit for bit, perplexity and continuation exactly),
 * each reported scale is compensationScale on statistics measured independently of it, the
 * uncompensated model is plain removeLayers, restoring every layer gives the dense numbers,
 * adding a layer to the end of the order measures one new model, a cancelled request keeps what
 * it measured, bad orders and options are refused with a message naming the problem, and
 * one compensated removal agrees with the Float64 reference (scale and perplexity within 1e-4
 * relative: float32 against float64 over 4 windows of 128 tokens).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { Playground, PLAYGROUND, type PlaygroundResult } from '../../src/app/playground';
import { LopperError } from '../../src/engine/errors';
import { loadModelPath } from '../../src/engine/formats/load-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { toFloat32 } from '../../src/engine/model/tensor';
import { compensationScale } from '../../src/engine/prune/scale';
import { applyCut, removeLayers } from '../../src/engine/prune/surgery';
import { ReferenceModel, referencePerplexity } from '../../src/engine/reference/forward';
import { Engine, type WindowStats } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { DATA, MODELS } from '../helpers/paths';

const runtime = nodeRuntime();
/** Float32 engine against the Float64 reference. */
const REFERENCE_TOLERANCE = 1e-4;

let dense: Checkpoint;
let pg: Playground;

beforeAll(async () => {
  dense = await loadModelPath(join(MODELS, 'stories260K/stories260K.bin'));
  pg = Playground.fromTexts(dense, runtime, readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8'), readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8'));
});

async function withEngine<T>(ck: Checkpoint, f: (e: Engine) => Promise<T>): Promise<T> {
  const e = new Engine(ck, runtime);
  try {
    return await f(e);
  } finally {
    await e.dispose();
  }
}

const stats = (ck: Checkpoint) => withEngine(ck, (e) => e.stats(pg.calibration));
const perplexity = (ck: Checkpoint) => withEngine(ck, (e) => e.perplexity(pg.evalIds, pg.evalWindow, { batch: pg.evalWindows }));
async function continuation(ck: Checkpoint): Promise<number[]> {
  return withEngine(ck, async (e) => {
    const ids: number[] = [];
    for await (const id of e.generate(pg.promptIds, { maxTokens: PLAYGROUND.maxTokens, temperature: 0 })) ids.push(id);
    return ids;
  });
}
/** s for removing layer k of the model the stats are of, straight from compensationScale. */
const scaleAt = (st: WindowStats[], k: number) => compensationScale(st.map((w) => w.absMean[k]), st.map((w) => w.absMean[k + 1])).s;
const meanAbs = (st: WindowStats[], k: number) => st.reduce((a, w) => a + w.absMean[k].reduce((b, v) => b + v, 0) / w.absMean[k].length, 0) / st.length;

function expectSameWeights(a: Checkpoint, b: Checkpoint): void {
  expect(a.config).toEqual(b.config);
  expect([...a.tensors.keys()].sort()).toEqual([...b.tensors.keys()].sort());
  for (const [name, t] of a.tensors) expect(toFloat32(t), name).toEqual(toFloat32(b.tensors.get(name)!));
}

describe('the layer playground', () => {
  test('with compensation, a state is explicit surgery with the scales it reports, one removal at a time in click order', async () => {
    const r = await pg.compute({ removed: [3, 1], compensate: true });
    expect(r.removed).toEqual([3, 1]);
    expect(r.fold).toBe('paper');
    expect(r.calibration).toEqual({ windows: PLAYGROUND.calibWindows, window: PLAYGROUND.window });
    expect(r.evaluation).toEqual({ windows: PLAYGROUND.evalWindows, window: PLAYGROUND.window });

    // the first removal: s on the dense model, layer 3
    const st0 = await stats(dense);
    const [first, second] = r.removals;
    expect(first).toMatchObject({ layer: 3, at: 3, folded: true, skippedChannels: 0 });
    expect(first.s).toBe(scaleAt(st0, 3));
    expect(first.meanBefore).toBeCloseTo(meanAbs(st0, 3), 12);
    expect(first.meanAfter).toBeCloseTo(meanAbs(st0, 4), 12);
    expect(first.s).toBeGreaterThan(1); // stories260K's layers amplify the stream
    const m1 = applyCut(dense, { layers: [3], fold: 'paper', scale: first.s! });

    // the second: s on that model, original layer 1 (still index 1)
    const st1 = await stats(m1);
    expect(second).toMatchObject({ layer: 1, at: 1, folded: true });
    expect(second.s).toBe(scaleAt(st1, 1));
    const m2 = applyCut(m1, { layers: [1], fold: 'paper', scale: second.s! });

    expectSameWeights(await pg.model({ removed: [3, 1], compensate: true }), m2);
    const p = await perplexity(m2);
    expect(r.current.ppl).toEqual({ ppl: p.ppl, tokens: p.tokens, windows: p.windows });
    expect(r.current.continuationIds).toEqual(await continuation(m2));
    // the curve in original numbering: boundaries entering layers 0, 2, 4 and the final stream
    const st2 = await stats(m2);
    expect(r.current.curve.map((c) => c.layer)).toEqual([0, 2, 4, 5]);
    r.current.curve.forEach((c, k) => expect(c.value).toBeCloseTo(meanAbs(st2, k), 12));
    expect(r.dense.curve.map((c) => c.layer)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.dense.ppl.ppl).toBe((await perplexity(dense)).ppl);
    expect(r.current.ppl.ppl).toBeGreaterThan(r.dense.ppl.ppl);
  });

  test('the order matters with compensation: [1, 3] folds s on a different model than [3, 1]', async () => {
    const a = await pg.compute({ removed: [1, 3], compensate: true });
    expect(a.removals.map((x) => [x.layer, x.at])).toEqual([
      [1, 1],
      [3, 2],
    ]);
    const st0 = await stats(dense);
    const m1 = applyCut(dense, { layers: [1], fold: 'paper', scale: scaleAt(st0, 1) });
    const s2 = scaleAt(await stats(m1), 2);
    expect(a.removals[1].s).toBe(s2);
    expectSameWeights(await pg.model({ removed: [1, 3], compensate: true }), applyCut(m1, { layers: [2], fold: 'paper', scale: s2 }));
  });

  test('removing the last layer folds nothing (the final norm cancels s), the tied fold keeps the embedding', async () => {
    const last = await pg.compute({ removed: [4], compensate: true });
    expect(last.removals[0]).toMatchObject({ layer: 4, at: 4, folded: false });
    expectSameWeights(await pg.model({ removed: [4], compensate: true }), removeLayers(dense, [4]));
    const tied = await pg.compute({ removed: [2], compensate: true, fold: 'tied' });
    const s = scaleAt(await stats(dense), 2);
    expect(tied.removals[0].s).toBe(s);
    expectSameWeights(await pg.model({ removed: [2], compensate: true, fold: 'tied' }), applyCut(dense, { layers: [2], fold: 'tied', scale: s }));
  });

  test('without compensation, a state is plain removeLayers (in any order)', async () => {
    const r = await pg.compute({ removed: [3, 1], compensate: false });
    const m = removeLayers(dense, [1, 3]);
    expectSameWeights(await pg.model({ removed: [3, 1], compensate: false }), m);
    expect(r.removals.map((x) => [x.layer, x.s, x.folded])).toEqual([
      [3, null, false],
      [1, null, false],
    ]);
    expect(r.current.ppl.ppl).toBe((await perplexity(m)).ppl);
    expect(r.current.continuationIds).toEqual(await continuation(m));
    const swapped = await pg.compute({ removed: [1, 3], compensate: false });
    expect(swapped.current).toEqual(r.current);
    expect(swapped.measured).toBe(0);
    // compensation changes the numbers
    const comp = await pg.compute({ removed: [3, 1], compensate: true });
    expect(comp.current.ppl.ppl).not.toBe(r.current.ppl.ppl);
  });

  test('restoring every layer gives the dense numbers; adding a layer to the end of the order measures one new model', async () => {
    const fresh = Playground.fromTexts(dense, runtime, readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8'), readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8'));
    const d = await fresh.compute({ removed: [], compensate: true });
    expect(d.measured).toBe(1);
    expect(d.current).toEqual(d.dense);
    expect(d.removals).toEqual([]);
    const one = await fresh.compute({ removed: [2], compensate: true });
    expect(one.measured).toBe(1); // the dense model's statistics are kept: only the new model is measured
    const two = await fresh.compute({ removed: [2, 0], compensate: true });
    expect(two.measured).toBe(1);
    const back: PlaygroundResult = await fresh.compute({ removed: [2], compensate: true });
    expect(back.measured).toBe(0);
    expect(back.current).toEqual(one.current);
    const restored = await fresh.compute({ removed: [], compensate: false });
    expect(restored.measured).toBe(0);
    expect(restored.current).toEqual(d.dense);
    expect(restored.dense).toEqual(d.dense);
  });

  test.each<[string, unknown[], RegExp]>([
    ['a layer out of range', [5], /layer 5 does not exist: this model has layers 0 to 4/],
    ['a negative layer', [-1], /layer -1 does not exist/],
    ['a fractional layer', [1.5], /layer 1.5 does not exist/],
    ['a duplicate', [2, 2], /layer 2 is removed twice/],
    ['every layer', [0, 1, 2, 3, 4], /cannot remove all 5 layers: at least one must remain/],
  ])('refuses %s with a clear error', async (_, removed, message) => {
    for (const compensate of [true, false]) {
      const e = await pg.compute({ removed: removed as number[], compensate }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LopperError);
      expect((e as LopperError).code).toBe('bad-option');
      expect((e as LopperError).message).toMatch(message);
    }
  });

  test('a cancelled request stops with a cancelled error; what it measured before stays for the next one', async () => {
    const fresh = Playground.fromTexts(dense, runtime, readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8'), readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8'));
    const controller = new AbortController();
    let polls = 0;
    // cancelled at the third poll: after the dense model’s numbers (two polls), before the first removal
    const e = await fresh.compute({ removed: [1, 2], compensate: true }, { signal: controller.signal, poll: () => void (++polls === 3 && controller.abort()) }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(LopperError);
    expect((e as LopperError).code).toBe('cancelled');
    const r = await fresh.compute({ removed: [], compensate: true });
    expect(r.measured).toBe(0);
  });

  test('refuses an unknown fold or a compensate that is not a boolean', async () => {
    await expect(pg.compute({ removed: [1], compensate: true, fold: 'sideways' as never })).rejects.toThrow(/fold must be paper or tied \(got "sideways"\)/);
    await expect(pg.compute({ removed: [1], compensate: 'yes' as never })).rejects.toThrow(/compensate must be true or false/);
  });

  test('one compensated removal against the Float64 reference: the scale and the perplexity within 1e-4 relative', async () => {
    const r = await pg.compute({ removed: [2], compensate: true });
    const ref = new ReferenceModel(dense);
    // per window, per channel mean_t |X_k| of the reference's streams
    const D = dense.config.hiddenSize;
    const absMean = (x: Float64Array, T: number) => {
      const out = new Float64Array(D);
      for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) out[c] += Math.abs(x[t * D + c]) / T;
      return out;
    };
    const streams = pg.calibration.map((w) => ref.forward(w).streams);
    const sRef = compensationScale(streams.map((s) => absMean(s[2], PLAYGROUND.window)), streams.map((s) => absMean(s[3], PLAYGROUND.window))).s;
    expect(Math.abs(r.removals[0].s! - sRef) / sRef).toBeLessThan(REFERENCE_TOLERANCE);
    const pplRef = referencePerplexity(new ReferenceModel(applyCut(dense, { layers: [2], fold: 'paper', scale: sRef })), pg.evalIds, pg.evalWindow, pg.evalWindows);
    expect(pplRef.windows).toBe(r.current.ppl.windows);
    console.log(`playground vs Float64 reference, layer 2 removed: s ${r.removals[0].s} vs ${sRef}, ppl ${r.current.ppl.ppl} vs ${pplRef.ppl}`);
    expect(Math.abs(r.current.ppl.ppl - pplRef.ppl) / pplRef.ppl).toBeLessThan(REFERENCE_TOLERANCE);
  });
});
