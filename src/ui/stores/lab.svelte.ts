/**
 * The compensation lab: every chosen metric × compensation, n = 1…N, each model scored on
 * held-out calibration windows (the worker's 'lab' op, src/app/lab.ts labRun), with the run
 * settings' texts, windows, backend, fold, barriers and seed. Rows arrive one by one while it
 * runs; the finished lab is stored in IndexedDB like a run, so a reload shows it at once.
 */
import { LAB_COMPS, type LabRow } from '../../app/lab-data';
import { labKeyParts } from '../../app/lab-key';
import type { LabRequest, LabRunResult } from '../../app/protocol';
import { runIdentity } from '../../app/run-identity';
import { METRIC_BARRIERS, METRICS, type CompChoice, type Metric } from '../../engine/prune/options';
import { resultKey } from '../../engine/store/cache';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';

/** The metrics a lab compares by default: two stream similarities, the weights' magnitude and the bypass loss. */
export const LAB_DEFAULT_METRICS: readonly Metric[] = ['bi', 'angular', 'mag', 'ppl'];

export class LabStore {
  metrics = $state<Metric[]>([...LAB_DEFAULT_METRICS]);
  comps = $state<CompChoice[]>([...LAB_COMPS]);
  /** N as the person set it (null: the default, half the layers) */
  chosen = $state<number | null>(null);
  /** the ridge term of the linear/diag fits */
  alpha = $state(0);
  /** the lab shown */
  result = $state<LabRunResult | null>(null);
  /** rows measured so far by the lab in flight */
  live = $state<LabRow[]>([]);
  readonly job: Job;
  private lookupTicket = 0;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
  }

  /** The largest N: all layers but one. */
  get maxN(): number {
    return Math.max(1, (this.app.model.summary?.numLayers ?? 2) - 1);
  }

  /** N: the person's choice (clamped to 1…maxN) or half the layers. */
  get n(): number {
    const c = this.chosen;
    const L = this.app.model.summary?.numLayers ?? 2;
    return c !== null && Number.isInteger(c) ? Math.min(this.maxN, Math.max(1, c)) : Math.max(1, Math.floor(L / 2));
  }

  /** α as a number ≥ 0 (an empty or bad entry: 0) */
  get alphaValue(): number {
    const a = this.alpha;
    return typeof a === 'number' && Number.isFinite(a) && a >= 0 ? a : 0;
  }

  /** The request for the current settings and choices (null: a custom text is missing, or nothing is chosen). */
  request(): LabRequest | null {
    if (this.metrics.length === 0 || this.comps.length === 0) return null;
    try {
      return { settings: this.app.settings.runSettings(this.app.model.backend), metrics: [...this.metrics], comps: [...this.comps], layers: this.n, alpha: this.alphaValue };
    } catch {
      return null;
    }
  }

  /** The shown lab is for the loaded model, the current settings and the current choices. */
  get matches(): boolean {
    const r = this.result;
    const m = this.app.model.summary;
    const q = this.request();
    return !!r && !!m && !!q && r.key === resultKey(labKeyParts(m.key, runIdentity(q.settings), q));
  }

  /** Metrics among the chosen ones whose barriers leave fewer than N layers eligible (their rows stop early). */
  get limited(): Metric[] {
    const L = this.app.model.summary?.numLayers ?? 0;
    return this.metrics.filter((m) => L - METRIC_BARRIERS[m].skipFirst - METRIC_BARRIERS[m].skipLast < this.n);
  }

  toggleMetric(m: Metric, on: boolean): void {
    // kept in METRICS order, as the CLI's default
    this.metrics = METRICS.filter((x) => (x === m ? on : this.metrics.includes(x)));
  }

  toggleComp(c: CompChoice, on: boolean): void {
    // kept in the lab's own order (none, scalar, linear, diag)
    this.comps = LAB_COMPS.filter((x) => (x === c ? on : this.comps.includes(x)));
  }

  /** Show a stored lab for the current settings and choices, if there is one (computes nothing). */
  async lookup(): Promise<void> {
    const req = this.request();
    if (!this.app.model.summary || !req || this.job.active) return;
    const ticket = ++this.lookupTicket;
    try {
      const r = await this.app.client.call('labCached', req).promise;
      if (ticket !== this.lookupTicket || this.job.active) return;
      if (r && r.key !== this.result?.key) this.result = r; // the one shown stays (with its 'computed' note)
    } catch {
      // nothing stored to show
    }
  }

  /** Run (or read back) the lab for the current settings and choices. */
  async start(recompute = false): Promise<void> {
    const { app } = this;
    if (!app.model.summary || this.job.active || app.busy) return;
    app.banner.clear();
    const req = this.request();
    if (!req) {
      app.banner.setError('bad-option', this.metrics.length === 0 || this.comps.length === 0 ? 'choose at least one metric and one compensation for the lab' : 'choose the calibration and evaluation texts first', null);
      return;
    }
    this.live = [];
    const call = this.job.start('lab', { ...req, recompute }, 'Running the compensation lab', {
      onProgress: (p) => {
        if (p.row) this.live = [...this.live, p.row];
      },
    });
    this.lookupTicket++;
    await this.job.settle(
      call,
      (r) => {
        this.result = r;
        if (r.warnings?.length) app.banner.notice = r.warnings.join(' ');
      },
      (e) => app.banner.fail(e, () => this.start(recompute), 'The compensation lab'),
    );
    this.live = [];
    app.storage.changed();
  }
}
