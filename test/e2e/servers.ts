/**
 * Servers for the end-to-end tests, all serving the BUILT app (test/e2e/global-setup.ts
 * builds it once into .tmp/e2e/dist):
 *
 * - `startPreview()`: Vite's preview server (vite.config.ts: COOP/COEP headers, ../shared/models
 *   at /models/), started in this process so a test can stop it (the network is really gone),
 *   restart it on the same port (same origin: same IndexedDB, same service worker), read
 *   which files it served, and make it misbehave (truncate or fail a file) — a real network
 *   fault the page cannot tell from a broken mirror.
 * - `startStaticHost()`: a plain file server with no COOP/COEP headers, like GitHub Pages.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { preview, type Plugin, type PreviewServer } from 'vite';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const e2eDir = path.join(repoRoot, '.tmp/e2e');
export const distDir = path.join(e2eDir, 'dist');

/** The environment for child processes: none of Vitest's variables (vite.config.ts drops the PWA under VITEST). */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('VITEST') || k === 'NODE_ENV' || k === 'TEST') delete env[k];
  return env;
}

/** `vite build --outDir .tmp/e2e/dist`: the app as it ships (service worker included). */
export async function buildApp(): Promise<void> {
  const vite = path.join(repoRoot, 'node_modules/vite/bin/vite.js');
  const args = [vite, 'build', '--outDir', distDir, '--emptyOutDir', '--logLevel', 'warn'];
  let log = '';
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`vite build failed (exit ${code}):\n${log.slice(-4000)}`);
  if (!existsSync(path.join(distDir, 'sw-lopper.js'))) throw new Error(`vite build made no service worker:\n${log.slice(-4000)}`);
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * How a served file should misbehave (keyed by the end of the URL path, e.g. 'stories260K/stories260K.bin'):
 *   cut     the real answer, but the connection drops after `bytes` body bytes (Content-Length promised more)
 *   body    a complete, well-formed 200 answer whose bytes are `body` (a truncated or garbled file on the mirror)
 *   slow    `body` served at `bytesPerSecond` (single `bytes=N-` ranges honoured): a download to watch
 *   status  an HTTP error
 */
export type Fault =
  | { kind: 'cut'; bytes: number }
  | { kind: 'body'; body: Uint8Array }
  | { kind: 'slow'; body: Uint8Array; bytesPerSecond: number }
  | { kind: 'status'; status: number };

export interface Served {
  method: string;
  path: string;
  range?: string;
  /** milliseconds since the server started */
  at: number;
}

export interface AppServer {
  url: string;
  port: number;
  /** every request the server received, in order */
  requests: Served[];
  /** requests under /models/ (model files: the app must fetch each once, then use IndexedDB) */
  modelRequests(): Served[];
  faults: Map<string, Fault>;
  /**
   * URL path prefix → a folder the server answers from, before the mirror: a test's generated
   * checkpoint served as the hub serves files (e.g. '/models/meta-llama/Llama-3.2-1B/resolve/main/'
   * → a folder with config.json, model.safetensors, tokenizer files). Single ranges honoured.
   */
  mounts: Map<string, string>;
  /**
   * POST {url}__e2e/upload/{name}: the request body is written to {uploads}/{name} (a file the
   * page hands over, e.g. an export it wrote to its private file system, however large).
   */
  uploads: string;
  stop(): Promise<void>;
  /** start again on the same port (same origin) */
  restart(): Promise<void>;
  running(): boolean;
}

/** Logs every request, takes uploads, serves mounts and applies faults; runs before the config's own middlewares. */
function observe(requests: Served[], faults: Map<string, Fault>, mounts: Map<string, string>, uploads: string, started: number): Plugin {
  return {
    name: 'lopper-e2e:observe',
    enforce: 'pre',
    configurePreviewServer(server) {
      server.middlewares.use((req, res, next) => {
        const urlPath = (req.url ?? '').split('?')[0];
        requests.push({ method: req.method ?? 'GET', path: urlPath, range: req.headers.range, at: Date.now() - started });
        const upload = /^\/__e2e\/upload\/([\w.-]+)$/.exec(urlPath);
        if (upload && req.method === 'POST') {
          const out = createWriteStream(path.join(uploads, upload[1]));
          req.pipe(out);
          out.on('finish', () => res.end('ok'));
          out.on('error', (e) => ((res.statusCode = 500), res.end(String(e))));
          return;
        }
        const fault = [...faults].find(([suffix]) => urlPath.endsWith(suffix))?.[1];
        const mount = [...mounts].find(([prefix]) => urlPath.startsWith(prefix));
        if (!fault && mount) {
          const file = path.resolve(mount[1], decodeURIComponent(urlPath.slice(mount[0].length)));
          if (file.startsWith(path.resolve(mount[1]) + path.sep) && existsSync(file)) return sendRange(req, res, file);
        }
        if (!fault) return next();
        if (fault.kind === 'status') {
          res.statusCode = fault.status;
          res.end(`e2e fault: status ${fault.status}\n`);
          return;
        }
        if (fault.kind === 'body') {
          res.statusCode = 200;
          res.setHeader('Content-Type', 'application/octet-stream');
          res.setHeader('Content-Length', String(fault.body.length));
          res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
          res.setHeader('Cache-Control', 'no-cache');
          res.end(req.method === 'HEAD' ? undefined : Buffer.from(fault.body));
          return;
        }
        if (fault.kind === 'slow') {
          slow(req, res, fault.body, fault.bytesPerSecond);
          return;
        }
        cut(res, fault.bytes);
        next();
      });
    },
  };
}

/** A file with Content-Length and a single `bytes=a-b` or `bytes=a-` range, as the hub answers. */
function sendRange(req: IncomingMessage, res: ServerResponse, file: string) {
  const size = statSync(file).size;
  let start = 0;
  let end = size - 1;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (start > end) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      return void res.end();
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  } else res.statusCode = 200;
  res.setHeader('Content-Type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  res.setHeader('Content-Length', String(end - start + 1));
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-cache');
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file, { start, end }).pipe(res);
}

/** Serve `body` in 16 KiB pieces paced to `bytesPerSecond`. */
function slow(req: IncomingMessage, res: ServerResponse, body: Uint8Array, bytesPerSecond: number) {
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m && Number(m[1]) < body.length) {
    start = Number(m[1]);
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${body.length - 1}/${body.length}`);
  } else res.statusCode = 200;
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', String(body.length - start));
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-cache');
  if (req.method === 'HEAD') return void res.end();
  const piece = 16 * 1024;
  let at = start;
  const timer = setInterval(() => {
    if (res.destroyed) return clearInterval(timer);
    res.write(Buffer.from(body.subarray(at, at + piece)));
    at += piece;
    if (at >= body.length) {
      clearInterval(timer);
      res.end();
    }
  }, (1000 * piece) / bytesPerSecond);
  res.on('close', () => clearInterval(timer));
}

/**
 * Let the real handler answer (status, Content-Length, Content-Range as usual) but stop the
 * body after `bytes` bytes and cut the connection: what a dropped download looks like.
 */
function cut(res: ServerResponse, bytes: number) {
  let sent = 0;
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (sent >= bytes) return true;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    const part = buf.subarray(0, bytes - sent);
    sent += part.length;
    const ok = write(part, ...rest);
    if (sent >= bytes) setImmediate(() => res.socket?.destroy());
    return ok;
  }) as typeof res.write;
  res.end = ((...args: unknown[]) => {
    const chunk = args.find((a) => typeof a === 'string' || a instanceof Uint8Array);
    if (chunk && sent < bytes) res.write(chunk as Uint8Array);
    if (sent >= bytes) {
      setImmediate(() => res.socket?.destroy());
      return res;
    }
    return end();
  }) as typeof res.end;
}

/** Vite's preview server on the built app (vite.config.ts's headers and /models/ mirror). */
export async function startPreview(opts: { port?: number } = {}): Promise<AppServer> {
  const port = opts.port ?? (await freePort());
  const requests: Served[] = [];
  const faults = new Map<string, Fault>();
  const mounts = new Map<string, string>();
  const uploads = mkdtempSync(path.join(tmpdir(), 'lopper-e2e-uploads-'));
  const started = Date.now();
  let server: PreviewServer | null = null;

  async function start() {
    server = await preview({
      configFile: path.join(repoRoot, 'vite.config.ts'),
      root: repoRoot,
      logLevel: 'warn',
      build: { outDir: distDir },
      preview: { host: '127.0.0.1', port, strictPort: true, open: false },
      plugins: [observe(requests, faults, mounts, uploads, started)],
    });
  }
  await start();

  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    requests,
    faults,
    mounts,
    uploads,
    modelRequests: () => requests.filter((r) => r.path.startsWith('/models/')),
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      // close() waits for open connections; drop keep-alive ones so the port frees at once
      const http = s.httpServer as Server;
      http.closeAllConnections?.();
      await s.close();
    },
    async restart() {
      if (!server) await start();
    },
    running: () => server !== null,
  };
}

const staticTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * A static host that cannot set headers (GitHub Pages, S3 without rules): files of the
 * built app only, unknown paths → index.html, and no COOP/COEP.
 */
export async function startStaticHost(): Promise<{ url: string; stop(): Promise<void> }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let rel = decodeURIComponent((req.url ?? '/').split('?')[0]);
    if (rel.endsWith('/')) rel += 'index.html';
    let file = path.resolve(distDir, '.' + rel);
    if (!file.startsWith(distDir + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      file = path.join(distDir, 'index.html');
    }
    res.setHeader('Content-Type', staticTypes[path.extname(file)] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(statSync(file).size));
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
