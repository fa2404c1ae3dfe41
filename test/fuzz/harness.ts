/**
 * Runs fuzz cases (cases.ts) in a worker thread of this process, so a case that hangs can be
 * stopped and one that allocates without bound can be seen: the main thread samples the
 * process's resident memory every few milliseconds while a case runs, and ends the worker
 * (then starts a fresh one at the next case) when a case runs past the hard time limit.
 *
 * Bounds (per case): LIMITS.caseMs, above which a case counts as a hang (the 10 s);
 * LIMITS.memoryBytes of resident memory above what the process held when the case began
 * (the 1 GB); the worker's V8 heap is capped at LIMITS.heapMb.
 */
import { Worker } from 'node:worker_threads';
import { FAILURES, KINDS, type CaseResult, type Kind } from './cases';
import type { Job, WorkerMessage } from './worker';

export const LIMITS = { caseMs: 10_000, memoryBytes: 1 << 30, heapMb: 3072, sampleMs: 10 };

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** Run these case indices only (replaying failures); default 0..cases−1. */
  only?: number[];
  onResult?: (r: CaseResult & { memory: number }) => void;
}

export interface FuzzReport {
  seed: number;
  results: (CaseResult & { memory: number })[];
  seconds: number;
}

function startWorker(): Worker {
  return new Worker(new URL('./worker.mjs', import.meta.url), {
    resourceLimits: { maxOldGenerationSizeMb: LIMITS.heapMb },
  });
}

/** Run the cases; resolves with every case's result and its peak memory over the case's start. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const t0 = performance.now();
  const pending = opts.only ?? Array.from({ length: opts.cases }, (_, i) => i);
  const results: FuzzReport['results'] = [];
  const kindOf = (index: number): Kind => KINDS[index % KINDS.length];
  while (pending.length) {
    await new Promise<void>((resolve, reject) => {
      const worker = startWorker();
      let current: { index: number; started: number; baseRss: number; peakRss: number } | undefined;
      const record = (r: CaseResult) => {
        const memory = current ? current.peakRss - current.baseRss : 0;
        const over = memory > LIMITS.memoryBytes && r.outcome !== 'hang';
        const full = { ...r, ...(over && { outcome: 'memory' as const, detail: `${(memory / 2 ** 20).toFixed(0)} MiB over the case's start; ${r.detail ?? ''}` }), memory };
        results.push(full);
        opts.onResult?.(full);
        pending.splice(pending.indexOf(r.index), 1);
        current = undefined;
      };
      const timer = setInterval(() => {
        if (!current) return;
        current.peakRss = Math.max(current.peakRss, process.memoryUsage.rss());
        if (performance.now() - current.started > LIMITS.caseMs) {
          const { index } = current;
          record({ index, kind: kindOf(index), label: '(see replay)', outcome: 'hang', detail: `still running after ${LIMITS.caseMs} ms`, ms: performance.now() - current.started });
          void worker.terminate();
        }
      }, LIMITS.sampleMs);
      const done = () => {
        clearInterval(timer);
        resolve();
      };
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') worker.postMessage({ seed: opts.seed, indices: [...pending] } satisfies Job);
        else if (m.type === 'start') {
          const rss = process.memoryUsage.rss();
          current = { index: m.index, started: performance.now(), baseRss: rss, peakRss: rss };
        } else if (m.type === 'done') {
          if (current) current.peakRss = Math.max(current.peakRss, process.memoryUsage.rss());
          record(m.result);
        } else if (m.type === 'finished') void worker.terminate();
      });
      worker.on('error', (e) => {
        if (!current) {
          clearInterval(timer);
          reject(e);
          return;
        }
        const { index } = current;
        const outOfMemory = (e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
        record({ index, kind: kindOf(index), label: '(see replay)', outcome: outOfMemory ? 'memory' : 'escape', detail: `the worker died: ${e.message}`, ms: performance.now() - current.started });
      });
      worker.on('exit', done);
    });
  }
  results.sort((a, b) => a.index - b.index);
  return { seed: opts.seed, results, seconds: (performance.now() - t0) / 1000 };
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

/** The report as a table per file kind, then every failure with its seed and index (to replay it). */
export function formatReport(r: FuzzReport): string {
  const rows = [['file kind', 'cases', 'rejected (clear error)', 'accepted', 'escapes', 'accepted-inconsistent', 'outside reads', 'hangs', 'over memory', 'max ms', 'max memory']];
  const count = (rs: CaseResult[], o: string) => String(rs.filter((x) => x.outcome === o).length);
  for (const kind of [...KINDS, 'all'] as const) {
    const rs = r.results.filter((x) => kind === 'all' || x.kind === kind);
    rows.push([
      kind,
      String(rs.length),
      count(rs, 'rejected'),
      count(rs, 'accepted'),
      count(rs, 'escape'),
      count(rs, 'accepted-inconsistent'),
      count(rs, 'outside-read'),
      count(rs, 'hang'),
      count(rs, 'memory'),
      Math.max(0, ...rs.map((x) => x.ms)).toFixed(0),
      MiB(Math.max(0, ...rs.map((x) => x.memory))),
    ]);
  }
  const table = [rows[0], rows[0].map(() => '---'), ...rows.slice(1)].map((row) => `| ${row.join(' | ')} |`).join('\n');
  const failures = failuresOf(r);
  const lines = failures.map((f) => `  seed ${r.seed} case ${f.index} [${f.kind}] ${f.label}: ${f.outcome}: ${f.detail ?? ''}`.replace(/\s+/g, ' '));
  return [
    `lopper fuzz: ${r.results.length} cases, seed ${r.seed}, ${r.seconds.toFixed(1)} s (limits: ${LIMITS.caseMs} ms and ${MiB(LIMITS.memoryBytes)} per case)`,
    table,
    failures.length ? `${failures.length} failures (replay one: npm run fuzz -- --seed ${r.seed} --case INDEX):\n${lines.join('\n')}` : 'no failures',
  ].join('\n');
}

export function failuresOf(r: FuzzReport): FuzzReport['results'] {
  return r.results.filter((x) => FAILURES.includes(x.outcome));
}
