/**
 * Downloads that survive: a file is streamed into IndexedDB in chunks as it arrives, so a
 * cancelled or interrupted download (cancel, reload, lost network) continues later with a
 * Range request from the bytes already stored; once complete it is kept whole (one Blob)
 * under a key derived from its URL and never downloaded again.
 *
 * Runs in a page or a worker (no DOM). Only one download of a given file runs at a time
 * (Web Locks, across tabs and workers): a second caller waits, then gets the stored file.
 */
import { LopperError } from '../errors';
import { fileUrl, type CatalogEntry, type CatalogFile } from './catalog';
import {
  idbDownloadStore,
  isQuotaError,
  quotaError,
  RECORD_VERSION,
  formatBytes,
  type DownloadStore,
  type FileRecord,
  type PartialMeta,
} from './db';

/** Progress of one file, reported while it downloads (and once when it comes from the cache). */
export interface DownloadProgress {
  /** The file's label (hub repo/path, or the URL path). */
  file: string;
  /** Bytes received so far, including those stored by an earlier, interrupted download. */
  loaded: number;
  /** Full size, when the server or the caller said. */
  total: number | null;
  /** Rate of this download session (bytes received now / seconds since it started). */
  bytesPerSecond: number;
  /** Estimated seconds to completion, when total and rate are known. */
  secondsLeft: number | null;
  /** Bytes that were already stored when this download started (0 for a fresh one). */
  resumedFrom: number;
  /** True when the file was already stored whole: nothing was downloaded. */
  fromCache: boolean;
}

/** Options of fetchToStore. */
export interface DownloadOptions {
  /** Hugging Face access token (gated models); sent only to huggingface.co and this page's own origin. */
  token?: string;
  /** Cancels the download: LopperError('cancelled'), what was received so far is kept. */
  signal?: AbortSignal;
  /** Called as bytes arrive (at most every ~100 ms, and after each stored chunk). */
  onProgress?: (p: DownloadProgress) => void;
  /** The exact size the file must have; a different size is LopperError('corrupt'). */
  expectedBytes?: number;
  /** Name shown in progress, errors and the storage panel (default: derived from the URL). */
  label?: string;
}

/** Internal knobs (tests): chunk size and the store behind the download. */
export interface DownloadInternals {
  /** Bytes buffered in memory before a chunk is written (default 8 MiB). */
  chunkBytes?: number;
  /** Where chunks and the completed file go (default: IndexedDB). */
  store?: DownloadStore;
}

/** Bytes buffered before each IndexedDB write. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 100;
const TOKEN_KEY = 'lopper.hfToken';

/**
 * The cache key of a URL. Hub-shaped URLs (`…/{owner}/{repo}/resolve/{rev}/{path}`) map to
 * `hf:{owner}/{repo}@{rev}/{path}` whatever the host, so a file fetched from a mirror and
 * the same file from huggingface.co share one entry; any other URL is its own key (without #hash).
 */
export function fileKey(url: string): string {
  const u = new URL(url, globalThis.location?.href);
  const hub = hubParts(u);
  if (hub) return `hf:${hub.repo}@${hub.revision}/${hub.path}`;
  u.hash = '';
  return u.href;
}

function hubParts(u: URL): { repo: string; revision: string; path: string } | null {
  const m = /\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
  if (!m) return null;
  try {
    return { repo: decodeURIComponent(m[1]), revision: decodeURIComponent(m[2]), path: decodeURIComponent(m[3]) };
  } catch {
    return null;
  }
}

/** A readable name for a URL: `owner/repo/path` for hub-shaped URLs, else the URL's path. */
export function labelFor(url: string): string {
  const u = new URL(url, globalThis.location?.href);
  const hub = hubParts(u);
  return hub ? `${hub.repo}/${hub.path}` : decodeURIComponent(u.pathname);
}

/** The Hugging Face token saved in this browser (localStorage only), or null (also in workers, which have none). */
export function getHfToken(): string | null {
  try {
    return globalThis.localStorage?.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

/** Save the Hugging Face token in this browser's localStorage; null or '' forgets it. */
export function setHfToken(token: string | null): void {
  const t = token?.trim();
  if (t) globalThis.localStorage.setItem(TOKEN_KEY, t);
  else globalThis.localStorage.removeItem(TOKEN_KEY);
}

/**
 * Whether a token may be sent to `url`: huggingface.co (and its subdomains) or this page's
 * own origin. Never to another host, so a shared link that points the base URL elsewhere
 * cannot collect a person's token.
 */
export function tokenAllowedFor(url: string): boolean {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === 'https:' && (u.hostname === 'huggingface.co' || u.hostname.endsWith('.huggingface.co'))) return true;
  return globalThis.location !== undefined && u.origin === globalThis.location.origin;
}

/**
 * The stored file for `url` (no network), or undefined if it was never downloaded whole;
 * a damaged record is deleted → LopperError('corrupt').
 */
export async function getStoredFile(url: string, store: DownloadStore = idbDownloadStore()): Promise<Blob | undefined> {
  const key = fileKey(url);
  return (await readFileRecord(store, key, labelFor(url)))?.blob;
}

/**
 * The file at `url`, from the store if it was downloaded before (fromCache, no request),
 * else downloaded now — resuming from stored chunks with a Range request — and stored whole.
 *
 * Errors (LopperError): 'cancelled' (signal; received bytes kept), 'quota' (storage full;
 * stored chunks kept), 'corrupt' (size disagrees with Content-Length/Content-Range or
 * expectedBytes; the bad entry is deleted), 'auth' (401/403), 'not-found' (404), 'network'.
 */
export async function fetchToStore(url: string, opts: DownloadOptions & DownloadInternals = {}): Promise<Blob> {
  const abs = new URL(url, globalThis.location?.href).href;
  const key = fileKey(abs);
  const label = opts.label ?? labelFor(abs);
  if (opts.signal?.aborted) throw cancelled(label, 0);
  return withLock(key, opts.signal, label, () => new Download(abs, key, label, opts).run());
}

/** Progress of one file of a catalog entry. */
export interface EntryProgress extends DownloadProgress {
  /** Which file (0-based) of `count`. */
  index: number;
  count: number;
}

/**
 * All files of a catalog entry from `base` (HUB or a mirror), one after another, as
 * path → Blob. Exact catalog sizes are checked (expectedBytes); labels read "name: path".
 * An optional file the repository does not hold is left out of the map.
 */
export async function fetchEntry(
  base: string,
  entry: CatalogEntry,
  opts: Omit<DownloadOptions, 'onProgress' | 'expectedBytes' | 'label'> & {
    onProgress?: (p: EntryProgress) => void;
  } & DownloadInternals = {},
): Promise<Map<string, Blob>> {
  const out = new Map<string, Blob>();
  const count = entry.files.length;
  for (const [index, file] of entry.files.entries()) {
    const blob = await fetchToStore(fileUrl(base, entry, file), {
      ...opts,
      label: fileLabel(entry, file),
      expectedBytes: file.bytes,
      onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, index, count })),
    }).catch((e: unknown) => {
      // An optional file the repository does not hold (a 404) is left out; anything else is an error.
      if (file.optional && e instanceof LopperError && e.code === 'not-found') return null;
      throw e;
    });
    if (blob) out.set(file.path, blob);
  }
  return out;
}

/** How a catalog file is named in progress, errors and the storage panel. */
export function fileLabel(entry: CatalogEntry, file: CatalogFile): string {
  return `${entry.name}: ${file.path}`;
}

// ---------------------------------------------------------------------------------------
// One download

class Download {
  private readonly store: DownloadStore;
  private readonly chunkBytes: number;
  private meta: PartialMeta | undefined;
  private total: number | null = null;
  private resumedFrom = 0;
  private started = 0;
  private lastEmit = 0;

  constructor(
    private readonly url: string,
    private readonly key: string,
    private readonly label: string,
    private readonly opts: DownloadOptions & DownloadInternals,
  ) {
    this.store = opts.store ?? idbDownloadStore();
    this.chunkBytes = Math.max(1, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  }

  async run(): Promise<Blob> {
    const { expectedBytes } = this.opts;

    // 1. Stored whole already: no request.
    const cached = await readFileRecord(this.store, this.key, this.label);
    if (cached) {
      if (expectedBytes !== undefined && cached.bytes !== expectedBytes) {
        await this.store.drop(this.key);
        throw corrupt(this.label, `the stored copy has ${cached.bytes} bytes but ${expectedBytes} are expected`);
      }
      this.opts.onProgress?.({
        file: this.label,
        loaded: cached.bytes,
        total: cached.bytes,
        bytesPerSecond: 0,
        secondsLeft: 0,
        resumedFrom: 0,
        fromCache: true,
      });
      return cached.blob;
    }

    // 2. An earlier, unfinished download: continue it if it can be.
    this.meta = await this.store.getPartial(this.key);
    if (this.meta && !this.usablePartial(this.meta)) await this.dropPartial();
    if (this.meta && this.meta.total !== null && this.meta.loaded === this.meta.total) {
      // Every byte is stored already (e.g. saving the whole file hit the quota last time).
      this.resumedFrom = this.total = this.meta.total;
      this.started = performance.now();
      return this.finish();
    }

    // 3. Request what is missing (a second try when the server's answer invalidates the partial).
    for (let attempt = 0; ; attempt++) {
      const start = this.meta?.loaded ?? 0;
      const res = await this.request(start);
      if (start > 0 && res.status === 416) {
        // The stored bytes do not fit the file the server has now: start over.
        await res.body?.cancel().catch(() => {});
        await this.dropPartial();
        if (attempt === 0) continue;
      }
      this.checkStatus(res);

      if (start > 0 && res.status === 206) {
        const range = parseContentRange(res.headers.get('content-range'));
        const etag = strongEtag(res.headers.get('etag'));
        const meta = this.meta!;
        const stale =
          (range !== null && range.start !== start) ||
          (range?.total != null && meta.total !== null && range.total !== meta.total) ||
          (etag !== undefined && meta.etag !== undefined && etag !== meta.etag);
        if (stale) {
          await res.body?.cancel().catch(() => {});
          await this.dropPartial();
          if (attempt === 0) continue;
          throw new LopperError('network', 'the server keeps answering with a different file; try again later', this.label);
        }
        this.resumedFrom = start;
        const length = contentLength(res);
        this.total = meta.total ?? range?.total ?? (length !== null ? start + length : null);
        return this.stream(res);
      }

      // 200: a fresh download, or a server that ignored the Range header: restart cleanly.
      if (start > 0) await this.dropPartial();
      this.resumedFrom = 0;
      const compressed = isCompressed(res);
      this.total = compressed ? null : contentLength(res);
      this.meta = {
        v: RECORD_VERSION,
        url: this.url,
        label: this.label,
        loaded: 0,
        total: this.total,
        chunks: 0,
        etag: strongEtag(res.headers.get('etag')),
        resumable: !compressed,
        updated: Date.now(),
      };
      return this.stream(res);
    }
  }

  /** A stored partial download that can be continued. */
  private usablePartial(m: PartialMeta): boolean {
    const e = this.opts.expectedBytes;
    return (
      m.v === RECORD_VERSION &&
      m.resumable &&
      Number.isInteger(m.loaded) &&
      Number.isInteger(m.chunks) &&
      (m.total === null || m.loaded <= m.total) &&
      (e === undefined || m.total === null || m.total === e)
    );
  }

  private async dropPartial(): Promise<void> {
    await this.store.drop(this.key);
    this.meta = undefined;
  }

  private async request(start: number): Promise<Response> {
    const headers = new Headers();
    if (start > 0) headers.set('Range', `bytes=${start}-`);
    if (this.opts.token && tokenAllowedFor(this.url)) headers.set('Authorization', `Bearer ${this.opts.token}`);
    this.started = performance.now();
    try {
      return await globalThis.fetch(this.url, { headers, signal: this.opts.signal, cache: 'no-store' });
    } catch (e) {
      if (this.opts.signal?.aborted) throw cancelled(this.label, start);
      throw new LopperError('network', `could not reach ${this.url} (${errorText(e)}): check the connection or the base URL`, this.label);
    }
  }

  private checkStatus(res: Response): void {
    if (res.status === 200 || res.status === 206) return;
    const s = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    if (res.status === 401 || res.status === 403) {
      throw new LopperError(
        'auth',
        this.opts.token
          ? `access refused (${s}): check that the Hugging Face token is valid and that you accepted this model's license on huggingface.co`
          : `access refused (${s}): this model is gated — accept its license on huggingface.co and give a Hugging Face access token`,
        this.label,
      );
    }
    if (res.status === 404) throw new LopperError('not-found', `not found (${s}) at ${this.url}: check the base URL`, this.label);
    throw new LopperError('network', `download failed (${s}) from ${this.url}; try again later`, this.label);
  }

  /** Read the body, writing a chunk every chunkBytes; then check the size and store the file whole. */
  private async stream(res: Response): Promise<Blob> {
    const { expectedBytes, signal } = this.opts;
    const total = this.total;
    if (total !== null && expectedBytes !== undefined && total !== expectedBytes) {
      await res.body?.cancel().catch(() => {});
      await this.dropPartial();
      throw corrupt(this.label, `the server announces ${total} bytes but ${expectedBytes} are expected`);
    }
    const reader = res.body?.getReader();
    const pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const received = () => this.meta!.loaded + pendingBytes;
    /** Store the first `n` buffered bytes as the next chunk (with the metadata that counts it, atomically). */
    const writeChunk = async (n: number) => {
      const parts: Uint8Array[] = [];
      let need = n;
      while (need > 0) {
        const head = pending[0];
        if (head.byteLength <= need) {
          parts.push(head);
          pending.shift();
          need -= head.byteLength;
        } else {
          parts.push(head.subarray(0, need));
          pending[0] = head.subarray(need);
          need = 0;
        }
      }
      const meta = this.meta!;
      const next: PartialMeta = { ...meta, loaded: meta.loaded + n, chunks: meta.chunks + 1, updated: Date.now() };
      try {
        await this.store.putChunk(this.key, meta.chunks, new Blob(parts as BlobPart[]), next);
      } catch (e) {
        pending.unshift(...parts); // not stored: still only in memory
        if (isQuotaError(e)) {
          const need = total === null ? null : total - meta.loaded + total; // the rest, then one copy when complete
          throw await quotaError(this.label, need, `the ${formatBytes(meta.loaded)} already downloaded are kept`);
        }
        throw e;
      }
      this.meta = next;
      pendingBytes -= n;
    };
    /** Store whole chunks of chunkBytes; with `all`, the remainder too. */
    const flush = async (all: boolean) => {
      while (pendingBytes >= this.chunkBytes) await writeChunk(this.chunkBytes);
      if (all && pendingBytes > 0) await writeChunk(pendingBytes);
    };

    this.emit(received(), true);
    try {
      while (reader) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          if (signal?.aborted) throw cancelled(this.label, received());
          throw new LopperError('network', `the download broke off (${errorText(e)}); start it again to continue`, this.label);
        }
        if (signal?.aborted) throw cancelled(this.label, received());
        if (r.done) break;
        pending.push(r.value);
        pendingBytes += r.value.byteLength;
        if (total !== null && received() > total) {
          throw corrupt(this.label, `the server sent more than the ${total} bytes it announced`);
        }
        if (pendingBytes >= this.chunkBytes) {
          await flush(false);
          this.emit(received(), true);
        } else this.emit(received(), false);
      }
      await flush(true);
    } catch (e) {
      await reader?.cancel().catch(() => {});
      if (e instanceof LopperError && (e.code === 'cancelled' || e.code === 'network')) {
        await flush(true).catch(() => {}); // keep what arrived; a failing write here loses only this tail
      } else if (e instanceof LopperError && e.code === 'corrupt') {
        await this.dropPartial();
      }
      throw e;
    }

    const loaded = this.meta!.loaded;
    if (total !== null && loaded !== total) {
      await this.dropPartial();
      throw corrupt(this.label, `received ${loaded} bytes but the server announced ${total}`);
    }
    if (expectedBytes !== undefined && loaded !== expectedBytes) {
      await this.dropPartial();
      throw corrupt(this.label, `received ${loaded} bytes but ${expectedBytes} are expected`);
    }
    return this.finish();
  }

  /** Join the stored chunks into one Blob, store it whole and drop the chunks (one transaction). */
  private async finish(): Promise<Blob> {
    const meta = this.meta!;
    const chunks = await this.store.readChunks(this.key, meta.chunks);
    if (chunks.some((c) => !(c instanceof Blob))) {
      await this.dropPartial();
      throw corrupt(this.label, 'a stored piece of the download is missing');
    }
    const blob = new Blob(chunks as Blob[]);
    if (blob.size !== meta.loaded) {
      await this.dropPartial();
      throw corrupt(this.label, `the stored pieces hold ${blob.size} bytes, not ${meta.loaded}`);
    }
    const record: FileRecord = {
      v: RECORD_VERSION,
      url: this.url,
      label: this.label,
      blob,
      bytes: blob.size,
      updated: Date.now(),
      ...(meta.etag ? { etag: meta.etag } : {}),
    };
    try {
      await this.store.complete(this.key, record);
    } catch (e) {
      if (isQuotaError(e)) {
        throw await quotaError(this.label, blob.size, `the ${formatBytes(blob.size)} downloaded are kept and are saved whole on the next try`);
      }
      throw e;
    }
    const stored = await readFileRecord(this.store, this.key, this.label);
    if (!stored) throw corrupt(this.label, 'the file could not be read back after saving it');
    this.emit(stored.bytes, true);
    return stored.blob;
  }

  private emit(loaded: number, force: boolean): void {
    const cb = this.opts.onProgress;
    if (!cb) return;
    const now = performance.now();
    if (!force && now - this.lastEmit < PROGRESS_INTERVAL_MS) return;
    this.lastEmit = now;
    const seconds = (now - this.started) / 1000;
    const bytesPerSecond = seconds > 0 ? (loaded - this.resumedFrom) / seconds : 0;
    const total = this.total ?? this.opts.expectedBytes ?? null;
    cb({
      file: this.label,
      loaded,
      total,
      bytesPerSecond,
      secondsLeft: total === null ? null : loaded >= total ? 0 : bytesPerSecond > 0 ? (total - loaded) / bytesPerSecond : null,
      resumedFrom: this.resumedFrom,
      fromCache: false,
    });
  }
}

/** The stored whole file, validated; a record that fails validation is deleted → LopperError('corrupt'). */
async function readFileRecord(store: DownloadStore, key: string, label: string): Promise<FileRecord | undefined> {
  const rec = await store.getFile(key);
  if (rec === undefined) return undefined;
  const r = rec as Partial<FileRecord> | null;
  if (!r || r.v !== RECORD_VERSION || !(r.blob instanceof Blob) || r.blob.size !== r.bytes) {
    await store.drop(key);
    throw corrupt(label, 'the stored copy is damaged');
  }
  return r as FileRecord;
}

// ---------------------------------------------------------------------------------------
// Helpers

function corrupt(label: string, why: string): LopperError {
  return new LopperError(
    'corrupt',
    `${why}. The bad copy was deleted: download it again (if this repeats, delete it in the storage panel and check the base URL)`,
    label,
  );
}

function cancelled(label: string, loaded: number): LopperError {
  return new LopperError(
    'cancelled',
    loaded > 0 ? `download cancelled; the ${formatBytes(loaded)} received are kept and it continues from there` : 'download cancelled',
    label,
  );
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `bytes a-b/total` → numbers (total null for `*`), or null when absent or malformed. */
export function parseContentRange(h: string | null): { start: number; end: number; total: number | null } | null {
  const m = h ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(h.trim()) : null;
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

function contentLength(res: Response): number | null {
  const h = res.headers.get('content-length');
  return h !== null && /^\d+$/.test(h.trim()) ? Number(h) : null;
}

/** A compressed body: its Content-Length counts compressed bytes and Range offsets do not apply to what we read. */
function isCompressed(res: Response): boolean {
  const enc = res.headers.get('content-encoding')?.trim().toLowerCase();
  return !!enc && enc !== 'identity';
}

/** A strong ETag (a weak one does not identify the bytes). */
function strongEtag(h: string | null): string | undefined {
  return h && !h.startsWith('W/') ? h : undefined;
}

/** Run `fn` holding the download lock for `key` (Web Locks across tabs/workers; a promise chain otherwise). */
const localLocks = new Map<string, Promise<unknown>>();
async function withLock<T>(key: string, signal: AbortSignal | undefined, label: string, fn: () => Promise<T>): Promise<T> {
  const name = `lopper-download:${key}`;
  const locks = globalThis.navigator?.locks;
  if (locks) {
    try {
      return await locks.request(name, signal ? { signal } : {}, fn);
    } catch (e) {
      if (signal?.aborted && !(e instanceof LopperError)) throw cancelled(label, 0);
      throw e;
    }
  }
  const prev = localLocks.get(name) ?? Promise.resolve();
  const run = prev.catch(() => {}).then(fn);
  localLocks.set(name, run);
  try {
    return await run;
  } finally {
    if (localLocks.get(name) === run) localLocks.delete(name);
  }
}
