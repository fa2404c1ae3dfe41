import { LopperError } from '../errors';

/**
 * The zero-shot multiple-choice tasks of the Prune&Comp paper, with lm-eval-harness's
 * prompts: each choice j is a (context_j, continuation_j) pair scored by
 * Σ log p(continuation_j | context_j). For most tasks the context is the same for every
 * choice; WinoGrande's options change the context and the continuation is shared.
 */
export const TASKS = ['piqa', 'arc_easy', 'arc_challenge', 'boolq', 'winogrande', 'copa', 'openbookqa', 'hellaswag'] as const;
export type TaskName = (typeof TASKS)[number];

/** Which accuracy a task reports (the paper: acc_norm for ARC-c, ARC-e, HellaSwag, PIQA; acc otherwise). */
export type AccuracyKind = 'acc' | 'acc_norm';

export interface Choice {
  context: string;
  continuation: string;
  /** the choice's text as lm-eval counts it for acc_norm (the continuation without its delimiter) */
  text: string;
}

/** One item: its choices and the index of the right one. */
export interface McItem {
  choices: Choice[];
  gold: number;
}

export interface TaskSpec {
  name: TaskName;
  title: string;
  reported: AccuracyKind;
  /** file name in shared/data/qa (the llm-foundry layout, see fromFoundryRow) */
  localFile: string;
}

export const TASK_SPECS: Record<TaskName, TaskSpec> = {
  piqa: { name: 'piqa', title: 'PIQA', reported: 'acc_norm', localFile: 'piqa.jsonl' },
  arc_easy: { name: 'arc_easy', title: 'ARC-e', reported: 'acc_norm', localFile: 'arc_easy.jsonl' },
  arc_challenge: { name: 'arc_challenge', title: 'ARC-c', reported: 'acc_norm', localFile: 'arc_challenge.jsonl' },
  boolq: { name: 'boolq', title: 'BoolQ', reported: 'acc', localFile: 'boolq.jsonl' },
  winogrande: { name: 'winogrande', title: 'WinoG', reported: 'acc', localFile: 'winogrande.jsonl' },
  copa: { name: 'copa', title: 'COPA', reported: 'acc', localFile: 'copa.jsonl' },
  openbookqa: { name: 'openbookqa', title: 'OBQA', reported: 'acc', localFile: 'openbook_qa.jsonl' },
  hellaswag: { name: 'hellaswag', title: 'HellaS', reported: 'acc_norm', localFile: 'hellaswag_small.jsonl' },
};

export function isTask(s: string): s is TaskName {
  return (TASKS as readonly string[]).includes(s);
}

/** "piqa,arc_easy" → task names, every one checked. */
export function parseTaskList(list: string): TaskName[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new LopperError('bad-option', `name at least one task: ${TASKS.join(', ')}`);
  for (const n of names) if (!isTask(n)) throw new LopperError('bad-option', `unknown task "${n}": the tasks are ${TASKS.join(', ')}`);
  return [...new Set(names)] as TaskName[];
}

/** A choice whose continuation is the text after lm-eval's default delimiter, one space. */
export const spaced = (context: string, text: string): Choice => ({ context, continuation: ' ' + text, text });

/**
 * The context each task's prompt builds from a question, as lm-eval-harness writes it:
 * ARC "Question: …\nAnswer:", PIQA "Question: …\nAnswer:", BoolQ "…\nQuestion: …?\nAnswer:",
 * the rest the question itself.
 */
export function answerPrompt(question: string): string {
  return question.replace(/\s+$/, '') + '\nAnswer:';
}

type Row = Record<string, unknown>;

function str(row: Row, key: string, where: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw new LopperError('corrupt', `"${key}" is not a string`, where);
  return v;
}
function strings(row: Row, key: string, where: string): string[] {
  const v = row[key];
  if (!Array.isArray(v) || v.length < 2 || v.some((s) => typeof s !== 'string')) {
    throw new LopperError('corrupt', `"${key}" is not a list of at least two strings`, where);
  }
  return v as string[];
}
function goldOf(row: Row, n: number, where: string): number {
  const g = row.gold;
  if (!Number.isInteger(g) || (g as number) < 0 || (g as number) >= n) throw new LopperError('corrupt', `"gold" is not a choice index 0..${n - 1}`, where);
  return g as number;
}

/**
 * An item from a row of the llm-foundry files in shared/data/qa: {query, choices, gold}, or
 * for WinoGrande {context_options, continuation, gold}. `where` names the row in errors.
 */
export function fromFoundryRow(task: TaskName, row: Row, where: string): McItem {
  if (task === 'winogrande') {
    const options = strings(row, 'context_options', where);
    const continuation = str(row, 'continuation', where);
    return { choices: options.map((o) => spaced(o, continuation)), gold: goldOf(row, options.length, where) };
  }
  const query = str(row, 'query', where);
  const choices = strings(row, 'choices', where);
  // ARC, PIQA and BoolQ rows hold "Question: …" without lm-eval's "\nAnswer:".
  const context = task === 'arc_easy' || task === 'arc_challenge' || task === 'piqa' || task === 'boolq' ? answerPrompt(query) : query;
  return { choices: choices.map((c) => spaced(context, c)), gold: goldOf(row, choices.length, where) };
}

/** Items of a JSON-lines file (one row per line; blank lines skipped). */
export function parseFoundryJsonl(task: TaskName, text: string, file: string): McItem[] {
  const items: McItem[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new LopperError('corrupt', 'not a JSON object', where);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new LopperError('corrupt', 'not a JSON object', where);
    items.push(fromFoundryRow(task, row as Row, where));
  });
  if (items.length === 0) throw new LopperError('corrupt', 'no items', file);
  return items;
}
