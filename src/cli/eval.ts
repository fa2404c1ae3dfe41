import { createWriteStream, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { averageAccuracy, type TaskResult } from '../engine/eval/accuracy';
import { dumpLine, evaluate, type TaskItems } from '../engine/eval/evaluate';
import { parseFoundryJsonl, parseTaskList, TASK_SPECS, type TaskName } from '../engine/eval/tasks';
import { LopperError } from '../engine/errors';
import { Engine } from '../engine/runtime/engine';
import type { Checkpoint } from '../engine/model/checkpoint';
import type { Runtime } from '../engine/runtime/ort';

/** shared/data/qa beside the repository, where the test data lives (see shared/data/README.md). */
export const SHARED_QA = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/data/qa');

export interface EvalArgs {
  tasks: string;
  limit?: number;
  /** a folder of llm-foundry .jsonl files, or "hub" (the Hugging Face datasets server) */
  data?: string;
  /** the datasets server's address, for --data hub (default: Hugging Face's) */
  datasetsServer?: string;
  dump?: string;
  json: boolean;
}

/** Items of each task, from a folder of .jsonl files or from the hub (first `limit` only). */
export async function loadTasks(names: TaskName[], data: string, limit?: number, datasetsServer?: string): Promise<TaskItems[]> {
  const out: TaskItems[] = [];
  for (const task of names) {
    if (data === 'hub') {
      const { fetchTaskItems } = await import('../engine/eval/hub');
      out.push({ task, items: await fetchTaskItems(task, { limit, baseUrl: datasetsServer }) });
      continue;
    }
    const file = join(data, TASK_SPECS[task].localFile);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new LopperError('not-found', `no data for task ${task} (expected ${TASK_SPECS[task].localFile}; --data hub fetches it from the Hugging Face datasets server)`, file);
    }
    out.push({ task, items: parseFoundryJsonl(task, text, file) });
  }
  return out;
}

const pct = (x: number) => (100 * x).toFixed(2);

export function formatResults(results: TaskResult[]): string {
  const rows = [['task', 'n', 'acc', '± stderr', 'acc_norm', '± stderr', 'reported']];
  for (const r of results) {
    const spec = TASK_SPECS[r.task];
    rows.push([r.task, String(r.n), pct(r.acc.value), pct(r.acc.stderr), pct(r.acc_norm.value), pct(r.acc_norm.stderr), `${pct(r.reported)} (${spec.reported})`]);
  }
  rows.push(['average', '', '', '', '', '', pct(averageAccuracy(results))]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n') + '\n';
}

export function resultsJson(results: TaskResult[]) {
  return {
    results: Object.fromEntries(
      results.map((r) => [
        r.task,
        { n: r.n, acc: r.acc.value, acc_stderr: r.acc.stderr, acc_norm: r.acc_norm.value, acc_norm_stderr: r.acc_norm.stderr, reported: TASK_SPECS[r.task].reported },
      ]),
    ),
    average: averageAccuracy(results),
  };
}

function openForWriting(path: string): number {
  try {
    return openSync(path, 'w');
  } catch (e) {
    throw new LopperError('bad-option', `cannot write the dump file (${(e as Error).message})`, path);
  }
}

/** `lopper eval`: zero-shot accuracy with lm-eval-harness conventions; --dump writes one line per item. */
export async function evalCommand(ck: Checkpoint, runtime: Runtime, args: EvalArgs, print: (s: string) => void): Promise<void> {
  const names = parseTaskList(args.tasks);
  const data = args.data ?? (existsSync(SHARED_QA) ? SHARED_QA : 'hub');
  const tasks = await loadTasks(names, data, args.limit, args.datasetsServer);
  const dump = args.dump === undefined ? undefined : createWriteStream('', { fd: openForWriting(args.dump) });
  const engine = new Engine(ck, runtime);
  try {
    const results = await evaluate(ck, engine, tasks, {
      limit: args.limit,
      onItem: dump && ((task, index, item, scored) => void dump.write(dumpLine(task, index, item, scored) + '\n')),
      onProgress: process.stderr.isTTY ? (done, total, task) => process.stderr.write(`\r${task}: ${done}/${total} items `) : undefined,
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    print(args.json ? JSON.stringify({ model: ck.source, limit: args.limit ?? null, ...resultsJson(results) }) + '\n' : formatResults(results));
  } finally {
    await engine.dispose();
    if (dump) await new Promise((done, fail) => dump.end(() => done(undefined)).once('error', fail));
  }
}
