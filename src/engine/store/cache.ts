/**
 * What lopper keeps in this browser: downloaded files (and unfinished downloads) and results
 * (plans, scores, perplexities; pruned models are rebuilt from the plans) — listed with their sizes for the storage
 * panel, deletable one by one, and checked when read back (a damaged entry is deleted and
 * reported as LopperError('corrupt'), so the app can recompute it).
 */
import { del, entries, get, getMany, keys, promisifyRequest, set, type UseStore } from 'idb-keyval';
import { LopperError } from '../errors';
import {
  estimateStorage,
  fileKeyRange,
  filesStore,
  isQuotaError,
  migrateStorage,
  quotaError,
  RESULT_VERSION,
  resultsStore,
  tasksStore,
  type FileRecord,
  type PartialMeta,
  type ResultRecord,
} from './db';

/** One thing in the storage panel. */
export interface StoredItem {
  /** Pass to deleteStored: `${kind}:${id}` (e.g. `file:hf:karpathy/tinyllamas@main/stories260K/tok512.bin`, `result:r-…`). */
  key: string;
  /** 'file': a downloaded file; 'partial': an unfinished download; 'result': a cached result (with its plans); 'tasks': a zero-shot task's items from the hub. */
  kind: 'file' | 'partial' | 'result' | 'tasks';
  /** What it is, for people. */
  label: string;
  /** Bytes it takes (results: an estimate of their size). */
  bytes: number;
  /** Last written (ms since the epoch). */
  updated: number;
  /** A partial download: the full size when known. */
  total?: number | null;
  /** A file or partial download: where it comes from. */
  url?: string;
}

/** Everything stored, newest first. */
export async function listStored(): Promise<StoredItem[]> {
  await migrateStorage();
  const items: StoredItem[] = [];

  // Downloads: whole files and partial metadata (chunks are counted by their metadata).
  const fileKeys = (await keys<IDBValidKey>(filesStore())).filter(
    (k): k is [string, string] => Array.isArray(k) && typeof k[0] === 'string' && (k[1] === 'file' || k[1] === 'meta'),
  );
  const records = await getMany<unknown>(fileKeys, filesStore());
  fileKeys.forEach(([id, what], i) => {
    const r = records[i] as Partial<FileRecord & PartialMeta> | undefined;
    if (!r || typeof r !== 'object') return;
    const common = { label: str(r.label, id), updated: num(r.updated), url: typeof r.url === 'string' ? r.url : undefined };
    if (what === 'file') {
      const bytes = r.blob instanceof Blob ? r.blob.size : num(r.bytes);
      items.push({ key: `file:${id}`, kind: 'file', bytes, ...common });
    } else {
      items.push({ key: `partial:${id}`, kind: 'partial', bytes: num(r.loaded), total: r.total ?? null, ...common });
    }
  });

  for (const [k, r] of await entries<IDBValidKey, Partial<ResultRecord>>(resultsStore())) {
    items.push({ key: `result:${String(k)}`, kind: 'result', label: str(r?.label, String(k)), bytes: num(r?.bytes), updated: num(r?.updated) });
  }
  // Zero-shot task items (src/engine/eval/hub.ts): one entry per task source, from its meta record.
  for (const [k, r] of await entries<IDBValidKey, Partial<{ label: string; count: number; bytes: number; updated: number }>>(tasksStore())) {
    if (!Array.isArray(k) || k[1] !== 'meta' || typeof k[0] !== 'string') continue;
    items.push({ key: `tasks:${k[0]}`, kind: 'tasks', label: `zero-shot task data ${str(r?.label, k[0])} (${num(r?.count)} items)`, bytes: num(r?.bytes), updated: num(r?.updated) });
  }
  return items.sort((a, b) => b.updated - a.updated);
}

/**
 * Delete one stored item by its StoredItem.key. 'file:' and 'partial:' delete everything
 * kept for that download. A key without a known prefix is taken as a result key (as given
 * to putResult). Deleting what is absent is fine.
 */
export async function deleteStored(key: string): Promise<void> {
  const i = key.indexOf(':');
  const kind = i > 0 ? key.slice(0, i) : '';
  const id = key.slice(i + 1);
  switch (kind) {
    case 'file':
    case 'partial':
      await deleteRange(filesStore(), fileKeyRange(id));
      return;
    case 'result':
      await del(id, resultsStore());
      return;
    case 'tasks':
      await deleteRange(tasksStore(), IDBKeyRange.bound([id], [id, []]));
      return;
    default:
      await del(key, resultsStore());
  }
}

/** Delete everything lopper stored (downloads, results, task data). */
export async function deleteAllStored(): Promise<void> {
  await migrateStorage();
  await Promise.all([filesStore(), resultsStore(), tasksStore()].map((s) => s('readwrite', (os) => (os.clear(), promisifyRequest(os.transaction)))));
}

/** Bytes this origin uses and may use (navigator.storage.estimate; 0s where unavailable). */
export async function storageEstimate(): Promise<{ usage: number; quota: number }> {
  return estimateStorage();
}

/** Ask the browser not to evict lopper's storage under pressure; true if granted. */
export async function persistStorage(): Promise<boolean> {
  const s = globalThis.navigator?.storage;
  if (!s?.persist) return false;
  return (await s.persisted?.()) || (await s.persist());
}

// ---------------------------------------------------------------------------------------
// Results

/** Cache a result (any structured-clonable value: plans, scores, perplexities) under `key`. */
export async function putResult<T>(key: string, label: string, value: T): Promise<void> {
  await migrateStorage();
  const record: ResultRecord<T> = { v: RESULT_VERSION, label, value, bytes: approxBytes(value), updated: Date.now() };
  try {
    await set(key, record, resultsStore());
  } catch (e) {
    if (isQuotaError(e)) throw await quotaError(label, record.bytes);
    throw e;
  }
}

/** The cached result under `key`, or undefined; a damaged entry is deleted → LopperError('corrupt'). */
export async function getResult<T>(key: string): Promise<T | undefined> {
  await migrateStorage();
  const r = await get<unknown>(key, resultsStore());
  if (r === undefined) return undefined;
  const rec = r as Partial<ResultRecord<T>> | null;
  const ok =
    typeof rec === 'object' &&
    rec !== null &&
    rec.v === RESULT_VERSION &&
    typeof rec.label === 'string' &&
    typeof rec.updated === 'number' &&
    typeof rec.bytes === 'number' &&
    'value' in rec;
  if (!ok) {
    await del(key, resultsStore());
    throw damaged(key, 'result');
  }
  return rec.value as T;
}

// ---------------------------------------------------------------------------------------
// Keys

/**
 * A stable key for a result from the settings that produced it: the parts as JSON with
 * sorted keys (typed arrays as arrays, undefined dropped), hashed (FNV-1a, 64 bits) →
 * `r-` + 16 hex digits. Equal settings give equal keys whatever the key order.
 */
export function resultKey(parts: Record<string, unknown>): string {
  const bytes = new TextEncoder().encode(stableStringify(parts));
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return `r-${h.toString(16).padStart(16, '0')}`;
}

/** JSON with object keys sorted; typed arrays and Maps as arrays; non-finite numbers and bigints spelled out. */
export function stableStringify(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(v) : JSON.stringify(String(v));
    case 'bigint':
      return JSON.stringify(`${v}n`);
    case 'string':
    case 'boolean':
      return JSON.stringify(v);
    case 'function':
    case 'symbol':
      return 'null';
  }
  if (ArrayBuffer.isView(v)) return stableStringify(Array.from(v as unknown as ArrayLike<number>));
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v instanceof Map) return stableStringify([...v].sort(([a], [b]) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0)));
  if (v instanceof Set) return stableStringify([...v]);
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  const obj = v as Record<string, unknown>;
  const fields = Object.keys(obj)
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function')
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`);
  return `{${fields.join(',')}}`;
}

// ---------------------------------------------------------------------------------------
// Helpers

function damaged(key: string, what: string): LopperError {
  return new LopperError('corrupt', `the cached ${what} was damaged and has been deleted: compute it again`, key);
}

async function deleteRange(store: UseStore, range: IDBKeyRange): Promise<void> {
  await store('readwrite', (s) => {
    s.delete(range);
    return promisifyRequest(s.transaction);
  });
}

/** An estimate of a value's stored size: array buffers by length, strings 2 bytes a character, 8 per number. */
export function approxBytes(v: unknown, seen = new Set<object>()): number {
  if (v === null || v === undefined) return 0;
  switch (typeof v) {
    case 'number':
    case 'bigint':
      return 8;
    case 'boolean':
      return 1;
    case 'string':
      return 2 * v.length;
    case 'object':
      break;
    default:
      return 0;
  }
  const o = v as object;
  if (seen.has(o)) return 0;
  seen.add(o);
  if (ArrayBuffer.isView(o)) return o.byteLength;
  if (o instanceof ArrayBuffer) return o.byteLength;
  if (o instanceof Blob) return o.size;
  let n = 0;
  if (o instanceof Map) for (const [k, x] of o) n += approxBytes(k, seen) + approxBytes(x, seen);
  else if (o instanceof Set) for (const x of o) n += approxBytes(x, seen);
  else for (const [k, x] of Object.entries(o)) n += 2 * k.length + approxBytes(x, seen);
  return n;
}

const str = (v: unknown, fallback: string): string => (typeof v === 'string' ? v : fallback);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
