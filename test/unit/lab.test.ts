/**
 * The compensation lab (src/app/lab.ts, `lopper lab`): every metric × compensation for
 * n = 1…N on one shared calibration of the dense model. On stories260K (5 layers):
 *  (a) every row is what a separate prune() with its options gives: the same removed layers,
 *      the same held-out and evaluation perplexities (1e-6 relative; the shared start must
 *      not change a number), and no combination skipped;
 *  (b) the best per n is the argmin of the held-out perplexity over that n's rows;
 *  (c) the pass counter: `run` equals a count derived from the plans and the reuse rules,
 *      `naive` equals the passes separate prune() calls with reuse off actually run, run < naive;
 *  (d) labSplit's edges and bad options give clear errors;
 *  (e) `lopper lab --json` equals `lopper prune --eval` on the fit windows; bad --metrics.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { labRun, labSplit, type LabRow } from '../../src/app/lab';
import { textWindows, tokenizeText } from '../../src/app/run';
import { loadModelPath } from '../../src/engine/formats/load-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { compWithMode, type CompChoice, type Metric } from '../../src/engine/prune/options';
import { prune, type Plan } from '../../src/engine/prune/plan';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { lopper } from '../helpers/cli';
import { DATA, MODELS } from '../helpers/paths';

const MODEL = join(MODELS, 'stories260K/stories260K.bin');
const CALIB = join(DATA, 'tinystories/calib.txt');
const EVAL = join(DATA, 'tinystories/eval.txt');
const W = 64;
const runtime = nodeRuntime();
const COMPS: CompChoice[] = ['none', 'scalar', 'linear', 'diag'];

async function setup(K = 6) {
  const ck = await loadModelPath(MODEL);
  const { fit, heldOut } = labSplit(textWindows(tokenizeText(ck, readFileSync(CALIB, 'utf8')), W, K, 'calibration', CALIB));
  const ids = tokenizeText(ck, readFileSync(EVAL, 'utf8').slice(0, 3000));
  return { ck, fit, heldOut, evaluation: { ids, window: W } };
}

/** Perplexity of `ids` cut into windows of W, as Engine.perplexity measures a text. */
async function ppl(ck: Checkpoint, ids: readonly number[]): Promise<number> {
  const e = new Engine(ck, runtime);
  try {
    return (await e.perplexity(ids, W)).ppl;
  } finally {
    await e.dispose();
  }
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('lab', () => {
  test('(a, b) every row equals a separate prune(); the best per n is the held-out argmin', async () => {
    const { ck, fit, heldOut, evaluation } = await setup();
    expect([fit.length, heldOut.length]).toEqual([4, 2]);
    const seen: LabRow[] = [];
    const N = 2;
    const metrics: Metric[] = ['bi', 'cl'];
    const r = await labRun(ck, runtime, fit, { metrics, comps: COMPS, layers: N, heldOut, evaluation, onRow: (row) => seen.push(row) });
    // the held-out windows are consecutive slices of the text: Engine.perplexity over their ids cuts them back
    const heldIds = heldOut.flat();
    expect(rel(r.dense.heldOut, await ppl(ck, heldIds))).toBeLessThan(1e-6);
    expect(r.dense.eval).toBe(await ppl(ck, evaluation.ids));
    expect(r.skipped).toEqual([]);
    expect(r.rows).toHaveLength(N * metrics.length * COMPS.length);
    expect(new Set(seen)).toEqual(new Set(r.rows));
    expect(r.rows.map((x) => [x.n, x.metric, x.comp])).toEqual(
      [1, 2].flatMap((n) => metrics.flatMap((metric) => COMPS.map((comp) => [n, metric, comp]))),
    );
    for (const row of r.rows) {
      const alone = await prune(ck, runtime, fit, { metric: row.metric, ...compWithMode('prunecomp', row.comp), layers: row.n });
      const what = `${row.metric} ${row.comp} n=${row.n}`;
      expect(row.removed, what).toEqual(alone.plan.removed);
      expect(rel(row.heldOut, await ppl(alone.checkpoint, heldIds)), what).toBeLessThan(1e-6);
      expect(rel(row.eval!, await ppl(alone.checkpoint, evaluation.ids)), what).toBeLessThan(1e-6);
    }
    // the compensations differ (otherwise choosing among them would be moot): at n = 2 on BI, four distinct perplexities
    expect(new Set(r.rows.filter((x) => x.n === 2 && x.metric === 'bi').map((x) => x.heldOut)).size).toBe(4);

    // (b) best per n: the argmin over that n's rows
    expect(r.best.map((b) => b.n)).toEqual([1, 2]);
    for (const b of r.best) {
      const rows = r.rows.filter((x) => x.n === b.n);
      const min = rows.reduce((m, x) => (x.heldOut < m.heldOut ? x : m));
      expect(b).toEqual({ n: b.n, metric: min.metric, comp: min.comp, heldOut: min.heldOut, eval: min.eval });
      expect(rows.every((x) => x.heldOut >= b.heldOut)).toBe(true);
    }
  }, 300_000);

  test('(c) passes: run derived from the plans, naive equal to separate runs with reuse off, run < naive', async () => {
    const { ck, fit, heldOut } = await setup(4);
    const L = ck.config.numLayers;
    const comps: CompChoice[] = ['none', 'scalar', 'linear'];
    const N = 2;
    // the tie-preserving fold: reuse is exact, so runs with reuse off make the same plans
    const r = await labRun(ck, runtime, fit, { metrics: ['bi'], comps, layers: N, heldOut, fold: 'tied' });
    expect(r.skipped).toEqual([]);

    // derived: one dense calibration (L layers); then, per step on a model of Lc layers cutting
    // current layer k, the next state runs from boundary c = k (c = k − 1 when a map was folded
    // into layer k − 1) over its Lc − 1 layers; a map's fit runs layer k − 1 alone, and reads
    // X_{k+1}, which is not kept when k + 1 = Lc (one layer recomputed from X_k).
    const plans: Plan[] = [];
    let derived = L;
    for (const comp of comps) {
      const { plan } = await prune(ck, runtime, fit, { metric: 'bi', ...compWithMode('prunecomp', comp), layers: N, fold: 'tied' });
      expect(r.rows.filter((x) => x.comp === comp && x.n === N)[0].removed).toEqual(plan.removed);
      plans.push(plan);
      plan.steps.forEach((st, i) => {
        const Lc = L - i;
        const c = st.map ? st.at - 1 : st.at;
        derived += Lc - 1 - c;
        if (st.map) derived += 1 + (st.at + 1 === Lc ? 1 : 0);
      });
    }
    expect(r.passes.run).toBe(derived);

    // naive: what the same runs cost as separate prune() calls with reuse off, counted
    let naive = 0;
    for (const comp of comps) {
      const { plan } = await prune(ck, runtime, fit, {
        metric: 'bi',
        ...compWithMode('prunecomp', comp),
        layers: N,
        fold: 'tied',
        reuse: false,
        calibration: { onLayers: (layers, w) => (naive += (layers * w) / fit.length) },
      });
      expect(plan.removed).toEqual(plans[comps.indexOf(comp)].removed);
    }
    expect(r.passes.naive).toBe(naive);
    expect(r.passes.run).toBeLessThan(r.passes.naive);
  }, 300_000);

  test('(d) labSplit edges and bad options', async () => {
    const w = (k: number) => Array.from({ length: k }, (_, i) => [i, i]);
    expect(labSplit(w(2))).toEqual({ fit: [[0, 0]], heldOut: [[1, 1]] });
    expect(labSplit(w(4))).toEqual({ fit: w(3), heldOut: [[3, 3]] });
    expect(labSplit(w(5)).heldOut).toEqual([[3, 3], [4, 4]]); // ceil(0.25 · 5) = 2
    expect(labSplit(w(10), 0.5).fit).toHaveLength(5);
    expect(() => labSplit(w(1))).toThrow(/holding out 0.25 of 1 calibration window leaves no room for both parts/);
    expect(() => labSplit(w(4), 0.9)).toThrow(/holding out 0.9 of 4 calibration windows leaves none to fit on/);
    for (const f of [0, 1, -0.5, NaN]) expect(() => labSplit(w(4), f)).toThrow(/held-out fraction must be a number between 0 and 1/);

    const { ck, fit, heldOut } = await setup(4);
    const run = (o: object) => labRun(ck, runtime, fit, { layers: 1, heldOut, ...o });
    await expect(run({ metrics: ['bi', 'best'] })).rejects.toThrow(/--metrics takes some of bi, angular, .* \(got "best"\)/);
    await expect(run({ metrics: [] })).rejects.toThrow(/--metrics takes some of .* \(got none\)/);
    await expect(run({ comps: ['scalar', 'scalar'] })).rejects.toThrow(/--comps names "scalar" twice/);
    await expect(run({ comps: ['linear', 'full'] })).rejects.toThrow(/--comps takes some of none, scalar, linear, diag \(got "full"\)/);
    await expect(run({ layers: 5 })).rejects.toThrow(/the lab removes 1 to 4 layers of 5 at most \(got 5\)/);
    await expect(run({ layers: 0 })).rejects.toThrow(/the lab removes 1 to 4 layers/);
    await expect(run({ heldOut: [] })).rejects.toThrow(/at least one held-out calibration window/);
    // a metric its barriers rule out is a skipped line with prune's reason, not an error; a larger n past its room too
    const r = await run({ metrics: ['mag', 'ppl'], comps: ['scalar'], layers: 4 });
    expect(r.skipped).toEqual([
      { metric: 'mag', comp: 'scalar', reason: expect.stringMatching(/metric mag cannot remove 1 of 5 layers: its barriers \(skip the first 4 and the last 2 layers\) leave 0 eligible/) },
      { metric: 'ppl', comp: 'scalar', reason: expect.stringMatching(/metric ppl cannot remove 4 of 5 layers: .* leave 3 eligible/) },
    ]);
    expect(r.rows.map((x) => [x.metric, x.n])).toEqual([['ppl', 1], ['ppl', 2], ['ppl', 3]]);
    expect(r.best.map((b) => b.n)).toEqual([1, 2, 3]);
  }, 300_000);

  test('(e) lopper lab --json equals lopper prune --eval on the fit windows; --csv; bad --metrics', async () => {
    const common = ['--model', MODEL, '--calib', CALIB, '--eval', EVAL, '--window', String(W), '--calib-windows', '4'];
    const res = await lopper('lab', ...common, '--layers', '2', '--metrics', 'bi,reverse', '--comps', 'none,scalar', '--json');
    expect(res.code, res.stderr).toBe(0);
    const j = JSON.parse(res.stdout);
    expect(j.calibration).toEqual({ fit: 3, heldOut: 1, window: W });
    expect(j.rows).toHaveLength(8);
    expect(j.best.map((b: { n: number }) => b.n)).toEqual([1, 2]);
    expect(j.passes.run).toBeLessThan(j.passes.naive);
    // the lab fits on the first 3 of 4 windows: prune with --calib-windows 3 sees the same windows
    for (const [metric, comp, mode] of [['bi', 'scalar', 'prunecomp'], ['reverse', 'none', 'iterative']]) {
      const p = JSON.parse((await lopper('prune', ...common, '--calib-windows', '3', '--metric', metric, '--mode', mode, '--layers', '2', '--json')).stdout);
      const row = j.rows.find((x: LabRow) => x.metric === metric && x.comp === comp && x.n === 2);
      expect(row.removed).toEqual(p.removed);
      expect(row.eval).toBe(p.pruned.ppl);
      expect(j.dense.eval).toBe(p.dense.ppl);
    }
    const csv = await lopper('lab', ...common, '--layers', '1', '--metrics', 'reverse', '--comps', 'none', '--csv');
    expect(csv.code, csv.stderr).toBe(0);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('n,metric,comp,heldout_ppl,eval_ppl,removed,best');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/^1,reverse,none,[\d.]+,[\d.]+,4,1$/);
    const bad = await lopper('lab', ...common, '--metrics', 'bi,nope');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/lopper lab: --metrics takes some of .* \(got "nope"\)/);
    const many = await lopper('lab', ...common, '--layers', '5');
    expect(many.code).toBe(1);
    expect(many.stderr).toMatch(/lopper lab: cannot remove 5 of 5 layers: at least one must remain/); // the check prune and compare make
  }, 300_000);
});
