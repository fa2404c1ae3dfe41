/**
 * Task data from the Hugging Face datasets server (src/engine/eval/hub.ts), against a real
 * node:http server on 127.0.0.1 that answers /rows the way datasets-server.huggingface.co
 * does. Its rows are in the hub's schema, built from the llm-foundry files in ../shared/data/qa
 * where that mapping is exact, so the items must equal parseFoundryJsonl's (BoolQ and COPA:
 * up to the two places where llm-foundry's prompt is not lm-eval-harness's, named below).
 * Each adapter is also checked on a hand-written hub row against lm-eval's exact prompt.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { lopper } from '../helpers/cli';
import {
  fetchTaskItems,
  HUB_SOURCES,
  hubRowToItem,
  loadTaskItems,
  MAX_PAGE_ROWS,
  type HubSource,
  type TaskFetchProgress,
} from '../../src/engine/eval/hub';
import { parseFoundryJsonl, TASK_SPECS, TASKS, type McItem, type TaskName } from '../../src/engine/eval/tasks';

const QA = fileURLToPath(new URL('../../../shared/data/qa/', import.meta.url));
type Row = Record<string, unknown>;
interface FoundryRow {
  query?: string;
  choices?: string[];
  context_options?: string[];
  continuation?: string;
  gold: number;
}
const foundryText = (task: TaskName) => readFileSync(QA + TASK_SPECS[task].localFile, 'utf8');
const foundryRows = (task: TaskName): FoundryRow[] =>
  foundryText(task)
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

// --- llm-foundry rows → the hub's rows ------------------------------------------------------
const LETTERS = ['A', 'B', 'C', 'D', 'E'];
const commonPrefix = (a: string, b: string) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return a.slice(0, i);
};
const upperFirst = (s: string) => s[0].toUpperCase() + s.slice(1);

/** A hub row (the schema of HUB_SOURCES[task]) carrying the same item as llm-foundry's row i. */
function toHubRow(task: TaskName, r: FoundryRow, i: number): Row {
  const q = r.query ?? '';
  const c = r.choices ?? [];
  switch (task) {
    case 'arc_easy':
    case 'arc_challenge': {
      // ARC's labels are "A".."E" for most rows and "1".."4" for some: use both.
      const label = i % 7 === 3 ? c.map((_, j) => String(j + 1)) : LETTERS.slice(0, c.length);
      return { id: `arc-${i}`, question: q.slice('Question: '.length), choices: { text: c, label }, answerKey: label[r.gold] };
    }
    case 'openbookqa':
      return { id: `obqa-${i}`, question_stem: q, choices: { text: c, label: LETTERS.slice(0, c.length) }, answerKey: LETTERS[r.gold] };
    case 'piqa':
      // llm-foundry: "Question: {goal}\n"
      return { goal: q.slice('Question: '.length).trimEnd(), sol1: c[0], sol2: c[1], label: r.gold };
    case 'boolq': {
      // llm-foundry: "Passage: {passage}\nQuestion: {question}?"
      const at = q.lastIndexOf('\nQuestion: ');
      const question = q.slice(at + '\nQuestion: '.length);
      expect(question.endsWith('?')).toBe(true);
      return { question: question.slice(0, -1), passage: q.slice('Passage: '.length, at), idx: i, label: r.gold };
    }
    case 'winogrande': {
      const [a, b] = r.context_options!;
      const before = commonPrefix(a, b);
      return { sentence: `${before}_ ${r.continuation}`, option1: a.slice(before.length), option2: b.slice(before.length), answer: String(r.gold + 1) };
    }
    case 'copa': {
      // llm-foundry: "{premise without its period}, because|therefore"; choices with a lower-case first letter
      const m = /^(.*), (because|therefore)$/s.exec(q)!;
      return { premise: `${m[1]}.`, choice1: upperFirst(c[0]), choice2: upperFirst(c[1]), question: m[2] === 'because' ? 'cause' : 'effect', idx: i, label: r.gold };
    }
    case 'hellaswag': {
      // "{activity_label}: {ctx}"; an empty ctx_b leaves a trailing space that lm-eval's preprocess strips
      const at = q.indexOf(': ');
      return { ind: i, activity_label: q.slice(0, at), ctx_a: q.slice(at + 2), ctx_b: '', endings: c, label: String(r.gold) };
    }
  }
}

/**
 * parseFoundryJsonl's items as lm-eval-harness prompts them. Two tasks differ:
 * BoolQ (llm-foundry puts "Passage: " before the passage) and COPA (llm-foundry writes
 * "…, therefore", lm-eval "… therefore").
 */
function expectedItems(task: TaskName): McItem[] {
  const items = parseFoundryJsonl(task, foundryText(task), TASK_SPECS[task].localFile);
  const fix = (ctx: string) =>
    task === 'boolq' ? ctx.replace(/^Passage: /, '') : task === 'copa' ? ctx.replace(/, (because|therefore)$/, ' $1') : ctx;
  return items.map((it) => ({ ...it, choices: it.choices.map((ch) => ({ ...ch, context: fix(ch.context) })) }));
}

// --- a datasets server ----------------------------------------------------------------------
interface Split {
  rows: Row[];
  /** answer every /rows request for this split with this status and body */
  status?: number;
  body?: string;
  /** hold each answer this long (ms) */
  delayMs?: number;
  /** answer 503 from this offset on */
  failFrom?: number;
  /** cells reported as truncated, by row index */
  truncated?: Record<number, string[]>;
}
const splits = new Map<string, Split>();
const splitKey = (s: HubSource) => `${s.dataset}|${s.config}|${s.split}`;
interface Seen {
  dataset: string;
  config: string;
  split: string;
  offset: number;
  length: number;
}
let seen: Seen[] = [];
let server: Server;
let base: string;

function features(rows: Row[]) {
  const type = (v: unknown) => (typeof v === 'string' ? { dtype: 'string', _type: 'Value' } : typeof v === 'number' ? { dtype: 'int64', _type: 'Value' } : { _type: 'Sequence' });
  return Object.entries(rows[0] ?? {}).map(([name, v], feature_idx) => ({ feature_idx, name, type: type(v) }));
}

function answer(url: URL): { status: number; body: string; delayMs?: number } {
  if (url.pathname !== '/rows') return { status: 404, body: JSON.stringify({ error: 'Not Found' }) };
  const p = url.searchParams;
  const q = { dataset: p.get('dataset') ?? '', config: p.get('config') ?? '', split: p.get('split') ?? '' };
  const offset = Number(p.get('offset') ?? 0);
  const length = Number(p.get('length') ?? 100);
  seen.push({ ...q, offset, length });
  const s = splits.get(splitKey(q));
  if (!s) return { status: 404, body: JSON.stringify({ error: 'The dataset does not exist, or is not accessible without authentication (private or gated). Please check the spelling of the dataset name or retry with authentication.' }) };
  if (s.status) return { status: s.status, body: s.body ?? '', delayMs: s.delayMs };
  if (s.failFrom !== undefined && offset >= s.failFrom) return { status: 503, body: JSON.stringify({ error: 'The server is busy.' }) };
  if (!(length >= 1 && length <= MAX_PAGE_ROWS)) return { status: 422, body: JSON.stringify({ error: "Parameter 'length' must be between 1 and 100" }) };
  const rows = s.rows.slice(offset, offset + length).map((row, j) => ({ row_idx: offset + j, row, truncated_cells: s.truncated?.[offset + j] ?? [] }));
  return {
    status: 200,
    body: JSON.stringify({ features: features(s.rows), rows, num_rows_total: s.rows.length, num_rows_per_page: 100, partial: false }),
    delayMs: s.delayMs,
  };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const a = answer(new URL(req.url ?? '/', 'http://x'));
    const send = () => {
      res.statusCode = a.status;
      res.setHeader('Content-Type', 'application/json');
      res.end(a.body);
    };
    if (a.delayMs) setTimeout(send, a.delayMs);
    else send();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (const task of TASKS) splits.set(splitKey(HUB_SOURCES[task]), { rows: foundryRows(task).map((r, i) => toHubRow(task, r, i)) });
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
});
beforeEach(() => {
  seen = [];
});

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => {
      expect(e).toBeInstanceOf(LopperError);
      return e as LopperError;
    },
  );
/** A split of its own for one test (any task's schema). */
function serve(dataset: string, split: Split): HubSource {
  const source = { dataset, config: 'default', split: 'validation' };
  splits.set(splitKey(source), split);
  return source;
}
const arcRows = () => splits.get(splitKey(HUB_SOURCES.arc_easy))!.rows;

// --- the adapters, one hand-written hub row each ------------------------------------------
describe('hub rows → items with lm-eval-harness prompts', () => {
  const W = 'test row';
  const contexts = (it: McItem) => it.choices.map((c) => c.context);
  const continuations = (it: McItem) => it.choices.map((c) => c.continuation);

  test('piqa (baber/piqa): "Question: {goal}\\nAnswer:"', () => {
    const it = hubRowToItem('piqa', { goal: "When boiling butter, when it's ready, you can", sol1: 'Pour it onto a plate', sol2: 'Pour it into a jar', label: 1 }, W);
    expect(it).toEqual({
      choices: [
        { context: "Question: When boiling butter, when it's ready, you can\nAnswer:", continuation: ' Pour it onto a plate', text: 'Pour it onto a plate' },
        { context: "Question: When boiling butter, when it's ready, you can\nAnswer:", continuation: ' Pour it into a jar', text: 'Pour it into a jar' },
      ],
      gold: 1,
    });
  });

  test('arc (allenai/ai2_arc): "Question: {question}\\nAnswer:", answerKey among letters or digits', () => {
    const row = {
      id: 'Mercury_7175875',
      question: 'An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?',
      choices: { text: ['Planetary density will decrease.', 'Planetary years will become longer.', 'Planetary days will become shorter.', 'Planetary gravity will become stronger.'], label: ['A', 'B', 'C', 'D'] },
      answerKey: 'C',
    };
    const it = hubRowToItem('arc_challenge', row, W);
    expect(contexts(it)).toEqual(Array(4).fill('Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?\nAnswer:'));
    expect(continuations(it)).toEqual([' Planetary density will decrease.', ' Planetary years will become longer.', ' Planetary days will become shorter.', ' Planetary gravity will become stronger.']);
    expect(it.choices[2].text).toBe('Planetary days will become shorter.');
    expect(it.gold).toBe(2);
    const digits = hubRowToItem('arc_easy', { ...row, choices: { text: ['a', 'b', 'c'], label: ['1', '2', '3'] }, answerKey: '3' }, W);
    expect(digits.gold).toBe(2);
    expect(continuations(digits)).toEqual([' a', ' b', ' c']);
  });

  test('boolq (aps/super_glue boolq): "{passage}\\nQuestion: {question}?\\nAnswer:" → no / yes', () => {
    const it = hubRowToItem('boolq', { question: 'is house tax and property tax are same', passage: "Property tax or 'house tax' is a local tax on buildings.", idx: 1, label: 1 }, W);
    expect(it).toEqual({
      choices: [
        { context: "Property tax or 'house tax' is a local tax on buildings.\nQuestion: is house tax and property tax are same?\nAnswer:", continuation: ' no', text: 'no' },
        { context: "Property tax or 'house tax' is a local tax on buildings.\nQuestion: is house tax and property tax are same?\nAnswer:", continuation: ' yes', text: 'yes' },
      ],
      gold: 1,
    });
    // google/boolq's boolean "answer" (a source override) maps the same way
    expect(hubRowToItem('boolq', { question: 'q', answer: false, passage: 'p' }, W).gold).toBe(0);
  });

  test('winogrande (allenai/winogrande xl): partial scoring around "_"', () => {
    const it = hubRowToItem('winogrande', { sentence: 'Sarah was a much better surgeon than Maria so _ always got the harder cases.', option1: 'Sarah', option2: 'Maria', answer: '1' }, W);
    expect(it).toEqual({
      choices: [
        { context: 'Sarah was a much better surgeon than Maria so Sarah', continuation: ' always got the harder cases.', text: 'always got the harder cases.' },
        { context: 'Sarah was a much better surgeon than Maria so Maria', continuation: ' always got the harder cases.', text: 'always got the harder cases.' },
      ],
      gold: 0,
    });
    // the rest after "_" is stripped; lm-eval's delimiter adds one space back
    const tight = hubRowToItem('winogrande', { sentence: "The bag was heavier than the box because the _'s  contents were rocks. ", option1: 'bag', option2: 'box', answer: '2' }, W);
    expect(contexts(tight)).toEqual(['The bag was heavier than the box because the bag', 'The bag was heavier than the box because the box']);
    expect(continuations(tight)).toEqual([" 's  contents were rocks.", " 's  contents were rocks."]);
    expect(tight.gold).toBe(1);
  });

  test('copa (aps/super_glue copa): premise without its period + " because"/" therefore", choices lower-cased first letter', () => {
    const it = hubRowToItem('copa', { premise: 'My body cast a shadow over the grass.', choice1: 'The sun was rising.', choice2: 'The grass was cut.', question: 'cause', idx: 0, label: 0 }, W);
    expect(it).toEqual({
      choices: [
        { context: 'My body cast a shadow over the grass because', continuation: ' the sun was rising.', text: 'the sun was rising.' },
        { context: 'My body cast a shadow over the grass because', continuation: ' the grass was cut.', text: 'the grass was cut.' },
      ],
      gold: 0,
    });
    const effect = hubRowToItem('copa', { premise: ' The man turned on the faucet. ', choice1: 'The toilet filled with water.', choice2: 'Water flowed from the spout.', question: 'effect', idx: 1, label: 1 }, W);
    expect(contexts(effect)).toEqual(['The man turned on the faucet therefore', 'The man turned on the faucet therefore']);
    expect(continuations(effect)).toEqual([' the toilet filled with water.', ' water flowed from the spout.']);
    expect(effect.gold).toBe(1);
  });

  test('openbookqa (allenai/openbookqa main): the question stem alone', () => {
    const row = {
      id: '7-980',
      question_stem: 'The sun is responsible for',
      choices: { text: ['puppies learning new tricks', 'children growing up and getting old', 'flowers wilting in a vase', 'plants sprouting, blooming and wilting'], label: ['A', 'B', 'C', 'D'] },
      answerKey: 'D',
    };
    const it = hubRowToItem('openbookqa', row, W);
    expect(contexts(it)).toEqual(Array(4).fill('The sun is responsible for'));
    expect(continuations(it)).toEqual([' puppies learning new tricks', ' children growing up and getting old', ' flowers wilting in a vase', ' plants sprouting, blooming and wilting']);
    expect(it.gold).toBe(3);
    expect(hubRowToItem('openbookqa', { ...row, answerKey: ' B' }, W).gold).toBe(1); // lm-eval: answerKey.lstrip()
  });

  test('hellaswag (Rowan/hellaswag): lm-eval preprocess of "{activity_label}: {ctx_a} {ctx_b.capitalize()}"', () => {
    const it = hubRowToItem(
      'hellaswag',
      {
        ind: 24,
        activity_label: 'Roof shingle removal',
        ctx_a: 'A man is sitting on a roof.',
        ctx_b: 'he',
        ctx: 'A man is sitting on a roof. he',
        endings: ['is using wrap to wrap a pair of skis.', 'is ripping level tiles off.', "is holding a rubik's cube.", 'starts pulling up roofing on a roof.'],
        source_id: 'activitynet~v_-JhWjGDPHMY',
        split: 'val',
        split_type: 'indomain',
        label: '3',
      },
      W,
    );
    expect(contexts(it)).toEqual(Array(4).fill('Roof shingle removal: A man is sitting on a roof. He'));
    expect(continuations(it)).toEqual([' is using wrap to wrap a pair of skis.', ' is ripping level tiles off.', " is holding a rubik's cube.", ' starts pulling up roofing on a roof.']);
    expect(it.gold).toBe(3);

    // WikiHow rows: " [title]" → ". ", other [tags] dropped, double spaces halved (one pass, as
    // Python's str.replace: three spaces become two); capitalize() lowers the rest of ctx_b
    const wiki = hubRowToItem(
      'hellaswag',
      {
        activity_label: 'Personal Care and Style',
        ctx_a: '[header] How to dye your hair [title] Buy the dye. [step] Pick a shade.',
        ctx_b: 'mAKE sure',
        endings: [' you read the box  [substeps] twice. ', 'you [title] rinse it.', 'x', 'y'],
        label: '0',
      },
      W,
    );
    expect(wiki.choices[0].context).toBe('Personal Care and Style: How to dye your hair. Buy the dye. Pick a shade. Make sure');
    expect(continuations(wiki)).toEqual([' you read the box  twice.', ' you. rinse it.', ' x', ' y']);
    expect(wiki.gold).toBe(0);
  });

  test('a row without a field the task needs is corrupt, naming the row', () => {
    const cases: [TaskName, Row, string][] = [
      ['piqa', { goal: 'g', sol1: 'a', label: 0 }, '"sol2"'],
      ['arc_easy', { question: 'q', choices: { text: ['a', 'b'], label: ['A', 'B'] }, answerKey: 'C' }, '"answerKey" "C"'],
      ['arc_easy', { question: 'q', choices: { text: ['a', 'b'] }, answerKey: 'A' }, '"choices.label"'],
      ['boolq', { question: 'q', passage: 'p', label: 2 }, '"label"'],
      ['winogrande', { sentence: 'no blank', option1: 'a', option2: 'b', answer: '1' }, '"_"'],
      ['winogrande', { sentence: 'a _ b', option1: 'a', option2: 'b', answer: '' }, '"answer"'],
      ['copa', { premise: 'p.', choice1: 'a', choice2: 'b', question: 'why', label: 0 }, '"question"'],
      ['openbookqa', { choices: { text: ['a', 'b'], label: ['A', 'B'] }, answerKey: 'A' }, '"question_stem"'],
      ['hellaswag', { activity_label: 'x', ctx_a: 'a', ctx_b: 'b', endings: ['a', 'b'], label: '' }, '"label"'],
    ];
    for (const [task, row, fragment] of cases) {
      let err: unknown;
      try {
        hubRowToItem(task, row, 'some/dataset row 7');
      } catch (e) {
        err = e;
      }
      expect(err, task).toBeInstanceOf(LopperError);
      expect((err as LopperError).code).toBe('corrupt');
      expect((err as LopperError).message).toContain('some/dataset row 7');
      expect((err as LopperError).message).toContain(fragment);
    }
  });
});

// --- fetching -----------------------------------------------------------------------------
describe('fetchTaskItems against a datasets server', () => {
  test.each(TASKS)('%s: every row of the split, the same items as the llm-foundry file', async (task) => {
    const expected = expectedItems(task);
    const items = await fetchTaskItems(task, { baseUrl: base });
    expect(items.length).toBe(expected.length);
    expect(items).toEqual(expected);
    const src = HUB_SOURCES[task];
    expect(seen.length).toBe(Math.ceil(expected.length / MAX_PAGE_ROWS));
    expect(seen.every((s) => s.dataset === src.dataset && s.config === src.config && s.split === src.split && s.length <= MAX_PAGE_ROWS)).toBe(true);
    expect(seen.map((s) => s.offset)).toEqual(seen.map((_, i) => i * MAX_PAGE_ROWS));
  });

  test('limit 250: three requests of at most 100 rows, 250 items, progress after each page', async () => {
    const events: TaskFetchProgress[] = [];
    const items = await fetchTaskItems('arc_easy', { baseUrl: base, limit: 250, onProgress: (p) => events.push(p) });
    expect(items).toEqual(expectedItems('arc_easy').slice(0, 250));
    expect(seen.map((s) => [s.offset, s.length])).toEqual([
      [0, 100],
      [100, 100],
      [200, 50],
    ]);
    expect(events).toEqual([100, 200, 250].map((loaded) => ({ task: 'arc_easy', loaded, total: 250 })));
  });

  test('a limit past the end gives every row, asking only for rows that exist; limit 0 asks nothing', async () => {
    const items = await fetchTaskItems('copa', { baseUrl: base, limit: 1000 });
    expect(items.length).toBe(100);
    expect(seen.map((s) => [s.offset, s.length])).toEqual([[0, 100]]);
    seen = [];
    const obqa = await fetchTaskItems('openbookqa', { baseUrl: base, limit: 1000 });
    expect(obqa.length).toBe(500);
    expect(seen.map((s) => s.offset)).toEqual([0, 100, 200, 300, 400]);
    seen = [];
    expect(await fetchTaskItems('piqa', { baseUrl: base, limit: 0 })).toEqual([]);
    expect(seen).toEqual([]);
    expect(await fetchTaskItems('piqa', { baseUrl: base, limit: 7 })).toEqual(expectedItems('piqa').slice(0, 7));
    expect(seen.map((s) => [s.offset, s.length])).toEqual([[0, 7]]);
  });

  test('a source override reads another split with the same schema', async () => {
    const source = serve('mirror/arc', { rows: arcRows().slice(10, 15) });
    expect(await fetchTaskItems('arc_easy', { baseUrl: base + '/', source })).toEqual(expectedItems('arc_easy').slice(10, 15));
  });

  test('HTTP 500 and 404 are network errors naming the URL and the status', async () => {
    const source = serve('broken/500', { rows: [], status: 500, body: JSON.stringify({ error: 'Unexpected error.' }) });
    const e500 = await rejection(fetchTaskItems('copa', { baseUrl: base, source }));
    expect(e500.code).toBe('network');
    expect(e500.message).toContain(`${base}/rows?dataset=broken%2F500&config=default&split=validation&offset=0&length=100`);
    expect(e500.message).toContain('HTTP 500');
    expect(e500.message).toContain('Unexpected error.');

    const e404 = await rejection(fetchTaskItems('copa', { baseUrl: base, source: { dataset: 'nobody/nothing', config: 'x', split: 'test' }, limit: 5 }));
    expect(e404.code).toBe('network');
    expect(e404.message).toContain('HTTP 404');
    expect(e404.message).toContain(`${base}/rows?dataset=nobody%2Fnothing&config=x&split=test&offset=0&length=5`);
    expect(e404.message).toContain('The dataset does not exist');

    // an error on a later page: the same, for that page's URL
    seen = [];
    const late = serve('broken/later', { rows: arcRows().slice(0, 150), failFrom: 100 });
    const e = await rejection(fetchTaskItems('arc_easy', { baseUrl: base, source: late }));
    expect(e.code).toBe('network');
    expect(e.message).toContain(`${base}/rows?dataset=broken%2Flater&config=default&split=validation&offset=100&length=50: HTTP 503`);
    expect(seen.map((s) => s.offset)).toEqual([0, 100]);
  });

  test('an unreachable server is a network error naming the URL', async () => {
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((ok) => closed.close(() => ok()));
    const err = await rejection(fetchTaskItems('piqa', { baseUrl: `http://127.0.0.1:${port}`, limit: 3 }));
    expect(err.code).toBe('network');
    expect(err.message).toContain(`http://127.0.0.1:${port}/rows?dataset=baber%2Fpiqa`);
  });

  test('a malformed row is corrupt, naming the dataset and the row; so is a truncated cell or an answer that is not JSON', async () => {
    const rows = arcRows().slice(0, 180).map((r) => ({ ...r }));
    delete rows[153].question;
    const source = serve('bad/row', { rows });
    const err = await rejection(fetchTaskItems('arc_easy', { baseUrl: base, source }));
    expect(err.code).toBe('corrupt');
    expect(err.message).toBe('bad/row/default/validation row 153: the row has no "question"');
    expect(seen.map((s) => s.offset)).toEqual([0, 100]);

    const cut = serve('bad/truncated', { rows: arcRows().slice(0, 5), truncated: { 3: ['question'] } });
    const t = await rejection(fetchTaskItems('arc_easy', { baseUrl: base, source: cut }));
    expect(t.code).toBe('corrupt');
    expect(t.message).toContain('row 3: the server truncated question');

    const html = serve('bad/html', { rows: [], status: 200, body: '<html>maintenance</html>' });
    const h = await rejection(fetchTaskItems('arc_easy', { baseUrl: base, source: html }));
    expect(h.code).toBe('corrupt');
    expect(h.message).toContain('/rows?dataset=bad%2Fhtml');
    expect(h.message).toContain('not JSON');
  });

  test('abort: cancelled, before a request, between pages and during one', async () => {
    const before = new AbortController();
    before.abort();
    expect((await rejection(fetchTaskItems('arc_easy', { baseUrl: base, signal: before.signal }))).code).toBe('cancelled');
    expect(seen).toEqual([]);

    const between = new AbortController();
    const err = await rejection(fetchTaskItems('arc_easy', { baseUrl: base, signal: between.signal, onProgress: (p) => p.loaded >= 200 && between.abort() }));
    expect(err.code).toBe('cancelled');
    expect(seen.map((s) => s.offset)).toEqual([0, 100]);

    seen = [];
    const source = serve('slow/rows', { rows: arcRows().slice(0, 300), delayMs: 400 });
    const during = new AbortController();
    setTimeout(() => during.abort(), 100);
    const t0 = Date.now();
    const e = await rejection(fetchTaskItems('arc_easy', { baseUrl: base, source, signal: during.signal }));
    expect(e.code).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(400);
    expect(seen.length).toBe(1);
  });

  test('loadTaskItems without IndexedDB (Node) fetches', async () => {
    expect(typeof globalThis.indexedDB).toBe('undefined');
    expect(await loadTaskItems('winogrande', { baseUrl: base, limit: 120 })).toEqual(expectedItems('winogrande').slice(0, 120));
    expect(seen.length).toBe(2);
  });
});

// --- the CLI: lopper eval --data hub -----------------------------------------------------------
describe('lopper eval --data hub', () => {
  test('scores the items the datasets server gives exactly as the same items from the local files', async () => {
    const args = ['eval', '--model', '../shared/models/stories260K/stories260K.bin', '--task', 'arc_easy,winogrande', '--limit', '30', '--json'];
    const hub = await lopper(...args, '--data', 'hub', '--datasets-server', base);
    const local = await lopper(...args, '--data', QA);
    expect(hub.code).toBe(0);
    expect(local.code).toBe(0);
    expect(JSON.parse(hub.stdout).results).toEqual(JSON.parse(local.stdout).results);
    expect(seen.map((s) => [s.dataset, s.offset, s.length])).toEqual([
      ['allenai/ai2_arc', 0, 30],
      ['allenai/winogrande', 0, 30],
    ]);
    const down = await lopper(...args, '--data', 'hub', '--datasets-server', 'http://127.0.0.1:9');
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('127.0.0.1:9');
  });
});
