/**
 * The layer playground's state: the removed layers in click order and whether each removal is
 * compensated, kept in the page URL (`?play=3,1&comp=0`; no `play` = every layer, no `comp` =
 * compensation on), and the worker's latest answer (src/app/playground.ts). Each change starts
 * a request and cancels the one in flight; an answer to anything but the latest request is
 * ignored, so the page always shows the state its controls show.
 */
import type { Backend, PlaygroundResult } from '../../app/protocol';
import { WorkerError } from '../client';
import { isCancel } from '../errors';
import type { AppState } from './app.svelte';
import { writeUrlParams } from '../url';

/** The URL parameters this store reads and writes (writeUrl replaces exactly these). */
const URL_PARAMS = ['play', 'comp'] as const;

/** The backend the playground computes on, whatever the run's. */
export const PLAYGROUND_BACKEND: Backend = 'wasm';

/** Above this many parameters a model is not measured until a layer is clicked (each change then takes seconds or more). */
export const PLAYGROUND_AUTO_PARAMETERS = 30e6;

export class PlaygroundStore {
  /** removed original layer indices, in click order */
  removed = $state<number[]>([]);
  compensate = $state(true);
  /** the answer for the state last asked (null: none yet, or it failed) */
  result = $state<PlaygroundResult | null>(null);
  /** a request is in flight */
  busy = $state(false);
  error = $state<string | null>(null);
  private inFlight: number | null = null;

  constructor(
    private readonly app: AppState,
    search = location.search,
  ) {
    this.read(search);
  }

  /** The state from URL parameters: `play` a comma list of layer indices (anything else is ignored), `comp=0` off. */
  read(search: string): void {
    const q = new URLSearchParams(search);
    const play = q.get('play') ?? '';
    const layers = play
      .split(',')
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
    this.removed = layers.filter((l, i) => layers.indexOf(l) === i);
    this.compensate = q.get('comp') !== '0';
  }

  params(): Record<string, string> {
    const p: Record<string, string> = {};
    if (this.removed.length) p.play = this.removed.join(',');
    if (!this.compensate) p.comp = '0';
    return p;
  }

  /** Write the state into the page URL (replaceState); other parameters are left alone. */
  writeUrl(): void {
    writeUrlParams(URL_PARAMS, this.params());
  }

  /** Remove layer k (at the end of the order) or restore it, then measure. */
  toggle(k: number): void {
    this.removed = this.removed.includes(k) ? this.removed.filter((l) => l !== k) : [...this.removed, k];
    void this.compute();
  }

  setCompensate(on: boolean): void {
    this.compensate = on;
    void this.compute();
  }

  /** Every layer back. */
  restoreAll(): void {
    this.removed = [];
    void this.compute();
  }

  /** A new model: an order made for the previous one is dropped (an order from the URL stays for the first model). */
  modelChanged(): void {
    if (this.result) this.removed = [];
    this.result = null;
    this.error = null;
  }

  /** Measure the current state; a request still in flight is cancelled. */
  async compute(): Promise<void> {
    const { app } = this;
    if (!app.model.summary) return;
    if (this.inFlight !== null) app.client.cancel(this.inFlight);
    let texts;
    try {
      const s = app.settings.runSettings(app.model.backend);
      texts = { calib: s.calib, eval: s.eval, fold: s.fold };
    } catch (e) {
      this.error = (e as Error).message;
      return;
    }
    // Always WASM: the playground is for small models, where WASM answers a click fastest, and
    // it must not hold (or lose) the GPU device a WebGPU run is using.
    const call = app.client.call('playground', { removed: [...this.removed], compensate: this.compensate, backend: PLAYGROUND_BACKEND, ...texts });
    this.inFlight = call.id;
    this.busy = true;
    try {
      const r = await call.promise;
      if (this.inFlight !== call.id) return; // a newer request superseded it
      this.result = r;
      this.error = null;
    } catch (e) {
      if (this.inFlight !== call.id || isCancel(e)) return;
      this.error = e instanceof WorkerError || e instanceof Error ? e.message : String(e);
    } finally {
      if (this.inFlight === call.id) {
        this.inFlight = null;
        this.busy = false;
      }
    }
  }
}
