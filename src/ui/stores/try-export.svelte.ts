/**
 * "Try it in transformers.js": one model's transformers.js bundle — the export's files, made
 * by lopper's worker as Blobs (op 'bundle') — loaded into transformers.js in a worker of its
 * own (workers/tjs.worker.ts) and greedy-generated there, beside lopper's own greedy
 * generation of the same model and prompt (op 'generate'), then the two id sequences
 * compared. The Blobs go from one worker to the other through the page (a Blob crosses by
 * reference, its bytes are not copied); the page keeps none of them, and the transformers.js
 * worker is terminated when it is done, cancelled or failed, which frees its session.
 */
import { planLabel, type OnnxDtype, type Progress, type Variant } from '../../app/protocol';
import { compareGreedy, type Agreement, type TjsMessage, type TjsRequest, type TjsResult } from '../../app/try-export';
import { WorkerError } from '../client';
import type { AppState } from './app.svelte';
import type { Task } from './job.svelte';

/** One try: what lopper and transformers.js generated from the same prompt, and whether they agree. */
export interface TryOutcome {
  variant: Variant;
  /** the model's name on the page ("dense", "baseline", "Prune&Comp") */
  label: string;
  modelKey: string;
  /** the run the pruned model came from (null: the dense model) */
  runKey: string | null;
  dtype: OnnxDtype;
  /** why the weights are not the ones asked for */
  note: string | null;
  /** the bundle's bytes and its .zip's name */
  bundleBytes: number;
  name: string;
  prompt: string;
  maxTokens: number;
  lopper: { promptIds: number[]; ids: number[]; text: string; tokensPerSecond: number; weights: string; backend: string };
  tjs: TjsResult;
  agreement: Agreement;
  /** both tokenizers gave the prompt the same ids */
  promptsAgree: boolean;
}

const STAGES = [
  { stage: 'bundle', label: 'make the bundle (the export’s files)' },
  { stage: 'lopper', label: 'lopper generates' },
  { stage: 'tjs-load', label: 'transformers.js loads the bundle' },
  { stage: 'tjs-generate', label: 'transformers.js generates' },
];

export class TryExportStore {
  /** the try in flight, for ProgressView */
  task = $state<Task | null>(null);
  /** the texts so far, while it runs */
  live = $state<{ lopper: string; tjs: string }>({ lopper: '', tjs: '' });
  result = $state<TryOutcome | null>(null);
  /** the panel's choices, kept while the page lives */
  variant = $state<Variant>('dense');
  dtype = $state<OnnxDtype>('fp32');
  prompt = $state('Once upon a time');
  maxTokens = $state(32);

  private worker: Worker | null = null;
  private stopWorker: ((e: unknown) => void) | null = null;
  private lopperCall: number | null = null;
  private nextId = 1;
  private t0 = 0;

  constructor(private readonly app: AppState) {}

  get active(): boolean {
    return this.task !== null;
  }

  /** Show stage `i` of STAGES at `within` (0..1) of it. */
  private show(i: number, within: number, label: string): void {
    if (!this.task) return;
    const fraction = Math.min(1, (i + Math.min(1, Math.max(0, within))) / STAGES.length);
    const elapsed = (performance.now() - this.t0) / 1000;
    const progress: Progress = {
      stage: STAGES[i].stage,
      label,
      done: Math.round(within * 1000),
      total: 1000,
      fraction,
      etaSeconds: fraction > 0.05 && elapsed > 0.5 ? (elapsed * (1 - fraction)) / fraction : null,
      elapsedSeconds: elapsed,
      stages: STAGES.map((s, j) => ({ ...s, state: j < i ? 'done' : j === i ? 'running' : 'pending' })),
    };
    this.task.progress = progress;
  }

  /** The model's name as the page shows it. */
  label(v: Variant): string {
    const plan = this.app.run.result?.plans.prunecomp;
    return v === 'prunecomp' && plan ? planLabel(plan) : v;
  }

  /** Make `variant`'s bundle, generate with lopper, then with transformers.js from the bundle, and compare. */
  async tryIt(): Promise<void> {
    const { app } = this;
    const summary = app.model.summary;
    if (!summary || this.active || app.busy) return;
    const variant = this.variant;
    const prompt = this.prompt;
    const maxTokens = Math.max(1, Math.min(512, Math.floor(Number(this.maxTokens)) || 1));
    const runKey = variant === 'dense' ? null : (app.run.result?.key ?? null);
    const label = this.label(variant);
    app.banner.clear();
    this.result = null;
    this.live = { lopper: '', tjs: '' };
    this.t0 = performance.now();
    this.task = { id: this.nextId++, title: `Trying the ${label} model in transformers.js`, progress: null };
    try {
      // 1. the bundle, as the export makes it
      this.show(0, 0, STAGES[0].label);
      const bundleCall = app.client.call(
        'bundle',
        { model: variant, dtype: this.dtype, runKey: runKey ?? undefined },
        { onProgress: (p) => this.show(0, p.fraction, p.label) },
      );
      this.lopperCall = bundleCall.id;
      const bundle = await bundleCall.promise;
      if (bundle.note) app.banner.notice = `${bundle.note}.`;

      // 2. lopper's own greedy generation of the same model
      this.show(1, 0, STAGES[1].label);
      const genCall = app.client.call(
        'generate',
        { model: variant, prompt, maxTokens, temperature: 0, topK: 0, seed: 0, backend: app.model.backend },
        {
          onToken: (t) => {
            this.live.lopper = t.text;
            this.show(1, t.tokens / maxTokens, `lopper generates: ${t.tokens} of ${maxTokens} tokens`);
          },
        },
      );
      this.lopperCall = genCall.id;
      const gen = await genCall.promise;
      this.lopperCall = null;
      this.live.lopper = gen.text;

      // 3. transformers.js, from the bundle alone
      this.show(2, 0, STAGES[2].label);
      const tjs = await this.runTjs({ files: bundle.files, dtype: bundle.dtype, prompt, maxTokens });
      this.result = {
        variant,
        label,
        modelKey: summary.key,
        runKey,
        dtype: bundle.dtype,
        note: bundle.note,
        bundleBytes: bundle.bytes,
        name: bundle.name,
        prompt,
        maxTokens,
        lopper: { promptIds: gen.promptIds, ids: gen.ids, text: gen.text, tokensPerSecond: gen.tokensPerSecond, weights: gen.weights, backend: app.model.backend },
        tjs,
        agreement: compareGreedy(gen.ids, tjs.ids),
        promptsAgree: compareGreedy(gen.promptIds, tjs.promptIds).same,
      };
    } catch (e) {
      app.banner.fail(e, () => void this.tryIt(), `Trying the ${label} model in transformers.js`);
    } finally {
      this.lopperCall = null;
      this.endWorker();
      this.task = null;
    }
  }

  /** One request to a fresh transformers.js worker; it is terminated after. */
  private runTjs(req: TjsRequest): Promise<TjsResult> {
    return new Promise<TjsResult>((resolve, reject) => {
      const w = new Worker(new URL('../../../workers/tjs.worker.ts', import.meta.url), { type: 'module', name: 'transformers.js' });
      this.worker = w;
      this.stopWorker = reject;
      const fail = (message: string) => reject(new WorkerError({ code: 'transformers.js', message: `transformers.js could not run the bundle: ${message}` }));
      w.onmessage = (e: MessageEvent<TjsMessage>) => {
        const m = e.data;
        if (m.type === 'progress') this.show(m.progress.stage === 'tjs-generate' ? 3 : 2, m.progress.stage === 'tjs-generate' ? m.progress.done / Math.max(1, m.progress.total) : m.progress.fraction * 2, m.progress.label);
        else if (m.type === 'token') this.live.tjs = m.text;
        else if (m.type === 'done') resolve(m.result);
        else fail(m.message);
      };
      w.onerror = (e) => fail(e.message || 'its worker stopped (out of memory?)');
      w.postMessage(req);
    });
  }

  private endWorker(): void {
    this.worker?.terminate();
    this.worker = null;
    this.stopWorker = null;
  }

  /** Stop the try: the lopper request in flight is cancelled, the transformers.js worker terminated. */
  cancel(): void {
    if (!this.task) return;
    if (this.lopperCall !== null) this.app.client.cancel(this.lopperCall);
    this.stopWorker?.(new WorkerError({ code: 'cancelled', message: 'cancelled' }));
    this.endWorker();
  }
}
