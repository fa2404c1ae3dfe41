/**
 * The model stage: this device (and so the backend runs use), the download source (the
 * local mirror when it answers, else the hub), and the model in the worker, loaded from the
 * catalog, a URL or local files.
 */
import { catalogEntry, fileUrl, HUB, localMirrorBase } from '../../engine/store/catalog';
import { getHfToken, getStoredFile } from '../../engine/store/download';
import type { Backend, DeviceInfo, ModelSource, ModelSummary } from '../../app/protocol';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';

const BASE_KEY = 'lopper.base';
/** A catalog model linked in the URL loads at once when it is this small (or already stored). */
const AUTO_LOAD_BYTES = 100e6;

function readSavedBase(): string | null {
  try {
    return localStorage.getItem(BASE_KEY);
  } catch {
    return null;
  }
}

/** What a software adapter is called in words: "SwiftShader", else its description. */
export function softwareName(gpu: NonNullable<DeviceInfo['gpu']>): string {
  for (const name of ['SwiftShader', 'llvmpipe', 'lavapipe']) if (gpu.description.toLowerCase().includes(name.toLowerCase())) return name;
  return gpu.description;
}

/**
 * The backend runs use when the person has not chosen one: WebGPU on a hardware adapter,
 * else WASM — also over a software (fallback) adapter, which is slower than WASM.
 */
export function defaultBackend(device: DeviceInfo | null): Backend {
  return device?.webgpu && !device.gpu?.fallback ? 'webgpu' : 'wasm';
}

export class ModelStore {
  device = $state<DeviceInfo | null>(null);
  /** the model in the worker */
  summary = $state<ModelSummary | null>(null);
  /** where catalog models download from: the local mirror, the hub, or another mirror */
  base = $state(readSavedBase() ?? '');
  /** whether the local mirror (/models/) answers */
  mirror = $state<boolean | null>(null);
  /** asks the token field to show itself (an 'auth' way forward) */
  tokenFocus = $state(0);
  readonly job: Job;

  /** the local-mirror probe (catalog downloads wait for it, so they use the right base) */
  private readonly probe: Promise<void>;
  private lastSource: ModelSource | null = null;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
    this.probe = this.probeMirror();
  }

  /** The backend runs use: the chosen one, else defaultBackend. */
  get backend(): Backend {
    return this.app.settings.backend ?? defaultBackend(this.device);
  }

  /** Device facts, the download source, and a model linked in the URL. */
  async init(): Promise<void> {
    const device = this.app.client
      .call('device', {})
      .promise.then((d) => (this.device = d))
      .catch(() => null);
    await Promise.all([device, this.probe]);
    await this.autoLoad();
  }

  private async probeMirror(): Promise<void> {
    let ok = false;
    try {
      const res = await fetch(`${localMirrorBase()}/stories260K/stories260K.bin`, { method: 'HEAD', cache: 'no-store' });
      ok = res.ok;
    } catch {
      ok = false;
    }
    this.mirror = ok;
    if (!this.base) this.base = ok ? localMirrorBase() : HUB;
  }

  setBase(base: string): void {
    this.base = base.trim().replace(/\/+$/, '') || HUB;
    try {
      localStorage.setItem(BASE_KEY, this.base);
    } catch {
      // storage blocked: the setting lasts for this page
    }
  }

  private async autoLoad(): Promise<void> {
    const settings = this.app.settings;
    const id = settings.model;
    if (!id) return;
    if (id.includes('/')) {
      this.loadUrl(id, settings.tokenizer);
      return;
    }
    const entry = catalogEntry(id);
    if (!entry) return;
    let stored = false;
    try {
      stored = (await Promise.all(entry.files.map((f) => getStoredFile(fileUrl(this.base, entry, f))))).every((b) => b !== undefined);
    } catch {
      stored = false;
    }
    if (stored || entry.bytes < AUTO_LOAD_BYTES) this.loadCatalog(entry.id);
  }

  async loadCatalog(id: string, force = false): Promise<void> {
    const entry = catalogEntry(id);
    const token = entry?.gated ? (getHfToken() ?? undefined) : undefined;
    this.app.settings.model = id;
    this.app.settings.tokenizer = '';
    await this.probe;
    return this.loadSource({ kind: 'catalog', id, base: this.base || HUB, token }, force, entry?.name ?? id);
  }

  loadUrl(model: string, tokenizer?: string): Promise<void> {
    this.app.settings.model = model;
    this.app.settings.tokenizer = tokenizer ?? '';
    return this.loadSource({ kind: 'url', model, tokenizer: tokenizer || undefined });
  }

  loadFiles(source: ModelSource): Promise<void> {
    this.app.settings.model = '';
    this.app.settings.tokenizer = '';
    return this.loadSource(source);
  }

  /** Load `source` into the worker (a load in flight is cancelled); the stages after it start afresh. */
  async loadSource(source: ModelSource, force = false, name?: string): Promise<void> {
    this.job.cancel();
    this.lastSource = source;
    this.app.banner.clear();
    const { windows, window, memoryGiB } = this.app.settings;
    const request = { source, backend: this.backend, force, workload: { windows, window }, memoryBytes: memoryGiB === null ? undefined : memoryGiB * 2 ** 30 };
    const call = this.job.start('load', request, `Loading ${name ?? describe(source)}`);
    await this.job.settle(
      call,
      (summary) => {
        this.summary = summary;
        this.app.modelChanged();
        // (App looks up a stored result for the current settings once the model is in)
      },
      (e) => this.app.banner.fail(e, () => this.loadSource(source, force, name), 'Loading'),
    );
    this.app.storage.changed();
  }

  /** Load the last model again, past the device check. */
  loadAnyway(): void {
    if (this.lastSource) void this.loadSource(this.lastSource, true);
  }

  /** Load the last model again (after the worker died). */
  reload(): void {
    if (this.lastSource) void this.loadSource(this.lastSource);
  }
}

function describe(s: ModelSource): string {
  switch (s.kind) {
    case 'catalog':
      return s.id;
    case 'url':
      return s.model;
    case 'llama2c-files':
      return s.model.name;
    case 'hf-files':
      return s.name;
  }
}
