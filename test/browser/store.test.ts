/**
 * The catalog, resumable downloads and the IndexedDB cache in real Chromium: real
 * IndexedDB, real fetch against the Vitest server's /models/ mirror of ../shared/models
 * (hub-shaped URLs, Range support). fetch is wrapped only to count requests and read their
 * headers (and, in one test, to drop the Range header the way a proxy might).
 */
import { del, get, set } from 'idb-keyval';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import {
  CATALOG,
  HUB,
  catalogEntry,
  deleteAllStored,
  deleteStored,
  fetchEntry,
  fetchToStore,
  fileKey,
  fileUrl,
  formatBytes,
  getHfToken,
  getResult,
  getStoredFile,
  listStored,
  localMirrorBase,
  putResult,
  resultKey,
  setHfToken,
  storageEstimate,
  tokenAllowedFor,
  type DownloadProgress,
} from '../../src/engine/store';
import { filesStore, idbDownloadStore, LEGACY_MODELS_DB, resultsStore, runMigration, type DownloadStore } from '../../src/engine/store/db';

const BIN = '/models/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin';
const TOK = '/models/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin';
const BIN_BYTES = 1_056_540;
const SMALL_CHUNKS = 64 * 1024;

// --- fetch, counted (the real one does the work) -------------------------------------------
const realFetch = globalThis.fetch;
interface SeenRequest {
  url: string;
  range: string | null;
  auth: string | null;
}
let requests: SeenRequest[] = [];
/** When set, the Range header is removed before the request goes out: the server answers 200. */
let dropRange = false;
/** When set, the response body breaks (errors) after this many bytes, like a dropped connection. */
let breakAfter: number | null = null;
/** When set, the body arrives in 16 kB pieces this many ms apart (a slow network), so a cancel lands mid-file. */
let slowMs: number | null = null;

/**
 * The real response with its body reshaped by breakAfter / slowMs: 16 kB pieces, handed out
 * one per read (pull-based, so the break comes only after every earlier byte was read).
 */
function shaped(res: Response): Response {
  if (breakAfter === null && slowMs === null) return res;
  const cutAt = breakAfter;
  const delay = slowMs;
  const source = res.body!.getReader();
  let held = new Uint8Array(0);
  let passed = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        if (cutAt !== null && passed >= cutAt) {
          c.error(new TypeError('network error (connection dropped by the test)'));
          await source.cancel();
          return;
        }
        if (held.byteLength === 0) {
          const r = await source.read();
          if (r.done) return c.close();
          held = r.value;
        }
        let n = Math.min(16 * 1024, held.byteLength);
        if (cutAt !== null) n = Math.min(n, cutAt - passed);
        if (delay !== null) await new Promise((r) => setTimeout(r, delay));
        c.enqueue(held.slice(0, n));
        held = held.subarray(n);
        passed += n;
      },
      cancel: (reason) => source.cancel(reason),
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

beforeEach(async () => {
  await deleteAllStored();
  requests = [];
  dropRange = false;
  breakAfter = null;
  slowMs = null;
  globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href).href;
    const headers = new Headers(init?.headers);
    requests.push({ url, range: headers.get('range'), auth: headers.get('authorization') });
    if (dropRange) headers.delete('range');
    const res = await realFetch(input, { ...init, headers });
    return shaped(res);
  };
});
afterEach(() => {
  globalThis.fetch = realFetch;
});

const abs = (path: string) => new URL(path, location.href).href;
const requestsTo = (path: string) => requests.filter((r) => r.url === abs(path));
/** sha256 of stories260K.bin (../shared/models/README.md). */
const BIN_SHA256 = 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696';
async function sha256(data: Blob | ArrayBuffer): Promise<string> {
  const buf = data instanceof Blob ? await data.arrayBuffer() : data;
  return [...new Uint8Array(await crypto.subtle.digest('SHA-256', buf))].map((b) => b.toString(16).padStart(2, '0')).join('');
}
/** The file as a plain fetch gets it, as a digest (comparing 1 MB arrays element-wise is slow). */
async function direct(path: string): Promise<string> {
  return sha256(await (await realFetch(path)).arrayBuffer());
}
const bytesOf = sha256;
async function rejection(p: Promise<unknown>): Promise<LopperError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LopperError);
  return e as LopperError;
}
/** Cancel a download of BIN once `atLeast` bytes arrived; returns the partial download's size. */
async function cancelPartWay(atLeast = 300_000): Promise<number> {
  slowMs = 2;
  const ac = new AbortController();
  const err = await rejection(
    fetchToStore(BIN, {
      chunkBytes: SMALL_CHUNKS,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.loaded >= atLeast) ac.abort();
      },
    }),
  );
  expect(err.code).toBe('cancelled');
  slowMs = null;
  const partial = (await listStored()).find((i) => i.kind === 'partial');
  expect(partial).toBeDefined();
  expect(partial!.bytes).toBeGreaterThan(0);
  expect(partial!.total).toBe(BIN_BYTES);
  return partial!.bytes;
}

describe('catalog', () => {
  it('lists the real models with sizes, provenance and hub-shaped URLs', () => {
    const ids = CATALOG.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ['stories260K', 'stories15M', 'stories42M', 'stories110M', 'SmolLM2-135M', 'SmolLM2-360M', 'TinyLlama-1.1B', 'Llama-3.2-1B']) {
      expect(ids).toContain(id);
    }
    for (const e of CATALOG) {
      expect(e.params).toBeGreaterThan(0);
      expect(e.bytes).toBeGreaterThan(0);
      expect(e.source).toMatch(/huggingface\.co\//);
      const roles = new Set(e.files.map((f) => f.role));
      if (e.format === 'llama2c') expect([...roles].sort()).toEqual(['model', 'tokenizer']);
      else expect([...roles].sort()).toEqual(['config', 'tokenizer', 'weights']);
      // File sizes, where given, add up to no more than the entry's total.
      expect(e.files.reduce((s, f) => s + (f.bytes ?? 0), 0)).toBeLessThanOrEqual(e.bytes);
    }
    expect(CATALOG.filter((e) => e.gated).map((e) => e.id)).toEqual(['Llama-3.2-1B']);

    const s260 = catalogEntry('stories260K')!;
    expect(fileUrl(HUB, s260, s260.files[0])).toBe('https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin');
    expect(fileUrl(localMirrorBase() + '/', s260, s260.files[0])).toBe(abs(BIN));
    const s15 = catalogEntry('stories15M')!;
    expect(s15.files.map((f) => fileUrl(HUB, s15, f))).toEqual([
      'https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin',
      'https://huggingface.co/Xenova/llama2.c-stories15M/resolve/main/tokenizer.json',
    ]);
  });

  it('matches the mirror: stories260K file sizes are exact', async () => {
    const e = catalogEntry('stories260K')!;
    for (const f of e.files) {
      const res = await realFetch(fileUrl(localMirrorBase(), e, f), { method: 'HEAD' });
      expect(res.status).toBe(200);
      expect(Number(res.headers.get('content-length'))).toBe(f.bytes);
    }
  });

  it('keys a file by repo, revision and path, whatever the host', () => {
    expect(fileKey(BIN)).toBe('hf:karpathy/tinyllamas@main/stories260K/stories260K.bin');
    expect(fileKey('https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin')).toBe(fileKey(BIN));
    expect(fileKey('/models/stories260K/tok512.bin#x')).toBe(abs('/models/stories260K/tok512.bin'));
  });
});

describe('fetchToStore', () => {
  it('downloads from the mirror with progress, stores the file, and never downloads it twice', async () => {
    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { onProgress: (p) => events.push(p) });
    expect(await direct(BIN)).toBe(BIN_SHA256);
    expect(await bytesOf(blob)).toBe(BIN_SHA256);
    expect(requestsTo(BIN)).toHaveLength(1);
    expect(requestsTo(BIN)[0].range).toBeNull();

    const last = events.at(-1)!;
    expect(last).toMatchObject({ loaded: BIN_BYTES, total: BIN_BYTES, resumedFrom: 0, fromCache: false, secondsLeft: 0 });
    expect(last.file).toBe('karpathy/tinyllamas/stories260K/stories260K.bin');
    for (const p of events) {
      expect(p.bytesPerSecond).toBeGreaterThanOrEqual(0);
      expect(p.loaded).toBeLessThanOrEqual(BIN_BYTES);
    }

    // Second call: from the store, no request at all.
    const again: DownloadProgress[] = [];
    const blob2 = await fetchToStore(BIN, { onProgress: (p) => again.push(p) });
    expect(requestsTo(BIN)).toHaveLength(1);
    expect(again).toEqual([expect.objectContaining({ fromCache: true, loaded: BIN_BYTES, total: BIN_BYTES })]);
    expect(await bytesOf(blob2)).toBe(await direct(BIN));
    expect(await getStoredFile(BIN)).toBeInstanceOf(Blob);
  });

  it('runs one download when the same file is asked for twice at once', async () => {
    const fromCache: boolean[] = [];
    const [a, b] = await Promise.all([
      fetchToStore(TOK, { onProgress: (p) => p.loaded === p.total && fromCache.push(p.fromCache) }),
      fetchToStore(TOK, { onProgress: (p) => p.loaded === p.total && fromCache.push(p.fromCache) }),
    ]);
    expect(requestsTo(TOK)).toHaveLength(1);
    expect(fromCache.sort()).toEqual([false, true]);
    expect(await bytesOf(a)).toBe(await bytesOf(b));
  });

  it('lists a stored file with its size, and deletes it', async () => {
    await fetchToStore(BIN);
    const items = await listStored();
    expect(items).toEqual([
      expect.objectContaining({ kind: 'file', bytes: BIN_BYTES, label: 'karpathy/tinyllamas/stories260K/stories260K.bin', url: abs(BIN) }),
    ]);
    await deleteStored(items[0].key);
    expect(await listStored()).toEqual([]);
    expect(await getStoredFile(BIN)).toBeUndefined();
    await fetchToStore(BIN); // gone: downloaded again
    expect(requestsTo(BIN)).toHaveLength(2);
  });

  it('downloads every file of a catalog entry from the mirror, checking exact sizes', async () => {
    const e = catalogEntry('stories260K')!;
    const seen = new Set<string>();
    const files = await fetchEntry(localMirrorBase(), e, { onProgress: (p) => seen.add(`${p.index}/${p.count} ${p.file}`) });
    expect([...files.keys()]).toEqual(['stories260K/stories260K.bin', 'stories260K/tok512.bin']);
    expect(files.get('stories260K/tok512.bin')!.size).toBe(6227);
    expect(await bytesOf(files.get('stories260K/stories260K.bin')!)).toBe(await direct(BIN));
    expect(seen).toContain('1/2 stories260K: stories260K/tok512.bin');
    expect((await listStored()).map((i) => i.label).sort()).toEqual(['stories260K: stories260K/stories260K.bin', 'stories260K: stories260K/tok512.bin']);
  });

  it('leaves out an optional file the mirror does not hold (a 404); a missing required file is an error naming it', async () => {
    const e = catalogEntry('stories260K')!;
    const absent = { path: 'stories260K/tokenizer_config.json', role: 'tokenizer' as const };
    const files = await fetchEntry(localMirrorBase(), { ...e, files: [...e.files, { ...absent, optional: true }] });
    expect([...files.keys()]).toEqual(['stories260K/stories260K.bin', 'stories260K/tok512.bin']);
    await expect(fetchEntry(localMirrorBase(), { ...e, files: [...e.files, absent] })).rejects.toMatchObject({
      code: 'not-found',
      file: 'stories260K: stories260K/tokenizer_config.json',
    });
  });

  it('cancels mid-download keeping the bytes, then resumes with a Range request', async () => {
    const stored = await cancelPartWay();
    expect(await getStoredFile(BIN)).toBeUndefined();

    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { chunkBytes: SMALL_CHUNKS, onProgress: (p) => events.push(p) });
    expect(events[0].resumedFrom).toBe(stored);
    expect(events.at(-1)).toMatchObject({ loaded: BIN_BYTES, resumedFrom: stored, fromCache: false });
    expect(stored).toBeLessThan(BIN_BYTES);
    expect(requestsTo(BIN).at(-1)!.range).toBe(`bytes=${stored}-`);
    expect(await bytesOf(blob)).toBe(await direct(BIN));
    // The chunks became one stored file.
    expect((await listStored()).map((i) => [i.kind, i.bytes])).toEqual([['file', BIN_BYTES]]);
  });

  it('survives the page going away mid-download (a killed worker) and resumes from the stored chunks', async () => {
    const worker = new Worker(new URL('./helpers/download-worker.ts', import.meta.url), { type: 'module' });
    const killedAt = await new Promise<number>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<{ type: string; loaded?: number; message?: string }>) => {
        if (e.data.type === 'progress' && e.data.loaded! >= 300_000) {
          worker.terminate(); // no abort signal, no cleanup: like closing the tab
          resolve(e.data.loaded!);
        } else if (e.data.type !== 'progress') reject(new Error(`the worker finished before it was killed: ${e.data.message ?? ''}`));
      };
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage({ url: abs(BIN), chunkBytes: SMALL_CHUNKS });
    });
    const partial = (await listStored()).find((i) => i.kind === 'partial')!;
    expect(partial.bytes).toBeGreaterThanOrEqual(killedAt - SMALL_CHUNKS);
    expect(partial.bytes).toBeLessThan(BIN_BYTES);
    expect(partial.bytes % SMALL_CHUNKS).toBe(0); // only whole chunks were written before the kill

    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { onProgress: (p) => events.push(p) }); // waits for the dead worker's lock: none
    expect(events[0].resumedFrom).toBe(partial.bytes);
    expect(requestsTo(BIN).at(-1)!.range).toBe(`bytes=${partial.bytes}-`);
    expect(await bytesOf(blob)).toBe(BIN_SHA256);
  });

  it('restarts cleanly when the server ignores Range (200 instead of 206)', async () => {
    const stored = await cancelPartWay();
    expect(stored).toBeLessThan(BIN_BYTES);
    dropRange = true; // the real server, sent no Range header, answers 200 with the whole file
    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { chunkBytes: SMALL_CHUNKS, onProgress: (p) => events.push(p) });
    expect(requestsTo(BIN).at(-1)!.range).toBe(`bytes=${stored}-`); // asked for a range…
    expect(events.every((p) => p.resumedFrom === 0 && p.loaded <= BIN_BYTES)).toBe(true); // …got the whole file
    expect(await bytesOf(blob)).toBe(await direct(BIN));
    expect((await listStored()).map((i) => [i.kind, i.bytes])).toEqual([['file', BIN_BYTES]]);
  });

  it('rejects a size that disagrees with expectedBytes as corrupt, storing nothing', async () => {
    const err = await rejection(fetchToStore(BIN, { expectedBytes: 1000, chunkBytes: SMALL_CHUNKS }));
    expect(err.code).toBe('corrupt');
    expect(err.message).toContain('karpathy/tinyllamas/stories260K/stories260K.bin');
    expect(err.message).toMatch(/delete/);
    expect(err.message).toMatch(/again/);
    expect(await listStored()).toEqual([]);

    // A stored copy whose size is not the expected one is removed too.
    await fetchToStore(BIN);
    expect((await rejection(fetchToStore(BIN, { expectedBytes: BIN_BYTES + 1 }))).code).toBe('corrupt');
    expect(await listStored()).toEqual([]);
    // The right size passes.
    expect((await fetchToStore(BIN, { expectedBytes: BIN_BYTES })).size).toBe(BIN_BYTES);
  });

  it('maps a full disk (QuotaExceededError) to a quota error and keeps the chunks already stored', async () => {
    const real = idbDownloadStore();
    let writes = 0;
    const filling: DownloadStore = {
      ...real,
      putChunk: (...args) => {
        if (++writes > 3) return Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
        return real.putChunk(...args);
      },
    };
    const err = await rejection(fetchToStore(BIN, { chunkBytes: SMALL_CHUNKS, store: filling }));
    expect(err.code).toBe('quota');
    expect(err.message).toMatch(/storage panel/);
    // needed: the rest of the file, then one copy of the whole when it is joined
    expect(err.message).toContain(`about ${formatBytes(2 * BIN_BYTES - 3 * SMALL_CHUNKS)} more is needed`);
    expect(writes).toBe(4);

    const partial = (await listStored()).find((i) => i.kind === 'partial')!;
    expect(partial.bytes).toBe(3 * SMALL_CHUNKS); // the three chunks written before the disk filled

    // With room again, it continues from there.
    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { onProgress: (p) => events.push(p) });
    expect(events[0].resumedFrom).toBe(partial.bytes);
    expect(await bytesOf(blob)).toBe(await direct(BIN));
  });

  it('keeps every byte when saving the whole file hits the quota, and saves it next time without a request', async () => {
    const real = idbDownloadStore();
    const filling: DownloadStore = {
      ...real,
      complete: () => Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError')),
    };
    const err = await rejection(fetchToStore(BIN, { chunkBytes: SMALL_CHUNKS, store: filling }));
    expect(err.code).toBe('quota');
    expect(err.message).toContain(`about ${formatBytes(BIN_BYTES)} more is needed`);
    expect((await listStored()).map((i) => [i.kind, i.bytes])).toEqual([['partial', BIN_BYTES]]);

    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { onProgress: (p) => events.push(p) });
    expect(requestsTo(BIN)).toHaveLength(1); // only the first, failed-to-save download
    expect(events.at(-1)).toMatchObject({ loaded: BIN_BYTES, resumedFrom: BIN_BYTES, fromCache: false });
    expect(await bytesOf(blob)).toBe(BIN_SHA256);
    expect((await listStored()).map((i) => [i.kind, i.bytes])).toEqual([['file', BIN_BYTES]]);
  });

  it('keeps what arrived when the connection drops, and continues from there', async () => {
    breakAfter = 200_000;
    const err = await rejection(fetchToStore(BIN, { chunkBytes: SMALL_CHUNKS }));
    expect(err.code).toBe('network');
    expect((await listStored()).map((i) => [i.kind, i.bytes])).toEqual([['partial', 200_000]]);

    breakAfter = null;
    const events: DownloadProgress[] = [];
    const blob = await fetchToStore(BIN, { onProgress: (p) => events.push(p) });
    expect(events[0].resumedFrom).toBe(200_000);
    expect(requestsTo(BIN).at(-1)!.range).toBe('bytes=200000-');
    expect(await bytesOf(blob)).toBe(BIN_SHA256);
  });

  it('sends the token only where it belongs; keeps it in localStorage', async () => {
    await fetchToStore(TOK, { token: 'hf_test' });
    expect(requestsTo(TOK)[0].auth).toBe('Bearer hf_test');
    expect(tokenAllowedFor('https://huggingface.co/meta-llama/Llama-3.2-1B/resolve/main/config.json')).toBe(true);
    expect(tokenAllowedFor('https://evil.example/meta-llama/Llama-3.2-1B/resolve/main/config.json')).toBe(false);
    expect(tokenAllowedFor('http://huggingface.co/x')).toBe(false);

    const before = getHfToken();
    try {
      setHfToken(' hf_abc ');
      expect(getHfToken()).toBe('hf_abc');
      setHfToken(null);
      expect(getHfToken()).toBeNull();
    } finally {
      setHfToken(before);
    }
  });

  it('reports a missing file as not-found and stores nothing', async () => {
    const err = await rejection(fetchToStore('/models/karpathy/tinyllamas/resolve/main/nope.bin'));
    expect(err.code).toBe('not-found');
    expect(await listStored()).toEqual([]);
  });
});

describe('cache', () => {
  it('reports storage usage and quota', async () => {
    const { usage, quota } = await storageEstimate();
    expect(usage).toBeGreaterThanOrEqual(0);
    expect(quota).toBeGreaterThan(0);
  });

  it('derives stable result keys from settings', () => {
    const a = resultKey({ model: 'stories260K', metric: 'angular', layers: 2, windows: { n: 8, len: 128 } });
    const b = resultKey({ windows: { len: 128, n: 8 }, layers: 2, metric: 'angular', model: 'stories260K' });
    expect(a).toBe(b);
    expect(a).toMatch(/^r-[0-9a-f]{16}$/);
    expect(resultKey({ model: 'stories260K', metric: 'angular', layers: 3, windows: { n: 8, len: 128 } })).not.toBe(a);
    expect(resultKey({ x: undefined })).toBe(resultKey({}));
  });

  it('round-trips a result and lists it', async () => {
    const key = resultKey({ model: 'stories260K', mode: 'prunecomp', layers: 2 });
    expect(await getResult(key)).toBeUndefined();
    const value = { removed: [3, 1], scales: [0.93, 0.97], scores: new Float32Array([0.1, 0.2, 0.3]), ppl: { dense: 12.5, pruned: 19.25 } };
    await putResult(key, 'stories260K · Prune&Comp · 2 layers', value);
    expect(await getResult<typeof value>(key)).toEqual(value);
    const [item] = await listStored();
    expect(item).toMatchObject({ key: `result:${key}`, kind: 'result', label: 'stories260K · Prune&Comp · 2 layers' });
    expect(item.bytes).toBeGreaterThan(12);
    await deleteStored(item.key);
    expect(await getResult(key)).toBeUndefined();
  });

  it('deletes a corrupt result entry and says so', async () => {
    const key = resultKey({ model: 'stories260K', corrupt: true });
    await putResult(key, 'a result', { ppl: 1 });
    await set(key, 'garbage', resultsStore()); // written directly under its key
    const err = await rejection(getResult(key));
    expect(err.code).toBe('corrupt');
    expect(await get(key, resultsStore())).toBeUndefined();
    expect(await getResult(key)).toBeUndefined();
  });

  it('migrates what the previous version stored: its pruned models and v1 results go, downloads and v2 results stay', async () => {
    // The previous version's layout, written with the raw API (and closed, as a page that went away leaves it).
    await new Promise<void>((resolve, reject) => {
      const open = indexedDB.open(LEGACY_MODELS_DB);
      open.onupgradeneeded = () => open.result.createObjectStore('models');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result;
        const tx = db.transaction('models', 'readwrite');
        tx.objectStore('models').put({ v: 1, label: 'stories260K pruned: baseline', files: [{ name: 'model.bin', blob: new Blob([new Uint8Array(1000)]) }], bytes: 1000, updated: 1 }, 'r-old:baseline');
        tx.oncomplete = () => (db.close(), resolve());
        tx.onerror = () => reject(tx.error);
      };
    });
    await set('r-old', { v: 1, label: 'an old run', value: { ppl: 1 }, bytes: 10, updated: 1 }, resultsStore());
    await putResult('r-new', 'a new run', { ppl: 2 });
    const fileKey = 'test:migration/model.bin';
    await set([fileKey, 'file'], { v: 1, url: 'http://x/model.bin', label: 'model.bin', blob: new Blob([new Uint8Array(7)]), bytes: 7, updated: 1 }, filesStore());
    expect((await indexedDB.databases()).map((d) => d.name)).toContain(LEGACY_MODELS_DB);

    await runMigration();
    expect((await indexedDB.databases()).map((d) => d.name)).not.toContain(LEGACY_MODELS_DB);
    expect(await get('r-old', resultsStore())).toBeUndefined();
    expect(await getResult('r-new')).toEqual({ ppl: 2 });
    expect(await get([fileKey, 'file'], filesStore())).toMatchObject({ bytes: 7 });
    const kinds = new Set((await listStored()).map((i) => i.kind));
    expect(kinds.has('model' as never)).toBe(false);
    await runMigration(); // a second pass finds nothing to do
    expect(await getResult('r-new')).toEqual({ ppl: 2 });
    await del([fileKey, 'file'], filesStore());
  });
});
