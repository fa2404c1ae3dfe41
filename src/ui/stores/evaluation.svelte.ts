/**
 * The evaluation stage: zero-shot accuracy of the dense model and the shown run's pruned
 * models, on the chosen tasks and sample size, from the data mirror or the Hugging Face
 * datasets server; a stored evaluation for the same choices shows at once.
 */
import { isTask, TASK_SPECS, TASKS, type TaskName } from '../../engine/eval/tasks';
import type { EvalResult, EvalSettings, TaskData } from '../../app/protocol';
import { dataBase } from '../../app/texts';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';
import { writeUrlParams } from '../url';

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
    writeUrlParams(['tasks', 'items', 'qa'], this.params());
  }
}

export class EvalStore {
  readonly choice = new EvalChoice();
  /** the evaluation shown (of the current run's models) */
  result = $state<EvalResult | null>(null);
  /** whether the data mirror serves the zero-shot tasks ({data base}/qa/) */
  qaMirror = $state<boolean | null>(null);
  readonly job: Job;

  /** the newest stored-evaluation lookup; an evaluation or a newer lookup makes older answers stale */
  private lookupTicket = 0;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
    void this.probeQaMirror();
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

  /** Where the task data comes from: the chosen source, else the mirror when it answers, else the hub. */
  get data(): TaskData {
    return this.choice.data ?? (this.qaMirror === false ? 'hub' : 'mirror');
  }

  settings(): EvalSettings {
    const c = this.choice;
    return { tasks: TASKS.filter((t) => c.tasks.includes(t)), limit: c.limit, data: this.data, dataBase: dataBase(), backend: this.app.model.backend };
  }

  /** Whether the shown evaluation is of the current run with the current choices. */
  get matches(): boolean {
    const e = this.result;
    const run = this.app.run.result;
    if (!e || !run || e.runKey !== run.key) return false;
    const s = this.settings();
    return e.settings.limit === s.limit && e.settings.data === s.data && e.settings.backend === s.backend && e.settings.tasks.join() === s.tasks.join();
  }

  /** Show a stored evaluation of the current run for the current choices, if there is one (computes nothing). */
  async lookup(): Promise<void> {
    const { app } = this;
    const run = app.run.result;
    if (!app.model.summary || !run || this.job.active || app.run.job.active) return;
    const settings = this.settings();
    if (settings.tasks.length === 0 || !(settings.limit >= 1)) return;
    const ticket = ++this.lookupTicket;
    try {
      const r = await app.client.call('evalCached', { settings, runKey: run.key }).promise;
      if (ticket !== this.lookupTicket || this.job.active) return;
      if (r) this.result = r;
      else if (this.result && this.result.runKey !== run.key) this.result = null; // another run's
    } catch {
      // nothing stored to show: the panel offers Evaluate
    }
  }

  async evaluate(recompute = false): Promise<void> {
    const { app } = this;
    const run = app.run.result;
    if (!app.model.summary || !run || this.job.active) return;
    app.banner.clear();
    const settings = this.settings();
    if (settings.tasks.length === 0) {
      app.banner.setError('bad-option', 'no task is chosen: tick at least one task to evaluate on', null);
      return;
    }
    const call = this.job.start('evaluate', { settings, runKey: run.key, recompute }, 'Evaluating');
    this.lookupTicket++; // a lookup in flight must not overwrite this result
    await this.job.settle(
      call,
      (r) => {
        this.result = r;
        if (r.warnings?.length) app.banner.notice = r.warnings.join(' ');
      },
      (e) => app.banner.fail(e, () => this.evaluate(recompute), 'The evaluation'),
    );
    app.storage.changed();
  }
}
