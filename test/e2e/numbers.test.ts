/**
 * Numbers and bars when a pruned model is badly broken, on the built app in real Chromium:
 * a hand-built checkpoint (test/helpers/broken-checkpoint.ts) whose dense perplexity is 2.74
 * and whose pruned perplexities are ≈ 1e30 (Prune&Comp) and ≈ 1e47 (baseline), opened from
 * files as a person would, pruned in the app. The perplexities shown equal the Float64
 * reference's; every number on the results card is compact (no 48-digit integers); the bars
 * grow with the values on a log axis the chart names; nothing spills out of the chart.
 * Screenshots under test-results/e2e/numbers/.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { foldScalePaper, removeLayers } from '../../src/engine/prune/surgery';
import { ReferenceModel, referencePerplexity } from '../../src/engine/reference/forward';
import { ppl as formatPpl } from '../../src/app/format';
import { brokenCheckpoint, brokenHfFolder, TARGET } from '../helpers/broken-checkpoint';
import { errorText, perplexities, removedLayers, runButton, setUpRun, waitForResults, waitForTestId, type RunSetup } from './app';
import { openBrowser, screenshotsDir, type Browser } from './browser';

/** Remove layer 1 of 3 (reverse order with the last layer kept), Prune&Comp with the paper's fold vs the baseline. */
const SETUP: RunSetup = {
  backend: 'wasm',
  metric: 'reverse',
  layers: 1,
  mode: 'prunecomp',
  fold: 'paper',
  windows: 2,
  window: 64,
  calib: 'tinystories-calib',
  eval: 'custom',
};
/** the evaluation text: 300 "a"s (every prediction is of "a", which the dense model gets right) */
const EVAL_TEXT = 'a'.repeat(300);

describe.sequential('numbers spanning 1e0 … 1e50', () => {
  let browser: Browser;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'lopper-broken-'));
    for (const [name, bytes] of brokenHfFolder()) writeFileSync(path.join(folder, name), bytes);
    browser = await openBrowser('numbers');
    await browser.page.goto(inject('baseUrl'));
    await waitForTestId(browser.page, 'catalog', 30_000);
  });
  afterAll(async () => {
    await browser?.close();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  it('a broken model: the perplexities equal the reference, are printed compactly, and the bars grow with them on a log axis', async () => {
    const p = browser.page;
    const files = [...brokenHfFolder().keys()].map((name) => path.join(folder, name));
    await p.locator('input[type=file][multiple]').setInputFiles(files);
    await waitForTestId(p, 'model-summary', 60_000);

    await setUpRun(p, SETUP);
    await p.getByTestId('run-panel').locator('input[name=skipLast]').fill('1');
    const area = p.getByRole('textbox', { name: 'Your evaluation text' });
    await area.fill(EVAL_TEXT);
    await runButton(p).click();
    await waitForResults(p, 240_000);
    expect(await errorText(p)).toBeNull();

    // The numbers: the Float64 reference on the same text (BOS + 300 × "a", windows of 64).
    const got = await perplexities(p);
    const removed = await removedLayers(p);
    expect(removed.baseline).toEqual([1]);
    expect(removed.prunecomp).toEqual([1]);
    const s = removed.scales[0];
    const ck = brokenCheckpoint();
    const ids = [1, ...Array(EVAL_TEXT.length).fill(TARGET)];
    const ref = (c: typeof ck) => referencePerplexity(new ReferenceModel(c), ids, SETUP.window).ppl;
    const want = { dense: ref(ck), baseline: ref(removeLayers(ck, [1])), prunecomp: ref(removeLayers(foldScalePaper(ck, 1, s), [1])) };
    console.log(`[e2e] broken model: s = ${s}; app ${JSON.stringify(got)}; reference ${JSON.stringify(want)}`);
    // float32 against float64 on a mean NLL of ≈ 110 nats: |Δ log PPL| ≤ 1e-3
    for (const key of ['dense', 'baseline', 'prunecomp'] as const) {
      expect(Math.abs(Math.log(got[key]!) - Math.log(want[key])), key).toBeLessThan(1e-3);
    }
    expect(got.dense).toBeLessThan(10);
    expect(got.prunecomp!).toBeGreaterThan(1e25);
    expect(got.baseline).toBeGreaterThan(1e45);

    // Printed compactly: each perplexity in the format's one form, and no long digit runs anywhere on the card.
    for (const key of ['dense', 'baseline', 'prunecomp'] as const) {
      const text = (await p.getByTestId(`ppl-${key}`).innerText()).trim();
      expect(text, key).toBe(formatPpl(got[key]!));
      expect(text, key).toMatch(/^\d\.\d{3}(e\d+)?$/);
    }
    expect(await p.getByTestId('ppl-baseline').innerText()).toMatch(/^\d\.\d{3}e4[5-9]$/);
    const card = await p.getByTestId('results').innerText();
    expect(card, 'a run of 8+ digits on the results card').not.toMatch(/\d{8,}/);
    expect(card, 'a number of a billion or more written out with separators').not.toMatch(/\d{1,3}(,\d{3}){3,}/);
    expect(card).not.toMatch(/NaN|Infinity/);

    // The bars: a log axis, said on the chart; widths increase with the values.
    const chart = p.getByTestId('ppl-chart');
    expect(await chart.getAttribute('data-scale')).toBe('log');
    expect(await p.getByTestId('ppl-scale').textContent()).toBe('log scale');
    expect(await chart.getAttribute('aria-label')).toMatch(/log scale/);
    const bars = await Promise.all(
      (['dense', 'prunecomp', 'baseline'] as const).map(async (key) => {
        const bar = p.getByTestId(`ppl-bar-${key}`);
        return { key, value: Number(await bar.getAttribute('data-value')), width: Number(await bar.getAttribute('width')), box: await bar.boundingBox() };
      }),
    );
    console.log(`[e2e] bars: ${bars.map((b) => `${b.key} ${b.value.toExponential(3)} → ${b.width.toFixed(1)}`).join(', ')}`);
    const byValue = [...bars].sort((a, b) => a.value - b.value);
    expect(byValue.map((b) => b.key)).toEqual(['dense', 'prunecomp', 'baseline']);
    for (let i = 1; i < byValue.length; i++) expect(byValue[i].width, `${byValue[i].key} vs ${byValue[i - 1].key}`).toBeGreaterThan(byValue[i - 1].width);
    // the log axis: widths proportional to log10(value) from the axis start (1 here), so 1e30 is about 30/47 of 1e47
    const [dense, comp, base] = bars;
    expect(dense.width).toBeGreaterThan(1);
    expect(comp.width / base.width).toBeCloseTo(Math.log10(comp.value) / Math.log10(base.value), 2);
    // every label stays inside the chart, and the chart inside the card
    const svgBox = (await chart.boundingBox())!;
    const cardBox = (await p.getByTestId('results').boundingBox())!;
    for (const t of await chart.locator('text').all()) {
      const b = (await t.boundingBox())!;
      expect(b.x + b.width, `"${await t.textContent()}" overflows the chart`).toBeLessThanOrEqual(svgBox.x + svgBox.width + 0.5);
      expect(b.x, `"${await t.textContent()}" overflows the chart`).toBeGreaterThanOrEqual(svgBox.x - 0.5);
    }
    expect(svgBox.x + svgBox.width).toBeLessThanOrEqual(cardBox.x + cardBox.width + 0.5);

    // The magnitude curve spans 100× and more too (mean |X| 0.03 … 6): its axis is log as well, and says so.
    expect(await p.getByTestId('magnitude-chart').getAttribute('data-scale')).toBe('log');
    expect(await p.getByTestId('magnitude-scale').textContent()).toBe('log scale');

    await browser.shot('perplexities spanning 1e0 to 1e47');
    const dir = path.join(screenshotsDir, 'numbers');
    mkdirSync(dir, { recursive: true });
    await p.getByTestId('results').screenshot({ path: path.join(dir, 'results-card.png') });
    await chart.screenshot({ path: path.join(dir, 'perplexity-bars.png') });
    expect(browser.errors).toEqual([]);
  }, 400_000);
});
