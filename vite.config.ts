import { createReadStream, existsSync, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, type Connect, type Plugin } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';

const repoRoot = path.dirname(fileURLToPath(import.meta.url));
/** The shared folder (models, data) lives beside the repository: ../shared. Never copied in. */
export const sharedDir = path.resolve(repoRoot, '../shared');
export const modelsDir = path.join(sharedDir, 'models');
export const dataDir = path.join(sharedDir, 'data');

/**
 * Cross-origin isolation, so SharedArrayBuffer exists and onnxruntime-web can run
 * multi-threaded WASM. Served by dev, preview and the Vitest browser server.
 */
export const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

const contentTypes: Record<string, string> = {
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'application/jsonl; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.vocab': 'text/plain; charset=utf-8',
};

/**
 * Map a request path under /models/ to a file in the models folder, or null.
 *   /models/stories260K/tok512.bin                  → stories260K/tok512.bin
 *   /models/{repo…}/resolve/{rev}/{file…}           → {repo…}/{file…}, else {basename(repo)}/{file…}, else {file…}
 * (the second form is the hub's URL shape, so code written for huggingface.co works against the mirror)
 */
function resolveModelFile(urlPath: string): string | null {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.replace(/^\/models\//, ''));
  } catch {
    return null;
  }
  const candidates = [rel];
  const hub = /^(.+?)\/resolve\/[^/]+\/(.+)$/.exec(rel);
  if (hub) candidates.unshift(path.join(hub[1], hub[2]), path.join(path.basename(hub[1]), hub[2]), hub[2]);
  for (const c of candidates) {
    const full = path.resolve(modelsDir, c);
    if (!full.startsWith(modelsDir + path.sep)) continue; // no escaping the folder
    if (existsSync(full) && statSync(full).isFile()) return full;
  }
  return null;
}

/** Map a request path under /data/ to a file in the data folder (calibration and evaluation texts), or null. */
function resolveDataFile(urlPath: string): string | null {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.replace(/^\/data\//, ''));
  } catch {
    return null;
  }
  const full = path.resolve(dataDir, rel);
  if (!full.startsWith(dataDir + path.sep)) return null; // no escaping the folder
  return existsSync(full) && statSync(full).isFile() ? full : null;
}

/** Serve one file with Content-Length, Accept-Ranges and single-range Range support. */
function sendFile(req: IncomingMessage, res: ServerResponse, file: string) {
  const size = statSync(file).size;
  res.setHeader('Content-Type', contentTypes[path.extname(file)] ?? 'application/octet-stream');
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  let start = 0;
  let end = size - 1;
  const range = req.headers.range;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (m && (m[1] || m[2])) {
      if (m[1]) {
        start = Number(m[1]);
        end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      } else {
        start = Math.max(0, size - Number(m[2])); // suffix range: the last N bytes
      }
    }
    if (!m || start > end || start >= size) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return;
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  res.setHeader('Content-Length', String(end - start + 1));
  if (req.method === 'HEAD' || end < start) {
    res.end();
    return;
  }
  createReadStream(file, { start, end }).pipe(res);
}

/**
 * Serves ../shared/models at /models/ and ../shared/data at /data/ (dev, preview, browser
 * tests) when those folders exist: the app's default mirror for model files and built-in texts.
 */
export function sharedModels(): Plugin {
  const middleware: Connect.NextHandleFunction = (req, res, next) => {
    const url = req.url ?? '';
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const mirror = url.startsWith('/models/') ? 'models' : url.startsWith('/data/') ? 'data' : null;
    if (!mirror) return next();
    const urlPath = url.split('?')[0];
    const file = mirror === 'models' ? resolveModelFile(urlPath) : resolveDataFile(urlPath);
    if (!file) {
      // The mirror owns its prefix: a missing file is a 404, not the app's index.html.
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`not found in the ${mirror} mirror: ${url}\n`);
      return;
    }
    sendFile(req, res, file);
  };
  const available = () => existsSync(modelsDir) || existsSync(dataDir);
  return {
    name: 'lopper:shared-models',
    configureServer(server) {
      if (available()) server.middlewares.use(middleware);
    },
    configurePreviewServer(server) {
      if (available()) server.middlewares.use(middleware);
    },
  };
}

/**
 * The offline app (vite-plugin-pwa): web manifest, icons, and a service worker
 * (src/sw-lopper.ts → sw-lopper.js) that precaches every built file — index.html, JS/CSS, the
 * worker bundles and onnxruntime-web's .wasm — and adds COOP/COEP on hosts that cannot.
 * Model files (/models/, the hub) are not precached: the app keeps them in IndexedDB.
 * Registration: src/sw-register.ts, added to index.html by `registerServiceWorker()` below.
 */
function pwa(): Plugin[] {
  return VitePWA({
    strategies: 'injectManifest',
    srcDir: 'src',
    filename: 'sw-lopper.ts',
    injectRegister: false, // src/sw-register.ts does it (and the static-host isolation reload)
    registerType: 'prompt', // a new version waits; a pruning run is never cut off by a reload
    manifest: {
      name: 'lopper',
      short_name: 'lopper',
      description: 'Prune whole decoder layers off small Llama models in the browser, with Prune&Comp.',
      theme_color: '#2f6feb',
      background_color: '#f6f7f9',
      display: 'standalone',
      start_url: '.',
      scope: '.',
      icons: [
        { src: 'icon-192.png', sizes: '192x192', type: 'image/png' },
        { src: 'icon-512.png', sizes: '512x512', type: 'image/png' },
        { src: 'icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
      ],
    },
    includeManifestIcons: false, // the glob below already takes every file of public/
    injectManifest: {
      rollupFormat: 'iife', // a classic service worker: every browser with SW support runs it
      // Everything the build emits, the .wasm included; nothing from the mirrors.
      globPatterns: ['**/*.{html,js,mjs,css,wasm,svg,png,webmanifest,json,txt}'],
      globIgnores: ['models/**', 'data/**', '**/*.map', 'screenshots/**'], // screenshots are for the README
      // onnxruntime-web's wasm is ~27 MB (the default limit is 2 MiB).
      maximumFileSizeToCacheInBytes: 64 * 1024 * 1024,
    },
    devOptions: { enabled: false }, // dev runs without a service worker (no stale caches while editing)
  });
}

/** Adds src/sw-register.ts to index.html in production builds only. */
function registerServiceWorker(): Plugin {
  return {
    name: 'lopper:register-sw',
    apply: 'build',
    transformIndexHtml: {
      order: 'pre',
      handler: () => [{ tag: 'script', attrs: { type: 'module', src: '/src/sw-register.ts' }, injectTo: 'head' }],
    },
  };
}

export default defineConfig({
  // Vitest's browser project extends this file: it gets no service worker.
  plugins: [svelte(), sharedModels(), ...(process.env.VITEST ? [] : [...pwa(), registerServiceWorker()])],
  server: {
    port: 5173,
    headers: isolationHeaders,
    // ../shared may be a symlink (Vite checks real paths): allow both.
    fs: { allow: [repoRoot, sharedDir, ...(existsSync(sharedDir) ? [realpathSync(sharedDir)] : [])] },
  },
  preview: {
    port: 4173,
    strictPort: true,
    headers: isolationHeaders,
  },
  optimizeDeps: {
    // ORT's bundles find their .wasm through import.meta.url: pre-bundling would break that.
    exclude: ['onnxruntime-web'],
    // Imported only from workers (found late): pre-bundle up front so no page reloads mid-run.
    include: ['@huggingface/transformers'],
  },
  worker: {
    format: 'es',
    // onnxruntime-web in a chunk of its own: its WASM threads start as module workers on
    // `import.meta.url` (named em-pthread). Bundled into lopper.worker.js, that URL would be
    // the app's worker, whose message handler would then run in every thread (and the
    // threads never start). In its own chunk, a thread loads onnxruntime-web alone.
    rolldownOptions: {
      output: { codeSplitting: { groups: [{ name: 'ort', test: /[\\/]node_modules[\\/]onnxruntime-web[\\/]/ }] } },
    },
  },
  build: { target: 'es2022' },
});
