/// <reference lib="webworker" />
/**
 * Model worker: reads a model's files (dropped files or URLs), parses them with
 * src/engine into a Checkpoint that stays here, and posts back a typed summary.
 * Thin on purpose: all format knowledge lives in src/engine/formats.
 */
import { LopperError } from '../src/engine/errors';
import { loadHfFolder } from '../src/engine/formats/hf';
import { loadLlama2c } from '../src/engine/formats/llama2c';
import { MemorySource, type FileSource } from '../src/engine/formats/source';
import { parameterCount, type Checkpoint } from '../src/engine/model/checkpoint';

// ---- messages ---------------------------------------------------------------------

export type ModelRequest =
  | { id: number; kind: 'llama2c-files'; model: File; tokenizer: File }
  | { id: number; kind: 'llama2c-urls'; model: string; tokenizer: string }
  /** A Hugging Face folder's files, keyed by path relative to the folder. */
  | { id: number; kind: 'hf-files'; name: string; files: { path: string; file: File }[] }
  /** A Hugging Face folder over HTTP (a mirror or the hub's /resolve/{rev}/ prefix). */
  | { id: number; kind: 'hf-url'; base: string };

export interface ModelSummary {
  source: string;
  format: Checkpoint['format'];
  architecture: string;
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  parameterCount: number;
  tiedEmbeddings: boolean;
  /** Tensor storage dtypes with how many parameters each holds, largest first. */
  dtypes: { dtype: string; parameters: number }[];
  tokenizer: { kind: string; vocabSize: number; bosId: number; eosId: number };
  /** Bytes read from the source. */
  bytesRead: number;
  /** Time from request to parsed checkpoint. */
  millis: number;
}

export type ModelResponse =
  | { id: number; type: 'progress'; message: string; loaded: number; total: number }
  | { id: number; type: 'loaded'; summary: ModelSummary }
  | { id: number; type: 'error'; message: string; code?: string };

// ---- reading --------------------------------------------------------------------------

const post = (m: ModelResponse) => (self as DedicatedWorkerGlobalScope).postMessage(m);

class Reader {
  bytes = 0;
  constructor(private readonly id: number) {}

  async file(f: File): Promise<Uint8Array> {
    post({ id: this.id, type: 'progress', message: `reading ${f.name}`, loaded: 0, total: f.size });
    const b = new Uint8Array(await f.arrayBuffer());
    this.bytes += b.length;
    return b;
  }

  /** GET a URL, reporting progress as it streams. 404 is a LopperError('not-found'). */
  async url(url: string): Promise<Uint8Array> {
    const res = await fetch(url);
    if (res.status === 404) throw new LopperError('not-found', 'no such file (HTTP 404)', url);
    if (!res.ok || !res.body) throw new LopperError('not-found', `HTTP ${res.status} ${res.statusText}`, url);
    const total = Number(res.headers.get('content-length') ?? 0);
    const chunks: Uint8Array[] = [];
    let loaded = 0;
    let lastPost = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      if (performance.now() - lastPost > 100) {
        lastPost = performance.now();
        post({ id: this.id, type: 'progress', message: `downloading ${url}`, loaded, total });
      }
    }
    const out = new Uint8Array(loaded);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    this.bytes += loaded;
    return out;
  }
}

/** A folder over HTTP: `base` + relative path. */
class HttpSource implements FileSource {
  readonly name: string;
  constructor(
    base: string,
    private readonly reader: Reader,
  ) {
    this.name = base.endsWith('/') ? base : base + '/';
  }
  read(path: string): Promise<Uint8Array> {
    return this.reader.url(new URL(path, new URL(this.name, location.href)).href);
  }
  async exists(path: string): Promise<boolean> {
    const res = await fetch(new URL(path, new URL(this.name, location.href)), { method: 'HEAD' });
    return res.ok;
  }
}

/** A FileSource over dropped files, reading each only when the importer asks for it. */
class DroppedSource implements FileSource {
  private readonly files: Map<string, File>;
  constructor(
    readonly name: string,
    files: { path: string; file: File }[],
    private readonly reader: Reader,
  ) {
    this.files = new Map(files.map((f) => [f.path, f.file]));
  }
  async read(path: string): Promise<Uint8Array> {
    const f = this.files.get(path);
    if (!f) return new MemorySource(this.name, new Map()).read(path); // throws not-found
    return this.reader.file(f);
  }
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
}

const baseName = (url: string) => decodeURIComponent(url.split(/[?#]/)[0].split('/').pop() || url);

async function load(req: ModelRequest, reader: Reader): Promise<Checkpoint> {
  switch (req.kind) {
    case 'llama2c-files': {
      const [model, tok] = await Promise.all([reader.file(req.model), reader.file(req.tokenizer)]);
      return loadLlama2c(model, tok, { model: req.model.name, tokenizer: req.tokenizer.name });
    }
    case 'llama2c-urls': {
      const [model, tok] = await Promise.all([reader.url(req.model), reader.url(req.tokenizer)]);
      return loadLlama2c(model, tok, { model: baseName(req.model), tokenizer: baseName(req.tokenizer) });
    }
    case 'hf-files':
      return loadHfFolder(new DroppedSource(req.name, req.files, reader));
    case 'hf-url':
      return loadHfFolder(new HttpSource(req.base, reader));
  }
}

export function summarize(ck: Checkpoint, bytesRead: number, millis: number): ModelSummary {
  const c = ck.config;
  const byDtype = new Map<string, number>();
  for (const t of ck.tensors.values()) byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + t.data.length);
  return {
    source: ck.source,
    format: ck.format,
    architecture: c.architecture,
    numLayers: c.numLayers,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    maxPositions: c.maxPositions,
    parameterCount: parameterCount(ck),
    tiedEmbeddings: c.tieWordEmbeddings,
    dtypes: [...byDtype].map(([dtype, parameters]) => ({ dtype, parameters })).sort((a, b) => b.parameters - a.parameters),
    tokenizer: {
      kind: ck.tokenizer.kind,
      vocabSize: ck.tokenizer.vocabSize,
      bosId: ck.tokenizer.bosId,
      eosId: ck.tokenizer.eosId,
    },
    bytesRead,
    millis,
  };
}

// ---- entry ------------------------------------------------------------------------------

/** The loaded checkpoint stays in the worker; later stages (calibrate, prune) use it here. */
let current: Checkpoint | null = null;

self.onmessage = async (e: MessageEvent<ModelRequest>) => {
  const req = e.data;
  const t0 = performance.now();
  const reader = new Reader(req.id);
  try {
    current = null;
    current = await load(req, reader);
    post({ id: req.id, type: 'loaded', summary: summarize(current, reader.bytes, performance.now() - t0) });
  } catch (err) {
    if (err instanceof LopperError) post({ id: req.id, type: 'error', message: err.message, code: err.code });
    else {
      console.error(err);
      post({ id: req.id, type: 'error', message: `unexpected error: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
};
