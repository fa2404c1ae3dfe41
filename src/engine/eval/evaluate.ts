import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { taskResult, type TaskResult } from './accuracy';
import { encodeRequest, scoreItem, type ContinuationScorer, type ScoredItem } from './score';
import type { McItem, TaskName } from './tasks';

export interface TaskItems {
  task: TaskName;
  items: McItem[];
}

export interface EvaluateOptions {
  /** score the first `limit` items of each task (lm-eval's --limit) */
  limit?: number;
  signal?: AbortSignal;
  /** after each item: items done and in all, over every task */
  onProgress?: (done: number, total: number, task: TaskName) => void;
  /** each scored item, as it is scored (for --dump) */
  onItem?: (task: TaskName, index: number, item: McItem, scored: ScoredItem) => void;
}

/** Zero-shot accuracy of a model on several tasks, item by item (see score.ts). */
export async function evaluate(ck: Checkpoint, scorer: ContinuationScorer, tasks: readonly TaskItems[], opts: EvaluateOptions = {}): Promise<TaskResult[]> {
  const { bosTokenId, maxPositions } = ck.config;
  const encode = (context: string, continuation: string) => encodeRequest(ck.tokenizer, bosTokenId, maxPositions, context, continuation);
  const chosen = tasks.map(({ task, items }) => ({ task, items: items.slice(0, opts.limit ?? items.length) }));
  const total = chosen.reduce((s, t) => s + t.items.length, 0);
  let done = 0;
  const results: TaskResult[] = [];
  for (const { task, items } of chosen) {
    const scored: ScoredItem[] = [];
    for (const [index, item] of items.entries()) {
      if (opts.signal?.aborted) throw new LopperError('cancelled', 'the evaluation was cancelled');
      const s = await scoreItem(scorer, item, encode);
      scored.push(s);
      opts.onItem?.(task, index, item, s);
      opts.onProgress?.(++done, total, task);
    }
    results.push(taskResult(task, scored));
  }
  return results;
}

/** One line of `lopper eval --dump`: everything needed to recompute an item's scores. */
export function dumpLine(task: TaskName, index: number, item: McItem, s: ScoredItem): string {
  return JSON.stringify({
    task,
    index,
    gold: s.gold,
    pred: s.pred,
    pred_norm: s.predNorm,
    choices: s.requests.map((r, j) => ({
      text: item.choices[j].text,
      context_ids: r.context,
      continuation_ids: r.continuation,
      loglikelihood: s.logprobs[j],
    })),
  });
}
