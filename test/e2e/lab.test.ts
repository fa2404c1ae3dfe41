/**
 * The compensation lab in the app (issue 14), on stories260K from the local mirror with the
 * curve test's settings (STORIES_RUN: BI, n = 2, 4 calibration windows of 128 tokens, WASM):
 *
 *   (a) compensation as a choice: a run with 'linear' (ReplaceMe's map) gives the perplexities
 *       of `lopper compare --comp linear --json` (within 1e-4 relative: onnxruntime-web WASM
 *       against onnxruntime-node) and its removed layers exactly; the results name it, show
 *       each step's map residual (the CLI's, within 1e-4), and the link carries it;
 *   (b) the perplexity budget (linear): one measure, then n(B) for B = 1.5, 3, 40 equals what
 *       `lopper prune --budget B --json` removes (its plan.budget: the same perplexities
 *       after each cut within 1e-4), live as B changes with nothing recomputed, and "use"
 *       sets the run's layers;
 *   (c) the lab, N = 2, metrics bi + angular, all four compensations: every row's held-out
 *       and evaluation perplexities equal `lopper lab --json` within 1e-4, the layers
 *       removed exactly, its layer-pass counts exactly, each n's best marked (attribute and
 *       "best" in the row) and the CLI's; the CSV holds the table's numbers;
 *   (d) axe-core on the budget and the lab at 1280 and 375 px: no serious or critical
 *       violations, and no sideways scroll at 375 px;
 *   (e) after a reload both show stored (IndexedDB), nothing recomputed; a lab cancels.
 *
 * Screenshots of the results, the budget and the lab under test-results/e2e/the-compensation-lab/.
 * The steps share one browser, in order.
 */
import AxeBuilder from '@axe-core/playwright';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { LabResult } from '../../src/app/lab-data';
import { lopper } from '../helpers/cli';
import { loadFromCatalog, perplexities, relErr, removedLayers, runButton, setUpRun, STORIES_RUN, waitForResults, waitForTestId } from './app';
import { openBrowser, screenshotsDir, type Browser } from './browser';
import { sharedDir } from './cli';

const TOLERANCE = 1e-4;
const LAB_N = 2;
const LAB_METRICS = ['bi', 'angular'];
const LAB_COMPS = ['none', 'scalar', 'linear', 'diag'];
/** budgets far from any cut's ratio on this model with linear compensation (after each cut: 1.29×, 2.13×, 36.0×, 60.1× dense) */
const BUDGETS = [1.5, 3, 40];

const s = STORIES_RUN;
const model = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const calib = path.join(sharedDir, 'data/tinystories/calib.txt');
const evalText = path.join(sharedDir, 'data/tinystories/eval.txt');
const common = ['--model', model, '--calib', calib, '--calib-windows', String(s.windows), '--window', String(s.window), '--runtime', 'node', '--threads', '1', '--json'];

interface CliPlan {
  removed: number[];
  steps: { map?: { residual: number; residualNone: number } }[];
  budget?: { factor: number; densePpl: number; ppls: number[]; stopped: string };
}
interface CliCompare {
  dense: { ppl: number };
  baseline: CliPlan & { ppl: number };
  prunecomp: CliPlan & { ppl: number; comp: string };
}

async function cli<T>(...args: string[]): Promise<T> {
  const r = await lopper(...args);
  expect(r.code, `lopper ${args[0]}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** axe's serious and critical violations inside `selectors`, as lines a person can act on. */
async function seriousViolations(page: Page, selectors: string[]): Promise<string[]> {
  let builder = new AxeBuilder({ page: page as never }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']);
  for (const sel of selectors) builder = builder.include(sel);
  const r = await builder.analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

/** The page's sideways overflow, and what sticks out (outside any sideways-scrolling box). */
async function sideways(p: Page, width: number): Promise<{ scroll: number; wide: string[] }> {
  return p.evaluate((w) => {
    const scrolls = (e: Element | null): boolean => !!e && e !== document.documentElement && (getComputedStyle(e).overflowX === 'auto' || getComputedStyle(e).overflowX === 'scroll' || scrolls(e.parentElement));
    const wide = [...document.body.querySelectorAll('*')]
      .filter((e) => e.getBoundingClientRect().right > w + 0.5 && !scrolls(e.parentElement) && !e.closest('details:not([open])'))
      .map((e) => `${e.tagName.toLowerCase()}${e.getAttribute('data-testid') ? `[${e.getAttribute('data-testid')}]` : ''}.${[...e.classList].join('.')} → ${Math.round(e.getBoundingClientRect().right)}`);
    return { scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 12) };
  }, width);
}

const SUITE = 'the compensation lab';

/** A screenshot of one part of the page: test-results/e2e/the-compensation-lab/{name}.png */
async function partShot(p: Page, selector: string, name: string): Promise<void> {
  const file = path.join(screenshotsDir, 'the-compensation-lab', `${name}.png`);
  await p.locator(selector).screenshot({ path: file });
  console.log(`[e2e] screenshot ${path.relative(path.join(screenshotsDir, '../..'), file)}`);
}

describe.sequential(SUITE, () => {
  let browser: Browser;
  let compare: CliCompare;
  let budgets: CliPlan[];
  let lab: LabResult;
  /** the CLI's answers, one command at a time (the machine's cores are shared), while the browser works */
  let oracles: Promise<void>;
  const page = () => browser.page;

  beforeAll(async () => {
    oracles = (async () => {
      compare = await cli<CliCompare>('compare', ...common, '--metric', s.metric, '--layers', String(s.layers), '--eval', evalText, '--fold', s.fold, '--comp', 'linear');
      budgets = [];
      for (const b of BUDGETS) budgets.push(await cli<CliPlan>('prune', ...common, '--metric', s.metric, '--mode', 'prunecomp', '--fold', s.fold, '--comp', 'linear', '--budget', String(b)));
      lab = await cli<LabResult>('lab', ...common, '--eval', evalText, '--layers', String(LAB_N), '--metrics', LAB_METRICS.join(','), '--comps', LAB_COMPS.join(','), '--fold', s.fold);
    })();
    oracles.catch(() => undefined); // awaited (and reported) by the first test
    browser = await openBrowser(SUITE, { viewport: { width: 1280, height: 900 } });
  }, 60_000);

  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
  });

  it('(a) linear compensation: the run equals lopper compare --comp linear, and says so', async () => {
    const p = page();
    await p.goto(inject('baseUrl'));
    await waitForTestId(p, 'catalog', 30_000);
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'model-summary', 60_000);
    await setUpRun(p, s);
    const panel = p.getByTestId('run-panel');
    expect(await panel.locator('input[name=alpha]').count(), 'α is shown for linear/diag only').toBe(0);
    await panel.locator('select[name=comp]').selectOption('linear');
    expect(await panel.locator('input[name=alpha]').inputValue()).toBe('0');
    expect(await panel.getByTestId('comp-note').innerText()).toMatch(/least-squares map/);
    expect(new URL(p.url()).searchParams.get('comp')).toBe('linear');
    await runButton(p).click();
    await waitForResults(p, 120_000);
    await oracles;

    const got = await perplexities(p);
    const want = { dense: compare.dense.ppl, baseline: compare.baseline.ppl, prunecomp: compare.prunecomp.ppl };
    for (const k of ['dense', 'baseline', 'prunecomp'] as const) expect(relErr(got[k]!, want[k]), `${k}: ${got[k]} vs ${want[k]}`).toBeLessThan(TOLERANCE);
    const removed = await removedLayers(p);
    expect(removed.baseline).toEqual(compare.baseline.removed);
    expect(removed.prunecomp).toEqual(compare.prunecomp.removed);
    expect(compare.prunecomp.comp).toBe('linear');
    expect(await p.getByTestId('result-source').innerText()).toContain('Prune&Comp (linear)');
    // each step's map residual: the CLI's, and below deleting the layer with nothing folded
    for (const [i, st] of compare.prunecomp.steps.entries()) {
      const cell = p.getByTestId(`residual-${i}`);
      const [r, none] = [Number(await cell.getAttribute('data-value')), Number(await cell.getAttribute('data-none'))];
      expect(relErr(r, st.map!.residual), `step ${i} residual`).toBeLessThan(TOLERANCE);
      expect(relErr(none, st.map!.residualNone), `step ${i} residual without the map`).toBeLessThan(TOLERANCE);
      expect(r).toBeLessThan(none);
    }
    console.log(`[e2e] linear: perplexities ${got.dense} / ${got.baseline} / ${got.prunecomp} (CLI ${want.dense} / ${want.baseline} / ${want.prunecomp})`);
    await partShot(p, '[data-testid=results]', '01-linear-compensation-results');

    // scalar is another run: its stored result is not this one (the link and identity say which)
    await panel.locator('select[name=comp]').selectOption('scalar');
    expect(new URL(p.url()).searchParams.get('comp')).toBeNull();
    await expect.poll(() => p.getByTestId('result-stale').count(), { timeout: 5000 }).toBe(1);
    await panel.locator('select[name=comp]').selectOption('linear');
    await expect.poll(() => p.getByTestId('result-stale').count(), { timeout: 5000 }).toBe(0);
  }, 300_000);

  it('(b) the budget slider: n(B) equals lopper prune --budget B, live, and sets the layers', async () => {
    const p = page();
    const budget = p.getByTestId('budget');
    await budget.getByTestId('budget-compute').click();
    await waitForTestId(p, 'budget-n', 120_000);
    await budget.getByTestId('budget-progress').waitFor({ state: 'detached', timeout: 120_000 });
    // the perplexities after each cut: the CLI's (its budgeted runs stop early: the first cuts agree)
    const ppls = await budget.locator('td[data-ppl]').evaluateAll((tds) => tds.map((td) => Number(td.getAttribute('data-ppl'))));
    expect(ppls).toHaveLength(4); // all but one of stories260K's 5 layers
    for (const [i, b] of budgets.entries()) {
      const factor = BUDGETS[i];
      await budget.getByTestId('budget-factor').fill(String(factor));
      const out = budget.getByTestId('budget-n');
      await expect.poll(() => out.getAttribute('data-factor')).toBe(String(factor));
      const n = Number(await out.getAttribute('data-n'));
      expect(n, `B = ${factor}`).toBe(b.removed.length);
      expect(await out.innerText()).toContain(b.removed.length ? `layers ${b.removed.join(', ')}` : '0 of');
      for (const [k, want] of b.budget!.ppls.entries()) expect(relErr(ppls[k], want), `B = ${factor}, cut ${k + 1}`).toBeLessThan(TOLERANCE);
      console.log(`[e2e] budget ${factor}: n = ${n} (lopper prune --budget: ${b.removed.length}, stopped by ${b.budget!.stopped})`);
    }
    expect(await budget.getByTestId('budget-progress').count(), 'B changes recompute nothing').toBe(0);
    // the slider moves B on a log scale: one step right from B = 40 gives a B a little above it
    const last = BUDGETS.length - 1;
    await budget.getByTestId('budget-slider').focus();
    await p.keyboard.press('ArrowRight');
    const moved = Number(await budget.getByTestId('budget-n').getAttribute('data-factor'));
    expect(moved).toBeGreaterThan(BUDGETS[last]);
    expect(moved).toBeLessThan(BUDGETS[last] * 1.02);
    await budget.getByTestId('budget-factor').fill(String(BUDGETS[last]));
    await budget.getByTestId('budget-use').click();
    expect(Number(await p.getByTestId('run-panel').locator('input[name=layers]').inputValue())).toBe(budgets[last].removed.length);
    await partShot(p, '[data-testid=budget]', '02-budget-1280px');
  }, 240_000);

  it('(c) the lab: every row equals lopper lab, each n’s best marked', async () => {
    const p = page();
    const panel = p.getByTestId('lab-panel');
    const metrics = panel.locator('input[name=lab-metric]');
    for (let i = 0; i < (await metrics.count()); i++) {
      const box = metrics.nth(i);
      await box.setChecked(LAB_METRICS.includes((await box.getAttribute('value'))!));
    }
    const comps = panel.locator('input[name=lab-comp]');
    for (let i = 0; i < (await comps.count()); i++) await comps.nth(i).setChecked(true);
    await panel.getByTestId('lab-n').fill(String(LAB_N));
    await panel.getByTestId('lab-n').press('Tab');
    await expect.poll(() => panel.getByTestId('lab-run').innerText()).toBe(`Run the lab (n = 1…${LAB_N})`);
    // rows arrive one by one while it runs: the most rows the live list showed
    await p.evaluate(() => {
      const w = window as unknown as { __liveRows: number };
      w.__liveRows = 0;
      new MutationObserver(() => (w.__liveRows = Math.max(w.__liveRows, document.querySelectorAll('[data-testid=lab-live] li').length))).observe(document.body, { childList: true, subtree: true });
    });
    const t0 = Date.now();
    await panel.getByTestId('lab-run').click();
    await waitForTestId(p, 'lab-table', 180_000);
    const live = await p.evaluate(() => (window as unknown as { __liveRows: number }).__liveRows);
    expect(live, 'rows shown while the lab ran').toBeGreaterThanOrEqual(lab.rows.length - 1);
    console.log(`[e2e] the lab (${LAB_METRICS.length} metrics × ${LAB_COMPS.length} compensations, n = 1…${LAB_N}) ran in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(await panel.getByTestId('lab-source').getAttribute('data-from-cache')).toBe('false');

    const rows = await panel.locator('tr[data-testid=lab-row]').evaluateAll((trs) =>
      trs.map((tr) => ({
        n: Number(tr.getAttribute('data-n')),
        metric: tr.getAttribute('data-metric')!,
        comp: tr.getAttribute('data-comp')!,
        heldOut: Number(tr.getAttribute('data-heldout')),
        eval: Number(tr.getAttribute('data-eval')),
        removed: tr.getAttribute('data-removed')!,
        best: tr.getAttribute('data-best') === 'true',
        text: (tr as HTMLElement).innerText,
      })),
    );
    expect(rows).toHaveLength(lab.rows.length);
    expect(lab.rows).toHaveLength(LAB_N * LAB_METRICS.length * LAB_COMPS.length);
    let worst = 0;
    for (const [i, want] of lab.rows.entries()) {
      const got = rows[i];
      const what = `${want.metric}/${want.comp} n=${want.n}`;
      expect([got.n, got.metric, got.comp, got.removed], what).toEqual([want.n, want.metric, want.comp, want.removed.join(' ')]);
      for (const [a, b] of [[got.heldOut, want.heldOut], [got.eval, want.eval!]]) {
        worst = Math.max(worst, relErr(a, b));
        expect(relErr(a, b), `${what}: ${a} vs ${b}`).toBeLessThan(TOLERANCE);
      }
    }
    const dense = panel.locator('tr[data-metric=dense]');
    expect(relErr(Number(await dense.getAttribute('data-heldout')), lab.dense.heldOut)).toBeLessThan(TOLERANCE);
    expect(relErr(Number(await dense.getAttribute('data-eval')), lab.dense.eval!)).toBeLessThan(TOLERANCE);
    console.log(`[e2e] lab vs lopper lab: ${rows.length} rows, plans equal, perplexity max relative difference ${worst.toExponential(2)}`);
    // each n's best: one row, marked in words, the lowest held-out perplexity shown, and the CLI's
    for (let n = 1; n <= LAB_N; n++) {
      const mine = rows.filter((r) => r.n === n);
      const best = mine.filter((r) => r.best);
      expect(best, `n = ${n}: one best`).toHaveLength(1);
      expect(best[0].text).toMatch(/\bbest\b/);
      expect(best[0].heldOut).toBe(Math.min(...mine.map((r) => r.heldOut)));
      const cliBest = lab.best.find((b) => b.n === n)!;
      expect([best[0].metric, best[0].comp], `n = ${n}`).toEqual([cliBest.metric, cliBest.comp]);
      for (const r of mine.filter((x) => !x.best)) expect(r.text).not.toMatch(/\bbest\b/);
    }
    // the passes the run saved: the CLI's counts exactly (they count layer-passes, not time)
    const source = panel.getByTestId('lab-source');
    expect(Number(await source.getAttribute('data-passes-run'))).toBe(lab.passes.run);
    expect(Number(await source.getAttribute('data-passes-naive'))).toBe(lab.passes.naive);
    expect(Number(await source.getAttribute('data-seconds'))).toBeGreaterThan(0);
    // the chart: a line per pair, a mark per row and the dense point, each n's best ringed
    const chart = panel.getByTestId('lab-chart');
    expect(await chart.locator('[data-line]').count()).toBe(LAB_METRICS.length * LAB_COMPS.length);
    expect(await chart.locator('[data-mark=point]').count()).toBe(rows.length + 1);
    expect(await chart.locator('[data-mark=best]').count()).toBe(LAB_N);

    // the CSV: the table's numbers, full precision, best flagged
    const [d] = await Promise.all([p.waitForEvent('download', { timeout: 30_000 }), panel.getByTestId('lab-csv').click()]);
    expect(d.suggestedFilename()).toBe(`stories260K-lab-0-${LAB_N}.csv`);
    const csv = readFileSync(await d.path(), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('n,metric,comp,heldout_ppl,eval_ppl,removed,best');
    expect(csv.slice(2)).toEqual(rows.map((r) => [r.n, r.metric, r.comp, r.heldOut, r.eval, r.removed, r.best ? 1 : 0].join(',')));
    await partShot(p, '[data-tour=lab]', '03-lab-1280px');
  }, 300_000);

  it('(d) axe on the budget and the lab, at 1280 and 375 px; no sideways scroll on a phone', async () => {
    const p = page();
    const where = ['[data-testid=budget]', '[data-tour=lab]'];
    const wide = await seriousViolations(p, where);
    console.log(`[e2e] axe at 1280 px: ${wide.length} serious/critical`);
    expect(wide).toEqual([]);
    await p.setViewportSize({ width: 375, height: 800 });
    await p.locator('[data-tour=lab]').scrollIntoViewIfNeeded();
    const narrow = await seriousViolations(p, where);
    console.log(`[e2e] axe at 375 px: ${narrow.length} serious/critical`);
    expect(narrow).toEqual([]);
    const w = await sideways(p, 375);
    expect(w.scroll, `the page scrolls sideways at 375 px: ${w.wide.join('; ')}`).toBeLessThanOrEqual(375);
    await partShot(p, '[data-tour=lab]', '04-lab-375px');
    await partShot(p, '[data-testid=budget]', '05-budget-375px');
  }, 120_000);

  it('(e) after a reload the budget and the lab show stored, with nothing recomputed; a lab cancels', async () => {
    const p = page();
    await p.setViewportSize({ width: 1280, height: 900 });
    await p.reload();
    await waitForTestId(p, 'model-summary', 60_000);
    // the budget: the settings are in the link, so the stored measure shows at once
    await waitForTestId(p, 'budget-n', 30_000);
    expect(await p.getByTestId('budget-progress').count()).toBe(0);
    await p.getByTestId('budget-factor').fill(String(BUDGETS[0]));
    await expect.poll(() => p.getByTestId('budget-n').getAttribute('data-n')).toBe(String(budgets[0].removed.length));
    // the lab: the same choices find the stored lab
    const panel = p.getByTestId('lab-panel');
    const metrics = panel.locator('input[name=lab-metric]');
    for (let i = 0; i < (await metrics.count()); i++) {
      const box = metrics.nth(i);
      await box.setChecked(LAB_METRICS.includes((await box.getAttribute('value'))!));
    }
    await panel.getByTestId('lab-n').fill(String(LAB_N));
    await panel.getByTestId('lab-n').press('Tab');
    await waitForTestId(p, 'lab-table', 30_000);
    expect(await panel.getByTestId('lab-source').getAttribute('data-from-cache')).toBe('true');
    expect(await panel.locator('tr[data-testid=lab-row]').count()).toBe(lab.rows.length);
    // Recompute, then cancel after its first row: the lab stops, the stored one stays
    await panel.getByTestId('lab-recompute').click();
    await waitForTestId(p, 'lab-live', 120_000);
    await panel.getByTestId('lab-progress').getByRole('button', { name: 'Cancel the lab' }).click();
    await panel.getByTestId('lab-progress').waitFor({ state: 'detached', timeout: 60_000 });
    expect(await p.getByTestId('error-banner').count(), 'a cancel is not an error').toBe(0);
    expect(await panel.getByTestId('lab-source').getAttribute('data-from-cache')).toBe('true');
  }, 240_000);
});
