/**
 * One kind of worker request at a time (a load, a run, an evaluation, an export, a
 * generation): the task on screen (its title and the worker's progress), cancel, and its end.
 * The stage stores hold one Job each instead of each writing that lifecycle again.
 */
import type { Op, Ops, Progress } from '../../app/protocol';
import type { Call, CallHandlers, LopperClient } from '../client';

/** What ProgressView shows of a job. */
export interface Task {
  id: number;
  title: string;
  progress: Progress | null;
}

export class Job<Extra extends object = object> {
  /** the request in flight, or null */
  task = $state<(Task & Extra) | null>(null);

  constructor(private readonly client: LopperClient) {}

  get active(): boolean {
    return this.task !== null;
  }

  /**
   * Post `op` to the worker as this job's task, titled `title` (with `extra` beside it); the
   * worker's progress shows on it until `end`. A task already shown is replaced (it is not
   * cancelled: the caller decides).
   */
  start<K extends Op>(op: K, payload: Ops[K]['req'], title: string, handlers: CallHandlers = {}, extra?: Extra): Call<Ops[K]['result']> {
    const call = this.client.call(op, payload, {
      ...handlers,
      onProgress: (p) => {
        handlers.onProgress?.(p);
        if (this.task?.id === call.id) this.task.progress = p;
      },
    });
    this.task = { id: call.id, title, progress: null, ...(extra as Extra) };
    return call;
  }

  /** Await `call`: `done` with its result, or `failed` with why not; then its task ends. */
  async settle<T>(call: Call<T>, done: (result: T) => void, failed: (e: unknown) => void): Promise<void> {
    try {
      done(await call.promise);
    } catch (e) {
      failed(e);
    } finally {
      this.end(call.id);
    }
  }

  /** Ask the worker to stop the task shown; its request ends with a 'cancelled' error. */
  cancel(): void {
    if (this.task) this.client.cancel(this.task.id);
  }

  /** Request `id` is over: its task leaves the screen (a newer task stays). */
  end(id: number): void {
    if (this.task?.id === id) this.task = null;
  }

  /** Forget the task at once (the worker died with it). */
  drop(): void {
    this.task = null;
  }
}
