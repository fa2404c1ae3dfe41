/// <reference types="vite-plugin-pwa/vanillajs" />
/**
 * Registers lopper's service worker (src/sw-lopper.ts) in the built app. vite.config.ts adds
 * this script to index.html at build time only (no service worker in dev), so no app code
 * has to import it.
 *
 * What the page can read (the UI may show it; nothing here touches the DOM):
 *   window.lopperPwa           { offlineReady, updateReady, update() }: the state so far
 *   'lopper:offline-ready'     window event: every app file is cached, the app works offline
 *   'lopper:update-ready'      window event: a new version is installed and waiting;
 *                              `lopperPwa.update()` activates it and reloads the page
 *
 * Cross-origin isolation on static hosts (coi-serviceworker approach): a host that cannot
 * send COOP/COEP serves a page that is not crossOriginIsolated on the first visit. The
 * service worker adds those headers to what it serves, so as soon as it controls this page
 * we reload once (at most once per tab session) and the reloaded page is isolated.
 */
import { registerSW } from 'virtual:pwa-register';

export interface LopperPwa {
  /** The service worker has cached every app file: the app now loads with the network off. */
  offlineReady: boolean;
  /** A new version is installed and waits for update(). */
  updateReady: boolean;
  /** Activate the waiting version and reload (no-op when none waits). */
  update(): Promise<void>;
  /** The registration error, if registering failed. */
  error: string | null;
}

declare global {
  interface Window {
    lopperPwa?: LopperPwa;
  }
}

const RELOADED_KEY = 'lopper:coi-reload';

function announce(name: 'offline-ready' | 'update-ready') {
  window.dispatchEvent(new CustomEvent(`lopper:${name}`));
}

if ('serviceWorker' in navigator) {
  const state: LopperPwa = {
    offlineReady: false,
    updateReady: false,
    error: null,
    update: async () => {},
  };
  window.lopperPwa = state;

  // The page is not isolated (a static host without COOP/COEP): once our worker controls
  // it, reload so the navigation goes through the worker, which adds the headers.
  if (!window.crossOriginIsolated && window.isSecureContext) {
    const reloadOnce = () => {
      if (sessionStorage.getItem(RELOADED_KEY)) return;
      sessionStorage.setItem(RELOADED_KEY, '1');
      location.reload();
    };
    if (navigator.serviceWorker.controller) reloadOnce();
    else navigator.serviceWorker.addEventListener('controllerchange', reloadOnce, { once: true });
  } else {
    sessionStorage.removeItem(RELOADED_KEY);
  }

  const update = registerSW({
    immediate: true,
    onOfflineReady() {
      state.offlineReady = true;
      announce('offline-ready');
    },
    onNeedRefresh() {
      state.updateReady = true;
      announce('update-ready');
    },
    onRegisterError(error: unknown) {
      state.error = String(error);
    },
  });
  state.update = () => update(true);
}
