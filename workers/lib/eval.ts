/**
 * Zero-shot evaluation in the worker, as `lopper eval` does it (src/cli/eval.ts): the first
 * `limit` items of each task, scored with lm-eval-harness's conventions (src/engine/eval/),
 * for the dense model and the run's pruned models, one model after another on the same
 * items. Items come from the data mirror (`{dataBase}/qa/<file>`, the llm-foundry files the
 * CLI reads from shared/data/qa; kept in IndexedDB like the built-in texts) or from the
 * Hugging Face datasets server (src/engine/eval/hub.ts, cached in IndexedDB).
 */
import { LopperError } from '../../src/engine/errors';
import type { TaskResult } from '../../src/engine/eval/accuracy';
import { evaluate, type TaskItems } from '../../src/engine/eval/evaluate';
import { loadTaskItems } from '../../src/engine/eval/hub';
import { isTask, parseFoundryJsonl, TASK_SPECS, TASKS, type TaskName } from '../../src/engine/eval/tasks';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { Engine } from '../../src/engine/runtime/engine';
import type { Runtime } from '../../src/engine/runtime/ort';
import { fetchToStore } from '../../src/engine/store/download';
import type { EvalSettings, Variant } from '../../src/app/protocol';
import { checkAbort } from './cancel';
import type { Tracker } from './progress';

/** The settings checked and put in order: known tasks in TASKS order, a whole limit ≥ 1. */
export function checkEvalSettings(s: EvalSettings): EvalSettings {
  const bad = s.tasks.filter((t) => !isTask(t));
  if (bad.length) throw new LopperError('bad-option', `unknown task ${bad.join(', ')}: the tasks are ${TASKS.join(', ')}`);
  const tasks = TASKS.filter((t) => s.tasks.includes(t));
  if (tasks.length === 0) throw new LopperError('bad-option', 'choose at least one task to evaluate on');
  if (!(Number.isInteger(s.limit) && s.limit >= 1)) throw new LopperError('bad-option', `the sample size must be a whole number of items ≥ 1 (got ${s.limit})`);
  if (s.data !== 'mirror' && s.data !== 'hub') throw new LopperError('bad-option', `unknown data source "${String(s.data)}": the data mirror or the Hugging Face datasets server`);
  return { ...s, tasks };
}

/** The parts of an evaluation's cache key: the model, the run (its pruned models), and what changes the numbers. */
export function evalParts(modelKey: string, runKey: string, s: EvalSettings): Record<string, string | number | string[]> {
  return { kind: 'eval-v1', model: modelKey, run: runKey, tasks: s.tasks, limit: s.limit, data: s.data, backend: s.backend };
}

/** Where the items come from, in words. */
export function sourceLabel(s: EvalSettings): string {
  return s.data === 'mirror' ? `the data mirror (${s.dataBase}/qa/)` : 'the Hugging Face datasets server';
}

export interface EvalModel {
  variant: Variant;
  /** what a person reads: "dense", "baseline", "Prune&Comp" */
  label: string;
  ck: Checkpoint;
}

/** The stages of an evaluation, weighted by items scored. */
export function evalStages(s: EvalSettings, models: { variant: Variant; label: string }[]): { stage: string; label: string; weight: number }[] {
  const items = s.tasks.length * s.limit;
  return [
    { stage: 'data', label: `task data from ${s.data === 'mirror' ? 'the data mirror' : 'the Hugging Face datasets server'}`, weight: Math.max(1, items / 20) },
    ...models.map((m) => ({ stage: `eval-${m.variant}`, label: `${m.label}: scoring ${items} items`, weight: items })),
  ];
}

/** One task's items from the data mirror: the llm-foundry .jsonl the CLI reads, through the store. */
async function mirrorItems(task: TaskName, dataBase: string, signal: AbortSignal): Promise<TaskItems> {
  const file = TASK_SPECS[task].localFile;
  const url = `${dataBase.replace(/\/+$/, '')}/qa/${file}`;
  let text: string;
  try {
    text = await (await fetchToStore(url, { signal, label: `task data: ${file}` })).text();
  } catch (e) {
    if (e instanceof LopperError && e.code !== 'cancelled' && e.code !== 'quota') {
      throw Object.assign(
        new LopperError(e.code, `the data mirror has no ${file} for ${TASK_SPECS[task].title} (${e.message}): choose the Hugging Face datasets server as the source`),
        { uiCode: 'task-data' },
      );
    }
    throw e;
  }
  return { task, items: parseFoundryJsonl(task, text, url) };
}

/** One task's first `limit` items from the datasets server (kept in IndexedDB by hub.ts). */
async function hubItems(task: TaskName, limit: number, signal: AbortSignal, onLoaded: (n: number) => void): Promise<TaskItems> {
  try {
    const items = await loadTaskItems(task, { limit, signal, onProgress: (p) => onLoaded(p.loaded) });
    return { task, items };
  } catch (e) {
    if (e instanceof LopperError && (e.code === 'network' || e.code === 'not-found' || e.code === 'auth')) {
      throw Object.assign(
        new LopperError(e.code, `the Hugging Face datasets server did not give ${TASK_SPECS[task].title} (${e.message}): check the connection, or choose the data mirror as the source`),
        { uiCode: 'task-data' },
      );
    }
    throw e;
  }
}

/** Every chosen task's items (the first `limit` of each, from the chosen source). */
export async function loadItems(s: EvalSettings, tracker: Tracker, signal: AbortSignal): Promise<TaskItems[]> {
  tracker.start('data');
  const out: TaskItems[] = [];
  for (const [i, task] of s.tasks.entries()) {
    const title = TASK_SPECS[task].title;
    tracker.report(i, s.tasks.length, { label: `task data: ${title} (${i + 1} of ${s.tasks.length})`, force: true });
    const t =
      s.data === 'mirror'
        ? await mirrorItems(task, s.dataBase, signal)
        : await hubItems(task, s.limit, signal, (n) => tracker.report(i + Math.min(1, n / s.limit), s.tasks.length, { label: `task data: ${title}, ${n} of ${s.limit} items` }));
    checkAbort(signal);
    if (t.items.length === 0) throw new LopperError('corrupt', `no items for ${title}`);
    out.push({ task, items: t.items.slice(0, s.limit) });
  }
  return out;
}

/**
 * Score each model on the same items, one after another; progress per model, items done of
 * all. Each model gets an engine of its own, released before the next one starts, so one
 * scoring graph's weights are in memory at a time (as the run's perplexity passes do).
 */
export async function evaluateModels(
  models: EvalModel[],
  runtime: Runtime,
  tasks: TaskItems[],
  tracker: Tracker,
  signal: AbortSignal,
): Promise<Map<Variant, TaskResult[]>> {
  const out = new Map<Variant, TaskResult[]>();
  for (const m of models) {
    tracker.start(`eval-${m.variant}`);
    const engine = new Engine(m.ck, runtime);
    try {
      const results = await evaluate(m.ck, engine, tasks, {
        signal,
        onProgress: (done, total, task) => {
          // A cancel lands within one item (the shared flag is polled here).
          checkAbort(signal, 'the evaluation was cancelled');
          tracker.report(done, total, { label: `${m.label}: ${TASK_SPECS[task].title}, ${done} of ${total} items` });
        },
      });
      out.set(m.variant, results);
    } finally {
      await engine.dispose().catch(() => undefined);
    }
  }
  return out;
}
