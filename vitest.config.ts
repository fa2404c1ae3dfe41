import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';

/** ../shared beside the repository (CI clones the repo elsewhere with shared beside it). */
const sharedDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../shared');

/**
 * Chromium flags that work on our machines (DESIGN.md): WebGPU through SwiftShader, no network
 * chatter. The same list as test/e2e/chromium.ts (kept here: Vite's config loader wants no
 * extensionless relative imports).
 */
const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--enable-unsafe-webgpu',
];

export default defineConfig({
  test: {
    projects: [
      // Node project: engine, formats, CLI (onnxruntime-node and onnxruntime-web's Node build).
      {
        test: {
          name: 'node',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
        },
      },
      // Browser project: real Debian Chromium through Playwright, served by vite.config.ts's
      // server (COOP/COEP headers, /models/ mirror of ../shared/models, onnxruntime-web excluded
      // from pre-bundling so it finds its .wasm next to itself on this server).
      {
        extends: './vite.config.ts',
        define: {
          // ../shared as a URL path through Vite's /@fs/ route (allowed in server.fs.allow).
          __LOPPER_SHARED_FS__: JSON.stringify('/@fs' + sharedDir.split(path.sep).join('/')),
        },
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({
              launchOptions: {
                executablePath: process.env.LOPPER_CHROMIUM ?? '/usr/bin/chromium',
                args: chromiumArgs,
              },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
      // End-to-end project: the BUILT app (vite build, service worker included) on Vite's
      // preview server, driven through Playwright in Debian Chromium (test/e2e/browser.ts):
      // a person's path through the UI, offline use, faults. One file at a time (each drives
      // a whole browser; the machines have 2 cores).
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/e2e/global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 180_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
    ],
  },
});
