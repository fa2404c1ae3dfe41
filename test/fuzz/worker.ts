/**
 * The fuzz worker thread: builds the corpus, then runs the cases it is sent one at a time
 * and posts each result (harness.ts watches the clock and the memory from the main thread).
 */
import { parentPort } from 'node:worker_threads';
import { buildCorpus, runCase } from './cases';

export interface Job {
  seed: number;
  indices: number[];
}

export type WorkerMessage = { type: 'ready' } | { type: 'start'; index: number } | { type: 'done'; result: Awaited<ReturnType<typeof runCase>> } | { type: 'finished' };

// transformers.js warns on the console about what it tolerates in a mutated tokenizer.json: not ours to print.
console.warn = console.log = () => undefined;

const port = parentPort!;
const corpus = buildCorpus();
port.postMessage({ type: 'ready' } satisfies WorkerMessage);
port.on('message', async (job: Job) => {
  for (const index of job.indices) {
    port.postMessage({ type: 'start', index } satisfies WorkerMessage);
    const result = await runCase(corpus, job.seed, index);
    port.postMessage({ type: 'done', result } satisfies WorkerMessage);
  }
  port.postMessage({ type: 'finished' } satisfies WorkerMessage);
});
