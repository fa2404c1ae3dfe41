/**
 * The curve: perplexity against layers removed, n = 0…N, for the baseline, iterative without
 * compensation, one-shot + compensation and Prune&Comp (the worker's 'sweep' op: one pruning
 * run per mode, src/app/sweep.ts), with the shown run's settings (its n and mode aside). The
 * worker stores each sweep in IndexedDB like a run, so a reload shows it without recomputing.
 */
import { maxCuts } from '../../app/budget-data';
import type { RunSettings, SweepRunResult } from '../../app/protocol';
import { sameRun, type RunIdentity } from '../../app/run-identity';
import { SWEEP_MODES } from '../../app/sweep-data';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';


/**
 * The largest n a sweep can reach on a model of L layers with these settings: every step
 * must leave an eligible layer (or block) between the barriers, so n ≤ L − skipFirst − skipLast,
 * and at least one layer stays.
 */
export function maxSweepLayers(L: number, s: Pick<RunSettings, 'metric' | 'skipFirst' | 'skipLast'>): number {
  return Math.max(1, maxCuts(L, s));
}

/** The default N: half the layers, within what the barriers allow, and at least the run's own n. */
export function defaultSweepLayers(L: number, s: Pick<RunSettings, 'metric' | 'skipFirst' | 'skipLast' | 'layers'>): number {
  const max = maxSweepLayers(L, s);
  return Math.min(max, Math.max(s.layers, Math.floor(L / 2)));
}

/** Two identities the same but for n and mode (what a sweep does not depend on). */
function sameSweepSettings(a: RunIdentity, b: RunIdentity): boolean {
  return sameRun({ ...a, layers: 0, mode: 'baseline' }, { ...b, layers: 0, mode: 'baseline' });
}

export class SweepStore {
  /** N as the person set it (null: the default for the shown run) */
  chosen = $state<number | null>(null);
  /** the sweep shown */
  result = $state<SweepRunResult | null>(null);
  readonly job: Job;
  /** the newest stored-sweep lookup; a sweep or a newer lookup makes older answers stale */
  private lookupTicket = 0;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
  }

  /** The largest N for the shown run (null: no run shown). */
  get maxN(): number | null {
    const r = this.app.run.result;
    return r ? maxSweepLayers(r.model.numLayers, r.settings) : null;
  }

  /** N: the person's choice (clamped to 1…maxN) or the default. */
  get n(): number | null {
    const r = this.app.run.result;
    if (!r) return null;
    const max = maxSweepLayers(r.model.numLayers, r.settings);
    const c = this.chosen;
    return c !== null && Number.isInteger(c) ? Math.min(max, Math.max(1, c)) : defaultSweepLayers(r.model.numLayers, r.settings);
  }

  /** Whether the shown sweep is for the shown run's model and settings and the current N. */
  get matches(): boolean {
    const s = this.result;
    const r = this.app.run.result;
    return !!s && !!r && s.model.key === r.model.key && sameSweepSettings(s.settings, r.settings) && s.sweep.layers === this.n;
  }

  /** The settings to sweep with: the current ones, only while they are the shown run's (else null). */
  private settings(): RunSettings | null {
    if (!this.app.run.matches) return null;
    try {
      return this.app.settings.runSettings(this.app.model.backend);
    } catch {
      return null;
    }
  }

  /** Show a stored sweep for the shown run and N, if there is one (computes nothing). */
  async lookup(): Promise<void> {
    const settings = this.settings();
    const layers = this.n;
    if (!this.app.model.summary || !settings || layers === null || this.job.active) return;
    const ticket = ++this.lookupTicket;
    try {
      const r = await this.app.client.call('sweepCached', { settings, layers, modes: [...SWEEP_MODES] }).promise;
      if (ticket !== this.lookupTicket || this.job.active) return;
      if (r) this.result = r;
    } catch {
      // nothing stored to show: the section offers to draw the curve
    }
  }

  /** Compute (or read back) the curve for the shown run and N. */
  async draw(recompute = false): Promise<void> {
    const { app } = this;
    const layers = this.n;
    if (!app.model.summary || layers === null || this.job.active || app.busy) return;
    app.banner.clear();
    const settings = this.settings();
    if (!settings) {
      app.banner.setError('bad-option', 'the settings changed since this run: press Run first, then draw its curve', null);
      return;
    }
    const call = this.job.start('sweep', { settings, layers, modes: [...SWEEP_MODES], recompute }, 'Drawing the curve');
    this.lookupTicket++;
    await this.job.settle(
      call,
      (r) => {
        this.result = r;
        if (r.warnings?.length) app.banner.notice = r.warnings.join(' ');
      },
      (e) => app.banner.fail(e, () => this.draw(recompute), 'The curve'),
    );
    app.storage.changed();
  }
}
