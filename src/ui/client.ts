/**
 * The page's handle on workers/lopper.worker.ts: call(op, payload) posts a numbered request
 * and returns its id (for cancel) and a promise of the result; progress and token events go
 * to the handlers given. A failure rejects with a WorkerError carrying the worker's code.
 */
import type { ErrorInfo, ExportStream, Op, Ops, Progress, Request, Response, TokenEvent } from '../app/protocol';

export class WorkerError extends Error {
  readonly code: string;
  constructor(info: ErrorInfo) {
    super(info.message);
    this.name = 'WorkerError';
    this.code = info.code;
  }
}

export interface CallHandlers {
  onProgress?: (p: Progress) => void;
  onToken?: (t: TokenEvent) => void;
  /** an export's bytes (a transferred stream): read it to the end or cancel it */
  onStream?: (s: ExportStream) => void;
}

interface Pending extends CallHandlers {
  resolve: (v: unknown) => void;
  reject: (e: WorkerError) => void;
  flag?: Int32Array;
}

export interface Call<T> {
  id: number;
  promise: Promise<T>;
}

export class LopperClient {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Called when the worker died (its model is gone): the UI forgets what lived there. */
  onCrash: ((message: string) => void) | null = null;

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('../../workers/lopper.worker.ts', import.meta.url), { type: 'module', name: 'lopper' });
    w.onmessage = (e: MessageEvent<Response>) => {
      const m = e.data;
      const p = this.pending.get(m.id);
      if (!p) return;
      switch (m.type) {
        case 'progress':
          p.onProgress?.(m.progress);
          break;
        case 'token':
          p.onToken?.(m.token);
          break;
        case 'stream':
          if (p.onStream) p.onStream(m.stream);
          else void m.stream.stream.cancel('nobody reads this export');
          break;
        case 'done':
          this.pending.delete(m.id);
          p.resolve(m.result);
          break;
        case 'error':
          this.pending.delete(m.id);
          p.reject(new WorkerError(m.error));
          break;
      }
    };
    w.onerror = (e) => {
      const message = `the worker stopped (${e.message || 'it ran out of memory or crashed'}): load the model again`;
      for (const p of this.pending.values()) p.reject(new WorkerError({ code: 'internal', message }));
      this.pending.clear();
      this.worker?.terminate();
      this.worker = null;
      this.onCrash?.(message);
    };
    this.worker = w;
    return w;
  }

  call<K extends Op>(op: K, payload: Ops[K]['req'], handlers: CallHandlers = {}): Call<Ops[K]['result']> {
    const id = this.nextId++;
    const flag = globalThis.crossOriginIsolated ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
    const promise = new Promise<Ops[K]['result']>((resolve, reject) => {
      this.pending.set(id, { ...handlers, resolve: resolve as (v: unknown) => void, reject, flag });
      this.ensureWorker().postMessage({ ...payload, id, op, cancelFlag: flag } as Request);
    });
    return { id, promise };
  }

  /** Abort request `id`; it ends with a WorkerError of code 'cancelled'. */
  cancel(id: number): void {
    const p = this.pending.get(id);
    if (p?.flag) Atomics.store(p.flag, 0, 1);
    if (p) this.worker?.postMessage({ id: this.nextId++, op: 'cancel', target: id } satisfies Request);
  }

  terminate(): void {
    this.worker?.terminate();
    this.worker = null;
    for (const p of this.pending.values()) p.reject(new WorkerError({ code: 'cancelled', message: 'the worker was stopped' }));
    this.pending.clear();
  }
}
