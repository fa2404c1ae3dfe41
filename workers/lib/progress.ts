/**
 * Progress of one request: a list of weighted stages; each report carries the whole
 * request's fraction and an estimate of the time left. Reports are throttled (at most one
 * per `minInterval` ms) except when a stage starts or ends or a pruning step changes, so
 * the UI thread gets a modest stream of messages however fast the work goes.
 */
import type { DownloadProgress, Progress } from '../../src/app/protocol';

export interface StageSpec {
  stage: string;
  label: string;
  /** relative cost (any unit: windows run, bytes, …) */
  weight: number;
}

export class Tracker {
  private readonly t0 = performance.now();
  private current = -1;
  private lastPost = 0;
  private fractionInStage = 0;

  constructor(
    private readonly stages: StageSpec[],
    private readonly post: (p: Progress) => void,
    private readonly minInterval = 100,
  ) {}

  private get totalWeight(): number {
    return this.stages.reduce((a, s) => a + s.weight, 0) || 1;
  }

  private fraction(): number {
    let w = 0;
    for (let i = 0; i < this.current; i++) w += this.stages[i].weight;
    if (this.current >= 0 && this.current < this.stages.length) w += this.stages[this.current].weight * this.fractionInStage;
    return Math.min(1, w / this.totalWeight);
  }

  /** Enter a stage (by name); stages before it count as done. */
  start(stage: string, label?: string): void {
    const i = this.stages.findIndex((s) => s.stage === stage);
    if (i < 0) throw new Error(`progress: unknown stage ${stage}`);
    this.current = i;
    this.fractionInStage = 0;
    if (label) this.stages[i].label = label;
    this.report(0, 1, { force: true });
  }

  /** Skip a stage that has nothing to do (it counts as done and weighs nothing). */
  skip(stage: string): void {
    const s = this.stages.find((x) => x.stage === stage);
    if (s) s.weight = 0;
  }

  /** Progress within the current stage. */
  report(
    done: number,
    total: number,
    extra: { label?: string; force?: boolean; step?: Progress['step']; download?: DownloadProgress; row?: Progress['row'] } = {},
  ): void {
    this.fractionInStage = total > 0 ? Math.min(1, done / total) : 0;
    const now = performance.now();
    if (!extra.force && now - this.lastPost < this.minInterval) return;
    this.lastPost = now;
    const s = this.stages[this.current];
    const f = this.fraction();
    const elapsed = (now - this.t0) / 1000;
    this.post({
      stage: s.stage,
      label: extra.label ?? s.label,
      done,
      total,
      fraction: f,
      // Only once there is something to extrapolate from.
      etaSeconds: f > 0.02 && elapsed > 0.3 ? (elapsed * (1 - f)) / f : null,
      elapsedSeconds: elapsed,
      stages: this.stages
        .filter((x) => x.weight > 0 || x === s)
        .map((x) => ({ stage: x.stage, label: x.label, state: x === s ? 'running' : this.stages.indexOf(x) < this.current ? 'done' : 'pending' })),
      step: extra.step,
      download: extra.download,
      ...(extra.row && { row: extra.row }),
    });
  }
}
