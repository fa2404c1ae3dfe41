/**
 * Once per `vitest run --project e2e`: build the app as it ships (service worker included)
 * into .tmp/e2e/dist and serve it with Vite's preview server on a free port. Tests read
 * the URL with `inject('baseUrl')`; tests that stop, restart or fault the server start
 * their own with startPreview() (servers.ts) on the same build.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildApp, distDir, repoRoot, startPreview } from './servers';

declare module 'vitest' {
  export interface ProvidedContext {
    /** the shared preview server, e.g. http://127.0.0.1:41234/ */
    baseUrl: string;
    /** the built app */
    distDir: string;
  }
}

export default async function setup(project: TestProject) {
  const started = Date.now();
  await buildApp();
  // Screenshots of this run only.
  const shots = path.join(repoRoot, 'test-results/e2e');
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  const server = await startPreview();
  console.log(`[e2e] built ${path.relative(repoRoot, distDir)} in ${((Date.now() - started) / 1000).toFixed(1)} s; preview at ${server.url}`);
  project.provide('baseUrl', server.url);
  project.provide('distDir', distDir);
  return async () => {
    await server.stop();
  };
}
