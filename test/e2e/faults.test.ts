/**
 * Things going wrong, on the built app in real Chromium: a corrupt download (the mirror
 * serves a truncated file), a calibration the person cancels, and a model too large for the
 * device. Each ends with a clear message and an app that still works: the same browser
 * then loads or prunes successfully. Screenshots under test-results/e2e/faults/.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorText, perplexities, runButton, setUpRun, waitForResults, waitForTestId, STORIES_RUN, type RunSetup } from './app';
import { openBrowser, type Browser } from './browser';
import { sharedDir } from './cli';
import { startPreview, type AppServer } from './servers';

const MODEL_FILE = 'stories260K/stories260K.bin';

const QUICK: RunSetup = { ...STORIES_RUN, windows: 2, window: 64 };

describe.sequential('faults', () => {
  let server: AppServer;
  let browser: Browser;
  const page = () => browser.page;

  beforeAll(async () => {
    server = await startPreview();
    browser = await openBrowser('faults');
    await browser.page.goto(server.url);
    await waitForTestId(browser.page, 'catalog', 30_000);
    await browser.page.getByRole('button', { name: 'Local mirror' }).click();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('a corrupt download (the mirror serves a truncated file) says so, keeps nothing broken, and a retry loads the model', async () => {
    const p = page();
    const real = new Uint8Array(readFileSync(path.join(sharedDir, 'models', MODEL_FILE)));
    // A complete, well-formed HTTP answer — with only the first 400 000 bytes of the file.
    server.faults.set(MODEL_FILE, { kind: 'body', body: real.subarray(0, 400_000) });
    await p.getByRole('button', { name: 'Load stories260K' }).click();
    const banner = p.getByTestId('error-banner');
    await banner.waitFor({ state: 'visible', timeout: 60_000 });
    const message = await banner.innerText();
    console.log(`[e2e] corrupt download → ${await banner.getAttribute('data-code')}: ${message.replace(/\s+/g, ' ')}`);
    // Plain words that name the problem (the file is short of its known size).
    expect(message).toMatch(/incomplete|truncated|corrupt|damaged|bytes|size|short/i);
    expect(await p.getByTestId('model-summary').count()).toBe(0);
    await browser.shot('corrupt download');

    // The mirror is fixed; the way forward the banner offers loads the real model.
    server.faults.clear();
    const before = server.modelRequests().filter((r) => r.method === 'GET' && r.path.endsWith(MODEL_FILE)).length;
    await banner.getByRole('button', { name: 'Try again' }).click();
    await waitForTestId(p, 'model-summary', 60_000);
    expect(await p.getByTestId('model-summary').innerText()).toContain('Parameters');
    expect(server.modelRequests().filter((r) => r.method === 'GET' && r.path.endsWith(MODEL_FILE)).length).toBeGreaterThan(before);
    expect(await errorText(p)).toBeNull();
    await browser.shot('corrupt download, retried');
  });

  it('a cancelled calibration leaves the model loaded, shows why, and the next run completes', async () => {
    const p = page();
    // Calibration long enough to cancel: 64 windows of 512 tokens of WikiText-2.
    await setUpRun(p, { ...QUICK, windows: 64, window: 512, calib: 'wikitext2-test' });
    await runButton(p).click();
    const label = p.getByTestId('run-progress-label');
    await expect.poll(() => label.innerText().catch(() => ''), { timeout: 60_000, interval: 100 }).toMatch(/scoring/);
    await browser.shot('calibrating, about to cancel');
    await p.getByTestId('run-progress').getByRole('button', { name: 'Cancel run' }).click();

    const notice = p.getByTestId('notice');
    await notice.waitFor({ state: 'visible', timeout: 60_000 });
    expect(await notice.innerText()).toMatch(/cancelled/i);
    expect(await notice.innerText()).toMatch(/still loaded/);
    expect(await p.getByTestId('run-progress').count()).toBe(0);
    expect(await errorText(p)).toBeNull();
    expect(await p.getByTestId('model-summary').count()).toBe(1);
    expect(await p.getByTestId('results').count()).toBe(0);
    await browser.shot('calibration cancelled');

    // Usable: a quick run now completes.
    await setUpRun(p, QUICK);
    expect(await runButton(p).isEnabled()).toBe(true);
    await runButton(p).click();
    await waitForResults(p, 240_000);
    const ppl = await perplexities(p);
    expect(ppl.baseline).toBeGreaterThan(ppl.dense);
    await browser.shot('run after the cancel');
  });

  it('a model too large for this device is refused before downloading, with the numbers, and the loaded one still prunes', async () => {
    const p = page();
    const before = server.modelRequests().length;
    await p.getByRole('button', { name: 'Load TinyLlama-1.1B-Chat' }).click();
    const banner = p.getByTestId('error-banner');
    await banner.waitFor({ state: 'visible', timeout: 60_000 });
    expect(await banner.getAttribute('data-code')).toBe('too-large');
    const message = await banner.innerText();
    console.log(`[e2e] too large → ${message.replace(/\s+/g, ' ')}`);
    expect(message).toMatch(/will not fit/);
    expect(message).toMatch(/GiB/);
    expect(await banner.getByRole('button', { name: 'Load anyway' }).count()).toBe(1);
    // Nothing was fetched for it.
    expect(server.modelRequests().slice(before).filter((r) => /TinyLlama/i.test(r.path))).toEqual([]);
    await browser.shot('too large');

    // The model loaded before is still loaded and still prunes (a setup not run before).
    expect(await p.getByTestId('model-summary').innerText()).toContain('stories260K');
    await banner.getByRole('button', { name: 'Dismiss' }).click();
    await setUpRun(p, { ...QUICK, layers: 1 });
    await runButton(p).click();
    await waitForResults(p, 240_000);
    expect((await perplexities(p)).prunecomp).not.toBeNull();
    expect(await errorText(p)).toBeNull();
    await browser.shot('after too large, pruned again');
  });
});
