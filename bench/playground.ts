/**
 * npm run bench:playground — how long one click in the layer playground takes (src/app/playground.ts),
 * on onnxruntime-web's WASM build in Node (the runtime the tab uses) and on onnxruntime-node,
 * for stories260K and llama2xs, with and without compensation, warm (the runtime's first
 * sessions and the dense model's numbers are not timed):
 *
 *   add      remove one more layer: one new model measured (calibration pass, perplexity, greedy continuation)
 *   restore  take it back: the previous state, from the cache
 *
 * Each repetition starts a fresh playground (nothing cached but the dense model's numbers, which
 * are computed first, untimed) and removes layer (i mod L); the table gives the median over the
 * repetitions (≥ 10), the range, and whether the median is under 1 s.
 *
 *   npm run bench:playground [-- --reps 12]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Playground, PLAYGROUND } from '../src/app/playground';
import { loadModelPath } from '../src/engine/formats/load-node';
import type { Runtime } from '../src/engine/runtime/ort';
import { nodeRuntime } from '../src/engine/runtime/node';
import { webWasmRuntime } from '../src/engine/runtime/web-node';
import { DATA, MODELS } from '../test/helpers/paths';

const { values } = parseArgs({ options: { reps: { type: 'string' } } });
const reps = Math.max(10, Number(values.reps ?? 12));
const calib = readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8');
const evalText = readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8');
const models: [string, string][] = [
  ['stories260K', join(MODELS, 'stories260K/stories260K.bin')],
  ['llama2xs', join(MODELS, 'llama2xs-tinystories/model.bin')],
];
const runtimes: [string, () => Runtime][] = [
  ['onnxruntime-web wasm', () => webWasmRuntime()],
  ['onnxruntime-node', () => nodeRuntime()],
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x: number) => `${Math.round(x)} ms`;

console.log(
  `bench:playground: ${PLAYGROUND.calibWindows} calibration windows and ${PLAYGROUND.evalWindows} evaluation windows of ${PLAYGROUND.window} tokens (TinyStories halves), ${PLAYGROUND.maxTokens}-token greedy continuation; median of ${reps}, warm\n`,
);
console.log('| model | runtime | compensation | add a layer (median, range) | restore it (median) | add under 1 s |');
console.log('|---|---|---|---|---|---|');
for (const [rtName, makeRuntime] of runtimes) {
  const runtime = makeRuntime();
  for (const [name, file] of models) {
    const ck = await loadModelPath(file);
    const L = ck.config.numLayers;
    // warm-up: the runtime's first sessions
    await Playground.fromTexts(ck, runtime, calib, evalText).compute({ removed: [1], compensate: true });
    for (const compensate of [true, false]) {
      const add: number[] = [];
      const restore: number[] = [];
      for (let i = 0; i < reps; i++) {
        const pg = Playground.fromTexts(ck, runtime, calib, evalText);
        await pg.compute({ removed: [], compensate });
        let t = performance.now();
        const r = await pg.compute({ removed: [i % L], compensate });
        add.push(performance.now() - t);
        if (r.measured !== 1) throw new Error(`adding a layer measured ${r.measured} models, expected 1`);
        t = performance.now();
        await pg.compute({ removed: [], compensate });
        restore.push(performance.now() - t);
      }
      const m = median(add);
      console.log(`| ${name} | ${rtName} | ${compensate ? 'on' : 'off'} | ${ms(m)} (${ms(Math.min(...add))}–${ms(Math.max(...add))}) | ${median(restore).toFixed(1)} ms | ${m < 1000 ? 'yes' : 'NO'} |`);
    }
  }
}
