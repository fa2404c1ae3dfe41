/**
 * The zero-shot tasks' data from the Hugging Face datasets server (the dataset viewer's API),
 * turned into McItems with lm-eval-harness's exact prompts, and cached in IndexedDB.
 *
 *   HUB_SOURCES        where lm-eval-harness takes each task from (dataset, config, split)
 *   hubRowToItem       one hub row → McItem, lm-eval's doc_to_text / doc_to_choice / doc_to_target
 *   fetchTaskItems     pages GET {baseUrl}/rows?dataset=…&config=…&split=…&offset=…&length=… (≤100 rows each)
 *   loadTaskItems      the same through the IndexedDB cache (store/tasks.ts; browser; plain fetch elsewhere)
 *
 * Cache layout (lopper-tasks/tasks, see ../store/tasks.ts): for each task source id
 * `${task}|${dataset}|${config}|${split}|a${HUB_ADAPTER_VERSION}`
 *   [id, 'meta']  TaskCacheMeta: how many items are stored (count) and the split's revision
 *                 fingerprint (num_rows_total and the features the server reported)
 *   [id, i]       item i (McItem), i < count
 * Every page of rows is written with its meta in one transaction, so a full disk (or a
 * cancel, or a reload) keeps every item stored before. A later, larger request fetches only
 * rows count…limit-1; if the server then reports another num_rows_total or other features
 * (the dataset changed on the hub), the stored items are dropped and fetched again.
 */
import { LopperError } from '../errors';
import { isQuotaError, quotaError, RECORD_VERSION } from '../store/db';
import { idbTaskCache, type TaskCache, type TaskCacheMeta } from '../store/tasks';
import { spaced, type Choice, type McItem, type TaskName } from './tasks';

// ---------------------------------------------------------------------------------------
// Where each task lives on the hub

/** A split of a dataset on the hub, as the datasets server names it. */
export interface HubSource {
  /** repository id, e.g. "allenai/ai2_arc" */
  dataset: string;
  /** subset ("default" when the dataset has none) */
  config: string;
  split: string;
}

/**
 * lm-eval-harness's source for each task (lm_eval/tasks/…/*.yaml, v0.4.x: dataset_path,
 * dataset_name, the split it evaluates). All are parquet-backed, so the datasets server
 * serves them. PIQA: lm-eval moved from the script-based ybisk/piqa to the parquet copy
 * baber/piqa; the SuperGLUE tasks from `super_glue` to aps/super_glue.
 */
export const HUB_SOURCES: Record<TaskName, HubSource> = {
  piqa: { dataset: 'baber/piqa', config: 'default', split: 'validation' },
  arc_easy: { dataset: 'allenai/ai2_arc', config: 'ARC-Easy', split: 'test' },
  arc_challenge: { dataset: 'allenai/ai2_arc', config: 'ARC-Challenge', split: 'test' },
  boolq: { dataset: 'aps/super_glue', config: 'boolq', split: 'validation' },
  winogrande: { dataset: 'allenai/winogrande', config: 'winogrande_xl', split: 'validation' },
  copa: { dataset: 'aps/super_glue', config: 'copa', split: 'validation' },
  openbookqa: { dataset: 'allenai/openbookqa', config: 'main', split: 'test' },
  hellaswag: { dataset: 'Rowan/hellaswag', config: 'default', split: 'validation' },
};

/** The datasets server (CORS-enabled, no token needed for these public datasets). */
export const DATASETS_SERVER = 'https://datasets-server.huggingface.co';

/** The most rows /rows returns per request. */
export const MAX_PAGE_ROWS = 100;

/** Bumped whenever an adapter's output changes, so older cached items are not reused. */
export const HUB_ADAPTER_VERSION = 1;

// ---------------------------------------------------------------------------------------
// Rows → items (lm-eval-harness's prompts)

type Row = Record<string, unknown>;

function field(row: Row, key: string, where: string): unknown {
  if (!(key in row) || row[key] === null || row[key] === undefined) throw new LopperError('corrupt', `the row has no "${key}"`, where);
  return row[key];
}
function str(row: Row, key: string, where: string): string {
  const v = field(row, key, where);
  if (typeof v !== 'string') throw new LopperError('corrupt', `"${key}" is not a string`, where);
  return v;
}
function strList(v: unknown, key: string, where: string): string[] {
  if (!Array.isArray(v) || v.length < 2 || v.some((s) => typeof s !== 'string')) {
    throw new LopperError('corrupt', `"${key}" is not a list of at least two strings`, where);
  }
  return v as string[];
}
/** An integer label 0..n-1 (also given as a string "0".."n-1", as HellaSwag does). */
function indexLabel(row: Row, key: string, n: number, where: string): number {
  const v = field(row, key, where);
  const i = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= n) throw new LopperError('corrupt', `"${key}" is not a choice index 0..${n - 1}`, where);
  return i;
}
/** {text: [...], label: [...]} and the answer key's index among the labels (ARC, OpenBookQA). */
function labelledChoices(row: Row, answerKey: string, where: string): { texts: string[]; gold: number } {
  const c = field(row, 'choices', where) as { text?: unknown; label?: unknown };
  const texts = strList(c?.text, 'choices.text', where);
  const labels = strList(c?.label, 'choices.label', where);
  if (labels.length !== texts.length) throw new LopperError('corrupt', '"choices.text" and "choices.label" differ in length', where);
  const gold = labels.indexOf(answerKey);
  if (gold < 0) throw new LopperError('corrupt', `"answerKey" ${JSON.stringify(answerKey)} is not one of the labels ${labels.join(', ')}`, where);
  return { texts, gold };
}
const item = (context: string, texts: string[], gold: number): McItem => ({ choices: texts.map((t) => spaced(context, t)), gold });

/** Length in UTF-16 units of the first code point. */
const firstLen = (s: string) => ((s.codePointAt(0) ?? 0) > 0xffff ? 2 : 1);
/** Python's str.capitalize(): the first character upper case, the rest lower case. */
function pyCapitalize(s: string): string {
  return s.length === 0 ? s : s.slice(0, firstLen(s)).toUpperCase() + s.slice(firstLen(s)).toLowerCase();
}
/** lm-eval's COPA convert_choice: the first character lower case. */
const lowerFirst = (s: string) => (s.length === 0 ? s : s.slice(0, firstLen(s)).toLowerCase() + s.slice(firstLen(s)));

/** lm-eval's HellaSwag preprocess: WikiHow's " [title]" → ". ", other [tags] removed, double spaces halved. */
function hellaswagPreprocess(text: string): string {
  return text.trim().replace(/ \[title\]/g, '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

/**
 * One row of the task's hub dataset (schema of HUB_SOURCES[task]) as an McItem, with
 * lm-eval-harness's prompt. `where` names the row in errors (LopperError 'corrupt').
 *
 *   piqa        "Question: {goal}\nAnswer:" → " {sol1}" | " {sol2}", gold label
 *   arc_*       "Question: {question}\nAnswer:" → " {choices.text[i]}", gold choices.label.index(answerKey)
 *   boolq       "{passage}\nQuestion: {question}?\nAnswer:" → " no" | " yes", gold label
 *   winogrande  partial scoring: "{sentence before _}{option}" → " {sentence after _, stripped}", gold answer-1
 *   copa        "{premise without its last char} because|therefore" → " {choice, first letter lower case}"
 *   openbookqa  "{question_stem}" → " {choices.text[i]}", gold choices.label.index(answerKey.lstrip())
 *   hellaswag   preprocess("{activity_label}: {ctx_a} {ctx_b.capitalize()}") → " {preprocess(ending)}", gold int(label)
 */
export function hubRowToItem(task: TaskName, row: Row, where: string): McItem {
  switch (task) {
    case 'piqa': {
      const texts = [str(row, 'sol1', where), str(row, 'sol2', where)];
      return item(`Question: ${str(row, 'goal', where)}\nAnswer:`, texts, indexLabel(row, 'label', 2, where));
    }
    case 'arc_easy':
    case 'arc_challenge': {
      const { texts, gold } = labelledChoices(row, str(row, 'answerKey', where), where);
      return item(`Question: ${str(row, 'question', where)}\nAnswer:`, texts, gold);
    }
    case 'boolq': {
      // super_glue's 0/1 label; google/boolq's boolean "answer" also works (a `source` override)
      const gold = typeof row.answer === 'boolean' && !('label' in row) ? Number(row.answer) : indexLabel(row, 'label', 2, where);
      return item(`${str(row, 'passage', where)}\nQuestion: ${str(row, 'question', where)}?\nAnswer:`, ['no', 'yes'], gold);
    }
    case 'winogrande': {
      const sentence = str(row, 'sentence', where);
      const blank = sentence.indexOf('_');
      if (blank < 0) throw new LopperError('corrupt', '"sentence" has no "_" to fill', where);
      const answer = str(row, 'answer', where);
      if (answer !== '1' && answer !== '2') throw new LopperError('corrupt', `"answer" is ${JSON.stringify(answer)}, not "1" or "2"`, where);
      const target = sentence.slice(blank + 1).trim();
      const options = [str(row, 'option1', where), str(row, 'option2', where)];
      return { choices: options.map((o): Choice => spaced(sentence.slice(0, blank) + o, target)), gold: Number(answer) - 1 };
    }
    case 'copa': {
      const question = str(row, 'question', where);
      if (question !== 'cause' && question !== 'effect') throw new LopperError('corrupt', `"question" is ${JSON.stringify(question)}, not "cause" or "effect"`, where);
      const connector = question === 'cause' ? 'because' : 'therefore';
      const texts = [str(row, 'choice1', where), str(row, 'choice2', where)].map(lowerFirst);
      return item(`${str(row, 'premise', where).trim().slice(0, -1)} ${connector}`, texts, indexLabel(row, 'label', 2, where));
    }
    case 'openbookqa': {
      const { texts, gold } = labelledChoices(row, str(row, 'answerKey', where).replace(/^\s+/, ''), where);
      return item(str(row, 'question_stem', where), texts, gold);
    }
    case 'hellaswag': {
      const endings = strList(field(row, 'endings', where), 'endings', where);
      const ctx = `${str(row, 'ctx_a', where)} ${pyCapitalize(str(row, 'ctx_b', where))}`;
      const query = hellaswagPreprocess(`${str(row, 'activity_label', where)}: ${ctx}`);
      return item(query, endings.map(hellaswagPreprocess), indexLabel(row, 'label', endings.length, where));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Fetching from the datasets server

export interface TaskFetchProgress {
  task: TaskName;
  /** items ready (from the cache and fetched) */
  loaded: number;
  /** items there will be: min(limit, rows in the split) once the server said, else the limit or null */
  total: number | null;
}

export interface TaskFetchOptions {
  /** at most this many items (the first rows of the split); all when absent */
  limit?: number;
  /** the fetch to use (default: globalThis.fetch) */
  fetch?: typeof fetch;
  /** the datasets server (default DATASETS_SERVER) */
  baseUrl?: string;
  /** another split with the same schema (e.g. a mirror of the dataset) instead of HUB_SOURCES[task] */
  source?: HubSource;
  signal?: AbortSignal;
  onProgress?: (p: TaskFetchProgress) => void;
}

/** A page of items with what the server said about the split. */
interface Page {
  offset: number;
  items: McItem[];
  numRowsTotal: number;
  /** the split's features, as a string that changes when the dataset's schema does */
  fingerprint: string;
}

const sourceLabel = (s: HubSource) => `${s.dataset}/${s.config}/${s.split}`;

export function rowsUrl(baseUrl: string, source: HubSource, offset: number, length: number): string {
  const q = new URLSearchParams({ dataset: source.dataset, config: source.config, split: source.split, offset: String(offset), length: String(length) });
  return `${baseUrl.replace(/\/+$/, '')}/rows?${q}`;
}

const cancelled = (label: string) => new LopperError('cancelled', 'loading the task data was cancelled', label);
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** GET one /rows page → its rows, checked. */
async function getRows(url: string, opts: TaskFetchOptions, label: string): Promise<{ rows: { row_idx: number; row: Row; truncated_cells?: unknown }[]; numRowsTotal: number; fingerprint: string }> {
  const { signal } = opts;
  if (signal?.aborted) throw cancelled(label);
  const doFetch = opts.fetch ?? globalThis.fetch;
  let res: Response;
  try {
    res = await doFetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if (signal?.aborted) throw cancelled(label);
    throw new LopperError('network', `could not reach the datasets server (${errorText(e)}); check the connection and try again`, url);
  }
  if (!res.ok) {
    // The datasets server explains itself in {"error": "…"}.
    let detail = '';
    try {
      const body = (await res.json()) as { error?: unknown };
      if (typeof body?.error === 'string') detail = `: ${body.error.slice(0, 300)}`;
    } catch {
      // not JSON: the status says enough
    }
    if (signal?.aborted) throw cancelled(label);
    throw new LopperError('network', `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${detail}`, url);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch (e) {
    if (signal?.aborted) throw cancelled(label);
    throw new LopperError('corrupt', `the answer is not JSON (${errorText(e)})`, url);
  }
  const b = body as { rows?: unknown; num_rows_total?: unknown; features?: unknown };
  if (typeof b !== 'object' || b === null || !Array.isArray(b.rows) || !Number.isInteger(b.num_rows_total)) {
    throw new LopperError('corrupt', 'the answer has no "rows" list and "num_rows_total"', url);
  }
  const features = Array.isArray(b.features) ? b.features.map((f: { name?: unknown; type?: unknown }) => [f?.name, f?.type]) : [];
  return { rows: b.rows as { row_idx: number; row: Row }[], numRowsTotal: b.num_rows_total as number, fingerprint: JSON.stringify(features) };
}

/**
 * Rows from..limit-1 of the task's split (or to its end), one /rows request per ≤100 rows,
 * each page mapped to items and handed to onPage before the next request.
 */
async function fetchPages(task: TaskName, from: number, opts: TaskFetchOptions, onPage: (p: Page) => Promise<void> | void): Promise<void> {
  const source = opts.source ?? HUB_SOURCES[task];
  const label = sourceLabel(source);
  const limit = opts.limit ?? Infinity;
  const baseUrl = opts.baseUrl ?? DATASETS_SERVER;
  let offset = from;
  let total: number | null = null;
  while (offset < limit && (total === null || offset < total)) {
    const length = Math.min(MAX_PAGE_ROWS, limit - offset, total === null ? Infinity : total - offset);
    const url = rowsUrl(baseUrl, source, offset, length);
    const page = await getRows(url, opts, label);
    total = page.numRowsTotal;
    const rows = page.rows.slice(0, length);
    if (rows.length === 0) break; // past the end (or a server that says less than it counts)
    const items = rows.map((r, j) => {
      const idx = offset + j;
      const where = `${label} row ${idx}`;
      if (typeof r !== 'object' || r === null || r.row_idx !== idx) throw new LopperError('corrupt', `expected row ${idx} here, got ${JSON.stringify((r as { row_idx?: unknown })?.row_idx)}`, url);
      if (typeof r.row !== 'object' || r.row === null) throw new LopperError('corrupt', 'the row has no cells', where);
      if (Array.isArray(r.truncated_cells) && r.truncated_cells.length > 0) {
        throw new LopperError('corrupt', `the server truncated ${r.truncated_cells.join(', ')}`, where);
      }
      return hubRowToItem(task, r.row, where);
    });
    await onPage({ offset, items, numRowsTotal: page.numRowsTotal, fingerprint: page.fingerprint });
    offset += items.length;
  }
}

/**
 * The task's first `limit` items (all when absent) from the datasets server: /rows pages of
 * at most 100 rows, requested one after another. Errors (LopperError): 'network' (unreachable
 * or HTTP error; names the URL), 'corrupt' (an answer or a row that is not what the task
 * needs; names the row), 'cancelled' (signal).
 */
export async function fetchTaskItems(task: TaskName, opts: TaskFetchOptions = {}): Promise<McItem[]> {
  const items: McItem[] = [];
  const limit = opts.limit ?? Infinity;
  await fetchPages(task, 0, opts, (p) => {
    items.push(...p.items);
    opts.onProgress?.({ task, loaded: items.length, total: Math.min(limit, p.numRowsTotal) });
  });
  return items;
}

// ---------------------------------------------------------------------------------------
// The IndexedDB cache

/** The cache id of a task source (adapter version included: other adapters, other items). */
export const taskCacheId = (task: TaskName, source: HubSource = HUB_SOURCES[task]): string =>
  `${task}|${source.dataset}|${source.config}|${source.split}|a${HUB_ADAPTER_VERSION}`;

function validMeta(m: unknown, task: TaskName): m is TaskCacheMeta {
  const r = m as Partial<TaskCacheMeta> | null;
  return (
    typeof r === 'object' && r !== null && r.v === RECORD_VERSION && r.task === task &&
    Number.isInteger(r.count) && (r.count as number) >= 0 &&
    Number.isInteger(r.numRowsTotal) && (r.count as number) <= (r.numRowsTotal as number) &&
    typeof r.fingerprint === 'string'
  );
}
function validItem(x: unknown): x is McItem {
  const it = x as Partial<McItem> | undefined;
  return (
    typeof it === 'object' && it !== null && Array.isArray(it.choices) && Number.isInteger(it.gold) &&
    it.choices.every((c) => typeof c?.context === 'string' && typeof c.continuation === 'string' && typeof c.text === 'string')
  );
}

/** The split changed on the hub while items were being added: start again. */
class SourceChanged extends Error {}

const hasIndexedDB = () => typeof globalThis.indexedDB !== 'undefined';

export interface TaskLoadOptions extends TaskFetchOptions {
  /** where items are kept (default: IndexedDB) */
  cache?: TaskCache;
}

/**
 * The task's first `limit` items (all when absent), from the IndexedDB cache where it has
 * them: a second call with the same or a smaller limit makes no request; a larger limit
 * fetches only the rows not stored yet. Without IndexedDB (Node) it is fetchTaskItems.
 * Errors: fetchTaskItems's, and 'quota' when storage is full (the items stored before are kept).
 * A damaged cache entry is dropped and fetched again.
 */
export async function loadTaskItems(task: TaskName, opts: TaskLoadOptions = {}): Promise<McItem[]> {
  if (!opts.cache && !hasIndexedDB()) return fetchTaskItems(task, opts);
  const cache = opts.cache ?? idbTaskCache();
  const source = opts.source ?? HUB_SOURCES[task];
  const id = taskCacheId(task, source);
  const limit = opts.limit ?? Infinity;
  for (let attempt = 0; ; attempt++) {
    let meta = await readMeta(cache, id, task);
    let items: McItem[] = [];
    if (meta) {
      const stored = await cache.readItems(id, Math.min(meta.count, limit));
      if (stored.length === Math.min(meta.count, limit) && stored.every(validItem)) items = stored;
      else {
        await cache.drop(id);
        meta = undefined;
      }
    }
    const report = (total: number | null) => opts.onProgress?.({ task, loaded: items.length, total });
    if (meta && (meta.count >= limit || meta.count >= meta.numRowsTotal)) {
      report(items.length);
      return items;
    }
    report(meta ? Math.min(limit, meta.numRowsTotal) : Number.isFinite(limit) ? limit : null);
    try {
      await fetchPages(task, items.length, opts, async (p) => {
        if (meta && (p.numRowsTotal !== meta.numRowsTotal || p.fingerprint !== meta.fingerprint)) throw new SourceChanged();
        const next: TaskCacheMeta = {
          v: RECORD_VERSION,
          task,
          source,
          count: p.offset + p.items.length,
          numRowsTotal: p.numRowsTotal,
          fingerprint: p.fingerprint,
          label: `${task}: ${sourceLabel(source)}`,
          bytes: (meta?.bytes ?? 0) + approxBytes(p.items),
          updated: Date.now(),
        };
        try {
          await cache.append(id, p.offset, p.items, next);
        } catch (e) {
          if (!isQuotaError(e)) throw e;
          const kept = items.length > 0 ? `the ${items.length} ${task} items stored before are kept` : '';
          throw await quotaError(next.label, approxBytes(p.items), kept);
        }
        meta = next;
        items.push(...p.items);
        report(Math.min(limit, p.numRowsTotal));
      });
      return items;
    } catch (e) {
      if (!(e instanceof SourceChanged) || attempt > 0) throw e;
      await cache.drop(id); // the dataset changed on the hub: what is stored is from another revision
    }
  }
}

async function readMeta(cache: TaskCache, id: string, task: TaskName): Promise<TaskCacheMeta | undefined> {
  const m = await cache.getMeta(id);
  if (m === undefined) return undefined;
  if (validMeta(m, task)) return m;
  await cache.drop(id);
  return undefined;
}

/** Bytes a list of items takes, roughly (UTF-16 strings). */
function approxBytes(items: McItem[]): number {
  let n = 0;
  for (const it of items) for (const c of it.choices) n += 2 * (c.context.length + c.continuation.length + c.text.length) + 64;
  return n;
}
