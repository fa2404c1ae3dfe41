/**
 * "Try it in transformers.js" in real Chromium on the built app: stories260K from the local
 * mirror, pruned by 2 layers (BI, Prune&Comp and the baseline); then in the export panel, for
 * the dense model (fp32 and fp16 weights) and the Prune&Comp model (fp32), the model's
 * transformers.js bundle is loaded into transformers.js in a worker of its own and generates
 * 24 tokens greedily beside lopper's own generation:
 *
 * - transformers.js's greedy ids equal lopper's (and the dense model's equal `lopper generate
 *   --json` on onnxruntime-node: an oracle outside the page), the two tokenizers give the
 *   prompt the same ids, and the page says they agree;
 * - nothing is requested outside the app's origin (transformers.js reads the bundle from its
 *   custom cache, onnxruntime-web's .wasm is the app's), and the transformers.js worker is
 *   gone once a try ends (its session and memory with it);
 * - with the network off (the app's files from the service worker's precache) it works alike;
 * - axe-core: no serious or critical violation in the panel at 1280 and 375 px; nothing
 *   scrolls sideways at 375 px;
 * - Stop while transformers.js works ends the try with a notice and terminates its worker.
 *
 * Screenshots: test-results/e2e/try-it-in-transformers-js/{01-dense,02-prunecomp,03-dense-fp16-375px}.png
 */
import path from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { lopper } from '../helpers/cli';
import { errorText, loadFromCatalog, runButton, setUpRun, STORIES_RUN, waitForResults, waitForTestId } from './app';
import { openBrowser, screenshotsDir, waitForOffline, type Browser } from './browser';
import { sharedDir } from './cli';

const SUITE = 'try it in transformers.js';
const MODEL = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const PROMPT = 'Once upon a time';
const PROMPT_IDS = [1, 403, 407, 261, 378]; // with tok512
const TOKENS = 24;

interface Shown {
  lopper: number[];
  tjs: number[];
  lopperPrompt: number[];
  tjsPrompt: number[];
  same: boolean;
  verdict: string;
  tjsText: string;
  lopperText: string;
}

const ids = (s: string | null) => (s ? s.split(',').map(Number) : []);

/** Choose the model and weights, press Try, wait for the verdict; what the two columns show. */
async function tryModel(p: Page, model: string, dtype: 'fp32' | 'fp16'): Promise<Shown> {
  const panel = p.getByTestId('try-export');
  await panel.locator('select[name=try-model]').selectOption(model);
  await panel.locator('select[name=try-dtype]').selectOption(dtype);
  await panel.locator('input[name=try-prompt]').fill(PROMPT);
  await panel.locator('input[name=try-tokens]').fill(String(TOKENS));
  await panel.getByRole('button', { name: 'Try it in transformers.js' }).click();
  await panel.getByTestId('try-progress').or(p.getByTestId('error-banner')).first().waitFor({ timeout: 10_000 });
  await panel.getByTestId('try-agreement').or(p.getByTestId('error-banner')).first().waitFor({ timeout: 90_000 });
  const err = await errorText(p);
  if (err) throw new Error(`the try ended with an error: ${err}`);
  await panel.getByTestId('try-progress').waitFor({ state: 'detached', timeout: 10_000 });
  const l = panel.getByTestId('try-lopper');
  const t = panel.getByTestId('try-tjs');
  const v = panel.getByTestId('try-agreement');
  return {
    lopper: ids(await l.getAttribute('data-ids')),
    tjs: ids(await t.getAttribute('data-ids')),
    lopperPrompt: ids(await l.getAttribute('data-prompt-ids')),
    tjsPrompt: ids(await t.getAttribute('data-prompt-ids')),
    same: (await v.getAttribute('data-same')) === 'true',
    verdict: await v.innerText(),
    tjsText: await t.locator('.gen-text').innerText(),
    lopperText: await l.locator('.gen-text').innerText(),
  };
}

async function seriousViolations(p: Page, selector: string): Promise<string[]> {
  const r = await new AxeBuilder({ page: p as never }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).include(selector).analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

/** A screenshot of the try panel: test-results/e2e/try-it-in-transformers-js/{name}.png */
async function panelShot(p: Page, name: string): Promise<void> {
  const file = path.join(screenshotsDir, 'try-it-in-transformers-js', `${name}.png`);
  await p.getByTestId('try-export').screenshot({ path: file });
  console.log(`[e2e] screenshot ${path.relative(path.join(screenshotsDir, '../..'), file)}`);
}

describe.sequential(SUITE, () => {
  let browser: Browser;
  let cliDense: Promise<{ prompt_ids: number[]; ids: number[] }>;
  const outside: string[] = [];
  const page = () => browser.page;

  beforeAll(async () => {
    cliDense = lopper('generate', '--model', MODEL, '--prompt', PROMPT, '--max-tokens', String(TOKENS), '--threads', '1', '--json').then((r) => {
      if (r.code !== 0) throw new Error(`lopper generate: ${r.stderr}`);
      return JSON.parse(r.stdout);
    });
    cliDense.catch(() => undefined); // awaited by the test that needs it
    browser = await openBrowser(SUITE);
    const origin = new URL(inject('baseUrl')).origin;
    browser.context.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) outside.push(u);
    });
  }, 60_000);

  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
  });

  it('loads stories260K and prunes 2 layers (BI, Prune&Comp and the baseline)', async () => {
    const p = page();
    await p.goto(inject('baseUrl'));
    await waitForTestId(p, 'catalog', 30_000);
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'model-summary', 60_000);
    await setUpRun(p, STORIES_RUN);
    await runButton(p).click();
    await waitForResults(p, 120_000);
  });

  it('the dense model: transformers.js generates lopper’s greedy ids from the bundle (and lopper generate’s)', async () => {
    const p = page();
    const shown = await tryModel(p, 'dense', 'fp32');
    console.log(`[e2e] dense fp32: lopper ${shown.lopper.join(',')} | transformers.js ${shown.tjs.join(',')}`);
    expect(shown.lopper.length).toBe(TOKENS); // stories260K does not stop within 24 tokens of this prompt
    expect(shown.tjs).toEqual(shown.lopper);
    expect(shown.tjsText).toBe(shown.lopperText); // the bundle's tokenizer decodes as lopper's
    expect(shown.lopperPrompt).toEqual(PROMPT_IDS);
    expect(shown.tjsPrompt).toEqual(PROMPT_IDS);
    expect(shown.same).toBe(true);
    expect(shown.verdict).toMatch(/^Same greedy ids: all 24 new tokens of the dense model agree, and both tokenizers encode the prompt alike\./);
    expect(shown.tjsText).toMatch(/^Once upon a time, there was a little girl named Lily\./);
    const cli = await cliDense;
    expect(cli.prompt_ids).toEqual(PROMPT_IDS);
    expect(shown.tjs).toEqual(cli.ids);
    // the transformers.js worker ended with the try
    expect(p.workers().map((w) => w.url()).filter((u) => /tjs/.test(u))).toEqual([]);
    await panelShot(p, '01-dense');
  });

  it('the Prune&Comp model (3 of 5 layers left): the same greedy ids in transformers.js', async () => {
    const p = page();
    const shown = await tryModel(p, 'prunecomp', 'fp32');
    console.log(`[e2e] prunecomp fp32: lopper ${shown.lopper.join(',')} | transformers.js ${shown.tjs.join(',')}`);
    expect(shown.lopper.length).toBeGreaterThan(10);
    expect(shown.tjs).toEqual(shown.lopper);
    expect(shown.tjsText).toBe(shown.lopperText);
    expect(shown.tjsPrompt).toEqual(PROMPT_IDS);
    expect(shown.same).toBe(true);
    expect(shown.verdict).toMatch(/of the Prune&Comp \(scalar\) model agree/);
    expect(await p.getByTestId('try-tjs').innerText()).toMatch(/stories260K-prunecomp-bi-2-onnx\.zip’s files/);
    await panelShot(p, '02-prunecomp');
  });

  it('fp16 weights at 375 px, offline: the same ids; axe finds nothing serious; nothing scrolls sideways; nothing left the origin', async () => {
    const p = page();
    const wide = await seriousViolations(p, '[data-testid=try-export]');
    expect(wide, wide.join('\n')).toEqual([]);
    await p.setViewportSize({ width: 375, height: 800 });
    // the transformers.js worker and its onnxruntime-web files come from the service worker's precache
    await waitForOffline(p);
    await browser.context.setOffline(true);
    const shown = await tryModel(p, 'dense', 'fp16').finally(() => browser.context.setOffline(false));
    console.log(`[e2e] dense fp16: transformers.js ${shown.tjs.join(',')}`);
    expect(shown.tjs).toEqual(shown.lopper);
    expect(await p.getByTestId('try-tjs').innerText()).toMatch(/fp16 weights/);
    const narrow = await seriousViolations(p, '[data-testid=try-export]');
    expect(narrow, narrow.join('\n')).toEqual([]);
    const scroll = await p.evaluate(() => document.documentElement.scrollWidth);
    expect(scroll, 'the page scrolls sideways at 375 px').toBeLessThanOrEqual(375);
    await panelShot(p, '03-dense-fp16-375px');
    await p.setViewportSize({ width: 1280, height: 900 });
    expect(outside, 'requests outside the app’s origin').toEqual([]);
  });

  it('Stop while transformers.js works: a notice, its worker gone, the panel usable again', async () => {
    const p = page();
    const panel = p.getByTestId('try-export');
    await panel.locator('select[name=try-model]').selectOption('dense');
    await panel.locator('select[name=try-dtype]').selectOption('fp32');
    await panel.locator('input[name=try-tokens]').fill('400'); // long enough to be caught working
    await panel.getByRole('button', { name: 'Try it in transformers.js' }).click();
    await panel.getByTestId('try-progress-label').filter({ hasText: /^transformers\.js/ }).waitFor({ timeout: 30_000 });
    expect(p.workers().some((w) => /tjs/.test(w.url())), 'the transformers.js worker runs').toBe(true);
    await panel.getByTestId('try-progress').getByRole('button', { name: 'Stop' }).click();
    await panel.getByTestId('try-progress').waitFor({ state: 'detached', timeout: 10_000 });
    expect(await p.getByTestId('notice').innerText()).toMatch(/^Trying the dense model in transformers\.js was cancelled\./);
    expect(await errorText(p)).toBeNull();
    await expect.poll(() => p.workers().filter((w) => /tjs/.test(w.url())).length, { timeout: 5_000 }).toBe(0);
    expect(await panel.getByTestId('try-agreement').count(), 'no verdict for a stopped try').toBe(0);
    expect(await panel.getByRole('button', { name: 'Try it in transformers.js' }).isEnabled()).toBe(true);
  });
});
