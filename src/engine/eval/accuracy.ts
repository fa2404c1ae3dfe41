import type { ScoredItem } from './score';
import { TASK_SPECS, type TaskName } from './tasks';

/** A mean of 0/1 outcomes and its standard error as lm-eval-harness reports it. */
export interface Mean {
  value: number;
  /** sample standard deviation (n − 1) / √n; NaN for n < 2 */
  stderr: number;
}

export function meanWithStderr(xs: readonly number[]): Mean {
  const n = xs.length;
  const value = xs.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return { value, stderr: NaN };
  const variance = xs.reduce((s, x) => s + (x - value) ** 2, 0) / (n - 1);
  return { value, stderr: Math.sqrt(variance / n) };
}

export interface TaskResult {
  task: TaskName;
  n: number;
  acc: Mean;
  acc_norm: Mean;
  /** the accuracy the paper reports for this task (acc or acc_norm) */
  reported: number;
}

export function taskResult(task: TaskName, items: readonly ScoredItem[]): TaskResult {
  const acc = meanWithStderr(items.map((r) => Number(r.pred === r.gold)));
  const acc_norm = meanWithStderr(items.map((r) => Number(r.predNorm === r.gold)));
  return { task, n: items.length, acc, acc_norm, reported: (TASK_SPECS[task].reported === 'acc' ? acc : acc_norm).value };
}

/** Mean of the reported accuracies over tasks. */
export function averageAccuracy(results: readonly TaskResult[]): number {
  return results.reduce((s, r) => s + r.reported, 0) / results.length;
}

/** Retained performance: RP = 100 · avg / dense avg (the paper's Table columns). */
export function retainedPerformance(results: readonly TaskResult[], dense: readonly TaskResult[]): number {
  return (100 * averageAccuracy(results)) / averageAccuracy(dense);
}
