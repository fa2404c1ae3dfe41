/**
 * The app's side of issue 14: the perplexity budget read off one run (budgetLayers of the
 * 'budget' op's curve) is exactly where `prune` with that budget stops — on stories260K, for
 * budgets on, just below and just above each cut's ratio — and the keys that store a run, a
 * budget curve and a lab tell the compensations apart while results stored before the choice
 * existed stay the scalar run's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { budgetKeyParts, budgetLayers, maxCuts } from '../../src/app/budget-data';
import { labKeyParts } from '../../src/app/lab-key';
import type { RunSettings } from '../../src/app/protocol';
import { textWindows, tokenizeText } from '../../src/app/run';
import { runIdentity, runKeyParts, sameRun, type RunIdentity } from '../../src/app/run-identity';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { compWithMode, type CompChoice } from '../../src/engine/prune/options';
import { prune } from '../../src/engine/prune/plan';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { resultKey } from '../../src/engine/store/cache';
import { DATA, MODELS } from '../helpers/paths';

const runtime = nodeRuntime(1);
let ck: Checkpoint;
let windows: number[][];

beforeAll(async () => {
  ck = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
  windows = textWindows(tokenizeText(ck, readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8')), 64, 3, 'calibration text', 'calib.txt');
});

describe('budgetLayers: one unbounded run gives every budget’s n', () => {
  for (const choice of ['scalar', 'linear', 'none'] as CompChoice[]) {
    test(`bi, ${choice}: n(B) is where prune --budget B stops, on and around every cut's ratio`, async () => {
      const L = ck.config.numLayers;
      const layers = maxCuts(L, { metric: 'bi' });
      expect(layers).toBe(L - 1);
      const opts = { metric: 'bi' as const, layers, fold: 'paper' as const, ...compWithMode('prunecomp', choice) };
      const all = (await prune(ck, runtime, windows, { ...opts, budget: Number.MAX_VALUE })).plan;
      const curve = { densePpl: all.budget!.densePpl, ppls: all.budget!.ppls };
      expect(curve.ppls).toHaveLength(layers);
      const ratios = curve.ppls.map((p) => p / curve.densePpl);
      const budgets = [1, ...ratios.flatMap((r) => [r * (1 - 1e-9), r, r * (1 + 1e-9)]).filter((b) => b >= 1)];
      for (const b of budgets) {
        const plan = (await prune(ck, runtime, windows, { ...opts, budget: b })).plan;
        expect(budgetLayers(curve, b), `B = ${b}`).toBe(plan.removed.length);
        // the budgeted run is the unbounded one stopped: the same cuts, the same perplexities
        expect(plan.removed).toEqual(all.removed.slice(0, plan.removed.length));
        expect(plan.budget!.ppls).toEqual(curve.ppls.slice(0, plan.removed.length));
      }
    }, 120_000);
  }

  test('a budget below every cut allows none; the barriers bound the cuts', () => {
    expect(budgetLayers({ densePpl: 4, ppls: [9, 20] }, 2)).toBe(0);
    expect(budgetLayers({ densePpl: 4, ppls: [8, 20] }, 2)).toBe(1); // equal to B × dense: within
    expect(budgetLayers({ densePpl: 4, ppls: [8, 9, 7] }, 2)).toBe(1); // stops at the first over, even if a later cut is lower
    expect(maxCuts(5, { metric: 'mag' })).toBe(-1); // Mag+ skips the first 4 and the last 2
    expect(maxCuts(5, { metric: 'mag', skipFirst: 0, skipLast: 0 })).toBe(4);
  });
});

describe('the compensation in the keys', () => {
  const base: RunSettings = {
    backend: 'wasm',
    metric: 'bi',
    layers: 2,
    mode: 'prunecomp',
    fold: 'paper',
    windows: 4,
    window: 128,
    calib: { kind: 'builtin', id: 'tinystories-calib', url: '/data/tinystories/calib.txt' },
    eval: { kind: 'builtin', id: 'tinystories-eval', url: '/data/tinystories/eval.txt' },
  };
  const key = (s: RunSettings) => resultKey(runKeyParts('m', runIdentity(s)));

  test('scalar is the default: absent from the identity, so results stored before the choice are the scalar run', () => {
    const old = runIdentity(base); // no comp: as stored before
    const scalar = runIdentity({ ...base, comp: 'scalar', alpha: 0 });
    expect('comp' in scalar || 'alpha' in scalar).toBe(false);
    expect(sameRun(old, scalar)).toBe(true);
    expect(key({ ...base, comp: 'scalar' })).toBe(key(base));
    // α is read by the linear/diag fits only
    expect(key({ ...base, comp: 'scalar', alpha: 3 })).toBe(key(base));
  });

  test('linear, diag and none are other runs, and α tells linear runs apart', () => {
    const keys = new Set([key(base), ...(['linear', 'diag', 'none'] as const).map((c) => key({ ...base, comp: c }))]);
    expect(keys.size).toBe(4);
    expect(key({ ...base, comp: 'linear', alpha: 0.5 })).not.toBe(key({ ...base, comp: 'linear' }));
    expect(key({ ...base, comp: 'linear', alpha: 0 })).toBe(key({ ...base, comp: 'linear' }));
    expect(sameRun(runIdentity({ ...base, comp: 'linear' }), runIdentity(base))).toBe(false);
  });

  test('a budget curve ignores n, the mode and the evaluation text, not the compensation or the calibration', () => {
    const k = (s: RunSettings) => resultKey(budgetKeyParts('m', runIdentity(s)));
    expect(k({ ...base, layers: 3, mode: 'baseline', eval: { kind: 'builtin', id: 'other', url: '/x' } })).toBe(k(base));
    expect(k({ ...base, comp: 'linear' })).not.toBe(k(base));
    expect(k({ ...base, windows: 8 })).not.toBe(k(base));
    expect(k({ ...base, backend: 'webgpu' })).not.toBe(k(base));
  });

  test('a lab ranges over metrics and compensations itself: the run’s metric, n, mode, comp and α are not its key; its own lists are', () => {
    const req = { metrics: ['bi', 'angular'] as const, comps: ['none', 'linear'] as const, layers: 2, alpha: 0 };
    const k = (id: RunIdentity, r: typeof req | { metrics: readonly string[]; comps: readonly string[]; layers: number; alpha: number } = req) =>
      resultKey(labKeyParts('m', id, { ...r, metrics: [...r.metrics], comps: [...r.comps] } as never));
    const id = runIdentity(base);
    expect(k(runIdentity({ ...base, metric: 'mag', layers: 1, mode: 'iterative', comp: 'linear', alpha: 2 }))).toBe(k(id));
    expect(k(id, { ...req, layers: 3 })).not.toBe(k(id));
    expect(k(id, { ...req, alpha: 0.1 })).not.toBe(k(id));
    expect(k(id, { ...req, metrics: ['bi'] })).not.toBe(k(id));
    expect(k(id, { ...req, comps: ['none', 'linear', 'diag'] })).not.toBe(k(id));
    expect(k(runIdentity({ ...base, windows: 8 }))).not.toBe(k(id));
  });
});
