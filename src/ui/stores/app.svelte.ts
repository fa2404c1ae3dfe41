/**
 * The app's state: one store per stage — model (device, download source, loading), run,
 * generation, evaluation, export, storage — each around a Job (job.svelte.ts), beside the
 * settings in the URL and the banner. This root composes them and holds what spans stages:
 * whether anything is busy, the banner's ways forward, and what a dead worker takes with it.
 * Components read the stores and call their methods; the work itself happens in
 * workers/lopper.worker.ts through LopperClient.
 */
import { HUB } from '../../engine/store/catalog';
import { LopperClient } from '../client';
import type { Action } from '../errors';
import { Banner } from './banner.svelte';
import { EvalStore } from './evaluation.svelte';
import { ExportStore } from './export.svelte';
import { GenerationStore } from './generation.svelte';
import { ModelStore } from './model.svelte';
import { PlaygroundStore } from './playground.svelte';
import { RunStore } from './run.svelte';
import { Settings } from './settings.svelte';
import { StorageStore } from './storage.svelte';
import { TourStore } from './tour.svelte';
import { SweepStore } from './sweep.svelte';
import { BudgetStore } from './budget.svelte';
import { LabStore } from './lab.svelte';
import { TryExportStore } from './try-export.svelte';

export class AppState {
  readonly client = new LopperClient();
  readonly settings = new Settings();
  readonly banner = new Banner({
    onWebGpu: () => this.model.backend === 'webgpu',
    modelName: () => this.model.summary?.name ?? null,
    hasResult: () => this.run.result !== null,
  });
  readonly storage = new StorageStore();
  readonly model = new ModelStore(this);
  readonly run = new RunStore(this);
  readonly generation = new GenerationStore(this);
  readonly evaluation = new EvalStore(this);
  readonly exports = new ExportStore(this);
  readonly playground = new PlaygroundStore(this);
  readonly sweep = new SweepStore(this);
  readonly budget = new BudgetStore(this);
  readonly lab = new LabStore(this);
  readonly tryExport = new TryExportStore(this);
  readonly tour = new TourStore();

  constructor() {
    this.client.onCrash = (message) => {
      this.model.summary = null;
      this.run.result = null;
      this.evaluation.result = null;
      this.sweep.result = null;
      this.budget.result = null;
      this.lab.result = null;
      this.tryExport.cancel();
      for (const job of [this.model.job, this.run.job, this.evaluation.job, this.exports.job, this.generation.job, this.sweep.job, this.budget.job, this.lab.job]) job.drop();
      this.banner.setError('internal', message, () => this.model.reload());
    };
  }

  /** Whether any stage has a request in flight (the controls that would start another are off). */
  get busy(): boolean {
    return this.model.job.active || this.run.job.active || this.generation.job.active || this.evaluation.job.active || this.exports.job.active || this.sweep.job.active || this.budget.job.active || this.lab.job.active || this.tryExport.active;
  }

  /** Device facts, the download source, and a model linked in the URL. */
  init(): Promise<void> {
    return this.model.init();
  }

  /** A new model is in (or none is): the stages after it start afresh. */
  modelChanged(): void {
    this.run.result = null;
    this.evaluation.result = null;
    this.sweep.result = null;
    this.budget.result = null;
    this.lab.result = null;
    this.generation.clear();
    this.playground.modelChanged();
  }

  /** Take the banner's way forward `a`. */
  act(a: Action): void {
    const retry = this.banner.retry;
    this.banner.error = null;
    switch (a) {
      case 'load-anyway':
        this.model.loadAnyway();
        break;
      case 'use-wasm':
        this.settings.backend = 'wasm';
        this.banner.notice = 'Switched to the WASM backend. The model and results are kept: run again.';
        break;
      case 'retry':
        retry?.();
        break;
      case 'open-storage':
        this.storage.open = true;
        break;
      case 'token':
        this.model.tokenFocus++;
        break;
      case 'custom-text':
        this.run.customTextFocus++;
        break;
      case 'use-hub':
        this.model.setBase(HUB);
        this.banner.notice = 'Downloads now come from the Hugging Face hub.';
        break;
      case 'reload':
        location.reload();
        break;
    }
  }
}
