/**
 * Layer metrics (src/engine/prune/metrics.ts) against a direct Float64 computation on the
 * reference forward (src/engine/reference/forward.ts), on stories260K (L = 5) with two
 * calibration windows of 64 tokens of calib.txt (BOS first).
 *
 * Tolerances: the engine runs in float32, the oracle in float64.
 *   bi, cl      1 − mean cosine: |Δ| ≤ 1e-5 absolute (measured 1.7e-8 and 1.8e-8)
 *   angular     arccos is steep near cos = 1 (d/dc arccos = −1/√(1−c²)), so float32 cosines
 *               move it more: |Δ| ≤ 1e-4 absolute (measured 6.6e-8)
 *   mag         both are float64 sums of the same float32 weights: ≤ 1e-12 relative
 *   ppl         mean NLL: ≤ 1e-4 relative (measured 2.6e-7)
 * and in every case the same eligible set and the same argmin.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { layerWeightShapes } from '../../src/engine/graph/backward';
import { tensor, type Checkpoint } from '../../src/engine/model/checkpoint';
import { toFloat32 } from '../../src/engine/model/tensor';
import { Calibrated } from '../../src/engine/prune/calibration';
import { argminEligible, rankEligible, scoreLayers, seededUniform, type LayerScores } from '../../src/engine/prune/metrics';
import { taylorScores } from '../../src/engine/prune/taylor';
import { ReferenceModel } from '../../src/engine/reference/forward';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { cutWindows } from '../../src/engine/text/windows';
import { DATA, MODELS } from '../helpers/paths';

const runtime = nodeRuntime(1);
let ck: Checkpoint;
let windows: number[][];
let cal: Calibrated;
/** per window, reference streams X_0..X_L [T·D] */
let streams: Float64Array[][];
const L = 5;
let D: number;

beforeAll(async () => {
  ck = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
  D = ck.config.hiddenSize;
  const ids = [1, ...ck.tokenizer.encode(readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8'))];
  windows = cutWindows(ids, 64, 2);
  cal = await Calibrated.create(ck, runtime, windows);
  const ref = new ReferenceModel(ck);
  streams = windows.map((w) => ref.forward(w).streams);
});
afterAll(async () => {
  await cal?.dispose();
});

/** cosine between rows t of a and b ([T·D]), float64 */
function cos(a: Float64Array, b: Float64Array, t: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let j = t * D; j < (t + 1) * D; j++) {
    ab += a[j] * b[j];
    aa += a[j] * a[j];
    bb += b[j] * b[j];
  }
  return ab / Math.sqrt(aa * bb);
}

/** mean over windows and tokens of cos(X_i[t], X_j[t]) */
function meanCos(i: number, j: number): number {
  let sum = 0;
  let n = 0;
  for (const s of streams) {
    const T = s[i].length / D;
    for (let t = 0; t < T; t++) sum += cos(s[i], s[j], t);
    n += T;
  }
  return sum / n;
}

function expectClose(r: LayerScores, want: (number | null)[], tol: number, relative = false) {
  expect(r.scores.map((v) => v === null)).toEqual(want.map((v) => v === null));
  for (let k = 0; k < want.length; k++) {
    if (want[k] === null) continue;
    const d = Math.abs((r.scores[k] as number) - (want[k] as number));
    expect(relative ? d / Math.abs(want[k] as number) : d).toBeLessThan(tol);
  }
  const wantRank = want.map((v, k) => [v, k] as const).filter(([v]) => v !== null).sort((a, b) => (a[0] as number) - (b[0] as number) || a[1] - b[1]).map(([, k]) => k);
  expect(rankEligible(r)).toEqual(wantRank);
  expect(argminEligible(r)).toBe(wantRank[0]);
}

const lopperError = (code: string, message: RegExp) => expect.objectContaining({ name: 'LopperError', code, message: expect.stringMatching(message) });

describe('layer metrics on stories260K vs the Float64 reference', () => {
  test('bi: mean over windows and tokens of 1 − cos(X_k, X_{k+1}); all layers eligible', async () => {
    const r = await scoreLayers('bi', cal);
    expect(r.eligible).toEqual([0, 1, 2, 3, 4]);
    expectClose(r, [0, 1, 2, 3, 4].map((k) => 1 - meanCos(k, k + 1)), 1e-5);
  });

  test('angular: arccos(cos of the last token)/π averaged over windows', async () => {
    const r = await scoreLayers('angular', cal);
    const want = [0, 1, 2, 3, 4].map((k) => {
      let sum = 0;
      for (const s of streams) sum += Math.acos(Math.min(1, cos(s[k], s[k + 1], s[k].length / D - 1))) / Math.PI;
      return sum / streams.length;
    });
    expectClose(r, want, 1e-4);
  });

  test('cl: 1 − hidden-axis cosine between X_i and X_{i+n}, starts in [1, L−n−1] by default', async () => {
    for (const n of [1, 2, 3]) {
      const r = await scoreLayers('cl', cal, { block: n });
      const want = [0, 1, 2, 3, 4].map((i) => (i >= 1 && i <= L - n - 1 ? 1 - meanCos(i, i + n) : null));
      expectClose(r, want, 1e-5);
    }
    const open = await scoreLayers('cl', cal, { block: 2, barriers: { skipFirst: 0, skipLast: 0 } });
    expectClose(open, [0, 1, 2, 3, 4].map((i) => (i <= L - 2 ? 1 - meanCos(i, i + 2) : null)), 1e-5);
    await expect(scoreLayers('cl', cal, { block: 4 })).rejects.toEqual(lopperError('bad-option', /block of 4.*barriers/));
  });

  test('mag: Σ|W| of the layer (projections and both norm gains); default 4 ≤ k < L−2 leaves nothing on 5 layers', async () => {
    await expect(scoreLayers('mag', cal)).rejects.toEqual(lopperError('bad-option', /mag.*skip the first 4 and the last 2.*--skip-first/));
    const r = await scoreLayers('mag', cal, { barriers: { skipFirst: 1, skipLast: 0 } });
    const want = [0, 1, 2, 3, 4].map((k) => {
      if (k < 1) return null;
      let s = 0;
      const names = [...layerWeightShapes(ck.config, k).keys()];
      expect(names.filter((n) => n.endsWith('norm.weight'))).toHaveLength(2);
      for (const name of names) for (const v of toFloat32(tensor(ck, name))) s += Math.abs(v);
      return s;
    });
    expectClose(r, want, 1e-12, true);
    // a weight-only metric needs no calibration state
    expect((await scoreLayers('mag', { checkpoint: ck, windows }, { barriers: { skipFirst: 1, skipLast: 0 } })).scores).toEqual(r.scores);
  });

  test('ppl: calibration loss with layer j bypassed, j ∈ [1, L−2]', async () => {
    const r = await scoreLayers('ppl', cal);
    const ref = new ReferenceModel(ck);
    const want = [0, 1, 2, 3, 4].map((j) => {
      if (j < 1 || j > L - 2) return null;
      let sum = 0;
      let n = 0;
      for (const w of windows) {
        for (const v of ref.nll(w, { skipLayers: [j] })) sum += v;
        n += w.length - 1;
      }
      return sum / n;
    });
    expectClose(r, want, 1e-4, true);
  });

  test('taylor: eligibility and argmin (the scores themselves are checked in taylor.test.ts)', async () => {
    await expect(scoreLayers('taylor', cal, { runtime })).rejects.toEqual(lopperError('bad-option', /taylor/));
    const r = await scoreLayers('taylor', cal, { runtime, barriers: { skipFirst: 1, skipLast: 1 } });
    expect(r.eligible).toEqual([1, 2, 3]);
    expect(r.scores[0]).toBeNull();
    expect(r.scores[4]).toBeNull();
    const all = await taylorScores(ck, runtime, windows);
    const want = [0, 1, 2, 3, 4].map((k) => (k >= 1 && k <= 3 ? all[k] : null));
    expectClose(r, want, 1e-9, true);
  });

  test('reverse: the last layer first', async () => {
    const r = await scoreLayers('reverse', cal);
    expect(r.scores).toEqual([4, 3, 2, 1, 0]);
    expect(rankEligible(r)).toEqual([4, 3, 2, 1, 0]);
  });

  test('random: seeded, drawn per ORIGINAL layer index', async () => {
    const a = await scoreLayers('random', cal, { seed: 7 });
    const b = await scoreLayers('random', cal, { seed: 7 });
    const c = await scoreLayers('random', cal, { seed: 8 });
    expect(a.scores).toEqual(b.scores);
    expect(a.scores).not.toEqual(c.scores);
    expect(a.scores).toEqual([0, 1, 2, 3, 4].map((k) => seededUniform(7, k)));
    // after removals, layer k scores as its original index does
    const d = await scoreLayers('random', cal, { seed: 7, original: [0, 2, 3, 5, 6] });
    expect(d.scores).toEqual([0, 2, 3, 5, 6].map((k) => seededUniform(7, k)));
    // roughly uniform
    const u = Array.from({ length: 2000 }, (_, i) => seededUniform(1, i));
    expect(Math.abs(u.reduce((x, y) => x + y, 0) / u.length - 0.5)).toBeLessThan(0.03);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
  });

  test('bad options: unknown metric, negative barrier, statistics metric without calibration', async () => {
    // @ts-expect-error not a metric
    await expect(scoreLayers('nope', cal)).rejects.toBeInstanceOf(LopperError);
    await expect(scoreLayers('bi', cal, { barriers: { skipFirst: -1 } })).rejects.toEqual(lopperError('bad-option', /skipFirst/));
    await expect(scoreLayers('bi', { checkpoint: ck, windows })).rejects.toEqual(lopperError('bad-option', /calibration/));
  });
});
