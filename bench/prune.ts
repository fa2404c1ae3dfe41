/**
 * npm run bench:prune — what reusing calibration work saves.
 *
 * Iterative Prune&Comp (BI, n = 5, paper fold) on a seeded random model of SmolLM2-135M's
 * shape, twice in one run: with reuse (statistics before each cut rescaled, only the layers
 * from the cut on recomputed, from stream checkpoints) and with a naive full recompute per
 * step as the official code does. Prints both times, their ratio, and whether the plans agree.
 *
 * --execution streamed runs every pass layer by layer (as models over the whole-graph budget
 * run), to show the reuse holds there too.
 *
 *   npm run bench:prune [-- --windows 4 --window 512 --layers 5 --model stories260K --execution streamed]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadLlama2cFile } from '../src/engine/formats/llama2c-node';
import type { Checkpoint } from '../src/engine/model/checkpoint';
import { prune } from '../src/engine/prune/plan';
import { nodeRuntime } from '../src/engine/runtime/node';
import { mulberry32 } from '../src/engine/runtime/sampler';
import { MODELS } from '../test/helpers/paths';
import { randomCheckpoint } from '../test/helpers/random-checkpoint';

const { values } = parseArgs({
  options: { windows: { type: 'string' }, window: { type: 'string' }, layers: { type: 'string' }, model: { type: 'string' }, execution: { type: 'string' } },
});
const nWindows = Number(values.windows ?? 4);
const W = Number(values.window ?? 512);
const n = Number(values.layers ?? 5);
const modelName = values.model ?? '135m';

const ck: Checkpoint =
  modelName === 'stories260K'
    ? await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'))
    : randomCheckpoint({ hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3, vocabSize: 49152, maxPositions: 2048, tie: true, seed: 135 });
const random = mulberry32(7);
const windows = Array.from({ length: nWindows }, () => [ck.config.bosTokenId, ...Array.from({ length: W - 1 }, () => Math.floor(random() * ck.config.vocabSize))]);
const execution = values.execution as 'whole' | 'streamed' | undefined;
if (execution !== undefined && execution !== 'whole' && execution !== 'streamed') throw new Error('--execution must be whole or streamed');
const runtime = { ...nodeRuntime(), execution };

async function run(reuse: boolean) {
  const t0 = performance.now();
  const r = await prune(ck, runtime, windows, { metric: 'bi', layers: n, mode: 'prunecomp', fold: 'paper', reuse });
  return { seconds: (performance.now() - t0) / 1000, plan: r.plan };
}

console.error(`bench:prune ${modelName}, BI, n=${n}, ${nWindows} windows of ${W}, execution ${execution ?? 'chosen by size'}…`);
const reuse = await run(true);
const naive = await run(false);
const samePlan = JSON.stringify(reuse.plan.removed) === JSON.stringify(naive.plan.removed);
const scaleDiff = Math.max(...reuse.plan.scales.map((s, i) => Math.abs(s / naive.plan.scales[i] - 1)));
const result = {
  model: modelName,
  execution: execution ?? 'chosen by size',
  metric: 'bi',
  layers: n,
  windows: nWindows,
  window: W,
  reuseSeconds: reuse.seconds,
  naiveSeconds: naive.seconds,
  ratio: reuse.seconds / naive.seconds,
  removed: reuse.plan.removed,
  naiveRemoved: naive.plan.removed,
  samePlan,
  scales: reuse.plan.scales,
  maxScaleRelDiff: scaleDiff,
};
console.log(`removed (reuse) ${JSON.stringify(reuse.plan.removed)}  (naive) ${JSON.stringify(naive.plan.removed)}  same plan: ${samePlan}`);
console.log(`scales ${reuse.plan.scales.map((s) => s.toFixed(5)).join(', ')}  max relative difference to naive ${scaleDiff.toExponential(2)}`);
console.log(`reuse ${reuse.seconds.toFixed(1)} s, naive ${naive.seconds.toFixed(1)} s, ratio ${result.ratio.toFixed(2)}× (target ≤ 0.5×)`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(`bench/results/prune${execution ? `-${execution}` : ''}.json`, JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2));
