/**
 * The offline app, on the built app in real Chromium: it loads cross-origin isolated, its
 * service worker installs, controls the page and precaches everything the app runs
 * (onnxruntime-web's .wasm and the worker bundles included, no model files), and with the
 * server stopped and the browser offline a reload still gives the whole app. On a static
 * host that sends no COOP/COEP the service worker makes the page isolated after one reload.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, inject, it } from 'vitest';
import { openBrowser, precachedPaths, waitForOffline, type Browser } from './browser';
import { startPreview, startStaticHost } from './servers';

let browser: Browser | null = null;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await browser?.close();
  browser = null;
  for (const c of cleanups.splice(0)) await c();
});

/**
 * Every file the build emitted, as URL paths — less the service worker itself and the README's
 * screenshots (public/screenshots/: documentation, not part of the app).
 */
function builtFiles(): string[] {
  const dist = inject('distDir');
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(path.join(dir, e.name)) : ['/' + path.relative(dist, path.join(dir, e.name)).split(path.sep).join('/')],
    );
  return walk(dist)
    .filter((f) => f !== '/sw-lopper.js' && !f.endsWith('.map') && !f.startsWith('/screenshots/'))
    .sort();
}

it('installs a service worker that precaches the app, then reloads with the network off', async () => {
  const server = await startPreview();
  cleanups.push(() => server.stop());
  browser = await openBrowser('pwa offline');
  const { page, context } = browser;

  await page.goto(server.url);
  await expect.poll(() => page.locator('h1').textContent()).toBe('lopper');
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);

  // The manifest: name, icons that exist.
  const manifestHref = await page.locator('link[rel=manifest]').getAttribute('href');
  expect(manifestHref).toBeTruthy();
  const manifest = await page.evaluate(async (href) => (await fetch(href)).json(), manifestHref!);
  expect(manifest.name).toBe('lopper');
  expect(manifest.icons.map((i: { sizes: string }) => i.sizes)).toEqual(expect.arrayContaining(['192x192', '512x512']));
  for (const icon of manifest.icons) {
    const res = await page.request.get(new URL(icon.src, new URL(manifestHref!, server.url)).href);
    expect(res.status(), icon.src).toBe(200);
    expect(res.headers()['content-type']).toBe('image/png');
  }

  // The worker installs, takes control of this page (no reload needed) and caches every built file.
  await waitForOffline(page);
  const cached = await precachedPaths(page);
  expect(cached).toEqual(builtFiles());
  expect(cached.some((p) => /\/assets\/ort-wasm-simd-threaded.*\.wasm$/.test(p))).toBe(true);
  expect(cached.some((p) => /\.worker-.*\.js$/.test(p))).toBe(true);
  expect(cached.filter((p) => p.startsWith('/models/'))).toEqual([]);
  // The mirror passes through the worker untouched (ranges too: downloads resume with them).
  const ranged = await page.evaluate(async () => {
    const res = await fetch('/models/stories260K/tok512.bin', { headers: { Range: 'bytes=0-9' } });
    return { status: res.status, bytes: (await res.arrayBuffer()).byteLength };
  });
  expect(ranged).toEqual({ status: 206, bytes: 10 });
  await browser.shot('online, service worker ready');

  // The network goes away: the server stops and the browser is offline.
  await server.stop();
  await context.setOffline(true);
  await page.reload();
  await expect.poll(() => page.locator('h1').textContent()).toBe('lopper');
  // Served by the worker from its cache, with the isolation headers the server had sent.
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  expect(await page.evaluate(() => !!navigator.serviceWorker.controller)).toBe(true);
  // onnxruntime-web's wasm still compiles (the engine can start offline) and a worker bundle still loads.
  const wasm = cached.find((p) => p.endsWith('.wasm'))!;
  const compiled = await page.evaluate(async (url) => {
    const module = await WebAssembly.compileStreaming(fetch(url));
    return WebAssembly.Module.exports(module).length;
  }, wasm);
  expect(compiled).toBeGreaterThan(0);
  const workerScript = cached.find((p) => /\.worker-.*\.js$/.test(p))!;
  expect(await page.evaluate(async (url) => (await fetch(url)).ok, workerScript)).toBe(true);
  // Model files are not the worker's business: offline, the mirror is simply unreachable.
  expect(await page.evaluate(() => fetch('/models/stories260K/tok512.bin').then((r) => r.status, () => 'network error'))).toBe(
    'network error',
  );
  await browser.shot('offline reload');
  expect(browser.errors.filter((e) => !/models|ERR_INTERNET_DISCONNECTED|Failed to fetch/.test(e))).toEqual([]);
});

it('makes the page cross-origin isolated on a static host that sends no COOP/COEP', async () => {
  const host = await startStaticHost();
  cleanups.push(() => host.stop());
  browser = await openBrowser('pwa static host');
  const { page } = browser;

  // Each load of the page records whether it was isolated.
  await page.addInitScript(() => {
    const loads = JSON.parse(sessionStorage.getItem('e2e-loads') ?? '[]') as boolean[];
    sessionStorage.setItem('e2e-loads', JSON.stringify([...loads, crossOriginIsolated]));
  });
  // First visit: no headers, so no isolation — until the service worker controls the page
  // and src/sw-register.ts reloads once; the worker then serves the page with COOP/COEP.
  await page.goto(host.url);
  await page.waitForFunction(() => crossOriginIsolated && !!navigator.serviceWorker.controller, undefined, {
    timeout: 60_000,
    polling: 200,
  });
  expect(await page.evaluate(() => JSON.parse(sessionStorage.getItem('e2e-loads')!))).toEqual([false, true]);
  await expect.poll(() => page.locator('h1').textContent()).toBe('lopper');
  expect(await page.evaluate(() => typeof SharedArrayBuffer)).toBe('function');
  await browser.shot('static host, isolated by the service worker');
});
