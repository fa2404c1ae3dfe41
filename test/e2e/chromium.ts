/**
 * Debian's Chromium and the flags that work on our machines (DESIGN.md): headless, no
 * sandbox, no network chatter, WebGPU through SwiftShader. Shared by the Vitest browser
 * project (vitest.config.ts) and the end-to-end tests. Never a downloaded browser.
 */
export const chromiumPath = process.env.LOPPER_CHROMIUM ?? '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--enable-unsafe-webgpu',
];
