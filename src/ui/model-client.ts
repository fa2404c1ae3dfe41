import type { ModelRequest, ModelResponse, ModelSummary } from '../../workers/model.worker';

export type { ModelSummary };

/** A request without its id (the client numbers them). */
export type LoadRequest = ModelRequest extends infer R ? (R extends ModelRequest ? Omit<R, 'id'> : never) : never;

export interface Progress {
  message: string;
  loaded: number;
  total: number;
}

/**
 * The UI's handle on the model worker: one request at a time, answered with a promise.
 * A newer load supersedes an older one (its answer is ignored).
 */
export class ModelClient {
  private worker: Worker | null = null;
  private nextId = 1;
  private pending = new Map<
    number,
    { resolve: (s: ModelSummary) => void; reject: (e: Error) => void; onProgress?: (p: Progress) => void }
  >();

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('../../workers/model.worker.ts', import.meta.url), { type: 'module', name: 'model' });
    w.onmessage = (e: MessageEvent<ModelResponse>) => {
      const m = e.data;
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') p.onProgress?.({ message: m.message, loaded: m.loaded, total: m.total });
      else {
        this.pending.delete(m.id);
        if (m.type === 'loaded') p.resolve(m.summary);
        else p.reject(new Error(m.message));
      }
    };
    w.onerror = (e) => {
      for (const p of this.pending.values()) p.reject(new Error(`model worker failed: ${e.message || 'unknown error'}`));
      this.pending.clear();
      this.worker = null;
    };
    this.worker = w;
    return w;
  }

  load(req: LoadRequest, onProgress?: (p: Progress) => void): Promise<ModelSummary> {
    const id = this.nextId++;
    // Supersede older requests: their promises settle as cancelled.
    for (const [oldId, p] of this.pending) {
      p.reject(new Error('cancelled: a newer load started'));
      this.pending.delete(oldId);
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.ensureWorker().postMessage({ ...req, id } as ModelRequest);
    });
  }
}
