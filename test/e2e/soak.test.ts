/**
 * Under load: 20 consecutive runs in the app with different settings — WASM and WebGPU
 * (SwiftShader) — and a cancelled run in between, in one page. After each run: the page
 * answers an animation frame quickly, the worker holds no onnxruntime session (every
 * InferenceSession a run opened was released), and the memory is recorded: the JS heap of
 * the page and of the worker, and the resident memory of all of Chromium's processes (which
 * includes onnxruntime's WASM memory and, for WebGPU, the GPU process). The memory must
 * reach a plateau: the mean of the last five runs at most 15% + 64 MiB above the mean of runs
 * 6–10. The figures are printed as a table (CI's log has them).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorText, loadFromCatalog, runButton, setUpRun, waitForResults, waitForTestId, type RunSetup } from './app';
import { appWorker, browserPid, openBrowser, treeRss, type Browser } from './browser';
import { sharedDir } from './cli';
import { startPreview, type AppServer } from './servers';

const MiB = 2 ** 20;
const EVAL_TEXT = readFileSync(path.join(sharedDir, 'data/tinystories/eval.txt'), 'utf8').slice(0, 800);
const METRICS = ['bi', 'angular', 'reverse', 'cl', 'ppl'];
const MODES = ['prunecomp', 'iterative', 'oneshot-comp', 'baseline'];
/** Runs on WebGPU (SwiftShader is ~100× slower than WASM: few, and small). */
const WEBGPU_RUNS = new Set([7, 15]);

/** Run i's settings: each run distinct (its window differs), so none comes from the result cache. */
function setupOf(i: number): RunSetup {
  const webgpu = WEBGPU_RUNS.has(i);
  return {
    backend: webgpu ? 'webgpu' : 'wasm',
    metric: METRICS[i % METRICS.length],
    layers: webgpu ? 1 : 1 + (i % 2),
    mode: MODES[i % MODES.length],
    fold: i % 3 === 0 ? 'tied' : 'paper',
    windows: webgpu ? 2 : 2 + (i % 2),
    window: webgpu ? 24 + i : 32 + 4 * i,
    calib: 'tinystories-calib',
    eval: 'custom',
  };
}

interface Sample {
  run: string;
  backend: string;
  seconds: number;
  frameMs: number;
  pageHeapMiB: number;
  workerHeapMiB: number | null;
  rssMiB: number;
  liveSessions: number;
}

describe.sequential('under load: 20 runs and a cancel', () => {
  let server: AppServer;
  let browser: Browser;
  let pid: number;
  const samples: Sample[] = [];

  beforeAll(async () => {
    server = await startPreview();
    browser = await openBrowser('under load');
    pid = browserPid(browser.profile);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });


  async function sample(p: Page, run: string, backend: string, seconds: number): Promise<Sample> {
    const t0 = Date.now();
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
    const frameMs = Date.now() - t0;
    const w = await appWorker(p);
    const diag = await w.evaluate(() => {
      const d = (self as unknown as { lopperDiagnostics: () => { liveSessions: number } }).lopperDiagnostics();
      const heap = (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? null;
      return { ...d, heap };
    });
    const pageHeap = await p.evaluate(() => (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0);
    const s: Sample = {
      run,
      backend,
      seconds,
      frameMs,
      pageHeapMiB: pageHeap / MiB,
      workerHeapMiB: diag.heap === null ? null : diag.heap / MiB,
      rssMiB: treeRss(pid) / MiB,
      liveSessions: diag.liveSessions,
    };
    samples.push(s);
    return s;
  }

  it('loads stories260K', async () => {
    const p = browser.page;
    await p.goto(server.url);
    await waitForTestId(p, 'catalog', 30_000);
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'model-summary', 60_000);
  });

  it('runs 20 setups one after another, with a cancelled run between runs 10 and 11; responsive, sessions released, memory on a plateau', async () => {
    const p = browser.page;
    for (let i = 0; i < 20; i++) {
      const setup = setupOf(i);
      await setUpRun(p, setup);
      const area = p.getByRole('textbox', { name: 'Your evaluation text' });
      if ((await area.inputValue()) !== EVAL_TEXT) await area.fill(EVAL_TEXT);
      const t0 = Date.now();
      await runButton(p).click();
      await waitForResults(p, setup.backend === 'webgpu' ? 300_000 : 120_000);
      const s = await sample(p, String(i + 1), setup.backend, (Date.now() - t0) / 1000);
      expect(await p.getByTestId('result-source').innerText(), `run ${i + 1}`).toContain(setup.backend);
      expect(s.liveSessions, `run ${i + 1}: onnxruntime sessions left open`).toBe(0);
      expect(s.frameMs, `run ${i + 1}: the page answers an animation frame`).toBeLessThan(2_000);

      if (i === 9) {
        // A run cancelled while it calibrates: the previous result stays, nothing stays open.
        const shown = await p.getByTestId('result-source').innerText();
        await setUpRun(p, { ...setupOf(30), windows: 8, window: 256 });
        await runButton(p).click();
        const progress = p.getByTestId('run-progress');
        await progress.waitFor({ state: 'visible', timeout: 30_000 });
        await progress.getByRole('button', { name: 'Cancel run' }).click();
        await progress.waitFor({ state: 'detached', timeout: 60_000 });
        expect(await errorText(p)).toBeNull();
        expect(await p.getByTestId('result-source').innerText()).toBe(shown);
        const c = await sample(p, 'cancelled', 'wasm', 0);
        expect(c.liveSessions, 'the cancelled run released its sessions').toBe(0);
      }
    }
    await browser.shot('after 20 runs');

    const table = samples.map((s) =>
      [s.run, s.backend, s.seconds.toFixed(1), s.frameMs, s.pageHeapMiB.toFixed(1), s.workerHeapMiB?.toFixed(1) ?? '-', s.rssMiB.toFixed(0), s.liveSessions].join(' | '),
    );
    console.log(`[e2e] soak: run | backend | s | frame ms | page heap MiB | worker heap MiB | Chromium RSS MiB | open sessions\n  ${table.join('\n  ')}`);

    const runs = samples.filter((s) => s.run !== 'cancelled');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const early = runs.slice(5, 10);
    const late = runs.slice(15, 20);
    for (const [what, f] of [
      ['Chromium RSS', (s: Sample) => s.rssMiB],
      ['page heap', (s: Sample) => s.pageHeapMiB],
      ...(runs.every((s) => s.workerHeapMiB !== null) ? ([['worker heap', (s: Sample) => s.workerHeapMiB!]] as const) : []),
    ] as const) {
      const a = mean(early.map(f));
      const b = mean(late.map(f));
      console.log(`[e2e] soak: ${what} mean of runs 6–10 ${a.toFixed(1)} MiB, of runs 16–20 ${b.toFixed(1)} MiB`);
      expect(b, `${what} keeps growing`).toBeLessThanOrEqual(a * 1.15 + 64);
    }
    expect(browser.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  }, 1_500_000);
});
