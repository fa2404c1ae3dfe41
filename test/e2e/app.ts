/**
 * What a person does with the app, as Playwright steps over the UI's labels and
 * data-testids (src/ui/**): choose a model, set up a run, read the results, generate.
 * Shared by the end-to-end tests.
 */
import type { Page } from 'playwright-core';
import { expect } from 'vitest';

/** The settings a run is made with, through the run panel's controls. */
export interface RunSetup {
  backend: 'wasm' | 'webgpu';
  metric: string;
  layers: number;
  mode: string;
  fold: 'paper' | 'tied';
  windows: number;
  window: number;
  /** built-in text ids */
  calib: string;
  eval: string;
}

/** stories260K, BI, 2 layers, Prune&Comp vs baseline on WASM: small enough for 2 cores (and SwiftShader), large enough to mean something. */
export const STORIES_RUN: RunSetup = {
  backend: 'wasm',
  metric: 'bi',
  layers: 2,
  mode: 'prunecomp',
  fold: 'paper',
  windows: 4,
  window: 128,
  calib: 'tinystories-calib',
  eval: 'tinystories-eval',
};

export interface Perplexities {
  dense: number;
  baseline: number;
  prunecomp: number | null;
}

/**
 * One long main-thread task or frame (page time, ms): `duration` its wall time; `script` the
 * time the page's own JavaScript ran in it (Long Animation Frames: the scripts' durations,
 * style and layout they forced included), 0 for a task no script ran in.
 */
export interface LongTask {
  start: number;
  duration: number;
  script: number;
  /** the scripts of a long frame that ran 50 ms or more: what invoked them, where */
  scripts?: string[];
}

/**
 * Records main-thread long tasks from the first script on: PerformanceObserver 'longtask'
 * (wall time, whatever ran) and 'long-animation-frame' (which script ran how long). On a
 * 2-core machine whose cores onnxruntime's WASM threads keep busy, a frame's style and layout
 * can take hundreds of ms of wall time while the page's code ran for a few: the script time
 * says what the app did, the wall time what the machine did.
 */
export async function observeLongTasks(page: Page): Promise<void> {
  await page.addInitScript(() => {
    type Script = { duration: number; forcedStyleAndLayoutDuration?: number; invoker?: string; sourceURL?: string; sourceFunctionName?: string; sourceCharPosition?: number };
    const w = window as unknown as { __longTasks: { start: number; duration: number; script: number; scripts?: string[] }[] };
    w.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__longTasks.push({ start: e.startTime, duration: e.duration, script: 0 });
    }).observe({ type: 'longtask', buffered: true });
    new PerformanceObserver((list) => {
      for (const e of list.getEntries() as (PerformanceEntry & { scripts?: Script[] })[]) {
        const script = (e.scripts ?? []).reduce((a, s) => a + s.duration, 0);
        const scripts = (e.scripts ?? [])
          .filter((s) => s.duration >= 50)
          .map((s) => `${Math.round(s.duration)} ms (layout ${Math.round(s.forcedStyleAndLayoutDuration ?? 0)}): ${s.invoker} ${s.sourceFunctionName ?? ''} ${(s.sourceURL ?? '').split('/').pop()}:${s.sourceCharPosition ?? ''}`);
        w.__longTasks.push({ start: e.startTime, duration: e.duration, script, scripts });
      }
    }).observe({ type: 'long-animation-frame', buffered: true });
  });
}

/** Long tasks and frames so far. */
export function longTasks(page: Page): Promise<LongTask[]> {
  return page.evaluate(() => (window as unknown as { __longTasks: LongTask[] }).__longTasks ?? []);
}

export const pageNow = (page: Page) => page.evaluate(() => performance.now());

/** The error banner's text, or null when there is none. */
export async function errorText(page: Page): Promise<string | null> {
  const banner = page.getByTestId('error-banner');
  return (await banner.count()) ? await banner.innerText() : null;
}

/** Wait until `testid` is visible, failing at once (with its text) if the error banner shows instead. */
export async function waitForTestId(page: Page, testid: string, timeout: number): Promise<void> {
  const target = page.getByTestId(testid);
  const banner = page.getByTestId('error-banner');
  await target.or(banner).first().waitFor({ state: 'visible', timeout });
  if (!(await target.isVisible())) throw new Error(`waiting for ${testid}, the page shows an error: ${await banner.innerText()}`);
}

/** Choose the local mirror and load a catalog model by its button ("Load stories260K"). */
export async function loadFromCatalog(page: Page, id: string): Promise<void> {
  await page.getByRole('button', { name: 'Local mirror' }).click();
  await page.getByRole('button', { name: `Load ${id}` }).click();
}

/** Set the run panel's controls to `setup`. */
export async function setUpRun(page: Page, setup: RunSetup): Promise<void> {
  const panel = page.getByTestId('run-panel');
  await panel.locator(`input[name=backend][value=${setup.backend}]`).check();
  await panel.locator('#text-calibration').selectOption(setup.calib);
  await panel.locator('#text-evaluation').selectOption(setup.eval);
  await panel.locator('select[name=metric]').selectOption(setup.metric);
  await panel.locator('input[name=layers]').fill(String(setup.layers));
  await panel.locator('select[name=mode]').selectOption(setup.mode);
  const fold = panel.locator('select[name=fold]');
  if (await fold.isEnabled()) await fold.selectOption(setup.fold); // uncompensated modes have no fold
  await panel.locator('input[name=windows]').fill(String(setup.windows));
  await panel.locator('input[name=window]').fill(String(setup.window));
}

/** The run button. */
export const runButton = (page: Page) => page.getByTestId('run-panel').getByRole('button', { name: 'Run', exact: true });

/** Wait for a finished run's results (no progress, no error) matching the current settings. */
export async function waitForResults(page: Page, timeout: number): Promise<void> {
  // the person's own results: not the precomputed example a first visit shows
  await page.locator('[data-testid=results]:not([data-example=true])').or(page.getByTestId('error-banner')).first().waitFor({ state: 'visible', timeout });
  await page.getByTestId('run-progress').waitFor({ state: 'detached', timeout });
  await page.locator('[data-testid=results][data-complete=true]:not([data-example=true])').waitFor({ timeout: 10_000 }); // every chart drawn (they appear one task after another)
  const err = await errorText(page);
  if (err) throw new Error(`the run ended with an error: ${err}`);
  expect(await page.getByTestId('result-stale').count(), 'the results shown are for the current settings').toBe(0);
}

/** The perplexities the results show, at full precision (data-value). */
export async function perplexities(page: Page): Promise<Perplexities> {
  const value = async (key: string) => {
    const el = page.getByTestId(`ppl-${key}`);
    return (await el.count()) ? Number(await el.getAttribute('data-value')) : null;
  };
  const dense = await value('dense');
  const baseline = await value('baseline');
  if (dense === null || baseline === null) throw new Error('the results show no perplexities');
  return { dense, baseline, prunecomp: await value('prunecomp') };
}

/** The layers each plan removed, in order, as the removed-layers table shows them. */
export async function removedLayers(page: Page): Promise<{ baseline: number[]; prunecomp: number[]; scales: number[] }> {
  const col = async (prefix: string, attr?: string) => {
    const cells = page.locator(`[data-testid^="${prefix}-"]`);
    const out: number[] = [];
    for (let i = 0; i < (await cells.count()); i++) {
      const c = cells.nth(i);
      out.push(Number(attr ? await c.getAttribute(attr) : await c.innerText()));
    }
    return out;
  };
  return { baseline: await col('removed-baseline'), prunecomp: await col('removed-prunecomp'), scales: await col('scale', 'data-value') };
}

/** Press Generate and wait until every column has finished. */
export async function generate(page: Page, opts: { prompt: string; tokens: number }, timeout: number): Promise<Record<string, string>> {
  const panel = page.getByTestId('generate');
  await panel.locator('textarea[name=prompt]').fill(opts.prompt);
  await panel.locator('input[name=maxTokens]').fill(String(opts.tokens));
  await panel.locator('input[name=temperature]').fill('0');
  await panel.getByRole('button', { name: 'Generate' }).click();
  const columns = panel.locator('[data-testid^="gen-"][data-testid$="-rate"]');
  await expect
    .poll(
      async () => {
        const err = await errorText(page);
        if (err) throw new Error(`generation failed: ${err}`);
        const rates = await columns.allInnerTexts();
        return rates.length > 0 && rates.every((r) => /\d+ tokens/.test(r)) && (await panel.getByRole('button', { name: 'Stop' }).count()) === 0;
      },
      { timeout, interval: 250 },
    )
    .toBe(true);
  const texts: Record<string, string> = {};
  for (const key of ['dense', 'baseline', 'prunecomp']) {
    const el = panel.getByTestId(`gen-${key}-text`);
    if (await el.count()) texts[key] = await el.innerText();
  }
  return texts;
}

/** |a − b| / |b| */
export const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** The evaluation panel's choices. */
export interface EvalSetup {
  tasks: string[];
  limit: number;
  data: 'mirror' | 'hub';
}

/** Set the evaluation panel's controls to `setup`. */
export async function setUpEval(page: Page, setup: EvalSetup): Promise<void> {
  const panel = page.getByTestId('evaluation');
  const boxes = panel.locator('input[name=task]');
  for (let i = 0; i < (await boxes.count()); i++) {
    const box = boxes.nth(i);
    await box.setChecked(setup.tasks.includes((await box.getAttribute('value')) ?? ''));
  }
  await panel.locator('input[name=limit]').fill(String(setup.limit));
  await panel.locator('input[name=limit]').dispatchEvent('change');
  await panel.locator(`input[name=qa][value=${setup.data}]`).check();
}

/** The Evaluate button. */
export const evaluateButton = (page: Page) => page.getByTestId('evaluation').getByRole('button', { name: 'Evaluate', exact: true });

/** Wait for a finished evaluation (no progress, no error) matching the current choices. */
export async function waitForEvaluation(page: Page, timeout: number): Promise<void> {
  await waitForTestId(page, 'eval-table', timeout);
  await page.getByTestId('eval-progress').waitFor({ state: 'detached', timeout });
  const err = await errorText(page);
  if (err) throw new Error(`the evaluation ended with an error: ${err}`);
  expect(await page.getByTestId('eval-stale').count(), 'the evaluation shown is for the current choices').toBe(0);
}

export interface Accuracy {
  value: number;
  stderr: number;
}

/** The evaluation table at full precision (data-value): per model, per task, the average and RP (null for the dense model). */
export async function accuracyTable(page: Page): Promise<Record<string, { tasks: Record<string, Accuracy>; avg: number; rp: number | null }>> {
  const out: Record<string, { tasks: Record<string, Accuracy>; avg: number; rp: number | null }> = {};
  const rows = page.locator('[data-testid^="eval-row-"]');
  for (let i = 0; i < (await rows.count()); i++) {
    const row = rows.nth(i);
    const key = (await row.getAttribute('data-testid'))!.replace('eval-row-', '');
    const tasks: Record<string, Accuracy> = {};
    const cells = row.locator(`[data-testid^="acc-${key}-"]`);
    for (let j = 0; j < (await cells.count()); j++) {
      const c = cells.nth(j);
      const task = (await c.getAttribute('data-testid'))!.replace(`acc-${key}-`, '');
      tasks[task] = { value: Number(await c.getAttribute('data-value')), stderr: Number(await c.getAttribute('data-stderr')) };
    }
    const rp = await row.getByTestId(`rp-${key}`).getAttribute('data-value');
    out[key] = { tasks, avg: Number(await row.getByTestId(`avg-${key}`).getAttribute('data-value')), rp: rp ? Number(rp) : null };
  }
  return out;
}

/**
 * The CPU time of each top-level task on the page's main thread (Chromium's trace: the
 * thread-time duration `tdur` of CrRendererMain's RunTask events), while `during` runs. Unlike
 * wall time, it does not grow when other threads — onnxruntime's WASM threads on a 2-core
 * machine — take the cores: it is what the page's own work cost.
 */
export async function mainThreadCpu(page: Page, during: () => Promise<void>): Promise<{ cpuMs: number; wallMs: number }[]> {
  const cdp = await page.context().newCDPSession(page);
  type TraceEvent = { name: string; ph: string; pid: number; tid: number; dur?: number; tdur?: number; args?: { name?: string } };
  const events: TraceEvent[] = [];
  // (playwright-core's CDPSession types name no Tracing events; the protocol sends them)
  const on = cdp.on.bind(cdp) as unknown as (event: string, listener: (d: { value: TraceEvent[] }) => void) => void;
  on('Tracing.dataCollected', (d) => void events.push(...d.value));
  await cdp.send('Tracing.start', { categories: 'toplevel,__metadata', transferMode: 'ReportEvents' });
  try {
    await during();
  } finally {
    const once = cdp.once.bind(cdp) as unknown as (event: string, listener: () => void) => void;
    const complete = new Promise<void>((resolve) => once('Tracing.tracingComplete', resolve));
    await cdp.send('Tracing.end');
    await complete;
    await cdp.detach();
  }
  const mains = new Set(events.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  return events
    .filter((e) => e.ph === 'X' && /RunTask$/.test(e.name) && mains.has(`${e.pid}:${e.tid}`) && e.tdur !== undefined)
    .map((e) => ({ cpuMs: e.tdur! / 1000, wallMs: (e.dur ?? 0) / 1000 }));
}
