/**
 * A person's whole path through the built app, in real Chromium, one browser profile from
 * start to end: pick stories260K from the local mirror and watch it download, calibrate and
 * prune 2 layers with Prune&Comp and the baseline (perplexities equal the CLI's; no
 * main-thread task over 200 ms of CPU meanwhile), generate from the dense and both pruned models,
 * reload (model and results come back, nothing is downloaded again; IndexedDB holds the dense
 * model once and results, no pruned model, and the pruned models rebuilt from the stored plans
 * generate the same greedy text as before the reload), go offline and reload
 * (the app still works and prunes again), and run the same setup on WebGPU (SwiftShader):
 * the same perplexities as WASM within 1e-4 relative. Screenshots of each stage go to
 * test-results/e2e/a-person-s-path/.
 *
 * The steps share one browser and depend on each other, in order.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  errorText,
  generate,
  longTasks,
  mainThreadCpu,
  observeLongTasks,
  pageNow,
  perplexities,
  relErr,
  removedLayers,
  runButton,
  setUpRun,
  waitForResults,
  waitForTestId,
  type Perplexities,
  STORIES_RUN,
  type RunSetup,
} from './app';
import { openBrowser, waitForOffline, type Browser } from './browser';
import { cliCompare, sharedDir, type CompareResult } from './cli';
import { startPreview, type AppServer } from './servers';

const MODEL_FILE = 'stories260K/stories260K.bin';
const TOKENIZER_FILE = 'stories260K/tok512.bin';

const SETUP = STORIES_RUN;

/** The app's numbers against the CLI's (onnxruntime-node vs onnxruntime-web WASM: float32 rounding only). */
const CLI_TOLERANCE = 1e-4;
/** WebGPU (SwiftShader) against WASM, as the issue asks. */
const WEBGPU_TOLERANCE = 1e-4;

describe.sequential("a person's path", () => {
  let server: AppServer;
  let browser: Browser;
  let cli: CompareResult;
  let wasm: Perplexities;
  let generated: Record<string, string>;

  const page = () => browser.page;
  /** GET requests for model files the server has answered so far. */
  const modelDownloads = () => server.modelRequests().filter((r) => r.method === 'GET');

  beforeAll(async () => {
    // The oracle first, while the machine is otherwise idle.
    cli = await cliCompare({
      model: MODEL_FILE,
      metric: SETUP.metric,
      layers: SETUP.layers,
      calib: 'tinystories/calib.txt',
      eval: 'tinystories/eval.txt',
      calibWindows: SETUP.windows,
      window: SETUP.window,
      fold: SETUP.fold,
    });
    server = await startPreview();
    browser = await openBrowser("a person's path");
    await observeLongTasks(browser.page);
  });

  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
    await server?.stop();
  });

  it('picks stories260K from the local mirror and watches it download', async () => {
    const p = page();
    await p.goto(server.url);
    await waitForTestId(p, 'catalog', 30_000);
    expect(await p.evaluate(() => crossOriginIsolated)).toBe(true);
    await browser.shot('catalog');

    // The mirror serves the model slowly enough to watch: ~1 MB at 300 KB/s.
    const body = new Uint8Array(readFileSync(path.join(sharedDir, 'models', MODEL_FILE)));
    server.faults.set(MODEL_FILE, { kind: 'slow', body, bytesPerSecond: 300_000 });
    await p.getByRole('button', { name: 'Local mirror' }).click();
    await p.getByRole('button', { name: 'Load stories260K' }).click();
    const bytes = p.getByTestId('load-progress-bytes');
    await bytes.waitFor({ state: 'visible', timeout: 30_000 });
    await expect.poll(() => bytes.innerText(), { timeout: 10_000 }).toMatch(/of 1\.\d+ MB.*\/s.*left/);
    await browser.shot('downloading');

    await waitForTestId(p, 'model-summary', 60_000);
    server.faults.clear();
    const summary = await p.getByTestId('model-summary').innerText();
    expect(summary).toContain('stories260K');
    expect(await p.getByTestId('model-origin').innerText()).toMatch(/downloaded/);
    expect(await p.getByTestId('model-origin').innerText()).not.toMatch(/nothing downloaded/);
    // Each file came over the network once.
    const got = modelDownloads().map((r) => r.path);
    expect(got.filter((u) => u.endsWith(MODEL_FILE))).toHaveLength(1);
    expect(got.filter((u) => u.endsWith(TOKENIZER_FILE))).toHaveLength(1);
    await browser.shot('model loaded');

    // Meanwhile the service worker has cached the app for offline use.
    await waitForOffline(p);
  });

  it('calibrates and prunes 2 layers with Prune&Comp and the baseline: the perplexities equal the CLI’s, and the page never freezes', async () => {
    const p = page();
    // The layer playground measures the loaded model first (in the worker: onnxruntime's threads
    // take both cores, and spin a while after): let it answer.
    await p.locator('[data-testid=playground][data-current=true]').waitFor({ timeout: 60_000 });
    // The measure can fail: a 1 s busy loop on the main thread is seen, in wall time and as over
    // 200 ms of CPU time. On 2 cores that onnxruntime's threads keep busy after the playground's
    // answer, the main thread gets about half a core (in CI a 250 ms loop read 107–139 ms of CPU),
    // hence a loop long enough to show 200 ms at a quarter of a core, and the best of a few tries.
    const busyTask = () =>
      p.evaluate(
        () =>
          new Promise<number>((resolve) =>
            setTimeout(() => {
              const start = performance.now();
              while (performance.now() - start < 1_000);
              resolve(start);
            }, 0),
          ),
      );
    const seen: { cpuMs: number; wall: boolean }[] = [];
    for (let attempt = 0; attempt < 5 && !seen.some((t) => t.cpuMs > 200 && t.wall); attempt++) {
      if (attempt) await p.waitForTimeout(1_000);
      let busy = 0;
      const busyCpu = await mainThreadCpu(p, async () => void (busy = await busyTask()));
      const wall = await expect
        .poll(async () => (await longTasks(p)).some((t) => t.start >= busy - 50 && t.start <= busy + 50 && t.duration > 200), { timeout: 5_000 })
        .toBe(true)
        .then(() => true, () => false);
      seen.push({ cpuMs: Math.max(...busyCpu.map((t) => t.cpuMs)), wall });
    }
    expect(seen.some((t) => t.cpuMs > 200 && t.wall), `a 1 s busy loop, seen as [CPU ms, long task]: ${JSON.stringify(seen)}`).toBe(true);

    await setUpRun(p, SETUP);
    const t0 = await pageNow(p);
    const tasks = await mainThreadCpu(p, async () => {
      await runButton(p).click();
      await p.getByTestId('run-progress').waitFor({ state: 'visible', timeout: 10_000 }).catch(() => {});
      if (await p.getByTestId('run-progress').isVisible()) await browser.shot('calibrating');
      await waitForResults(p, 240_000);
    });
    const t1 = await pageNow(p);
    await browser.shot('results');

    wasm = await perplexities(p);
    console.log(`[e2e] WASM perplexities ${JSON.stringify(wasm)}; CLI ${JSON.stringify({ dense: cli.dense.ppl, baseline: cli.baseline.ppl, prunecomp: cli.prunecomp.ppl })}`);
    expect(relErr(wasm.dense, cli.dense.ppl)).toBeLessThan(CLI_TOLERANCE);
    expect(relErr(wasm.baseline, cli.baseline.ppl)).toBeLessThan(CLI_TOLERANCE);
    expect(relErr(wasm.prunecomp!, cli.prunecomp.ppl)).toBeLessThan(CLI_TOLERANCE);
    // Removing layers costs perplexity; compensation recovers some of it (stories260K, BI, 2 of 5).
    expect(wasm.baseline).toBeGreaterThan(wasm.dense);
    expect(wasm.prunecomp!).toBeLessThan(wasm.baseline);

    const removed = await removedLayers(p);
    expect(removed.baseline).toEqual(cli.baseline.removed);
    expect(removed.prunecomp).toEqual(cli.prunecomp.removed);
    removed.scales.forEach((s, i) => expect(relErr(s, cli.prunecomp.scales[i])).toBeLessThan(CLI_TOLERANCE));
    for (const chart of ['ppl-chart', 'magnitude-chart', 'score-chart-baseline', 'score-chart-prunecomp']) {
      expect(await p.getByTestId(chart).count(), chart).toBeGreaterThan(0);
    }

    // No main-thread task over 200 ms of CPU from pressing Run to the results on screen. CPU
    // time, not wall time: on 2 cores that onnxruntime's threads keep busy, a frame's layout or a
    // short script can take several times its CPU time in wall time (Chromium's trace), which
    // says what the machine did, not what the app did. Wall times are printed.
    const during = (await longTasks(p)).filter((t) => t.start >= t0 && t.start <= t1);
    const longest = (key: 'duration' | 'script') => Math.round(Math.max(0, ...during.map((t) => t[key])));
    console.log(`[e2e] main-thread long tasks and frames during the run: ${during.length}, longest ${longest('duration')} ms of wall time, longest script ${longest('script')} ms`);
    for (const t of during.filter((t) => t.script > 100)) console.log(`[e2e] a frame with ${Math.round(t.script)} ms of script: ${(t.scripts ?? []).join('; ')}`);
    const cpu = tasks.filter((t) => t.cpuMs > 50).sort((a, b) => b.cpuMs - a.cpuMs);
    console.log(`[e2e] main-thread tasks over 50 ms of CPU during the run: ${JSON.stringify(cpu.map((t) => [Math.round(t.cpuMs), Math.round(t.wallMs)]))} ([CPU ms, wall ms])`);
    expect(tasks.length, 'the trace saw the main thread').toBeGreaterThan(10);
    const blocking = tasks.filter((t) => t.cpuMs > 200);
    expect(blocking, `main-thread tasks over 200 ms of CPU during the run: ${JSON.stringify(blocking)}`).toEqual([]);
  });

  it('generates from the dense model and both pruned ones', async () => {
    const p = page();
    const texts = await generate(p, { prompt: 'Once upon a time', tokens: 24 }, 120_000);
    generated = texts;
    await browser.shot('generations');
    // stories260K's greedy continuation (DESIGN.md, shared/models/README.md).
    expect(texts.dense).toMatch(/^Once upon a time, there was a little girl named Lily/);
    expect(Object.keys(texts).sort()).toEqual(['baseline', 'dense', 'prunecomp']);
    for (const k of ['baseline', 'prunecomp']) expect(texts[k].length, k).toBeGreaterThan('Once upon a time'.length);
  });

  it('reloads with the model and the results still there, downloading nothing again', async () => {
    const p = page();
    const before = modelDownloads().length;
    await p.reload();
    await waitForTestId(p, 'model-summary', 60_000);
    expect(await p.getByTestId('model-origin').innerText()).toMatch(/nothing downloaded/);
    await p.locator('[data-testid=results][data-complete=true]:not([data-example=true])').waitFor({ timeout: 30_000 }); // the stored result, not the first visit's example
    expect(await p.getByTestId('result-source').getAttribute('data-from-cache')).toBe('true');
    expect(await perplexities(p)).toEqual(wasm);
    await browser.shot('reloaded');
    expect(modelDownloads().length - before, `model files fetched again: ${JSON.stringify(modelDownloads().slice(before))}`).toBe(0);

    // What IndexedDB holds: each model file once, the run's result (with its plans), no pruned model.
    const stored = await p.evaluate(async () => {
      const names = (await indexedDB.databases()).map((d) => d.name);
      const keysOf = (db: string, store: string) =>
        new Promise<IDBValidKey[]>((resolve, reject) => {
          const open = indexedDB.open(db);
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const req = open.result.transaction(store).objectStore(store).getAllKeys();
            req.onsuccess = () => (open.result.close(), resolve(req.result));
            req.onerror = () => reject(req.error);
          };
        });
      return { names, files: (await keysOf('lopper-files', 'files')).map((k) => JSON.stringify(k)), results: (await keysOf('lopper-results', 'results')).length };
    });
    expect(stored.names).not.toContain('lopper-models');
    const wholeFiles = stored.files.filter((k) => k.endsWith(',"file"]'));
    expect(wholeFiles.filter((k) => k.includes(MODEL_FILE)), JSON.stringify(stored.files)).toHaveLength(1);
    expect(stored.results).toBeGreaterThanOrEqual(1);

    // The pruned models come back from the stored plans: the same greedy text as before the reload.
    const again = await generate(p, { prompt: 'Once upon a time', tokens: 24 }, 120_000);
    expect(again).toEqual(generated);
  });

  it('works offline: reloads and prunes again with the network gone', async () => {
    const p = page();
    await server.stop();
    await browser.context.setOffline(true);
    try {
      await p.reload();
      await waitForTestId(p, 'model-summary', 60_000);
      expect(await p.evaluate(() => crossOriginIsolated)).toBe(true);
      await p.locator('[data-testid=results][data-complete=true]:not([data-example=true])').waitFor({ timeout: 30_000 });
      expect(await perplexities(p)).toEqual(wasm);
      await browser.shot('offline, reloaded');

      // A new setup, computed offline: 1 layer instead of 2.
      await setUpRun(p, { ...SETUP, layers: 1 });
      await runButton(p).click();
      await waitForResults(p, 240_000);
      const one = await perplexities(p);
      expect(one.dense).toBe(wasm.dense);
      expect(one.baseline).toBeLessThan(wasm.baseline);
      expect(await removedLayers(p)).toMatchObject({ baseline: [cli.baseline.removed[0]] });
      expect(await errorText(p)).toBeNull();
      await browser.shot('offline, pruned again');
    } finally {
      await browser.context.setOffline(false);
      await server.restart();
    }
  });

  it('gives the same perplexities on WebGPU (SwiftShader) as on WASM, within 1e-4 relative', async () => {
    const p = page();
    const webgpuRadio = p.getByTestId('run-panel').locator('input[name=backend][value=webgpu]');
    expect(await webgpuRadio.isEnabled(), 'a WebGPU adapter (SwiftShader) exists').toBe(true);
    // SwiftShader is ~100× slower than WASM (DESIGN.md): the comparison runs on a smaller
    // setup — 2 calibration windows of 64 tokens, and a pasted evaluation text (the first
    // 800 characters of the evaluation half) — on both backends.
    const small: RunSetup = { ...SETUP, windows: 2, window: 64, eval: 'custom' };
    const text = readFileSync(path.join(sharedDir, 'data/tinystories/eval.txt'), 'utf8').slice(0, 800);
    const results: Record<string, { ppl: Perplexities; removed: Awaited<ReturnType<typeof removedLayers>> }> = {};
    for (const backend of ['wasm', 'webgpu'] as const) {
      await setUpRun(p, { ...small, backend });
      const area = p.getByRole('textbox', { name: 'Your evaluation text' });
      if ((await area.inputValue()) !== text) await area.fill(text);
      await runButton(p).click();
      await waitForResults(p, 280_000);
      expect(await p.getByTestId('result-source').innerText()).toContain(backend);
      results[backend] = { ppl: await perplexities(p), removed: await removedLayers(p) };
      console.log(`[e2e] ${backend} perplexities (small setup) ${JSON.stringify(results[backend].ppl)}`);
    }
    await browser.shot('webgpu results');
    const { wasm: cpu, webgpu: gpu } = results;
    expect(relErr(gpu.ppl.dense, cpu.ppl.dense)).toBeLessThan(WEBGPU_TOLERANCE);
    expect(relErr(gpu.ppl.baseline, cpu.ppl.baseline)).toBeLessThan(WEBGPU_TOLERANCE);
    expect(relErr(gpu.ppl.prunecomp!, cpu.ppl.prunecomp!)).toBeLessThan(WEBGPU_TOLERANCE);
    expect(gpu.removed.baseline).toEqual(cpu.removed.baseline);
    expect(gpu.removed.prunecomp).toEqual(cpu.removed.prunecomp);
  }, 600_000);

  it('threw no uncaught exception in the page or its workers along the way', () => {
    expect(browser.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});
