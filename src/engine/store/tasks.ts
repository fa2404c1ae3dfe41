/**
 * The IndexedDB cache of zero-shot task items fetched from the Hugging Face datasets server
 * (eval/hub.ts loads through it): per task source id, a meta record [id, 'meta'] and items
 * [id, 0..count-1]. The items are opaque here; eval/hub.ts validates what it reads back.
 */
import { promisifyRequest } from 'idb-keyval';
import { RECORD_VERSION, tasksStore } from './db';

/** What the cache knows about one task source. */
export interface TaskCacheMeta {
  v: typeof RECORD_VERSION;
  task: string;
  /** the datasets-server split the items came from */
  source: { dataset: string; config: string; split: string };
  /** items stored: keys [id, 0..count-1] */
  count: number;
  /** rows in the split when they were fetched (revision check) */
  numRowsTotal: number;
  /** the split's features when they were fetched (revision check) */
  fingerprint: string;
  label: string;
  /** approximate bytes of the stored items (the storage panel shows it) */
  bytes: number;
  updated: number;
}

/** Where loadTaskItems keeps items; the default is IndexedDB (idbTaskCache). Tests inject one whose writes fail. */
export interface TaskCache {
  getMeta(id: string): Promise<unknown>;
  /** items 0..count-1 (undefined where one is missing) */
  readItems(id: string, count: number): Promise<unknown[]>;
  /** store items at offset.. and the meta that counts them, atomically */
  append(id: string, offset: number, items: readonly unknown[], meta: TaskCacheMeta): Promise<void>;
  /** drop one source (or, without an id, everything) */
  drop(id?: string): Promise<void>;
}

const idRange = (id: string) => IDBKeyRange.bound([id], [id, []]);

/** The TaskCache over the lopper-tasks IndexedDB store. */
export function idbTaskCache(): TaskCache {
  const store = tasksStore();
  const write = (fn: (s: IDBObjectStore) => void) =>
    store('readwrite', (s) => {
      fn(s);
      return promisifyRequest(s.transaction);
    });
  return {
    getMeta: (id) => store('readonly', (s) => promisifyRequest(s.get([id, 'meta']))),
    readItems: (id, count) =>
      count === 0 ? Promise.resolve([]) : store('readonly', (s) => promisifyRequest(s.getAll(IDBKeyRange.bound([id, 0], [id, count - 1])))),
    append: (id, offset, items, meta) =>
      write((s) => {
        items.forEach((it, j) => s.put(it, [id, offset + j]));
        s.put(meta, [id, 'meta']);
      }),
    drop: (id) => write((s) => (id === undefined ? s.clear() : s.delete(idRange(id)))),
  };
}

/** Drop the cached items of one task (every source and adapter version), or of all tasks. */
export async function clearTaskCache(task?: string): Promise<void> {
  if (typeof globalThis.indexedDB === 'undefined') return;
  const store = tasksStore();
  await store('readwrite', (s) => {
    if (task === undefined) s.clear();
    else s.delete(IDBKeyRange.bound([`${task}|`], [`${task}|\uffff`, []]));
    return promisifyRequest(s.transaction);
  });
}
