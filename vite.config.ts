import { createReadStream, existsSync, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, type Connect, type Plugin } from 'vite';

const repoRoot = path.dirname(fileURLToPath(import.meta.url));
/** The shared folder (models, data) lives beside the repository: ../shared. Never copied in. */
export const sharedDir = path.resolve(repoRoot, '../shared');
export const modelsDir = path.join(sharedDir, 'models');

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

/** Serves ../shared/models at /models/ (dev, preview, browser tests) when that folder exists. */
export function sharedModels(): Plugin {
  const middleware: Connect.NextHandleFunction = (req, res, next) => {
    const url = req.url ?? '';
    if (!url.startsWith('/models/') || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    const file = resolveModelFile(url.split('?')[0]);
    if (!file) {
      // The mirror owns /models/: a missing file is a 404, not the app's index.html.
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`not found in the models mirror: ${url}\n`);
      return;
    }
    sendFile(req, res, file);
  };
  return {
    name: 'lopper:shared-models',
    configureServer(server) {
      if (existsSync(modelsDir)) server.middlewares.use(middleware);
    },
    configurePreviewServer(server) {
      if (existsSync(modelsDir)) server.middlewares.use(middleware);
    },
  };
}

export default defineConfig({
  plugins: [svelte(), sharedModels()],
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
  worker: { format: 'es' },
  build: { target: 'es2022' },
});
