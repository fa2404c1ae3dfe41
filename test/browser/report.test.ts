/**
 * The results report in Chromium (src/ui/report/): from the precomputed example (a real run
 * on stories260K, src/ui/example/stories260K.json), every SVG parses with the browser's
 * DOMParser as an SVG document (no parsererror, the SVG namespace, a <title>), and loads as an
 * image (Chromium renders it at its declared size); the report's link opens the app with the
 * run's settings: read by the app's settings store (src/ui/stores/settings.svelte.ts), they
 * give the same run identity, and the store writes back exactly the link's parameters (the
 * link is the one the page's URL holds for those settings) — for the example's settings and
 * for settings that use every optional parameter.
 */
import { describe, expect, test } from 'vitest';
import type { RunResult } from '../../src/app/protocol';
import { runIdentity, sameRun } from '../../src/app/run-identity';
import example from '../../src/ui/example/stories260K.json';
import { num } from '../../src/app/format';
import { reportFiles, runLink, type ReportSettings } from '../../src/app/report/report';
import { Settings } from '../../src/ui/stores/settings.svelte';

const run = example as unknown as RunResult;
const BASE = 'https://lopper.example/app/';

describe('the report of the precomputed example', () => {
  const files = reportFiles({ run, link: runLink(BASE, { model: 'stories260K' }, run.settings), generator: 'the browser test' });

  test('every SVG parses as an SVG document with a title, and renders as an image', async () => {
    const svgs = files.filter((f) => f.name.endsWith('.svg'));
    expect(svgs.map((f) => f.name)).toEqual(['perplexity.svg', 'magnitude.svg']);
    for (const f of svgs) {
      const doc = new DOMParser().parseFromString(f.text, 'image/svg+xml');
      expect(doc.getElementsByTagName('parsererror'), f.name).toHaveLength(0);
      expect(doc.documentElement.namespaceURI).toBe('http://www.w3.org/2000/svg');
      expect(doc.documentElement.querySelector('title')?.textContent).toBeTruthy();
      const img = new Image();
      img.src = URL.createObjectURL(new Blob([f.text], { type: 'image/svg+xml' }));
      await img.decode();
      expect(img.naturalWidth).toBe(Number(doc.documentElement.getAttribute('width')));
    }
    // the bars carry the example's perplexities
    const bars = new DOMParser().parseFromString(svgs[0].text, 'image/svg+xml').querySelectorAll('rect[rx] title');
    expect([...bars].map((t) => t.textContent)).toEqual([`dense: ${num(run.ppl.dense.ppl, 4)}`, `baseline: ${num(run.ppl.baseline.ppl, 4)}`, `Prune&Comp (scalar): ${num(run.ppl.prunecomp!.ppl, 4)}`]);
  });
});

describe('the report’s link opens the app with the run’s settings', () => {
  const cases: [string, ReportSettings][] = [
    ['the example’s', run.settings],
    ['linear with α, barriers, WebGPU', { ...run.settings, backend: 'webgpu', comp: 'linear', alpha: 0.25, skipFirst: 1, skipLast: 0, layers: 1, windows: 4, window: 128 }],
    ['random with a seed, no compensation, the tied fold, the baseline alone', { ...run.settings, metric: 'random', seed: 7, comp: 'none', fold: 'tied', mode: 'baseline', eval: 'wikitext2-test' }],
  ];
  for (const [what, settings] of cases) {
    test(what, () => {
      const link = runLink(BASE, { model: 'stories260K' }, settings);
      const url = new URL(link);
      expect(url.origin + url.pathname).toBe(BASE);
      const store = new Settings(url.search);
      expect(store.model).toBe('stories260K');
      const back = runIdentity(store.runSettings(store.backend ?? 'wasm'));
      expect(sameRun(back, settings as RunResult['settings']), JSON.stringify({ back, settings })).toBe(true);
      expect(store.params()).toEqual(Object.fromEntries(url.searchParams));
    });
  }
});
