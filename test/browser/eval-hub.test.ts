/**
 * The task-data cache (src/engine/eval/hub.ts loadTaskItems) in real Chromium with real
 * IndexedDB, against the stand-in datasets server on the Vitest server (vitest.config.ts:
 * /__datasets-server/rows, fed here with hub-schema rows built from ../shared/data/qa, and
 * /__datasets-server/log, which counts the requests at the server).
 */
import { get, keys, set } from 'idb-keyval';
import { beforeEach, describe, expect, it } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { HUB_SOURCES, loadTaskItems, taskCacheId, type TaskFetchProgress } from '../../src/engine/eval/hub';
import { clearTaskCache, idbTaskCache, type TaskCache } from '../../src/engine/store/tasks';
import { parseFoundryJsonl, TASK_SPECS, type McItem, type TaskName } from '../../src/engine/eval/tasks';
import { tasksStore } from '../../src/engine/store/db';
import { deleteAllStored, deleteStored, listStored } from '../../src/engine/store/cache';

const BASE = '/__datasets-server';
type Row = Record<string, unknown>;
const LETTERS = ['A', 'B', 'C', 'D', 'E'];

/** Hub rows (ARC, OpenBookQA schema) built from llm-foundry's rows; the items are parseFoundryJsonl's exactly. */
function hubRows(task: 'arc_easy' | 'openbookqa', text: string): Row[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      const r = JSON.parse(l) as { query: string; choices: string[]; gold: number };
      const choices = { text: r.choices, label: LETTERS.slice(0, r.choices.length) };
      return task === 'arc_easy'
        ? { id: `arc-${i}`, question: r.query.slice('Question: '.length), choices, answerKey: LETTERS[r.gold] }
        : { id: `obqa-${i}`, question_stem: r.query, choices, answerKey: LETTERS[r.gold] };
    });
}

async function serveRows(task: TaskName, rows: Row[]): Promise<void> {
  const r = await fetch(`${BASE}/fixture`, { method: 'POST', body: JSON.stringify({ ...HUB_SOURCES[task], rows }) });
  expect(r.ok).toBe(true);
}
/** The /rows requests the server saw since the last call, as [offset, length]. */
async function requests(): Promise<[number, number][]> {
  const log = (await (await fetch(`${BASE}/log`)).json()) as { offset: string; length: string }[];
  return log.map((r) => [Number(r.offset), Number(r.length)]);
}

const fixtures = new Map<TaskName, { text: string; rows: Row[]; items: McItem[] }>();
async function fixture(task: 'arc_easy' | 'openbookqa') {
  if (!fixtures.has(task)) {
    const file = TASK_SPECS[task].localFile;
    const text = await (await fetch(`${__LOPPER_SHARED_FS__}/data/qa/${file}`)).text();
    fixtures.set(task, { text, rows: hubRows(task, text), items: parseFoundryJsonl(task, text, file) });
  }
  const f = fixtures.get(task)!;
  await serveRows(task, f.rows);
  return f;
}

async function rejection(p: Promise<unknown>): Promise<LopperError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(LopperError);
  return e as LopperError;
}
const stored = async () => (await keys<IDBValidKey>(tasksStore())).length;
const load = (task: TaskName, limit?: number, more: Parameters<typeof loadTaskItems>[1] = {}) => loadTaskItems(task, { baseUrl: BASE, limit, ...more });

beforeEach(async () => {
  await clearTaskCache();
  await requests();
});

describe('loadTaskItems: the IndexedDB cache of hub task data', () => {
  it('makes no request the second time or for fewer items; a larger limit fetches only the rest', async () => {
    const { items } = await fixture('arc_easy');
    expect(await load('arc_easy', 150)).toEqual(items.slice(0, 150));
    expect(await requests()).toEqual([
      [0, 100],
      [100, 50],
    ]);

    expect(await load('arc_easy', 150)).toEqual(items.slice(0, 150));
    expect(await load('arc_easy', 120)).toEqual(items.slice(0, 120));
    expect(await requests()).toEqual([]);

    const events: TaskFetchProgress[] = [];
    expect(await load('arc_easy', 250, { onProgress: (p) => events.push(p) })).toEqual(items.slice(0, 250));
    expect(await requests()).toEqual([[150, 100]]);
    expect(events.map((e) => [e.loaded, e.total])).toEqual([
      [150, 250],
      [250, 250],
    ]);
    expect(await load('arc_easy', 230)).toEqual(items.slice(0, 230));
    expect(await requests()).toEqual([]);

    // What is stored: 250 items and their meta.
    const meta = (await get([taskCacheId('arc_easy'), 'meta'], tasksStore())) as { count: number; numRowsTotal: number };
    expect([meta.count, meta.numRowsTotal]).toEqual([250, items.length]);
    expect(await stored()).toBe(251);
  });

  it('the storage panel lists stored task data and deletes it', async () => {
    await fixture('openbookqa');
    await load('openbookqa', 40);
    const listed = (await listStored()).filter((i) => i.kind === 'tasks');
    expect(listed).toHaveLength(1);
    expect(listed[0].label).toContain('openbookqa');
    expect(listed[0].label).toContain('(40 items)');
    expect(listed[0].bytes).toBeGreaterThan(1000);
    await deleteStored(listed[0].key);
    expect(await stored()).toBe(0);
    await load('openbookqa', 10);
    await deleteAllStored();
    expect(await stored()).toBe(0);
  });

  it('without a limit: the whole split once, then nothing (a limit past the end neither)', async () => {
    const { items } = await fixture('openbookqa');
    expect(await load('openbookqa')).toEqual(items);
    expect((await requests()).map(([o]) => o)).toEqual([0, 100, 200, 300, 400]);
    expect(await load('openbookqa')).toEqual(items);
    expect(await load('openbookqa', 10_000)).toEqual(items);
    expect(await requests()).toEqual([]);
  });

  it('clearTaskCache empties the cache (one task or all), and the next load fetches again', async () => {
    const arc = await fixture('arc_easy');
    const obqa = await fixture('openbookqa');
    await load('arc_easy', 30);
    await load('openbookqa', 20);
    await requests();
    expect(await stored()).toBe(30 + 1 + 20 + 1);

    await clearTaskCache('openbookqa');
    expect(await stored()).toBe(31);
    expect(await load('arc_easy', 30)).toEqual(arc.items.slice(0, 30));
    expect(await requests()).toEqual([]);
    expect(await load('openbookqa', 20)).toEqual(obqa.items.slice(0, 20));
    expect(await requests()).toEqual([[0, 20]]);

    await clearTaskCache();
    expect(await stored()).toBe(0);
    expect(await load('arc_easy', 30)).toEqual(arc.items.slice(0, 30));
    expect(await requests()).toEqual([[0, 30]]);
  });

  it('a full disk (QuotaExceededError) is a quota error; the items stored before are kept', async () => {
    const { items } = await fixture('arc_easy');
    const real = idbTaskCache();
    let appends = 0;
    const filling: TaskCache = {
      ...real,
      append: (...args) => {
        if (++appends > 1) return Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
        return real.append(...args);
      },
    };
    const err = await rejection(load('arc_easy', 300, { cache: filling }));
    expect(err.code).toBe('quota');
    expect(err.message).toContain('storage panel');
    expect(err.message).toContain('the 100 arc_easy items stored before are kept');
    expect(await requests()).toEqual([
      [0, 100],
      [100, 100],
    ]);

    expect(await load('arc_easy', 100)).toEqual(items.slice(0, 100));
    expect(await requests()).toEqual([]);
    expect(await load('arc_easy', 300)).toEqual(items.slice(0, 300));
    expect(await requests()).toEqual([
      [100, 100],
      [200, 100],
    ]);
  });

  it('a cancel keeps the pages already stored', async () => {
    const { items } = await fixture('arc_easy');
    const ac = new AbortController();
    const err = await rejection(load('arc_easy', 400, { signal: ac.signal, onProgress: (p) => p.loaded >= 200 && ac.abort() }));
    expect(err.code).toBe('cancelled');
    expect(await requests()).toEqual([
      [0, 100],
      [100, 100],
    ]);
    expect(await load('arc_easy', 200)).toEqual(items.slice(0, 200));
    expect(await requests()).toEqual([]);
  });

  it('when the split changed on the hub (another row count), the stored items are dropped and fetched again', async () => {
    const { rows } = await fixture('arc_easy');
    await load('arc_easy', 150);
    await requests();

    // A new revision: one row fewer at the front, so every index holds another row.
    const changed = rows.slice(1);
    await serveRows('arc_easy', changed);
    const expected = parseFoundryJsonl('arc_easy', fixtures.get('arc_easy')!.text.split('\n').slice(1).join('\n'), 'x').slice(0, 250);
    expect(await load('arc_easy', 250)).toEqual(expected);
    expect(await requests()).toEqual([
      [150, 100], // the page that shows the change
      [0, 100],
      [100, 100],
      [200, 50],
    ]);
    await serveRows('arc_easy', rows);
  });

  it('a damaged entry is dropped and fetched again', async () => {
    const { items } = await fixture('arc_easy');
    await load('arc_easy', 50);
    const id = taskCacheId('arc_easy');
    await set([id, 7], { choices: 'not a list', gold: 0 }, tasksStore());
    await requests();
    expect(await load('arc_easy', 50)).toEqual(items.slice(0, 50));
    expect(await requests()).toEqual([[0, 50]]);

    await set([id, 'meta'], { v: 1, count: 'many' }, tasksStore());
    expect(await load('arc_easy', 50)).toEqual(items.slice(0, 50));
    expect(await requests()).toEqual([[0, 50]]);
  });
});
