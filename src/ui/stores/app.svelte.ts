/**
 * The app's state and actions: the model in the worker, the current run and its result,
 * generations, the evaluation, exports, and the error banner. Components read this store and call its methods; the
 * work itself happens in workers/lopper.worker.ts through LopperClient.
 */
import { isTask, TASK_SPECS, TASKS, type TaskName } from '../../engine/eval/tasks';
import { catalogEntry, fileUrl, HUB, localMirrorBase } from '../../engine/store/catalog';
import { getHfToken, getStoredFile } from '../../engine/store/download';
import { LopperClient, WorkerError } from '../client';
import { bytes } from '../format';
import {
  exportBaseName,
  MODE_LABEL,
  type Backend,
  type DeviceInfo,
  type EvalResult,
  type EvalSettings,
  type ExportFormat,
  type ExportStream,
  type GenerateSettings,
  type ModelSource,
  type ModelSummary,
  type Progress,
  type RunResult,
  type TaskData,
  type Variant,
} from '../../app/protocol';
import { dataBase } from '../texts';
import { Settings } from './settings.svelte';

/** What the error banner offers as the way forward. */
export type Action = 'load-anyway' | 'use-wasm' | 'retry' | 'open-storage' | 'token' | 'custom-text' | 'use-hub' | 'reload';

export interface UiError {
  code: string;
  title: string;
  message: string;
  /** the way forward, in words */
  hint: string;
  actions: Action[];
}

export interface Task {
  id: number;
  title: string;
  progress: Progress | null;
}

export interface Generation {
  text: string;
  tokens: number;
  tokensPerSecond: number;
  running: boolean;
  done: boolean;
  error: string | null;
}

export interface GenerateOptions {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

/** What the export panel is writing: a model in a format. */
export interface ExportTask extends Task {
  variant: Variant;
  format: ExportFormat;
}

/** The evaluation panel's choices, in the URL (tasks, items, qa) like the run's settings, so a setup is a link. */
export class EvalChoice {
  static readonly DEFAULT_LIMIT = 100;
  /** in TASKS order */
  tasks = $state<TaskName[]>([...TASKS]);
  /** items per task */
  limit = $state(EvalChoice.DEFAULT_LIMIT);
  /** null: the data mirror when it answers, else the Hugging Face datasets server */
  data = $state<TaskData | null>(null);

  constructor(search = globalThis.location?.search ?? '') {
    const q = new URLSearchParams(search);
    const tasks = (q.get('tasks') ?? '').split(',').filter(isTask);
    if (tasks.length) this.tasks = TASKS.filter((t) => tasks.includes(t));
    const n = Number(q.get('items'));
    if (q.has('items') && Number.isInteger(n) && n >= 1) this.limit = n;
    const d = q.get('qa');
    if (d === 'mirror' || d === 'hub') this.data = d;
  }

  toggle(task: TaskName, on: boolean): void {
    this.tasks = TASKS.filter((t) => (t === task ? on : this.tasks.includes(t)));
  }

  /** What differs from the defaults, as URL parameters. */
  params(): Record<string, string> {
    const p: Record<string, string> = {};
    if (this.tasks.length !== TASKS.length) p.tasks = this.tasks.join(',');
    if (this.limit !== EvalChoice.DEFAULT_LIMIT) p.items = String(this.limit);
    if (this.data) p.qa = this.data;
    return p;
  }

  writeUrl(): void {
    const url = new URL(location.href);
    for (const k of ['tasks', 'items', 'qa']) url.searchParams.delete(k);
    for (const [k, v] of Object.entries(this.params())) url.searchParams.set(k, v);
    if (url.href !== location.href) history.replaceState(history.state, '', url);
  }
}

type SavePicker = (opts: { suggestedName: string; types?: { description: string; accept: Record<string, string[]> }[] }) => Promise<FileSystemFileHandle>;

/**
 * Where a download goes, chosen while the click's user activation lasts: a file the person
 * picks (File System Access API: the bytes stream to disk), or null for a plain download
 * (the bytes gather in a Blob first). Undefined: the person closed the picker.
 */
async function chooseFile(name: string, description: string, ext: string, mime: string): Promise<FileSystemWritableFileStream | null | undefined> {
  const picker = (globalThis as unknown as { showSaveFilePicker?: SavePicker }).showSaveFilePicker;
  if (!picker) return null;
  try {
    const handle = await picker({ suggestedName: name, types: [{ description, accept: { [mime]: [ext] } }] });
    return await handle.createWritable();
  } catch (e) {
    if ((e as DOMException)?.name === 'AbortError') return undefined;
    return null; // the picker is refused here (a frame, a policy): download instead
  }
}

/** A plain download of `blob` named `name` (<a download>). */
function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const BASE_KEY = 'lopper.base';
/** A catalog model linked in the URL loads at once when it is this small (or already stored). */
const AUTO_LOAD_BYTES = 100e6;

const TITLES: Record<string, string> = {
  'too-large': 'This model will not fit this device',
  'gpu-lost': 'The GPU device was lost',
  quota: 'Browser storage is full',
  corrupt: 'Stored data was damaged',
  auth: 'Access refused',
  network: 'Download failed',
  'not-found': 'Not found',
  text: 'Text not available',
  'task-data': 'Task data not available',
  save: 'Could not save the file',
  'no-model': 'No model yet',
  'bad-input': 'Cannot do that',
  'bad-option': 'Cannot do that',
  truncated: 'The file is incomplete',
  'shape-mismatch': 'The files do not match',
  'missing-tensor': 'The model is incomplete',
  'unsupported-architecture': 'Unsupported model',
  'unsupported-config': 'Unsupported model',
  'unknown-dtype': 'Unsupported model',
  internal: 'Something went wrong',
};

const HINTS: Record<string, { hint: string; actions: Action[] }> = {
  'too-large': { hint: 'Choose a smaller model, or load it anyway if you know this device has the room.', actions: ['load-anyway'] },
  'gpu-lost': { hint: 'Switch to the WASM backend and run again; the model and results are kept.', actions: ['use-wasm', 'retry'] },
  quota: { hint: 'Delete stored models or results in the storage panel, then try again.', actions: ['open-storage', 'retry'] },
  corrupt: { hint: 'The damaged copy was deleted: try again to fetch or compute it afresh.', actions: ['retry'] },
  auth: { hint: 'Accept the model’s license on huggingface.co and give a Hugging Face token.', actions: ['token', 'retry'] },
  network: { hint: 'Check the connection or the download source, then try again; what was downloaded is kept.', actions: ['retry', 'use-hub'] },
  'not-found': { hint: 'Check the download source (base URL) or the file names.', actions: ['use-hub', 'retry'] },
  text: { hint: 'Paste or upload a text of your own, or serve the data mirror.', actions: ['custom-text'] },
  'task-data': { hint: 'Choose the other source of task data in the evaluation panel (the data mirror or the Hugging Face datasets server), then evaluate again.', actions: ['retry'] },
  save: { hint: 'Choose another place to save it, or free disk space, and export again.', actions: ['retry'] },
  'no-model': { hint: 'Choose a model first.', actions: [] },
  internal: { hint: 'Try again; if it repeats, reload the page (stored models and results are kept).', actions: ['retry', 'reload'] },
};

function readSavedBase(): string | null {
  try {
    return localStorage.getItem(BASE_KEY);
  } catch {
    return null;
  }
}

export class AppState {
  readonly client = new LopperClient();
  readonly settings = new Settings();
  readonly evalChoice = new EvalChoice();

  device = $state<DeviceInfo | null>(null);
  model = $state<ModelSummary | null>(null);
  loading = $state<Task | null>(null);
  running = $state<Task | null>(null);
  result = $state<RunResult | null>(null);
  error = $state<UiError | null>(null);
  /** a short message that is not an error (e.g. "cancelled") */
  notice = $state<string | null>(null);
  /** where catalog models download from: the local mirror, the hub, or another mirror */
  base = $state(readSavedBase() ?? '');
  /** whether the local mirror (/models/) answers */
  mirror = $state<boolean | null>(null);
  /** bumped when stored items may have changed (the storage panel refreshes) */
  storageVersion = $state(0);
  generations = $state<Record<Variant, Generation | null>>({ dense: null, baseline: null, prunecomp: null });
  generating = $state<number | null>(null);
  /** asks the storage panel to show itself (a 'quota' way forward) */
  storageOpen = $state(false);
  /** asks the token field to show itself (an 'auth' way forward) */
  tokenFocus = $state(0);
  customTextFocus = $state(0);
  /** whether the data mirror serves the zero-shot tasks ({data base}/qa/) */
  qaMirror = $state<boolean | null>(null);
  /** the evaluation shown (of the current run's models) */
  evaluation = $state<EvalResult | null>(null);
  evaluating = $state<Task | null>(null);
  exporting = $state<ExportTask | null>(null);

  /** the local-mirror probe (catalog downloads wait for it, so they use the right base) */
  private readonly probe: Promise<void>;
  private lastSource: ModelSource | null = null;
  private retry: (() => void) | null = null;
  private cachedLookup = 0;
  private evalLookup = 0;
  private exportCancelled = false;

  constructor() {
    this.probe = this.probeMirror();
    void this.probeQaMirror();
    this.client.onCrash = (message) => {
      this.model = null;
      this.result = null;
      this.evaluation = null;
      this.loading = this.running = this.evaluating = this.exporting = null;
      this.generating = null;
      this.setError('internal', message, () => this.lastSource && this.loadSource(this.lastSource));
    };
  }

  /** The backend runs use: the chosen one, else WebGPU when an adapter exists, else WASM. */
  get backend(): Backend {
    return this.settings.backend ?? (this.device?.webgpu ? 'webgpu' : 'wasm');
  }

  get busy(): boolean {
    return this.loading !== null || this.running !== null || this.generating !== null || this.evaluating !== null || this.exporting !== null;
  }

  /** Device facts, the download source, and a model linked in the URL. */
  async init(): Promise<void> {
    const device = this.client.call('device', {}).promise.then((d) => (this.device = d)).catch(() => null);
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

  /** Whether the data mirror serves the task files (one small file answers for all). */
  private async probeQaMirror(): Promise<void> {
    try {
      const res = await fetch(`${dataBase()}/qa/${TASK_SPECS.copa.localFile}`, { method: 'HEAD', cache: 'no-store' });
      this.qaMirror = res.ok;
    } catch {
      this.qaMirror = false;
    }
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
    const id = this.settings.model;
    if (!id) return;
    if (id.includes('/')) {
      this.loadUrl(id, this.settings.tokenizer);
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

  // ---- loading ----------------------------------------------------------------------------

  async loadCatalog(id: string, force = false): Promise<void> {
    const entry = catalogEntry(id);
    const token = entry?.gated ? (getHfToken() ?? undefined) : undefined;
    this.settings.model = id;
    this.settings.tokenizer = '';
    await this.probe;
    return this.loadSource({ kind: 'catalog', id, base: this.base || HUB, token }, force, entry?.name ?? id);
  }

  loadUrl(model: string, tokenizer?: string): Promise<void> {
    this.settings.model = model;
    this.settings.tokenizer = tokenizer ?? '';
    return this.loadSource({ kind: 'url', model, tokenizer: tokenizer || undefined });
  }

  loadFiles(source: ModelSource): Promise<void> {
    this.settings.model = '';
    this.settings.tokenizer = '';
    return this.loadSource(source);
  }

  async loadSource(source: ModelSource, force = false, name?: string): Promise<void> {
    if (this.loading) this.client.cancel(this.loading.id);
    this.lastSource = source;
    this.clearMessages();
    const call = this.client.call('load', { source, backend: this.backend, force }, { onProgress: (p) => this.loading && (this.loading.progress = p) });
    this.loading = { id: call.id, title: `Loading ${name ?? describe(source)}`, progress: null };
    try {
      const summary = await call.promise;
      this.model = summary;
      this.result = null;
      this.evaluation = null;
      this.generations = { dense: null, baseline: null, prunecomp: null };
      // (App looks up a stored result for the current settings once the model is in)
    } catch (e) {
      this.fail(e, () => this.loadSource(source, force, name), 'Loading');
    } finally {
      if (this.loading?.id === call.id) this.loading = null;
      this.storageVersion++;
    }
  }

  /** Load the last model again, past the device check. */
  loadAnyway(): void {
    if (this.lastSource) void this.loadSource(this.lastSource, true);
  }

  cancelLoad(): void {
    if (this.loading) this.client.cancel(this.loading.id);
  }

  // ---- running ----------------------------------------------------------------------------

  /** Show a stored result for the current settings, if there is one (computes nothing). */
  async lookupCached(): Promise<void> {
    if (!this.model || this.running) return;
    let settings;
    try {
      settings = this.settings.runSettings(this.backend);
    } catch {
      return; // a custom text is not given yet
    }
    const ticket = ++this.cachedLookup;
    try {
      const r = await this.client.call('cached', { settings }).promise;
      if (ticket !== this.cachedLookup || !r || this.running) return;
      if (r.key === this.result?.key) return; // already shown (its generations stay)
      this.result = r;
      if (this.generating === null) this.generations = { dense: this.generations.dense, baseline: null, prunecomp: null };
    } catch (e) {
      if (ticket === this.cachedLookup) this.fail(e, () => this.run(true), 'Reading the stored result');
    }
  }

  async run(recompute = false): Promise<void> {
    if (!this.model || this.running) return;
    this.clearMessages();
    let settings;
    try {
      settings = this.settings.runSettings(this.backend);
    } catch (e) {
      this.setError('text', (e as Error).message, null);
      return;
    }
    const call = this.client.call('run', { settings, recompute }, { onProgress: (p) => this.running && (this.running.progress = p) });
    this.running = { id: call.id, title: 'Pruning', progress: null };
    this.cachedLookup++; // a lookup in flight must not overwrite this run's result
    try {
      const r = await call.promise;
      if (r.key !== this.result?.key) this.generations = { dense: this.generations.dense, baseline: null, prunecomp: null };
      this.result = r;
      if (this.result.warnings?.length) this.notice = this.result.warnings.join(' ');
    } catch (e) {
      this.fail(e, () => this.run(recompute), 'The run');
    } finally {
      if (this.running?.id === call.id) this.running = null;
      this.storageVersion++;
    }
  }

  cancelRun(): void {
    if (this.running) this.client.cancel(this.running.id);
  }

  /** Whether the shown result was computed with the current settings. */
  get resultMatches(): boolean {
    const r = this.result;
    if (!r || !this.model || r.model.key !== this.model.key) return false;
    const s = this.settings;
    const calib = s.calib === 'custom' ? s.customCalib?.name : s.calib;
    const ev = s.eval === 'custom' ? s.customEval?.name : s.eval;
    return (
      r.settings.metric === s.metric &&
      r.settings.layers === s.layers &&
      r.settings.mode === s.mode &&
      r.settings.fold === s.fold &&
      r.settings.windows === s.windows &&
      r.settings.window === s.window &&
      r.settings.backend === this.backend &&
      r.settings.skipFirst === (s.skipFirst ?? undefined) &&
      r.settings.skipLast === (s.skipLast ?? undefined) &&
      r.settings.calib === calib &&
      r.settings.eval === ev
    );
  }

  // ---- generating ---------------------------------------------------------------------------

  /** The same prompt and seed through the dense model and each pruned one, one after another. */
  async generateAll(opts: GenerateOptions): Promise<void> {
    if (!this.model || this.generating !== null) return;
    this.clearMessages();
    const variants: Variant[] = ['dense'];
    if (this.result) variants.push('baseline');
    if (this.result?.plans.prunecomp) variants.push('prunecomp');
    const fresh = (): Generation => ({ text: '', tokens: 0, tokensPerSecond: 0, running: false, done: false, error: null });
    this.generations = { dense: fresh(), baseline: variants.includes('baseline') ? fresh() : null, prunecomp: variants.includes('prunecomp') ? fresh() : null };
    const gens = this.generations; // the reactive objects (kept even if a new result replaces the columns)
    for (const v of variants) {
      const g = gens[v]!;
      g.running = true;
      const req: GenerateSettings = { model: v, backend: this.backend, ...opts };
      const call = this.client.call('generate', req, {
        onToken: (t) => {
          g.text = t.text;
          g.tokens = t.tokens;
          g.tokensPerSecond = t.tokensPerSecond;
        },
      });
      this.generating = call.id;
      try {
        const r = await call.promise;
        Object.assign(g, { text: r.text, tokens: r.tokens, tokensPerSecond: r.tokensPerSecond, done: true });
      } catch (e) {
        g.error = e instanceof WorkerError && e.code === 'cancelled' ? 'stopped' : (e as Error).message;
        if (!(e instanceof WorkerError && e.code === 'cancelled')) this.fail(e, () => this.generateAll(opts), 'Generation');
        g.running = false;
        this.generating = null;
        return;
      } finally {
        g.running = false;
      }
    }
    this.generating = null;
  }

  cancelGenerate(): void {
    if (this.generating !== null) this.client.cancel(this.generating);
  }

  // ---- evaluating -----------------------------------------------------------------------------

  /** Where the task data comes from: the chosen source, else the mirror when it answers, else the hub. */
  get evalData(): TaskData {
    return this.evalChoice.data ?? (this.qaMirror === false ? 'hub' : 'mirror');
  }

  evalSettings(): EvalSettings {
    const c = this.evalChoice;
    return { tasks: TASKS.filter((t) => c.tasks.includes(t)), limit: c.limit, data: this.evalData, dataBase: dataBase(), backend: this.backend };
  }

  /** Whether the shown evaluation is of the current run with the current choices. */
  get evaluationMatches(): boolean {
    const e = this.evaluation;
    if (!e || !this.result || e.runKey !== this.result.key) return false;
    const s = this.evalSettings();
    return e.settings.limit === s.limit && e.settings.data === s.data && e.settings.backend === s.backend && e.settings.tasks.join() === s.tasks.join();
  }

  /** Show a stored evaluation of the current run for the current choices, if there is one (computes nothing). */
  async lookupEvaluation(): Promise<void> {
    const run = this.result;
    if (!this.model || !run || this.evaluating || this.running) return;
    const settings = this.evalSettings();
    if (settings.tasks.length === 0 || !(settings.limit >= 1)) return;
    const ticket = ++this.evalLookup;
    try {
      const r = await this.client.call('evalCached', { settings, runKey: run.key }).promise;
      if (ticket !== this.evalLookup || this.evaluating) return;
      if (r) this.evaluation = r;
      else if (this.evaluation && this.evaluation.runKey !== run.key) this.evaluation = null; // another run's
    } catch {
      // nothing stored to show: the panel offers Evaluate
    }
  }

  async evaluate(recompute = false): Promise<void> {
    const run = this.result;
    if (!this.model || !run || this.evaluating) return;
    this.clearMessages();
    const settings = this.evalSettings();
    if (settings.tasks.length === 0) {
      this.setError('bad-option', 'no task is chosen: tick at least one task to evaluate on', null);
      return;
    }
    const call = this.client.call('evaluate', { settings, runKey: run.key, recompute }, { onProgress: (p) => this.evaluating && (this.evaluating.progress = p) });
    this.evaluating = { id: call.id, title: 'Evaluating', progress: null };
    this.evalLookup++; // a lookup in flight must not overwrite this result
    try {
      this.evaluation = await call.promise;
      if (this.evaluation.warnings?.length) this.notice = this.evaluation.warnings.join(' ');
    } catch (e) {
      this.fail(e, () => this.evaluate(recompute), 'The evaluation');
    } finally {
      if (this.evaluating?.id === call.id) this.evaluating = null;
      this.storageVersion++;
    }
  }

  cancelEvaluate(): void {
    if (this.evaluating) this.client.cancel(this.evaluating.id);
  }

  // ---- exporting ------------------------------------------------------------------------------

  /** The file name an export gets. */
  exportName(variant: Variant, format: ExportFormat): string {
    return `${exportBaseName(this.model?.name ?? 'model', variant, format, this.result)}.zip`;
  }

  /**
   * One model in one format as a .zip. Where the browser lets the page write files (File
   * System Access API), the person picks the file first and the archive streams to it as
   * the worker writes it, never whole in memory; elsewhere it is gathered into a Blob and
   * downloaded.
   */
  async exportModel(variant: Variant, format: ExportFormat): Promise<void> {
    if (!this.model || this.exporting) return;
    this.clearMessages();
    const name = this.exportName(variant, format);
    const file = await chooseFile(name, 'ZIP archive', '.zip', 'application/zip');
    if (file === undefined) return; // the person closed the picker
    let saving: Promise<void> = Promise.resolve();
    const call = this.client.call(
      'export',
      { model: variant, format, runKey: variant === 'dense' ? undefined : this.result?.key },
      {
        onProgress: (p) => this.exporting && (this.exporting.progress = p),
        onStream: (s: ExportStream) => {
          saving = file ? s.stream.pipeTo(file) : new Response(s.stream).blob().then((b) => download(new Blob([b], { type: 'application/zip' }), s.name));
          saving.catch(() => undefined); // awaited below
        },
      },
    );
    const label = variant === 'dense' ? 'dense' : variant === 'baseline' ? 'baseline' : MODE_LABEL[this.result?.settings.mode ?? 'prunecomp'];
    this.exporting = { id: call.id, title: `Exporting the ${label} model: ${name}`, progress: null, variant, format };
    this.exportCancelled = false;
    let failure: unknown = null;
    let result = null;
    try {
      result = await call.promise;
    } catch (e) {
      failure = e;
    }
    try {
      await saving;
    } catch (e) {
      // Writing failed (disk full, the file was removed) and the worker stopped because of it:
      // the write is the cause. A cancel, or the worker's own failure, speaks for itself.
      const workerStopped = failure === null || (failure instanceof WorkerError && failure.code === 'cancelled');
      if (workerStopped && !this.exportCancelled) failure = new WorkerError({ code: 'save', message: `${name} could not be written (${(e as Error)?.message ?? e})` });
    }
    if (failure && file) await file.abort().catch(() => undefined); // no half-written file is left
    if (this.exporting?.id === call.id) this.exporting = null;
    if (failure) this.fail(failure, () => this.exportModel(variant, format), 'The export');
    else if (result) this.notice = `Saved ${result.name} (${bytes(result.bytes)}).`;
  }

  cancelExport(): void {
    if (!this.exporting) return;
    this.exportCancelled = true;
    this.client.cancel(this.exporting.id);
  }

  /** Save a small text file (the plan): to a picked file, or as a download. */
  async saveText(name: string, text: string, mime = 'application/json'): Promise<void> {
    const file = await chooseFile(name, 'JSON', name.slice(name.lastIndexOf('.')), mime);
    if (file === undefined) return;
    try {
      if (file) {
        await file.write(text);
        await file.close();
      } else download(new Blob([text], { type: mime }), name);
    } catch (e) {
      this.setError('save', `${name} could not be written (${(e as Error).message})`, () => void this.saveText(name, text, mime));
    }
  }

  // ---- errors ---------------------------------------------------------------------------------

  clearMessages(): void {
    this.error = null;
    this.notice = null;
  }

  /** Turn a failure into the banner (or, for a cancel, a notice); nothing else changes. */
  fail(e: unknown, retry: (() => void) | null, what: string): void {
    const code = e instanceof WorkerError ? e.code : 'internal';
    const message = e instanceof Error ? e.message : String(e);
    if (code === 'cancelled') {
      this.notice = `${what} was cancelled. ${this.model ? `${this.model.name} is still loaded` : 'Nothing was lost'}${this.result ? ' and the results shown are kept' : ''}.`;
      return;
    }
    this.setError(code, message, retry);
  }

  setError(code: string, message: string, retry: (() => void) | null): void {
    this.retry = retry;
    const h = HINTS[code] ?? { hint: 'Change the settings and try again.', actions: [] };
    const actions = h.actions.filter((a) => (a === 'retry' ? retry !== null : a === 'use-wasm' ? this.backend === 'webgpu' : true));
    this.error = { code, title: TITLES[code] ?? 'Error', message, hint: h.hint, actions };
  }

  act(a: Action): void {
    const retry = this.retry;
    this.error = null;
    switch (a) {
      case 'load-anyway':
        this.loadAnyway();
        break;
      case 'use-wasm':
        this.settings.backend = 'wasm';
        this.notice = 'Switched to the WASM backend. The model and results are kept: run again.';
        break;
      case 'retry':
        retry?.();
        break;
      case 'open-storage':
        this.storageOpen = true;
        break;
      case 'token':
        this.tokenFocus++;
        break;
      case 'custom-text':
        this.customTextFocus++;
        break;
      case 'use-hub':
        this.setBase(HUB);
        this.notice = 'Downloads now come from the Hugging Face hub.';
        break;
      case 'reload':
        location.reload();
        break;
    }
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
