/**
 * The generation stage: the same prompt and seed through the dense model and each pruned
 * one, one after another, each column filling as its tokens arrive.
 */
import type { GenerateSettings, Variant } from '../../app/protocol';
import { isCancel } from '../errors';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';

export interface Generation {
  text: string;
  tokens: number;
  tokensPerSecond: number;
  /** the weights and decoding used (TokenEvent.weights) */
  weights: string;
  /** ms until the first token, once done */
  firstTokenMillis: number | null;
  running: boolean;
  done: boolean;
  error: string | null;
}

/** The generation panel's settings: the worker's, less the model and backend the app fills in. */
export type GenerateOptions = Omit<GenerateSettings, 'model' | 'backend'>;

const fresh = (): Generation => ({ text: '', tokens: 0, tokensPerSecond: 0, weights: '', firstTokenMillis: null, running: false, done: false, error: null });

export class GenerationStore {
  /** one column per model */
  columns = $state<Record<Variant, Generation | null>>({ dense: null, baseline: null, prunecomp: null });
  readonly job: Job;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
  }

  /** Empty every column (a new model). */
  clear(): void {
    this.columns = { dense: null, baseline: null, prunecomp: null };
  }

  /** Empty the pruned models' columns (another run's result is shown); the dense one stays. */
  clearPruned(): void {
    this.columns = { dense: this.columns.dense, baseline: null, prunecomp: null };
  }

  /** The same prompt and seed through the dense model and each pruned one, one after another. */
  async generateAll(opts: GenerateOptions): Promise<void> {
    const { app } = this;
    const result = app.run.result;
    if (!app.model.summary || this.job.active) return;
    app.banner.clear();
    const variants: Variant[] = ['dense'];
    if (result) variants.push('baseline');
    if (result?.plans.prunecomp) variants.push('prunecomp');
    this.columns = { dense: fresh(), baseline: variants.includes('baseline') ? fresh() : null, prunecomp: variants.includes('prunecomp') ? fresh() : null };
    const gens = this.columns; // the reactive objects (kept even if a new result replaces the columns)
    for (const v of variants) {
      const g = gens[v]!;
      g.running = true;
      const req: GenerateSettings = { model: v, backend: app.model.backend, ...opts };
      const call = this.job.start('generate', req, `Generating with the ${v} model`, {
        onToken: (t) => {
          g.text = t.text;
          g.tokens = t.tokens;
          g.tokensPerSecond = t.tokensPerSecond;
          g.weights = t.weights;
        },
      });
      try {
        const r = await call.promise;
        Object.assign(g, { text: r.text, tokens: r.tokens, tokensPerSecond: r.tokensPerSecond, weights: r.weights, firstTokenMillis: r.firstTokenMillis, done: true });
      } catch (e) {
        g.error = isCancel(e) ? 'stopped' : (e as Error).message;
        if (!isCancel(e)) app.banner.fail(e, () => this.generateAll(opts), 'Generation');
        g.running = false;
        this.job.end(call.id);
        return;
      } finally {
        g.running = false;
      }
    }
    this.job.drop();
  }
}
