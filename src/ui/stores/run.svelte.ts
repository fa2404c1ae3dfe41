/**
 * The run stage: prune the loaded model (the baseline and the chosen mode) with the current
 * settings, or show a stored result for them at once; the result shown, and whether it
 * still matches the settings.
 */
import { estimateRunSeconds } from '../../app/estimate';
import type { RunResult } from '../../app/protocol';
import { runIdentity, sameRun } from '../../app/run-identity';
import { textById } from '../../app/texts';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';

const SPEED_KEY = 'lopper.speed';
/** The speeds this device showed (FLOP/s), by `${backend} ${execution}`, kept in this browser. */
function readSpeeds(): Record<string, number> {
  try {
    const v = JSON.parse(localStorage.getItem(SPEED_KEY) ?? '{}') as unknown;
    return v && typeof v === 'object' ? (v as Record<string, number>) : {};
  } catch {
    return {};
  }
}

export class RunStore {
  /** FLOP/s this device showed on earlier runs, by `${backend} ${execution}` */
  speeds = $state<Record<string, number>>(readSpeeds());
  /** the result shown (of the current model) */
  result = $state<RunResult | null>(null);
  /** asks the calibration text's custom field to show itself (a 'text' way forward) */
  customTextFocus = $state(0);
  readonly job: Job;

  /** the newest stored-result lookup; a run or a newer lookup makes older answers stale */
  private lookupTicket = 0;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
  }

  /** Show a stored result for the current settings, if there is one (computes nothing). */
  async lookupCached(): Promise<void> {
    const { app } = this;
    if (!app.model.summary || this.job.active) return;
    let settings;
    try {
      settings = app.settings.runSettings(app.model.backend);
    } catch {
      return; // a custom text is not given yet
    }
    const ticket = ++this.lookupTicket;
    try {
      const r = await app.client.call('cached', { settings }).promise;
      if (ticket !== this.lookupTicket || !r || this.job.active) return;
      if (r.key === this.result?.key) return; // already shown (its generations stay)
      this.result = r;
      if (!app.generation.job.active) app.generation.clearPruned();
    } catch (e) {
      if (ticket === this.lookupTicket) app.banner.fail(e, () => this.run(true), 'Reading the stored result');
    }
  }

  async run(recompute = false): Promise<void> {
    const { app } = this;
    if (!app.model.summary || this.job.active) return;
    app.banner.clear();
    let settings;
    try {
      settings = app.settings.runSettings(app.model.backend);
    } catch (e) {
      app.banner.setError('text', (e as Error).message, null);
      return;
    }
    const call = this.job.start('run', { settings, recompute }, 'Pruning');
    this.lookupTicket++; // a lookup in flight must not overwrite this run's result
    await this.job.settle(
      call,
      (r) => {
        if (r.key !== this.result?.key) app.generation.clearPruned();
        this.result = r;
        if (!r.fromCache && r.timings && Number.isFinite(r.timings.flopsPerSecond)) {
          this.speeds = { ...this.speeds, [`${r.settings.backend} ${r.timings.execution}`]: r.timings.flopsPerSecond };
          try {
            localStorage.setItem(SPEED_KEY, JSON.stringify(this.speeds));
          } catch {
            // private mode: the estimate lasts this page
          }
        }
        if (r.warnings?.length) app.banner.notice = r.warnings.join(' ');
      },
      (e) => app.banner.fail(e, () => this.run(recompute), 'The run'),
    );
    app.storage.changed();
  }

  /**
   * How long a run of the current settings should take here, from the speed an earlier run
   * showed with the same backend and execution; null before there was one.
   */
  readonly estimate = $derived.by(() => {
    const m = this.app.model.summary;
    if (!m) return null;
    const s = this.app.settings;
    const backend = this.app.model.backend;
    const execution = m.device.needs.execution;
    const speed = this.speeds[`${backend} ${execution}`];
    if (!speed) return null;
    const shape = { ...m, tieWordEmbeddings: m.tiedEmbeddings, qkvBias: false, oBias: false, mlpBias: false, qkNorm: false };
    const evalChars = s.eval === 'custom' ? (s.customEval?.text.length ?? 0) : (textById(s.eval)?.bytes ?? 0);
    const run = { windows: s.windows, window: s.window, layers: s.layers, mode: s.mode, evalTokens: Math.ceil(evalChars / 4) }; // ~4 characters a token
    return { seconds: estimateRunSeconds(shape, run, speed), flopsPerSecond: speed, backend, execution };
  });

  /** Whether the shown result was computed with the current settings: the same model and the same run identity. */
  readonly matches = $derived.by(() => {
    const r = this.result;
    const model = this.app.model.summary;
    if (!r || !model || r.model.key !== model.key) return false;
    try {
      return sameRun(runIdentity(this.app.settings.runSettings(this.app.model.backend)), r.settings);
    } catch {
      return false; // a custom text is not given: no result is for these settings
    }
  });
}
