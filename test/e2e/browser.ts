/**
 * Debian Chromium driven by Playwright for the end-to-end tests: a fresh profile per
 * browser (launchPersistentContext on a temp folder, so IndexedDB, the Cache API and the
 * service worker survive reloads within a test), the page's console errors kept for
 * failure messages, and screenshots of each stage under test-results/e2e/.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page, type Worker } from 'playwright-core';
import { chromiumArgs, chromiumPath } from './chromium';
import { repoRoot } from './servers';

export const screenshotsDir = path.join(repoRoot, 'test-results/e2e');

export interface Browser {
  context: BrowserContext;
  /** the profile folder (the browser process's command line names it) */
  profile: string;
  page: Page;
  /** what the page (and its workers) logged as errors, and uncaught exceptions */
  errors: string[];
  /** Screenshot of the page now: test-results/e2e/{suite}/{nn}-{stage}.png (path printed and returned). */
  shot(stage: string): Promise<string>;
  /** every screenshot taken, in order */
  shots: string[];
  close(): Promise<void>;
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);

/** A fresh Chromium with its own profile; `suite` names the screenshot folder. */
export async function openBrowser(suite: string, opts: { viewport?: { width: number; height: number } } = {}): Promise<Browser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'lopper-e2e-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    viewport: opts.viewport ?? { width: 1280, height: 900 },
    serviceWorkers: 'allow',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  // onnxruntime-web logs its warnings ("[W:onnxruntime:…]") through console.error: not errors.
  const isError = (type: string, text: string) => type === 'error' && !text.includes('[W:onnxruntime');
  page.on('console', (m) => {
    if (isError(m.type(), m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('worker', (w) => w.on('console', (m) => isError(m.type(), m.text()) && errors.push(`worker console: ${m.text()}`)));

  const dir = path.join(screenshotsDir, slug(suite));
  mkdirSync(dir, { recursive: true });
  const shots: string[] = [];
  return {
    context,
    profile,
    page,
    errors,
    shots,
    async shot(stage) {
      const file = path.join(dir, `${String(shots.length + 1).padStart(2, '0')}-${slug(stage)}.png`);
      await page.screenshot({ path: file, fullPage: true });
      shots.push(file);
      console.log(`[e2e] screenshot ${path.relative(repoRoot, file)}`);
      return file;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Waits until a service worker controls the page and has precached every app file. */
export async function waitForOffline(page: Page, timeout = 60_000): Promise<void> {
  await page.waitForFunction(
    () => !!navigator.serviceWorker?.controller && window.lopperPwa?.offlineReady === true,
    undefined,
    { timeout, polling: 100 },
  );
}

/** The precache's entries (URL paths), read through the Cache API in the page. */
export async function precachedPaths(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const out: string[] = [];
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const req of await cache.keys()) out.push(new URL(req.url).pathname);
    }
    return out.sort();
  });
}

/** Resident memory (VmRSS) of a process and all its descendants, from /proc. */
export function treeRss(root: number): number {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // the process ended meanwhile
    }
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    try {
      const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
      if (m) total += Number(m[1]) * 1024;
    } catch {
      continue;
    }
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** The Chromium browser process of a profile (its command line names the profile folder). */
export function browserPid(profileHint: string): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes(profileHint) && !cmd.includes('--type=')) return Number(name);
    } catch {
      // gone
    }
  }
  throw new Error(`no Chromium process for ${profileHint}`);
}

/**
 * `fn` evaluated in worker `w`, or `fallback` when it does not answer within `ms`: onnxruntime's
 * WASM thread-pool workers run its pool loop and block in futex waits, so their event loop
 * never takes Playwright's message.
 */
export async function evaluateInWorker<T>(w: Worker, fn: () => T | Promise<T>, fallback: T, ms = 2_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([w.evaluate(fn).catch(() => fallback), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The app's own worker (the one that answers lopperDiagnostics; onnxruntime's thread workers load the same script). */
export async function appWorker(p: Page): Promise<Worker> {
  for (const w of p.workers()) {
    if (await evaluateInWorker(w, () => typeof (self as unknown as { lopperDiagnostics?: unknown }).lopperDiagnostics === 'function', false)) return w;
  }
  throw new Error(`no app worker among ${p.workers().length} workers`);
}
