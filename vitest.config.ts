import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { playwright } from '@vitest/browser-playwright';
import type { Plugin } from 'vite';
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

/**
 * A stand-in for the Hugging Face datasets server on the browser tests' own server, for
 * test/browser/eval-hub.test.ts: POST /__datasets-server/fixture {dataset, config, split, rows}
 * sets a split's rows; GET /__datasets-server/rows?dataset&config&split&offset&length answers
 * like the real /rows; GET /__datasets-server/log returns the /rows requests seen since the
 * last call (and forgets them).
 */
function datasetsServerStandIn(): Plugin {
  const splits = new Map<string, Record<string, unknown>[]>();
  let log: Record<string, string | null>[] = [];
  return {
    name: 'lopper:test-datasets-server',
    configureServer(server) {
      server.middlewares.use('/__datasets-server', (req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        const send = (status: number, body: unknown) => {
          res.statusCode = status;
          res.setHeader('Content-Type', 'application/json');
          res.end(JSON.stringify(body));
        };
        const q = (k: string) => url.searchParams.get(k);
        if (url.pathname === '/fixture' && req.method === 'POST') {
          let text = '';
          req.on('data', (c) => (text += c));
          req.on('end', () => {
            const f = JSON.parse(text);
            splits.set(`${f.dataset}|${f.config}|${f.split}`, f.rows);
            send(200, { ok: true });
          });
        } else if (url.pathname === '/log') {
          send(200, log);
          log = [];
        } else if (url.pathname === '/rows') {
          log.push(Object.fromEntries(['dataset', 'config', 'split', 'offset', 'length'].map((k) => [k, q(k)])));
          const rows = splits.get(`${q('dataset')}|${q('config')}|${q('split')}`);
          if (!rows) return send(404, { error: 'The dataset does not exist.' });
          const offset = Number(q('offset') ?? 0);
          const length = Number(q('length') ?? 100);
          if (!(length >= 1 && length <= 100)) return send(422, { error: "Parameter 'length' must be between 1 and 100" });
          const features = Object.keys(rows[0] ?? {}).map((name, feature_idx) => ({ feature_idx, name, type: { _type: 'Value' } }));
          const page = rows.slice(offset, offset + length).map((row, j) => ({ row_idx: offset + j, row, truncated_cells: [] }));
          send(200, { features, rows: page, num_rows_total: rows.length, num_rows_per_page: 100, partial: false });
        } else send(404, { error: 'Not Found' });
      });
    },
  };
}

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
        plugins: [datasetsServerStandIn()],
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
