/// <reference lib="webworker" />
/**
 * lopper's service worker (built by vite-plugin-pwa, strategy injectManifest → sw-lopper.js).
 *
 * - Precaches the whole built app: index.html, the JS/CSS chunks, the worker bundles and
 *   onnxruntime-web's .wasm (≈27 MB) — so after one visit the app loads and prunes with
 *   the network off. Model files are NOT here: /models/ (the local mirror) and the hub are
 *   fetched by the app and kept in IndexedDB; the worker passes those requests through.
 * - Serves every navigation (outside /models/ and /data/) with the precached index.html.
 * - Cross-origin isolation on any host: every response it serves from the precache gets
 *   `Cross-Origin-Opener-Policy: same-origin`, `Cross-Origin-Embedder-Policy: require-corp`
 *   and `Cross-Origin-Resource-Policy: same-origin` when the server did not send them (a
 *   static host such as GitHub Pages cannot). Pages and workers the SW serves are then
 *   crossOriginIsolated, so SharedArrayBuffer exists and ORT runs multi-threaded WASM.
 *   (The first visit on such a host is not isolated; src/sw-register.ts reloads once, as
 *   soon as this worker controls the page — the coi-serviceworker approach.)
 * - Updates wait: a new version installs in the background and takes over when the page
 *   asks (SKIP_WAITING from sw-register.ts) or when every lopper tab is closed, so a
 *   pruning run is never cut off by a reload.
 */
import { clientsClaim } from 'workbox-core';
import { addPlugins, cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching';
import { NavigationRoute, registerRoute } from 'workbox-routing';

declare let self: ServiceWorkerGlobalScope;

/** The headers that make a document (and its workers) cross-origin isolated. */
const isolation: Record<string, string> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** The response with the isolation headers added where missing (a copy; the cached entry is untouched). */
function withIsolation(response: Response): Response {
  if (response.type === 'opaque' || response.type === 'opaqueredirect' || response.status === 0) return response;
  const missing = Object.keys(isolation).filter((h) => !response.headers.has(h));
  if (!missing.length) return response;
  const headers = new Headers(response.headers);
  for (const h of missing) headers.set(h, isolation[h]);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

addPlugins([{ handlerWillRespond: async ({ response }) => withIsolation(response) }]);
precacheAndRoute(self.__WB_MANIFEST);
cleanupOutdatedCaches();

/** Paths the app's own files never live under: the model mirror and the data mirror (any base path). */
const notTheApp = [/\/models\//, /\/data\//];
registerRoute(new NavigationRoute(createHandlerBoundToURL('index.html'), { denylist: notTheApp }));

self.addEventListener('message', (event) => {
  if (event.data?.type === 'SKIP_WAITING') void self.skipWaiting();
});

// The first version takes control of the page that installed it at once (no reload needed
// for offline use); later versions wait for SKIP_WAITING (clientsClaim runs on activation).
clientsClaim();
