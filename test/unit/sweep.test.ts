/**
 * The sweep (src/app/sweep.ts, `lopper sweep`): perplexity against layers removed, n = 0…N,
 * per mode, from one pruning run per mode. Every point must be what a separate run at that
 * n gives — the same plan (removed layers, in order) and the same perplexity — for every mode
 * on stories260K, for the cl metric (one run per n), and through the CLI against
 * `lopper prune --eval` at each n.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { textWindows, tokenizeText } from '../../src/app/run';
import { SWEEP_MODES, sweepCsv, sweepRun } from '../../src/app/sweep';
import { loadModelPath } from '../../src/engine/formats/load-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import type { Metric } from '../../src/engine/prune/options';
import { prune } from '../../src/engine/prune/plan';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { lopper } from '../helpers/cli';
import { DATA, MODELS } from '../helpers/paths';

const MODEL = join(MODELS, 'stories260K/stories260K.bin');
const CALIB = join(DATA, 'tinystories/calib.txt');
const EVAL = join(DATA, 'tinystories/eval.txt');
const WINDOW = 64;
const runtime = nodeRuntime();

async function setup() {
  const ck = await loadModelPath(MODEL);
  const windows = textWindows(tokenizeText(ck, readFileSync(CALIB, 'utf8')), WINDOW, 4, 'calibration', CALIB);
  const ids = tokenizeText(ck, readFileSync(EVAL, 'utf8').slice(0, 6000));
  return { ck, windows, evaluation: { ids, window: WINDOW } };
}

async function ppl(ck: Checkpoint, ids: readonly number[]): Promise<number> {
  const e = new Engine(ck, runtime);
  try {
    return (await e.perplexity(ids, WINDOW)).ppl;
  } finally {
    await e.dispose();
  }
}

describe('sweep: every point is a separate run at that n', () => {
  test.each<[Metric, number]>([
    ['bi', 4],
    ['cl', 2],
  ])('%s, n = 0…%i, every mode: plans and perplexities equal prune() at each n', async (metric, N) => {
    const { ck, windows, evaluation } = await setup();
    const seen: { mode: string; n: number; removed: number[]; ppl: number }[] = [];
    const r = await sweepRun(ck, runtime, windows, { metric, layers: N, evaluation, onPoint: (mode, p) => seen.push({ mode, ...p }) });
    expect(r.dense).toBe(await ppl(ck, evaluation.ids));
    expect(Object.keys(r.curves)).toEqual([...SWEEP_MODES]);
    // onPoint: every point as it is measured, with the layers removed so far (the result's point)
    expect(seen).toEqual(SWEEP_MODES.flatMap((mode) => r.curves[mode]!.map((p) => ({ mode, ...p }))));
    for (const mode of SWEEP_MODES) {
      const curve = r.curves[mode]!;
      expect(curve.map((p) => p.n)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      for (const p of curve) {
        const alone = await prune(ck, runtime, windows, { metric, mode, layers: p.n });
        expect(p.removed, `${mode} n=${p.n}`).toEqual(alone.plan.removed);
        expect(p.ppl, `${mode} n=${p.n}`).toBe(await ppl(alone.checkpoint, evaluation.ids));
      }
    }
    // the curves differ where the modes do (stories260K, BI: compensation lowers perplexity at n = 2)
    if (metric === 'bi') expect(r.curves.prunecomp![1].ppl).toBeLessThan(r.curves.baseline![1].ppl);
    const csv = sweepCsv(r).trim().split('\n');
    expect(csv[0]).toBe(['n', ...SWEEP_MODES.flatMap((m) => [m, `${m} removed`])].join(','));
    expect(csv).toHaveLength(N + 2);
    expect(csv[1].split(',').slice(1)).toEqual(SWEEP_MODES.flatMap(() => [String(r.dense), '']));
    expect(csv[N + 1].split(',').slice(1)).toEqual(SWEEP_MODES.flatMap((m) => [String(r.curves[m]![N - 1].ppl), r.curves[m]![N - 1].removed.join(' ')]));
  }, 300_000);

  test('lopper sweep --json equals lopper prune --eval at each n (Prune&Comp); --csv; bad --modes', async () => {
    const common = ['--model', MODEL, '--metric', 'bi', '--calib', CALIB, '--eval', EVAL, '--window', String(WINDOW), '--calib-windows', '4'];
    const s = await lopper('sweep', ...common, '--layers', '3', '--modes', 'baseline,prunecomp', '--json');
    expect(s.code, s.stderr).toBe(0);
    const r = JSON.parse(s.stdout);
    expect(Object.keys(r.curves)).toEqual(['baseline', 'prunecomp']);
    for (let n = 1; n <= 3; n++) {
      const p = JSON.parse((await lopper('prune', ...common, '--layers', String(n), '--mode', 'prunecomp', '--json')).stdout);
      expect(r.curves.prunecomp[n - 1].removed).toEqual(p.removed);
      expect(r.curves.prunecomp[n - 1].ppl).toBe(p.pruned.ppl);
      if (n === 1) expect(r.dense).toBe(p.dense.ppl);
    }
    const csv = await lopper('sweep', ...common, '--layers', '2', '--modes', 'prunecomp', '--csv');
    const rm = (n: number) => r.curves.prunecomp[n - 1].removed.join(' ');
    expect(csv.stdout.trim().split('\n')).toEqual(['n,prunecomp,prunecomp removed', `0,${r.dense},`, `1,${r.curves.prunecomp[0].ppl},${rm(1)}`, `2,${r.curves.prunecomp[1].ppl},${rm(2)}`]);
    // --modes is checked once (sweepModes), naming the bad mode: one line on stderr, exit 1
    const bad = await lopper('sweep', ...common, '--layers', '2', '--modes', 'prunecomp,best');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/--modes takes some of prunecomp, baseline, iterative, oneshot-comp \(got "best"\)/);
    const twice = await lopper('sweep', ...common, '--layers', '2', '--modes', 'prunecomp,prunecomp');
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/--modes names "prunecomp" twice/);
  }, 300_000);
});
