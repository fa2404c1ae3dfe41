/**
 * npm run bench:sweep — what a sweep saves: perplexity against layers removed, n = 0…N, for
 * the four modes, once as `sweepRun` (one pruning run per mode to N, each model on the way
 * measured) and once as separate runs at every n (a prune and a perplexity per point), side by
 * side in one process on the same model; prints both times, their ratio, and checks that the
 * points are equal (plans and perplexities).
 *
 *   npm run bench:sweep [-- --model PATH --calib FILE --eval FILE --layers 6 --windows 8 --window 128]
 *
 * Default: kjv12L (12 layers, the deepest trained model in ../shared/models) on its Proverbs /
 * John texts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { textWindows, tokenizeText } from '../src/app/run';
import { SWEEP_MODES, sweepRun } from '../src/app/sweep';
import { loadModelPath } from '../src/engine/formats/load-node';
import { prune } from '../src/engine/prune/plan';
import { Engine } from '../src/engine/runtime/engine';
import { nodeRuntime } from '../src/engine/runtime/node';
import { DATA, MODELS } from '../test/helpers/paths';

const { values } = parseArgs({
  options: { model: { type: 'string' }, calib: { type: 'string' }, eval: { type: 'string' }, layers: { type: 'string' }, windows: { type: 'string' }, window: { type: 'string' } },
});
const model = values.model ?? join(MODELS, 'kjv12L/model.bin');
const calib = values.calib ?? join(DATA, 'kjv/calib.txt');
const evalText = values.eval ?? join(DATA, 'kjv/eval.txt');
const N = Number(values.layers ?? 6);
const W = Number(values.window ?? 128);
const runtime = nodeRuntime();
const ck = await loadModelPath(model);
const windows = textWindows(tokenizeText(ck, readFileSync(calib, 'utf8')), W, Number(values.windows ?? 8), 'calibration', calib);
const ids = tokenizeText(ck, readFileSync(evalText, 'utf8').slice(0, 20000));

let t = performance.now();
const swept = await sweepRun(ck, runtime, windows, { metric: 'bi', layers: N, evaluation: { ids, window: W } });
const sweepSeconds = (performance.now() - t) / 1000;

t = performance.now();
let differ = 0;
for (const mode of SWEEP_MODES) {
  for (let n = 1; n <= N; n++) {
    const { plan, checkpoint } = await prune(ck, runtime, windows, { metric: 'bi', mode, layers: n });
    const e = new Engine(checkpoint, runtime);
    const ppl = (await e.perplexity(ids, W)).ppl;
    await e.dispose();
    const p = swept.curves[mode]![n - 1];
    if (p.ppl !== ppl || p.removed.join() !== plan.removed.join()) differ++;
  }
}
const separateSeconds = (performance.now() - t) / 1000;
console.log(`bench:sweep ${model} (${ck.config.numLayers} layers), BI, n = 0…${N}, ${SWEEP_MODES.length} modes, ${windows.length} calibration windows of ${W}, ${swept.eval.windows} eval windows`);
console.log(`sweep ${sweepSeconds.toFixed(1)} s; separate runs at every n ${separateSeconds.toFixed(1)} s; ratio ${(sweepSeconds / separateSeconds).toFixed(2)}×; points that differ: ${differ}`);
if (differ > 0) process.exit(1);
