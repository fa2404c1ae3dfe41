/**
 * The perplexity budget: the calibration perplexity after each cut of one run to the most
 * layers the settings allow (the worker's 'budget' op, stored in IndexedDB like a run), and
 * the budget B a person slides, from which the number of layers it allows is read at once —
 * n(B), the number of leading cuts within B × the dense model's calibration perplexity
 * (src/app/budget-data.ts), with nothing recomputed.
 */
import { budgetKeyParts, budgetLayers, maxCuts } from '../../app/budget-data';
import type { BudgetRunResult, RunSettings } from '../../app/protocol';
import { runIdentity } from '../../app/run-identity';
import { resultKey } from '../../engine/store/cache';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';

/** The slider's range of B (× the dense model's calibration perplexity). */
export const BUDGET_MIN = 1;
export const BUDGET_MAX = 50;

export class BudgetStore {
  /** B: the most the calibration perplexity may grow, as a factor of the dense model's */
  factor = $state(2);
  /** the budget curve shown */
  result = $state<BudgetRunResult | null>(null);
  readonly job: Job;
  /** the newest stored-curve lookup; a computation or a newer lookup makes older answers stale */
  private lookupTicket = 0;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
  }

  /** The current settings (null: a custom text is not given yet). */
  private settings(): RunSettings | null {
    try {
      return this.app.settings.runSettings(this.app.model.backend);
    } catch {
      return null;
    }
  }

  /** Why the current settings have no budget curve (null: they can have one). */
  get unavailable(): string | null {
    const m = this.app.model.summary;
    const s = this.app.settings;
    if (!m) return 'load a model first';
    if (s.metric === 'cl') return 'the budget cuts one layer at a time, and the cl metric removes one block in one shot: choose another metric';
    const skip = { metric: s.metric, skipFirst: s.skipFirst ?? undefined, skipLast: s.skipLast ?? undefined };
    if (maxCuts(m.numLayers, skip) < 1) return `metric ${s.metric}'s barriers leave no layer of ${m.numLayers} eligible: lower them`;
    return null;
  }

  /** The shown curve is for the loaded model and the current settings (n, mode and evaluation text aside). */
  get matches(): boolean {
    const r = this.result;
    const m = this.app.model.summary;
    const s = this.settings();
    return !!r && !!m && !!s && r.key === resultKey(budgetKeyParts(m.key, runIdentity(s)));
  }

  /** B as a number in the slider's range (a bad or empty entry: null) */
  get b(): number | null {
    const f = this.factor;
    return typeof f === 'number' && Number.isFinite(f) && f >= BUDGET_MIN ? f : null;
  }

  /** n(B) for the shown curve (null: none shown for these settings, or B is not a factor ≥ 1) */
  get n(): number | null {
    const r = this.result;
    const b = this.b;
    return r && this.matches && b !== null ? budgetLayers(r.budget, b) : null;
  }

  /** Show a stored curve for the current settings, if there is one (computes nothing). */
  async lookup(): Promise<void> {
    const settings = this.settings();
    if (!this.app.model.summary || !settings || this.unavailable || this.job.active) return;
    const ticket = ++this.lookupTicket;
    try {
      const r = await this.app.client.call('budgetCached', { settings }).promise;
      if (ticket !== this.lookupTicket || this.job.active) return;
      if (r && r.key !== this.result?.key) this.result = r; // the one shown stays (with its 'computed' note)
    } catch {
      // nothing stored to show: the section offers to compute it
    }
  }

  /** Compute (or read back) the curve for the current settings. */
  async compute(recompute = false): Promise<void> {
    const { app } = this;
    if (!app.model.summary || this.job.active || app.busy) return;
    app.banner.clear();
    const settings = this.settings();
    if (!settings) {
      app.banner.setError('text', 'choose the calibration text first: paste or upload one, or pick a built-in text', null);
      return;
    }
    const call = this.job.start('budget', { settings, recompute }, 'Measuring the perplexity after each cut');
    this.lookupTicket++;
    await this.job.settle(
      call,
      (r) => {
        this.result = r;
        if (r.warnings?.length) app.banner.notice = r.warnings.join(' ');
      },
      (e) => app.banner.fail(e, () => this.compute(recompute), 'The perplexity budget'),
    );
    app.storage.changed();
  }

  /** Make n(B) the run's number of layers to remove. */
  use(): void {
    const n = this.n;
    if (n !== null && n >= 1) this.app.settings.layers = n;
  }
}
