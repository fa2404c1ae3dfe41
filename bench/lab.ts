/**
 * npm run bench:lab — the compensation lab (src/app/lab.ts) on the trained models in
 * ../shared/models: every metric × every compensation (none, scalar, linear, diag), n = 1…N
 * (N = 3; 4 for kjv12L), on ONE calibration of the dense model per model. Every window of the
 * calibration text, the last quarter held out; the default barriers (a metric they leave too
 * few layers is a skipped line with its reason). Prints each model's table, the best per n,
 * the seconds, and the layer-passes over the fit windows run against what the same runs cost
 * without the shared dense calibration and reuse; writes bench/results/lab.txt.
 *
 *   npm run bench:lab [-- --window 256]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { labRun, labSplit, labTable } from '../src/app/lab';
import { textWindows, tokenizeText } from '../src/app/run';
import { loadModelPath } from '../src/engine/formats/load-node';
import { nodeRuntime } from '../src/engine/runtime/node';
import { DATA, MODELS } from '../test/helpers/paths';

const { values } = parseArgs({ options: { window: { type: 'string' } } });
const W = Number(values.window ?? 256);
const tinystories = { calib: join(DATA, 'tinystories/calib.txt'), eval: join(DATA, 'tinystories/eval.txt') };
const MODELS_RUN = [
  { name: 'stories260K', model: join(MODELS, 'stories260K/stories260K.bin'), N: 3, ...tinystories },
  { name: 'llama2xs', model: join(MODELS, 'llama2xs-tinystories/model.bin'), N: 3, ...tinystories },
  { name: 'babyllama-tok105', model: join(MODELS, 'babyllama-tok105/model5000.bin'), N: 3, ...tinystories },
  { name: 'kjv12L', model: join(MODELS, 'kjv12L/model.bin'), N: 4, calib: join(DATA, 'kjv/calib.txt'), eval: join(DATA, 'kjv/eval.txt') },
];

const runtime = nodeRuntime();
const report: string[] = [];
const say = (s: string) => {
  process.stdout.write(s);
  report.push(s);
};
say(`bench:lab ${new Date().toISOString()}, onnxruntime-node on the CPU, windows of ${W}\n`);
const totals = { seconds: 0, run: 0, naive: 0 };
for (const m of MODELS_RUN) {
  if (!existsSync(m.model)) {
    say(`\n${m.name}: ${m.model} is not here, left out\n`);
    continue;
  }
  const ck = await loadModelPath(m.model);
  const { fit, heldOut } = labSplit(textWindows(tokenizeText(ck, readFileSync(m.calib, 'utf8')), W, undefined, 'calibration', m.calib), 0.25);
  const ids = tokenizeText(ck, readFileSync(m.eval, 'utf8'));
  const r = await labRun(ck, runtime, fit, { layers: m.N, heldOut, evaluation: { ids, window: W } });
  say(`\n${m.name} (${ck.config.numLayers} layers): n = 1…${m.N}, fit on ${fit.length} windows, held out ${heldOut.length}\n`);
  say(labTable(r));
  totals.seconds += r.seconds;
  totals.run += r.passes.run;
  totals.naive += r.passes.naive;
}
say(`\nall models: ${totals.seconds.toFixed(1)} s; ${totals.run} layer-passes run, ${totals.naive} without sharing and reuse (${(totals.naive / totals.run).toFixed(2)}× as many)\n`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/lab.txt', report.join(''));
