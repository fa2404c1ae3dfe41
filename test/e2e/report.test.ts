/**
 * The results report in the app (issue 15): on stories260K from the local mirror (STORIES_RUN:
 * BI, n = 2, 4 calibration windows of 128 tokens, WASM), after a run, a zero-shot evaluation
 * (PIQA and BoolQ, 5 items each) and a small lab (BI × none/scalar, n = 1), "Download report"
 * in the results saves one .zip; unzipped, its report.md's tables hold the numbers the page
 * shows — perplexities and scales to 6 significant digits of the page's full-precision values,
 * the removed layers exactly, accuracies and RP to 0.01 — its CSVs the page's values exactly,
 * its SVGs parse as SVG in the page (DOMParser) and in Node, and its link carries the page's
 * settings. The lab panel's "Download report" holds the same report. At 375 px nothing scrolls
 * sideways and axe finds no serious or critical violation around the buttons. Screenshots of the
 * results with the button, the lab, and the button on a phone under test-results/e2e/the-results-report/.
 */
import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { csvRecords, mdTable, svgProblems } from '../helpers/report-parse';
import { accuracyTable, evaluateButton, loadFromCatalog, perplexities, removedLayers, runButton, setUpEval, setUpRun, STORIES_RUN, waitForEvaluation, waitForResults, waitForTestId } from './app';
import { openBrowser, screenshotsDir, type Browser } from './browser';

const SUITE = 'the results report';
const TASKS = ['piqa', 'boolq'];
const LIMIT = 5;

/** 6 significant digits, as the report writes them */
const sig6 = (x: number) => String(Number(x.toPrecision(6)));
const pct2 = (x: number) => (100 * x).toFixed(2);

/** Click a "Download report" button, unzip what it saves; the report's folder and its files. */
async function downloadReport(p: Page, testid: string, tmp: string): Promise<{ dir: string; files: Map<string, string>; name: string }> {
  const [d] = await Promise.all([p.waitForEvent('download', { timeout: 30_000 }), p.getByTestId(testid).click()]);
  const zip = path.join(tmp, `${testid}.zip`);
  await d.saveAs(zip);
  const out = path.join(tmp, testid);
  execFileSync('unzip', ['-q', zip, '-d', out]);
  const [folder] = readdirSync(out);
  const dir = path.join(out, folder);
  return { dir, name: d.suggestedFilename(), files: new Map(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), 'utf8')])) };
}

async function partShot(p: Page, selector: string, name: string): Promise<void> {
  const file = path.join(screenshotsDir, 'the-results-report', `${name}.png`);
  await p.locator(selector).screenshot({ path: file });
  console.log(`[e2e] screenshot ${path.relative(path.join(screenshotsDir, '../..'), file)}`);
}

describe.sequential(SUITE, () => {
  let browser: Browser;
  let tmp: string;
  /** the report the results' button saved */
  let fromResults: Map<string, string>;
  const page = () => browser.page;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'lopper-e2e-report-'));
    browser = await openBrowser(SUITE, { viewport: { width: 1280, height: 900 } });
  }, 60_000);
  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a run, its evaluation and a lab, then the report: its tables are the page’s numbers', async () => {
    const p = page();
    await p.goto(inject('baseUrl'));
    await waitForTestId(p, 'catalog', 30_000);
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'model-summary', 60_000);
    await setUpRun(p, STORIES_RUN);
    await runButton(p).click();
    await waitForResults(p, 120_000);
    await setUpEval(p, { tasks: TASKS, limit: LIMIT, data: 'mirror' });
    await evaluateButton(p).click();
    await waitForEvaluation(p, 120_000);
    // the lab: BI with and without the scalar, n = 1
    const lab = p.getByTestId('lab-panel');
    const metrics = lab.locator('input[name=lab-metric]');
    for (let i = 0; i < (await metrics.count()); i++) await metrics.nth(i).setChecked((await metrics.nth(i).getAttribute('value')) === 'bi');
    const comps = lab.locator('input[name=lab-comp]');
    for (let i = 0; i < (await comps.count()); i++) await comps.nth(i).setChecked(['none', 'scalar'].includes((await comps.nth(i).getAttribute('value'))!));
    await lab.getByTestId('lab-n').fill('1');
    await lab.getByTestId('lab-n').press('Tab');
    await lab.getByTestId('lab-run').click();
    await waitForTestId(p, 'lab-table', 120_000);

    const ppl = await perplexities(p);
    const removed = await removedLayers(p);
    const acc = await accuracyTable(p);
    const labRows = await lab.locator('tr[data-testid=lab-row]').evaluateAll((trs) =>
      trs.map((tr) => ({ n: tr.getAttribute('data-n')!, metric: tr.getAttribute('data-metric')!, comp: tr.getAttribute('data-comp')!, heldOut: Number(tr.getAttribute('data-heldout')), eval: Number(tr.getAttribute('data-eval')), removed: tr.getAttribute('data-removed')!, best: tr.getAttribute('data-best') === 'true' })),
    );
    expect(labRows).toHaveLength(2);

    const { files, name } = await downloadReport(p, 'report-download', tmp);
    expect(name).toBe('stories260K-report-bi-2.zip');
    expect([...files.keys()].sort()).toEqual(['accuracy.csv', 'accuracy.svg', 'lab.csv', 'lab.svg', 'magnitude.csv', 'magnitude.svg', 'perplexity.csv', 'perplexity.svg', 'removed-layers.csv', 'report.md']);
    fromResults = files;
    const md = files.get('report.md')!;

    // perplexities: the page's values to 6 digits in the table, exactly in the CSV
    const pt = mdTable(md, 'Perplexity on the evaluation text');
    expect(pt.rows.map((r) => [r[0], r[1], r[3]])).toEqual([
      ['dense', sig6(ppl.dense), '—'],
      ['baseline', sig6(ppl.baseline), removed.baseline.join(', ')],
      ['Prune&Comp (scalar)', sig6(ppl.prunecomp!), removed.prunecomp.join(', ')],
    ]);
    expect(csvRecords(files.get('perplexity.csv')!).map((r) => Number(r.ppl))).toEqual([ppl.dense, ppl.baseline, ppl.prunecomp]);
    // removed layers and scales
    const rt = mdTable(md, 'Removed layers, in order');
    expect(rt.rows.map((r) => [Number(r[1]), Number(r[2]), r[3]])).toEqual(removed.baseline.map((b, i) => [b, removed.prunecomp[i], sig6(removed.scales[i])]));
    expect(csvRecords(files.get('removed-layers.csv')!).map((r) => Number(r.scale))).toEqual(removed.scales);
    // zero-shot accuracies and RP
    const at = mdTable(md, 'Zero-shot accuracy');
    expect(at.rows.map((r) => r[0])).toEqual(['dense', 'baseline', 'Prune&Comp (scalar)']);
    for (const [i, key] of ['dense', 'baseline', 'prunecomp'].entries()) {
      const row = at.rows[i];
      TASKS.forEach((t, j) => expect(row[1 + j].split(' ± ')[0], `${key} ${t}`).toBe(pct2(acc[key].tasks[t].value)));
      expect(row[3]).toBe(pct2(acc[key].avg));
      expect(row[4]).toBe(acc[key].rp === null ? '100.00' : acc[key].rp!.toFixed(2));
    }
    expect(csvRecords(files.get('accuracy.csv')!).map((r) => [Number(r.piqa), Number(r.boolq), Number(r.average)])).toEqual(['dense', 'baseline', 'prunecomp'].map((k) => [acc[k].tasks.piqa.value, acc[k].tasks.boolq.value, acc[k].avg]));
    // the lab
    const lt = mdTable(md, 'The compensation lab');
    expect(lt.rows.slice(1).map((r) => [r[0] === '★', r[1], r[2], r[3], r[4], r[5], r[6].split(', ').join(' ')])).toEqual(labRows.map((r) => [r.best, r.n, r.metric, r.comp, sig6(r.heldOut), sig6(r.eval), r.removed]));
    expect(csvRecords(files.get('lab.csv')!).slice(1).map((r) => Number(r.heldout_ppl))).toEqual(labRows.map((r) => r.heldOut));

    // the figures: well-formed in Node, and SVG documents to the browser's parser
    for (const [f, text] of files) if (f.endsWith('.svg')) expect(svgProblems(text), f).toEqual([]);
    const parsed = await p.evaluate((svgs) => svgs.map((t) => {
      const doc = new DOMParser().parseFromString(t, 'image/svg+xml');
      return doc.getElementsByTagName('parsererror').length === 0 && doc.documentElement.namespaceURI === 'http://www.w3.org/2000/svg';
    }), [...files].filter(([f]) => f.endsWith('.svg')).map(([, t]) => t));
    expect(parsed).toEqual([true, true, true, true]);
    for (const f of files.keys()) if (f.endsWith('.svg')) expect(md).toContain(`](${f})`);

    // the link: the page's settings
    const link = /\]\(<([^>]+)>\)/.exec(md)![1];
    const shown = new URL(p.url()).searchParams;
    const linked = new URL(link).searchParams;
    expect(new URL(link).origin).toBe(new URL(p.url()).origin);
    // the page leaves a backend it chose by itself out of its URL; the link pins the one the run used
    expect(linked.get('backend')).toBe(STORIES_RUN.backend);
    for (const [k, v] of linked) if (k !== 'backend') expect(shown.get(k), k).toBe(v);
    for (const k of ['model', 'metric', 'layers', 'mode', 'fold', 'windows', 'window', 'calib', 'eval']) expect(linked.get(k), k).toBe(shown.get(k));
    console.log(`[e2e] report: ${files.size} files, ${md.length} characters of Markdown`);
    await partShot(p, '[data-testid=results]', '01-results-with-report-button');
  }, 300_000);

  it('the lab panel’s "Download report" holds the same lab table', async () => {
    const p = page();
    const { files } = await downloadReport(p, 'lab-report-download', tmp);
    // the same report: the run shown and the lab, the same tables
    expect([...files.keys()].sort()).toEqual([...fromResults.keys()].sort());
    for (const f of ['lab.csv', 'perplexity.csv', 'accuracy.csv']) expect(files.get(f), f).toBe(fromResults.get(f));
    expect(mdTable(files.get('report.md')!, 'The compensation lab')).toEqual(mdTable(fromResults.get('report.md')!, 'The compensation lab'));
    await partShot(p, '[data-testid=lab-panel]', '02-lab-with-report-button');
  }, 60_000);

  it('the buttons on a 375 px phone: nothing scrolls sideways; axe finds no serious or critical violation around them', async () => {
    const p = page();
    await p.setViewportSize({ width: 375, height: 800 });
    await p.getByTestId('report-download').scrollIntoViewIfNeeded();
    expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    const r = await new AxeBuilder({ page: p as never }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).include('.report-download').include('[data-testid=lab-report-download]').analyze();
    expect(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`)).toEqual([]);
    await partShot(p, '.report-download', '03-report-button-375px');
  }, 60_000);
});
