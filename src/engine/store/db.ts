/**
 * The IndexedDB stores behind lopper's cache (idb-keyval, one database per kind so each can
 * be listed and cleared on its own), and the record shapes kept in them. Internal to
 * src/engine/store: the public API is download.ts and cache.ts.
 *
 *   lopper-files/files     downloads, keyed by [fileKey, …]:
 *                            [k, 'file']  FileRecord: the whole file as one Blob
 *                            [k, 'meta']  PartialMeta: how far an unfinished download got
 *                            [k, i]       chunk i of an unfinished download (Blob)
 *   lopper-results/results ResultRecord by the caller's key (plans, scores, perplexities)
 *   lopper-tasks/tasks     zero-shot task items from the hub (layout: src/engine/eval/hub.ts)
 *
 * Pruned models are not stored: a result's plans and the stored dense model rebuild them
 * (prune/apply.ts). Versions before results v2 stored them in lopper-models/models, never
 * read back; migrateStorage() deletes that database and the v1 results.
 *
 * Stores open lazily, so importing this module outside a browser (Node) does nothing.
 */
import { createStore, promisifyRequest, type UseStore } from 'idb-keyval';
import { LopperError } from '../errors';

/** Version tag on every download and task record: a record without it (or another value) is treated as corrupt. */
export const RECORD_VERSION = 1;

/**
 * Version tag on results. 2: run results keep the run's identity (src/app/run-identity.ts)
 * and their keys are derived from it; results of version 1 are deleted by migrateStorage.
 */
export const RESULT_VERSION = 2;

/** A completed download. */
export interface FileRecord {
  v: typeof RECORD_VERSION;
  url: string;
  label: string;
  blob: Blob;
  bytes: number;
  updated: number;
  etag?: string;
}

/** How far an unfinished download got: `chunks` Blobs holding `loaded` bytes. */
export interface PartialMeta {
  v: typeof RECORD_VERSION;
  url: string;
  label: string;
  loaded: number;
  /** Full size when the server said (Content-Length / Content-Range), else null. */
  total: number | null;
  chunks: number;
  etag?: string;
  /** False when the bytes cannot be continued with a Range request (e.g. a compressed response). */
  resumable: boolean;
  updated: number;
}

/** A cached result (plan, scores, perplexities). */
export interface ResultRecord<T = unknown> {
  v: typeof RESULT_VERSION;
  label: string;
  value: T;
  bytes: number;
  updated: number;
}

let files: UseStore | undefined;
let results: UseStore | undefined;
let tasks: UseStore | undefined;

/** Downloads: whole files, partial metadata and chunks. */
export const filesStore = (): UseStore => (files ??= createStore('lopper-files', 'files'));
/** Results by key. */
export const resultsStore = (): UseStore => (results ??= createStore('lopper-results', 'results'));
/** Zero-shot task items fetched from the hub (src/engine/eval/hub.ts). */
export const tasksStore = (): UseStore => (tasks ??= createStore('lopper-tasks', 'tasks'));

/** Every key [k, …] of one download (its file, its partial metadata and chunks). */
export const fileKeyRange = (k: string): IDBKeyRange => IDBKeyRange.bound([k], [k, []]);

/**
 * Where a download's pieces go. The default is IndexedDB (idbDownloadStore); tests inject
 * one whose writes fail (a real QuotaExceededError) to check what is kept.
 */
export interface DownloadStore {
  /** The raw completed-file record (validated by the caller), or undefined. */
  getFile(key: string): Promise<unknown>;
  /** The partial-download metadata, or undefined. */
  getPartial(key: string): Promise<PartialMeta | undefined>;
  /** Chunks 0..count-1 of a partial download (undefined where one is missing). */
  readChunks(key: string, count: number): Promise<(Blob | undefined)[]>;
  /** Store chunk `index` and the metadata that counts it, atomically. */
  putChunk(key: string, index: number, chunk: Blob, meta: PartialMeta): Promise<void>;
  /** Store the completed file and drop its partial pieces, atomically. */
  complete(key: string, record: FileRecord): Promise<void>;
  /** Drop everything stored for this download. */
  drop(key: string): Promise<void>;
}

/** The DownloadStore over the lopper-files IndexedDB store. */
export function idbDownloadStore(store: UseStore = filesStore()): DownloadStore {
  const write = (fn: (s: IDBObjectStore) => void) =>
    store('readwrite', (s) => {
      fn(s);
      return promisifyRequest(s.transaction);
    });
  const read = <T>(key: IDBValidKey) => store('readonly', (s) => promisifyRequest(s.get(key) as IDBRequest<T | undefined>));
  return {
    getFile: (key) => read<unknown>([key, 'file']),
    getPartial: (key) => read<PartialMeta>([key, 'meta']),
    readChunks: (key, count) =>
      store('readonly', (s) =>
        Promise.all(Array.from({ length: count }, (_, i) => promisifyRequest(s.get([key, i]) as IDBRequest<Blob | undefined>))),
      ),
    putChunk: (key, index, chunk, meta) =>
      write((s) => {
        s.put(chunk, [key, index]);
        s.put(meta, [key, 'meta']);
      }),
    complete: (key, record) =>
      write((s) => {
        s.delete(fileKeyRange(key));
        s.put(record, [key, 'file']);
      }),
    drop: (key) => write((s) => s.delete(fileKeyRange(key))),
  };
}

/** True for the error IndexedDB (or anything else) raises when storage is full. */
export function isQuotaError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'QuotaExceededError';
}

/** Bytes as a person reads them: 1.1 MB, 2.47 GB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'an unknown amount';
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(v)} bytes` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** Bytes used and available to this origin (0s where the browser does not say). */
export async function estimateStorage(): Promise<{ usage: number; quota: number }> {
  const est = await globalThis.navigator?.storage?.estimate?.();
  return { usage: est?.usage ?? 0, quota: est?.quota ?? 0 };
}

/**
 * The LopperError('quota') for a write that did not fit: how much was needed, what is in
 * use, and the way forward (free space in the storage panel).
 */
export async function quotaError(label: string, needed: number | null, kept = ''): Promise<LopperError> {
  const { usage, quota } = await estimateStorage().catch(() => ({ usage: 0, quota: 0 }));
  const need = needed === null ? 'more space is needed' : `about ${formatBytes(needed)} more is needed`;
  const used = quota > 0 ? ` (${formatBytes(usage)} of ${formatBytes(quota)} in use)` : '';
  return new LopperError(
    'quota',
    `not enough browser storage: ${need}${used}. Free space in the storage panel and try again${kept ? `; ${kept}` : ''}.`,
    label,
  );
}

/** The database where versions before results v2 kept pruned models. */
export const LEGACY_MODELS_DB = 'lopper-models';

let migration: Promise<void> | undefined;

/**
 * Bring what an earlier version stored up to date, once per page or worker (later calls
 * wait for the first): delete the lopper-models database (pruned models nobody read back)
 * and every result whose version is not RESULT_VERSION. Downloads are kept. Outside a
 * browser (no indexedDB) it does nothing.
 */
export function migrateStorage(): Promise<void> {
  return (migration ??= runMigration());
}

/** One migration pass (migrateStorage runs it once; tests run it on a store they prepared). */
export async function runMigration(): Promise<void> {
  {
    if (typeof indexedDB === 'undefined') return;
    await deleteDatabase(LEGACY_MODELS_DB);
    const stale: IDBValidKey[] = [];
    await resultsStore()('readonly', (s) => {
      const req = s.openCursor();
      return new Promise<void>((resolve, reject) => {
        req.onsuccess = () => {
          const c = req.result;
          if (!c) return resolve();
          const v = (c.value as { v?: unknown } | null)?.v;
          if (v !== RESULT_VERSION) stale.push(c.key);
          c.continue();
        };
        req.onerror = () => reject(req.error);
      });
    });
    if (stale.length) await resultsStore()('readwrite', (s) => (stale.forEach((k) => s.delete(k)), promisifyRequest(s.transaction)));
  }
}

/** indexedDB.deleteDatabase as a promise; a deletion blocked by another open tab completes when it closes (not awaited). */
function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(name);
    req.onsuccess = () => resolve();
    req.onblocked = () => resolve();
    req.onerror = () => reject(req.error);
  });
}
