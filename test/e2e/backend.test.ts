/**
 * The backend the app chooses by itself, in real Chromium. The e2e browser's only WebGPU
 * adapter is SwiftShader (--enable-unsafe-webgpu on a machine without a GPU), a software
 * fallback that runs a model far slower than WASM on the same CPU: the app chooses WASM, says
 * why in the run panel's backend line, and still lets the person choose WebGPU (the line then
 * says it is the slow one). A run with nothing chosen runs on WASM. Screenshots under
 * test-results/e2e/a-software-webgpu-adapter/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorText, waitForResults, waitForTestId } from './app';
import { openBrowser, type Browser } from './browser';
import { startPreview, type AppServer } from './servers';

describe.sequential('a software WebGPU adapter', () => {
  let server: AppServer;
  let browser: Browser;
  const page = () => browser.page;
  const panel = () => page().getByTestId('run-panel');
  const radio = (b: 'wasm' | 'webgpu') => panel().locator(`input[name=backend][value=${b}]`);

  beforeAll(async () => {
    server = await startPreview();
    browser = await openBrowser('a software WebGPU adapter');
    await page().goto(server.url);
    await waitForTestId(page(), 'catalog', 30_000);
  });

  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
    await server?.stop();
  });

  it('is what this browser offers: Chromium calls its adapter a fallback one (SwiftShader)', async () => {
    const adapter = await page().evaluate(async () => {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, unknown>; isFallbackAdapter?: boolean } | null> } }).gpu;
      const a = await gpu?.requestAdapter();
      return a ? { fallback: a.info?.isFallbackAdapter ?? a.isFallbackAdapter ?? null, name: `${a.info?.vendor ?? ''} ${a.info?.architecture ?? ''} ${a.info?.description ?? ''}` } : null;
    });
    console.log(`[e2e] WebGPU adapter ${JSON.stringify(adapter)}`);
    // The premise of the tests below: an adapter exists, and it is software.
    expect(adapter).not.toBeNull();
    expect(adapter!.fallback === true || /swiftshader/i.test(adapter!.name)).toBe(true);
  });

  it('chooses WASM by default and says why in the backend line; WebGPU can still be chosen, and the line says it is slower', async () => {
    const p = page();
    await p.getByRole('button', { name: 'Local mirror' }).click();
    await p.getByRole('button', { name: 'Load stories260K' }).click();
    await waitForTestId(p, 'model-summary', 60_000);
    expect(await radio('wasm').isChecked()).toBe(true);
    expect(await radio('webgpu').isChecked()).toBe(false);
    expect(await radio('webgpu').isEnabled(), 'WebGPU stays a choice').toBe(true);
    const note = p.getByTestId('backend-note');
    expect(await note.innerText()).toMatch(/^running on the CPU, \d+ threads?/);
    expect(await p.getByTestId('backend-fallback').innerText()).toBe('WASM, as the WebGPU adapter is a software fallback (SwiftShader): slower than WASM');
    await browser.shot('wasm chosen by default');

    await radio('webgpu').check();
    expect(await radio('webgpu').isChecked()).toBe(true);
    expect(await note.innerText()).toMatch(/^running on .*swiftshader/i);
    expect(await p.getByTestId('backend-fallback').innerText()).toBe('the WebGPU adapter is a software fallback (SwiftShader): slower than WASM');
    expect(new URL(p.url()).searchParams.get('backend')).toBe('webgpu');
    await browser.shot('webgpu chosen by hand');

    // WASM chosen by hand: the line needs no reason.
    await radio('wasm').check();
    expect(await p.getByTestId('backend-fallback').count()).toBe(0);
    expect(await errorText(p)).toBeNull();
  });

  it('runs on WASM when nothing is chosen (a link without backend=)', async () => {
    const p = page();
    const url = new URL(server.url);
    for (const [k, v] of Object.entries({ model: 'stories260K', layers: '1', windows: '2', window: '64' })) url.searchParams.set(k, v);
    await p.goto(url.href); // stories260K is stored and small: it loads at once
    await waitForTestId(p, 'model-summary', 60_000);
    expect(await radio('wasm').isChecked()).toBe(true);
    await panel().getByRole('button', { name: 'Run', exact: true }).click();
    await waitForResults(p, 120_000);
    expect(await p.getByTestId('result-source').innerText()).toMatch(/·\s*wasm\s*·/);
    expect(new URL(p.url()).searchParams.has('backend'), 'the choice stays the app’s').toBe(false);
    await browser.shot('run on the default backend');
  }, 180_000);

  it('threw no uncaught exception in the page or its workers', () => {
    expect(browser.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});
