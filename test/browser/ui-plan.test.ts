/**
 * The worker rebuilds pruned models from a stored plan (a result from the cache, then
 * "generate"): applyPlan must give exactly the model prune() built — same tensors, same
 * bits — for every mode and both folds.
 */
import { expect, test } from 'vitest';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import type { Metric, Mode } from '../../src/engine/prune/options';
import { prune } from '../../src/engine/prune/plan';
import { browserRuntime } from '../../src/engine/runtime/web';
import { cutWindows } from '../../src/engine/text/windows';
import { applyPlan } from '../../src/engine/prune/apply';
import { fetchShared, loadStories260K } from './helpers/shared';

function sameModel(a: Checkpoint, b: Checkpoint) {
  expect(b.config).toEqual(a.config);
  expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
  for (const [name, t] of a.tensors) {
    const u = b.tensors.get(name)!;
    expect(u.shape, name).toEqual(t.shape);
    expect(new Uint32Array(u.data.buffer, u.data.byteOffset, u.data.byteLength / 4), name).toEqual(
      new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4),
    );
  }
}

test('applyPlan rebuilds exactly what prune() built (compensated modes, both folds, the last layer, CL; the others only remove layers)', async () => {
  const ck = await loadStories260K();
  const text = new TextDecoder().decode(await fetchShared('data/tinystories/calib.txt'));
  const windows = cutWindows([1, ...ck.tokenizer.encode(text)], 64, 2);
  const runtime = browserRuntime('wasm');
  const cases: { metric: Metric; mode: Mode; fold: 'paper' | 'tied'; layers: number }[] = [
    { metric: 'bi', mode: 'prunecomp', fold: 'paper', layers: 2 },
    { metric: 'bi', mode: 'prunecomp', fold: 'tied', layers: 2 },
    { metric: 'bi', mode: 'oneshot-comp', fold: 'paper', layers: 2 },
    { metric: 'reverse', mode: 'prunecomp', fold: 'paper', layers: 2 }, // removes the last layer first: measured, not folded
    { metric: 'cl', mode: 'prunecomp', fold: 'paper', layers: 2 },
  ];
  for (const c of cases) {
    const { plan, checkpoint } = await prune(ck, runtime, windows, c);
    sameModel(checkpoint, applyPlan(ck, plan));
  }
});
