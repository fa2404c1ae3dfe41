/**
 * npm run bench:eval — zero-shot accuracy of the dense, baseline-pruned and Prune&Comp models
 * on the eight tasks (lm-eval-harness conventions, shared/data/qa), and what sharing each
 * item's context across its choices saves.
 *
 * 1. Scoring cost, measured side by side on the same items: the engine's scorer (context once,
 *    its KV cache copied to a batch of the choices) vs scoring each choice's full sequence.
 *    Prints tokens through the model, seconds, the ratio, and that both give the same answers.
 * 2. The table: dense, baseline and Prune&Comp (same metric, same n), acc as the paper reports
 *    it per task (acc_norm for ARC-c, ARC-e, HellaSwag, PIQA), average and RP.
 *
 *   npm run bench:eval [-- --model stories260K --metric bi --layers 2 --limit 500]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compareRun, textWindows, tokenizeText } from '../src/app/run';
import { loadTasks, resultsJson } from '../src/cli/eval';
import { averageAccuracy, retainedPerformance, type TaskResult } from '../src/engine/eval/accuracy';
import { evaluate, type TaskItems } from '../src/engine/eval/evaluate';
import type { ContinuationScorer } from '../src/engine/eval/score';
import { TASK_SPECS, TASKS } from '../src/engine/eval/tasks';
import { loadModelPath } from '../src/engine/formats/load-node';
import type { Checkpoint } from '../src/engine/model/checkpoint';
import { isMetric } from '../src/engine/prune/options';
import { Engine } from '../src/engine/runtime/engine';
import { nodeRuntime } from '../src/engine/runtime/node';
import { DATA, MODELS } from '../test/helpers/paths';

const { values } = parseArgs({
  options: { model: { type: 'string' }, metric: { type: 'string' }, layers: { type: 'string' }, limit: { type: 'string' }, 'speed-limit': { type: 'string' } },
});
const modelName = values.model ?? 'stories260K';
const metric = values.metric ?? 'bi';
if (!isMetric(metric)) throw new Error(`unknown metric ${metric}`);
const layers = Number(values.layers ?? 2);
const limit = Number(values.limit ?? 500);
const speedLimit = Number(values['speed-limit'] ?? 100);
const modelPath = modelName === 'stories260K' ? join(MODELS, 'stories260K/stories260K.bin') : modelName;

const runtime = nodeRuntime();
const ck = await loadModelPath(modelPath);
const tasks = await loadTasks([...TASKS], join(DATA, 'qa'), limit);

// ---- 1. scoring cost: shared context vs every choice's full sequence ----

/** lm-eval's plain way: each choice's context + continuation as its own sequence. */
function unsharedScorer(engine: Engine, counter: { tokens: number }): ContinuationScorer {
  return {
    async continuationLogprobs(context, continuations) {
      const out: number[] = [];
      for (const c of continuations) {
        const [nll] = await engine.nll([[...context, ...c]]);
        counter.tokens += context.length + c.length - 1;
        let sum = 0;
        for (let j = 0; j < c.length; j++) sum -= nll[context.length - 1 + j];
        out.push(sum);
      }
      return out;
    },
  };
}
function sharedScorer(engine: Engine, counter: { tokens: number }): ContinuationScorer {
  return {
    continuationLogprobs(context, continuations) {
      counter.tokens += context.length - 1 + continuations.length * Math.max(...continuations.map((c) => c.length));
      return engine.continuationLogprobs(context, continuations);
    },
  };
}

async function timed(scorer: (e: Engine, counter: { tokens: number }) => ContinuationScorer, items: TaskItems[]) {
  const engine = new Engine(ck, runtime);
  const counter = { tokens: 0 };
  const t0 = performance.now();
  const results = await evaluate(ck, scorer(engine, counter), items, { limit: speedLimit });
  const seconds = (performance.now() - t0) / 1000;
  await engine.dispose();
  return { seconds, tokens: counter.tokens, results };
}

const speedTasks = tasks.filter((t) => ['arc_easy', 'boolq', 'hellaswag', 'winogrande'].includes(t.task));
console.error(`bench:eval ${modelName}: scoring cost on ${speedTasks.map((t) => t.task).join(', ')}, ${speedLimit} items each…`);
await timed(sharedScorer, speedTasks.map((t) => ({ ...t, items: t.items.slice(0, 5) }))); // warm-up: sessions built
const shared = await timed(sharedScorer, speedTasks);
const unshared = await timed(unsharedScorer, speedTasks);
const sameAnswers = JSON.stringify(shared.results.map((r) => [r.acc.value, r.acc_norm.value])) === JSON.stringify(unshared.results.map((r) => [r.acc.value, r.acc_norm.value]));
console.log(`scoring: shared context ${shared.seconds.toFixed(2)} s (${shared.tokens} token positions), every choice whole ${unshared.seconds.toFixed(2)} s (${unshared.tokens}); time ratio ${(shared.seconds / unshared.seconds).toFixed(2)}×, positions ratio ${(shared.tokens / unshared.tokens).toFixed(2)}×; same accuracies: ${sameAnswers}`);

// ---- 2. dense, baseline and Prune&Comp ----

const calibPath = join(DATA, 'tinystories/calib.txt');
const calib = textWindows(tokenizeText(ck, readFileSync(calibPath, 'utf8')), 256, 8, 'calibration text', calibPath);

async function accuracies(model: Checkpoint): Promise<TaskResult[]> {
  const engine = new Engine(model, runtime);
  try {
    return await evaluate(model, engine, tasks, { limit });
  } finally {
    await engine.dispose();
  }
}

console.error(`the table: ${metric}, ${layers} layers, --limit ${limit}…`);
const t0 = performance.now();
const dense = await accuracies(ck);
// The same run as the app's and lopper compare's, without perplexities and curves.
const run = await compareRun(ck, runtime, calib, { metric, layers, mode: 'prunecomp', fold: 'paper', curves: false });
const baseline = await accuracies(run.models.baseline);
const comp = await accuracies(run.models.compared!);
const [baselinePlan, compPlan] = [run.plans.baseline, run.plans.compared!];
const seconds = (performance.now() - t0) / 1000;

const pct = (x: number) => (100 * x).toFixed(2);
const header = ['model', 'removed', ...TASKS.map((t) => TASK_SPECS[t].title), 'Avg', 'RP'];
const row = (name: string, removed: string, r: TaskResult[]) => [name, removed, ...r.map((x) => pct(x.reported)), pct(averageAccuracy(r)), retainedPerformance(r, dense).toFixed(1)];
const rows = [header, row('dense', '-', dense), row('baseline', baselinePlan.removed.join(','), baseline), row('Prune&Comp', compPlan.removed.join(','), comp)];
const n = ['n', '', ...dense.map((r) => String(r.n)), '', ''];
console.log(`\n${modelName}, ${metric}, ${layers} of ${ck.config.numLayers} layers; accuracy (%) as the paper reports it per task; limit ${limit} items per task`);
console.log('| ' + rows[0].join(' | ') + ' |\n|' + rows[0].map(() => '---').join('|') + '|');
for (const r of [...rows.slice(1), n]) console.log('| ' + r.join(' | ') + ' |');
console.log(`stderr (dense, reported metric): ${dense.map((r) => `${r.task} ±${pct(TASK_SPECS[r.task].reported === 'acc' ? r.acc.stderr : r.acc_norm.stderr)}`).join(', ')}`);
console.log(`Prune&Comp scales ${compPlan.scales.map((s) => s.toFixed(4)).join(', ')}; evaluation and pruning took ${seconds.toFixed(1)} s`);

mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/eval.json',
  JSON.stringify(
    {
      date: new Date().toISOString(),
      model: modelName,
      metric,
      layers,
      limit,
      scoring: { sharedSeconds: shared.seconds, unsharedSeconds: unshared.seconds, sharedPositions: shared.tokens, unsharedPositions: unshared.tokens, sameAnswers },
      dense: resultsJson(dense),
      baseline: { removed: baselinePlan.removed, ...resultsJson(baseline), rp: retainedPerformance(baseline, dense) },
      prunecomp: { removed: compPlan.removed, scales: compPlan.scales, ...resultsJson(comp), rp: retainedPerformance(comp, dense) },
    },
    null,
    2,
  ),
);
