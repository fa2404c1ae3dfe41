/**
 * The curve in the app (issue 13): after a stories260K run (STORIES_RUN: BI, Prune&Comp, n = 2,
 * WASM), "Draw the curve" sweeps n = 0…3 for the baseline, iterative, one-shot + compensation
 * and Prune&Comp in the worker. Every point — the layers removed and the perplexity — equals
 * `lopper sweep --json` with the same settings through the CLI (plans exactly; perplexities
 * within 1e-4 relative: onnxruntime-web WASM against onnxruntime-node), the run's own point is
 * ringed at its n, the CSV download holds exactly the table's numbers, the chart downloads as
 * a standalone SVG and a 2× PNG, a reload shows the stored curve without recomputing, and at
 * 375 px the results scroll no wider than the screen. Screenshots at 1280 and 375 px.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Mode } from '../../src/engine/prune/options';
import { lopper } from '../helpers/cli';
import { loadFromCatalog, relErr, runButton, setUpRun, STORIES_RUN, waitForResults, waitForTestId } from './app';
import { openBrowser, type Browser } from './browser';
import { sharedDir } from './cli';
import { startPreview, type AppServer } from './servers';

const N = 3;
const TOLERANCE = 1e-4;
const SWEEP_MODES: Mode[] = ['baseline', 'iterative', 'oneshot-comp', 'prunecomp'];

interface CliSweep {
  dense: number;
  layers: number;
  curves: Record<Mode, { n: number; removed: number[]; ppl: number }[]>;
}

/** The curve table's cells: per mode and n, the perplexity (full precision) and the removed layers' cell. */
async function curveTable(p: Page): Promise<{ mode: Mode; n: number; ppl: string; removed: string }[]> {
  return p.getByTestId('curve-table').evaluate((t) =>
    [...t.querySelectorAll('td[data-ppl]')].map((td) => {
      const mode = td.getAttribute('data-mode') as Mode;
      const n = Number(td.getAttribute('data-n'));
      const removed = t.querySelector(`td[data-removed][data-mode="${mode}"][data-n="${n}"]`)!.getAttribute('data-removed')!;
      return { mode, n, ppl: td.getAttribute('data-ppl')!, removed };
    }),
  );
}

async function downloadOf(p: Page, click: () => Promise<void>): Promise<{ name: string; bytes: Buffer }> {
  const [d] = await Promise.all([p.waitForEvent('download', { timeout: 30_000 }), click()]);
  const file = await d.path();
  return { name: d.suggestedFilename(), bytes: readFileSync(file) };
}

describe.sequential('the curve in the app', () => {
  let server: AppServer;
  let browser: Browser;
  let cli: CliSweep;

  beforeAll(async () => {
    const s = STORIES_RUN;
    const r = await lopper(
      'sweep',
      '--model', path.join(sharedDir, 'models/stories260K/stories260K.bin'),
      '--metric', s.metric,
      '--layers', String(N),
      '--calib', path.join(sharedDir, 'data/tinystories/calib.txt'),
      '--eval', path.join(sharedDir, 'data/tinystories/eval.txt'),
      '--calib-windows', String(s.windows),
      '--window', String(s.window),
      '--fold', s.fold,
      '--runtime', 'node',
      '--threads', '1',
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    cli = JSON.parse(r.stdout) as CliSweep;
    server = await startPreview();
    browser = await openBrowser('the curve');
  }, 180_000);

  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
    await server?.stop();
  });

  it('draws n = 0…3 for four modes after a run: every point equals lopper sweep, the run’s point is ringed', async () => {
    const p = browser.page;
    await p.goto(server.url);
    await waitForTestId(p, 'catalog', 30_000);
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'model-summary', 60_000);
    await setUpRun(p, STORIES_RUN);
    await runButton(p).click();
    await waitForResults(p, 120_000);

    const n = p.getByTestId('curve-n');
    expect(Number(await n.inputValue()), 'default N: half of 5 layers, at least the run’s n').toBe(2);
    await n.fill(String(N));
    await n.press('Tab');
    await expect.poll(() => p.getByTestId('curve-draw').innerText()).toBe(`Draw the curve (n = 0…${N})`);
    const t0 = Date.now();
    await p.getByTestId('curve-draw').click();
    await waitForTestId(p, 'curve-chart', 180_000);
    console.log(`[e2e] the curve (4 modes, n = 0…${N}) drew in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(await p.getByTestId('curve-source').getAttribute('data-from-cache')).toBe('false');

    const cells = await curveTable(p);
    expect(cells).toHaveLength(SWEEP_MODES.length * (N + 1));
    let worst = 0;
    for (const c of cells) {
      const want = c.n === 0 ? { ppl: cli.dense, removed: [] as number[] } : cli.curves[c.mode][c.n - 1];
      expect(c.removed, `${c.mode} n=${c.n}`).toBe(want.removed.join(' '));
      const e = relErr(Number(c.ppl), want.ppl);
      worst = Math.max(worst, e);
      expect(e, `${c.mode} n=${c.n}: ${c.ppl} vs ${want.ppl}`).toBeLessThan(TOLERANCE);
    }
    console.log(`[e2e] curve vs lopper sweep: ${cells.length} points, plans equal, perplexity max relative difference ${worst.toExponential(2)}`);
    // the modes differ where they should: Prune&Comp below the baseline at the run's n
    const at = (m: Mode, k: number) => Number(cells.find((c) => c.mode === m && c.n === k)!.ppl);
    expect(at('prunecomp', 2)).toBeLessThan(at('baseline', 2));

    // the chart: a mark per mode and n (n = 0 once, the dense model), its numbers as the table's
    const marks = await p.getByTestId('curve-chart').evaluate((svg) => [...svg.querySelectorAll('[data-mark=point]')].map((e) => `${e.getAttribute('data-mode')}:${e.getAttribute('data-n')}:${e.getAttribute('data-ppl')}`));
    expect(marks.sort()).toEqual(['dense:0:' + cells.find((c) => c.n === 0)!.ppl, ...cells.filter((c) => c.n > 0).map((c) => `${c.mode}:${c.n}:${c.ppl}`)].sort());
    // the run's own point (Prune&Comp at n = 2) is ringed, at the table's value
    const ring = p.getByTestId('curve-current');
    expect(await ring.getAttribute('data-mode')).toBe(STORIES_RUN.mode);
    expect(Number(await ring.getAttribute('data-n'))).toBe(STORIES_RUN.layers);
    expect(await ring.getAttribute('data-ppl')).toBe(cells.find((c) => c.mode === STORIES_RUN.mode && c.n === STORIES_RUN.layers)!.ppl);
    await p.locator('[data-tour=curve]').scrollIntoViewIfNeeded();
    await browser.shot('curve at 1280 px');
  }, 420_000);

  it('downloads the table as CSV, the chart as a standalone SVG and a 2× PNG', async () => {
    const p = browser.page;
    const cells = await curveTable(p);
    const csv = await downloadOf(p, () => p.getByTestId('curve-csv').click());
    expect(csv.name).toMatch(/^stories260K-bi-curve-0-3\.csv$/);
    const want = [
      ['n', ...SWEEP_MODES.flatMap((m) => [m, `${m} removed`])].join(','),
      ...Array.from({ length: N + 1 }, (_, k) =>
        [String(k), ...SWEEP_MODES.flatMap((m) => {
          const c = cells.find((x) => x.mode === m && x.n === k)!;
          return [c.ppl, c.removed];
        })].join(','),
      ),
    ];
    expect(csv.bytes.toString('utf8').trim().split('\n')).toEqual(want);

    const svg = await downloadOf(p, () => p.getByRole('button', { name: 'Download the curve chart as SVG' }).click());
    expect(svg.name).toBe('stories260K-bi-curve-0-3.svg');
    const text = svg.bytes.toString('utf8');
    expect(text).toMatch(/^<\?xml[^>]*>\s*<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(text).not.toMatch(/var\(|class=/);
    // parsed standalone (no page CSS): well-formed, titled, on white, every mark there
    const parsed = await p.evaluate((t) => {
      const doc = new DOMParser().parseFromString(t, 'image/svg+xml');
      const root = doc.documentElement;
      return {
        error: doc.querySelector('parsererror')?.textContent ?? null,
        title: root.querySelector(':scope > title')?.textContent ?? null,
        background: root.querySelector('rect[data-background]')?.getAttribute('fill') ?? null,
        marks: root.querySelectorAll('[data-mark=point]').length,
        width: root.getAttribute('width'),
      };
    }, text);
    expect(parsed.error).toBeNull();
    expect(parsed.title).toMatch(/^perplexity \(log scale\) against layers removed/);
    expect(parsed.background).toBe('#ffffff');
    expect(parsed.marks).toBe(1 + SWEEP_MODES.length * N);
    expect(parsed.width).toBe('460');

    const png = await downloadOf(p, () => p.getByRole('button', { name: 'Download the curve chart as PNG' }).click());
    expect(png.name).toBe('stories260K-bi-curve-0-3.png');
    expect(png.bytes.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    // IHDR: width and height, big-endian, at bytes 16 and 20 — the viewBox (460 × 250) at 2×
    expect([png.bytes.readUInt32BE(16), png.bytes.readUInt32BE(20)]).toEqual([920, 500]);
  }, 120_000);

  it('shows the stored curve after a reload without recomputing', async () => {
    const p = browser.page;
    await p.reload();
    await waitForResults(p, 120_000);
    await p.getByTestId('curve-n').fill(String(N));
    await p.getByTestId('curve-n').press('Tab');
    await waitForTestId(p, 'curve-chart', 30_000);
    expect(await p.getByTestId('curve-source').getAttribute('data-from-cache')).toBe('true');
    expect(await p.getByTestId('curve-progress').count()).toBe(0);
  }, 180_000);

  it('fits a 375 px screen: no horizontal scroll on the results', async () => {
    const p = browser.page;
    await p.setViewportSize({ width: 375, height: 800 });
    await p.locator('[data-tour=curve]').scrollIntoViewIfNeeded();
    const widths = await p.evaluate(() => {
      // what sticks out (outside any sideways-scrolling box), to name it when the test fails
      const scrolls = (e: Element | null): boolean => !!e && e !== document.documentElement && (getComputedStyle(e).overflowX === 'auto' || getComputedStyle(e).overflowX === 'scroll' || scrolls(e.parentElement));
      const wide = [...document.body.querySelectorAll('*')]
        .filter((e) => e.getBoundingClientRect().right > 375.5 && !scrolls(e.parentElement) && !e.closest('details:not([open])'))
        .map((e) => `${e.tagName.toLowerCase()}${e.getAttribute('data-testid') ? `[${e.getAttribute('data-testid')}]` : ''}.${[...e.classList].join('.')} → ${Math.round(e.getBoundingClientRect().right)}`);
      return { scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 12) };
    });
    expect(widths.scroll, `the page scrolls sideways at 375 px: ${widths.wide.join('; ')}`).toBeLessThanOrEqual(375);
    await browser.shot('curve at 375 px');
  }, 60_000);
});
