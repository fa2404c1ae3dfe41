#!/usr/bin/env node
// Screenshot the app: start Vite's dev server (or use URL=… of a running one), open it in
// Debian chromium, load the default model and save a PNG.
//   node scripts/screenshot.mjs [out.png]     (default /tmp/lopper.png)
import { chromium } from 'playwright-core';
import { createServer } from 'vite';

const out = process.argv[2] ?? '/tmp/lopper.png';
let server = null;
let url = process.env.URL;
if (!url) {
  server = await createServer({ server: { port: 5199, strictPort: false }, logLevel: 'warn' });
  await server.listen();
  url = server.resolvedUrls.local[0];
}

const browser = await chromium.launch({
  executablePath: process.env.LOPPER_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  page.on('console', (m) => console.log(`[page ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
  await page.goto(url);
  console.log('crossOriginIsolated:', await page.evaluate(() => crossOriginIsolated));
  await page.getByRole('button', { name: 'Load' }).click();
  await page.locator('[data-testid=model-summary], .error').first().waitFor({ timeout: 60_000 });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`saved ${out}`);
} finally {
  await browser.close();
  await server?.close();
}
