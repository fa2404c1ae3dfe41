/**
 * Getting a model into the worker: catalog entries and URLs through the store (resumable,
 * kept in IndexedDB, never downloaded twice), or the person's own files; then the device
 * check and the importers of src/engine/formats.
 */
import { LopperError } from '../../src/engine/errors';
import { loadHfFolder } from '../../src/engine/formats/hf';
import { llama2cWeights, loadLlama2c } from '../../src/engine/formats/llama2c';
import { containedPath, type FileSource } from '../../src/engine/formats/source';
import { parameterCount, type Checkpoint } from '../../src/engine/model/checkpoint';
import { fromHfConfig } from '../../src/engine/model/config';
import { bytesPerElement, numel } from '../../src/engine/model/tensor';
import { catalogEntry, type CatalogEntry } from '../../src/engine/store/catalog';
import { fetchEntry, fetchToStore, labelFor, type DownloadProgress as StoreProgress } from '../../src/engine/store/download';
import { HfTokenizer, parseJsonObject } from '../../src/engine/text/hf-tokenizer';
import type { Backend, DeviceCheck, ModelSource, ModelSummary } from '../../src/app/protocol';
import type { Workload } from '../../src/engine/model/cost';
import { checkDevice, deviceInfo, type ModelFootprint } from './device';
import { checkAbort } from './cancel';
import type { Tracker } from './progress';

export interface LoadedModel {
  ck: Checkpoint;
  summary: ModelSummary;
}

/** Bytes of a Blob or File. */
const bytesOf = async (b: Blob) => new Uint8Array(await b.arrayBuffer());

/** A FileSource over files already at hand (downloaded Blobs or dropped Files), read only when asked for. */
class BlobSource implements FileSource {
  constructor(
    readonly name: string,
    private readonly files: Map<string, Blob>,
    private readonly onRead: (n: number) => void,
  ) {}
  private blob(path: string): Blob {
    const f = this.files.get(path);
    if (!f) throw new LopperError('not-found', `no file "${path}"`, this.name);
    return f;
  }
  async read(path: string): Promise<Uint8Array> {
    const b = await bytesOf(this.blob(path));
    this.onRead(b.length);
    return b;
  }
  async size(path: string): Promise<number> {
    return this.blob(path).size;
  }
  /** A slice of the stored download or picked file: only these bytes are read. */
  async readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    const b = await bytesOf(blobRange(this.blob(path), offset, length, `${this.name}/${path}`));
    this.onRead(b.length);
    return b;
  }
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
}

/** Blob.slice of [offset, offset + length), checked to lie inside the Blob. */
function blobRange(blob: Blob, offset: number, length: number, file: string): Blob {
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= blob.size)) {
    throw new LopperError('truncated', `bytes ${offset}..${offset + length} are outside the file (${blob.size} bytes)`, file);
  }
  return blob.slice(offset, offset + length);
}

/** A Hugging Face folder over HTTP: each file through the store; existence by HEAD. */
class HttpSource implements FileSource {
  readonly name: string;
  constructor(
    base: string,
    private readonly fetchFile: (url: string) => Promise<Blob>,
    private readonly onRead: (n: number) => void,
  ) {
    this.name = base.endsWith('/') ? base : base + '/';
  }
  /** The file's URL under the folder's (containedPath keeps it there: no "..", scheme or query). */
  private url(path: string): string {
    return new URL(containedPath(path, this.name), new URL(this.name, location.href)).href;
  }
  /** The file, downloaded into the store once (later calls read the stored Blob). */
  private blob(path: string): Promise<Blob> {
    const url = this.url(path);
    let b = this.blobs.get(url);
    if (!b) this.blobs.set(url, (b = this.fetchFile(url)));
    return b;
  }
  private readonly blobs = new Map<string, Promise<Blob>>();
  async read(path: string): Promise<Uint8Array> {
    const b = await bytesOf(await this.blob(path));
    this.onRead(b.length);
    return b;
  }
  async size(path: string): Promise<number> {
    return (await this.blob(path)).size;
  }
  async readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    const b = await bytesOf(blobRange(await this.blob(path), offset, length, this.url(path)));
    this.onRead(b.length);
    return b;
  }
  async exists(path: string): Promise<boolean> {
    const res = await fetch(this.url(path), { method: 'HEAD' }).catch(() => null);
    return !!res?.ok;
  }
}

/**
 * A llama2.c checkpoint whose tokenizer is a Hugging Face tokenizer.json (the hub's
 * tinyllamas models): the weights as llama2.c holds them, the tokenizer checked against the
 * header's vocab_size.
 */
async function llama2cWithHfTokenizer(model: Uint8Array, tokenizerJson: Uint8Array, names: { model: string; tokenizer: string }): Promise<Checkpoint> {
  const { config, tensors } = llama2cWeights(model, names.model);
  const tokenizer = await HfTokenizer.create({ 'tokenizer.json': tokenizerJson }, config, names.tokenizer, names.model);
  return { config, tensors, tokenizer, source: names.model, format: 'llama2c' };
}

const baseName = (url: string) => decodeURIComponent(url.split(/[?#]/)[0].split('/').filter(Boolean).pop() || url);

export interface LoadContext {
  signal: AbortSignal;
  tracker: Tracker;
  backend: Backend;
  force: boolean;
  /** what the device check plans for (the run settings' windows) */
  workload: Workload;
  /** memory to plan for in place of the device's figure (bytes), or null */
  memoryBytes: number | null;
}

/** Stages of a load (weights: bytes matter most). */
export function loadStages(): { stage: string; label: string; weight: number }[] {
  return [
    { stage: 'check', label: 'checking the model against this device', weight: 0.02 },
    { stage: 'download', label: 'downloading', weight: 1 },
    { stage: 'parse', label: 'parsing', weight: 0.1 },
  ];
}

/** The device check refused the model (the worker answers with code 'too-large'). */
export class TooLarge extends Error {
  constructor(
    name: string,
    readonly check: DeviceCheck,
  ) {
    super(`${name} will not fit this device: ${check.problems.join('; ')}.`);
  }
}

function refuseIfTooLarge(check: DeviceCheck, name: string, force: boolean): void {
  if (!check.fits && !force) throw new TooLarge(name, check);
}

export async function loadModel(source: ModelSource, ctx: LoadContext): Promise<LoadedModel> {
  const t0 = performance.now();
  const { tracker, signal } = ctx;
  const info = await deviceInfo();
  const check = (model: ModelFootprint) => checkDevice(model, ctx.backend, info, ctx.workload, ctx.memoryBytes);
  let bytesRead = 0;
  let bytesDownloaded = 0;
  const onRead = (n: number) => (bytesRead += n);

  // Per-file download progress, summed over the request's files.
  const done = new Map<string, number>();
  let expectedTotal = 0;
  const onDownload = (p: StoreProgress) => {
    done.set(p.file, p.loaded);
    const loaded = [...done.values()].reduce((a, b) => a + b, 0);
    const total = Math.max(expectedTotal, loaded);
    tracker.report(loaded, total, {
      label: p.fromCache ? `${p.file}: already stored` : `downloading ${p.file}`,
      download: { ...p, total: p.total ?? 0 },
    });
  };
  const downloaded = new Map<string, { fromCache: boolean; loaded: number; resumedFrom: number }>();
  const track = (p: StoreProgress) => {
    downloaded.set(p.file, { fromCache: p.fromCache, loaded: p.loaded, resumedFrom: p.resumedFrom });
    onDownload(p);
  };
  const fetchFile = (url: string) => fetchToStore(url, { signal, onProgress: track });

  let ck: Checkpoint;
  let key: string;
  let name: string;
  let catalogId: string | null = null;
  tracker.start('check');
  switch (source.kind) {
    case 'catalog': {
      const entry: CatalogEntry | undefined = catalogEntry(source.id);
      if (!entry) throw new LopperError('not-found', `no model "${source.id}" in the catalog`);
      key = `catalog:${entry.id}@${entry.revision}`;
      name = entry.name;
      catalogId = entry.id;
      // Before any download: shape, parameters and size from the catalog; for Hugging Face folders again from the config (fetched first: a few hundred bytes).
      const weightFiles = entry.files.filter((f) => f.role === 'weights' || f.role === 'model');
      const weightBytes = weightFiles.every((f) => f.bytes) ? weightFiles.reduce((a, f) => a + f.bytes!, 0) : entry.bytes;
      refuseIfTooLarge(check({ shape: entry.shape, parameters: entry.params, weightBytes }), entry.name, ctx.force);
      expectedTotal = entry.bytes;
      tracker.start('download', `downloading ${entry.name}`);
      if (entry.format === 'hf') {
        const cfgFile = entry.files.find((f) => f.role === 'config');
        if (cfgFile) {
          const files = await fetchEntry(source.base, { ...entry, files: [cfgFile] }, { token: source.token, signal, onProgress: track });
          const cfgName = `${entry.name}/config.json`;
          const cfg = fromHfConfig(parseJsonObject(await bytesOf(files.get(cfgFile.path)!), cfgName), cfgName);
          refuseIfTooLarge(check({ shape: cfg, parameters: entry.params, weightBytes }), entry.name, ctx.force);
        }
      }
      const files = await fetchEntry(source.base, entry, { token: source.token, signal, onProgress: track });
      tracker.start('parse', `parsing ${entry.name}`);
      ck = await parseEntry(entry, files, onRead);
      break;
    }
    case 'url': {
      key = `url:${new URL(source.model, location.href).href}${source.tokenizer ? `+${new URL(source.tokenizer, location.href).href}` : ''}`;
      tracker.start('download', `downloading ${labelFor(source.model)}`);
      const isBin = source.model.split(/[?#]/)[0].endsWith('.bin');
      if (isBin) {
        if (!source.tokenizer) throw new LopperError('bad-input', 'a llama2.c .bin needs its tokenizer .bin (or tokenizer.json) too');
        const model = await bytesOf(await fetchFile(source.model));
        const tok = await bytesOf(await fetchFile(source.tokenizer));
        onRead(model.length + tok.length);
        tracker.start('parse');
        const names = { model: baseName(source.model), tokenizer: baseName(source.tokenizer) };
        ck = names.tokenizer.endsWith('.json') ? await llama2cWithHfTokenizer(model, tok, names) : loadLlama2c(model, tok, names);
        name = names.model;
      } else {
        ck = await loadHfFolder(new HttpSource(source.model, fetchFile, onRead));
        name = baseName(source.model);
      }
      break;
    }
    case 'llama2c-files': {
      key = `file:${source.model.name}:${source.model.size}+${source.tokenizer.name}:${source.tokenizer.size}`;
      name = source.model.name;
      tracker.skip('download');
      tracker.start('parse', `reading ${source.model.name}`);
      const [model, tok] = await Promise.all([bytesOf(source.model), bytesOf(source.tokenizer)]);
      onRead(model.length + tok.length);
      const names = { model: source.model.name, tokenizer: source.tokenizer.name };
      ck = names.tokenizer.endsWith('.json') ? await llama2cWithHfTokenizer(model, tok, names) : loadLlama2c(model, tok, names);
      break;
    }
    case 'hf-files': {
      const size = source.files.reduce((a, f) => a + f.file.size, 0);
      key = `folder:${source.name}:${source.files.length}:${size}`;
      name = source.name;
      tracker.skip('download');
      tracker.start('parse', `reading ${source.name}`);
      ck = await loadHfFolder(new BlobSource(source.name, new Map(source.files.map((f) => [f.path, f.file])), onRead));
      break;
    }
  }
  checkAbort(signal, 'loading was cancelled');

  // After parsing: the real shape, parameter count and bytes as stored.
  let weightBytes = 0;
  for (const t of ck.tensors.values()) weightBytes += numel(t.shape) * bytesPerElement(t.dtype);
  const device = check({ shape: ck.config, parameters: parameterCount(ck), weightBytes });
  refuseIfTooLarge(device, name, ctx.force);
  for (const d of downloaded.values()) if (!d.fromCache) bytesDownloaded += d.loaded - d.resumedFrom;
  return { ck, summary: summarize(ck, { key, name, catalogId, bytesRead, bytesDownloaded, millis: performance.now() - t0, device }) };
}

/** Parse a catalog entry's downloaded files. */
async function parseEntry(entry: CatalogEntry, files: Map<string, Blob>, onRead: (n: number) => void): Promise<Checkpoint> {
  if (entry.format === 'hf') return loadHfFolder(new BlobSource(entry.name, files, onRead));
  const modelFile = entry.files.find((f) => f.role === 'model');
  const tokFile = entry.files.find((f) => f.role === 'tokenizer');
  if (!modelFile || !tokFile) throw new LopperError('corrupt', 'the catalog entry lacks a model or tokenizer file', entry.name);
  const model = await bytesOf(files.get(modelFile.path)!);
  const tok = await bytesOf(files.get(tokFile.path)!);
  onRead(model.length + tok.length);
  const names = { model: `${entry.name}: ${modelFile.path}`, tokenizer: `${entry.name}: ${tokFile.path}` };
  return tokFile.path.endsWith('.json') ? llama2cWithHfTokenizer(model, tok, names) : loadLlama2c(model, tok, names);
}

export function summarize(
  ck: Checkpoint,
  m: { key: string; name: string; catalogId: string | null; bytesRead: number; bytesDownloaded: number; millis: number; device: DeviceCheck },
): ModelSummary {
  const c = ck.config;
  const byDtype = new Map<string, number>();
  for (const t of ck.tensors.values()) byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + numel(t.shape));
  return {
    key: m.key,
    catalogId: m.catalogId,
    name: m.name,
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
    tokenizer: { kind: ck.tokenizer.kind, vocabSize: ck.tokenizer.vocabSize, bosId: ck.tokenizer.bosId, eosId: ck.tokenizer.eosId },
    bytesRead: m.bytesRead,
    bytesDownloaded: m.bytesDownloaded,
    millis: m.millis,
    device: m.device,
  };
}
