/**
 * The app in real Chromium, component level: mount App, load stories260K from the /models/
 * mirror through the worker, prune 2 layers by BI with Prune&Comp and the baseline on short
 * calibration windows, and check that the perplexities the page shows are the ones the
 * engine computes directly here for the same settings (same backend, WASM). Then generation,
 * a cancelled run, a model too large for the memory set for the device (?memory=1), and a missing file.
 */
import { mount, tick, unmount } from 'svelte';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { prune } from '../../src/engine/prune/plan';
import { Engine } from '../../src/engine/runtime/engine';
import { browserRuntime } from '../../src/engine/runtime/web';
import { cutWindows } from '../../src/engine/text/windows';
import App from '../../src/ui/App.svelte';
import { fetchShared, loadStories260K } from './helpers/shared';

const W = 64;
const K = 4;
/** Built-in texts come from the server's /data/ mirror of ../shared/data (the app's default). */
const SETUP = { backend: 'wasm', metric: 'bi', layers: '2', mode: 'prunecomp', fold: 'paper', windows: String(K), window: String(W) };

let app: ReturnType<typeof mount> | null = null;
let target: HTMLElement;
const testerUrl = location.href;

beforeEach(() => {
  const url = new URL(testerUrl);
  for (const [k, v] of Object.entries(SETUP)) url.searchParams.set(k, v);
  history.replaceState(history.state, '', url);
  target = document.createElement('div');
  document.body.append(target);
  app = mount(App, { target });
});

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
  history.replaceState(history.state, '', testerUrl); // the app writes its settings into the URL
});

const $ = <T extends Element = HTMLElement>(sel: string) => target.querySelector<T>(sel);
const testid = (id: string) => $(`[data-testid="${id}"]`);
function button(name: string): HTMLButtonElement {
  const b = [...target.querySelectorAll('button')].find((x) => (x.getAttribute('aria-label') ?? x.textContent?.trim()) === name);
  if (!b) throw new Error(`no button "${name}"`);
  return b;
}
function noError() {
  const err = testid('error-banner');
  if (err) throw new Error(`the page shows an error: ${err.textContent}`);
}
function setValue(el: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, value: string) {
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? 'change' : 'input', { bubbles: true }));
}

async function loadStories() {
  await vi.waitFor(() => expect(button('Load stories260K')).toBeTruthy());
  button('Load stories260K').click();
  await vi.waitFor(
    () => {
      noError();
      expect(testid('model-summary')).not.toBeNull();
    },
    { timeout: 30_000, interval: 50 },
  );
}

/** What the engine gives directly for the same settings: lopper compare's protocol. */
async function direct() {
  const ck: Checkpoint = await loadStories260K();
  const text = async (p: string) => new TextDecoder().decode(await fetchShared(`data/${p}`));
  const ids = (t: string) => [ck.config.bosTokenId, ...ck.tokenizer.encode(t)];
  const windows = cutWindows(ids(await text('tinystories/calib.txt')), W, K);
  const evalIds = ids(await text('tinystories/eval.txt'));
  const runtime = browserRuntime('wasm');
  const opts = { metric: 'bi' as const, layers: 2, fold: 'paper' as const };
  const baseline = await prune(ck, runtime, windows, { ...opts, mode: 'baseline' });
  const comp = await prune(ck, runtime, windows, { ...opts, mode: 'prunecomp' });
  const ppl = async (m: Checkpoint) => {
    const e = new Engine(m, runtime);
    try {
      return (await e.perplexity(evalIds, W)).ppl;
    } finally {
      await e.dispose();
    }
  };
  return { dense: await ppl(ck), baseline: await ppl(baseline.checkpoint), prunecomp: await ppl(comp.checkpoint), plans: { baseline: baseline.plan, comp: comp.plan } };
}

const shown = (key: string) => Number(testid(`ppl-${key}`)?.getAttribute('data-value'));

it('loads stories260K from the mirror, prunes with Prune&Comp and the baseline, and shows the engine’s perplexities', async () => {
  await loadStories();
  expect(testid('model-summary')?.querySelector('dd[data-field="Layers"] strong')?.textContent).toBe('5');
  // The settings are in the URL: this setup is a link.
  const q = new URL(location.href).searchParams;
  expect([q.get('model'), q.get('metric'), q.get('layers'), q.get('mode'), q.get('window'), q.get('windows'), q.get('backend')]).toEqual([
    'stories260K',
    'bi',
    '2',
    'prunecomp',
    String(W),
    String(K),
    'wasm',
  ]);

  // Recompute (a result cached by an earlier run would otherwise show at once). Long main-thread
  // tasks are printed, not asserted: their wall time grows with whatever else the 2 cores run;
  // test/e2e/path.test.ts holds the built app's main-thread tasks to 200 ms of CPU time.
  const long: number[] = [];
  const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => long.push(e.duration)));
  observer.observe({ type: 'longtask', buffered: false });
  await vi.waitFor(() => expect(button('Run').disabled).toBe(false));
  const recompute = [...target.querySelectorAll('button')].find((b) => b.textContent?.trim() === 'Recompute');
  (recompute ?? button('Run')).click();
  await vi.waitFor(
    () => {
      noError();
      expect(testid('ppl-prunecomp')).not.toBeNull();
      expect(testid('result-source')?.getAttribute('data-from-cache')).toBe('false');
      expect(testid('results')?.getAttribute('data-example')).toBe('false'); // this run's, not the precomputed example
      expect(testid('run-progress')).toBeNull();
      expect(testid('results')?.getAttribute('data-complete')).toBe('true'); // every chart drawn (one task after another)
    },
    { timeout: 90_000, interval: 50 },
  );
  observer.disconnect();
  console.log(`[app] long main-thread tasks during the run (wall time): ${long.map(Math.round).join(', ') || 'none'} ms`);

  // Pictures are there, with their numbers.
  for (const id of ['ppl-chart', 'magnitude-chart', 'score-chart-baseline', 'score-chart-prunecomp', 'removed-table']) expect(testid(id), id).not.toBeNull();
  expect(testid('magnitude-chart')!.querySelectorAll('path[data-curve]')).toHaveLength(3);

  const want = await direct();
  for (const key of ['dense', 'baseline', 'prunecomp'] as const) {
    const got = shown(key);
    expect(Math.abs(got - want[key]) / want[key], `${key}: page ${got} vs engine ${want[key]}`).toBeLessThan(1e-6);
  }
  want.plans.baseline.removed.forEach((k, i) => expect(testid(`removed-baseline-${i}`)?.textContent).toBe(String(k)));
  want.plans.comp.removed.forEach((k, i) => {
    expect(testid(`removed-prunecomp-${i}`)?.textContent).toBe(String(k));
    expect(Number(testid(`scale-${i}`)?.getAttribute('data-value'))).toBeCloseTo(want.plans.comp.scales[i], 6);
  });

  // "Reload": a fresh app from the same URL loads the stored model (nothing downloaded) and
  // shows the stored result at once, without a Run.
  const dense = shown('dense');
  unmount(app!);
  target.innerHTML = '';
  app = mount(App, { target });
  await vi.waitFor(
    () => {
      noError();
      expect(testid('model-origin')?.textContent).toMatch(/nothing downloaded/);
      expect(testid('result-source')?.getAttribute('data-from-cache')).toBe('true');
    },
    { timeout: 30_000, interval: 50 },
  );
  expect(shown('dense')).toBe(dense);
  expect(testid('run-progress')).toBeNull();
});

/** Run and wait until it is over (a stored result may show before the run request ends). */
async function runToEnd() {
  await vi.waitFor(() => expect(button('Run').disabled).toBe(false));
  button('Run').click();
  await tick(); // the page now shows the run as busy
  expect(button('Run').disabled).toBe(true);
  await vi.waitFor(
    () => {
      noError();
      expect(testid('ppl-prunecomp')).not.toBeNull();
      expect(testid('run-progress')).toBeNull();
      expect(button('Run').disabled).toBe(false);
    },
    { timeout: 90_000, interval: 50 },
  );
}

it('generates from the same prompt with the dense, baseline and Prune&Comp models, with tokens/s', async () => {
  await loadStories();
  await runToEnd(); // (stored by the first test when it ran: then nothing is recomputed)

  setValue($<HTMLInputElement>('input[name=maxTokens]')!, '24');
  expect(button('Generate').disabled).toBe(false);
  button('Generate').click();
  await vi.waitFor(
    () => {
      noError();
      for (const v of ['dense', 'baseline', 'prunecomp']) expect(testid(`gen-${v}-rate`)?.textContent, testid('generate')?.outerHTML).toMatch(/\d+ tokens · [\d.]+ tokens\/s/);
    },
    { timeout: 60_000, interval: 50 },
  );
  // stories260K continues "Once upon a time" greedily with the start of its favourite story.
  expect(testid('gen-dense-text')?.textContent).toMatch(/^Once upon a time, there was a little girl/);
  for (const v of ['baseline', 'prunecomp']) expect(testid(`gen-${v}-text`)!.textContent!.length).toBeGreaterThan('Once upon a time'.length + 5);
});

it('a run cancelled halfway leaves the model and the app usable, with a message', async () => {
  await loadStories();
  // A long evaluation text, so there is time to cancel.
  setValue($<HTMLSelectElement>('#text-evaluation')!, 'wikitext2-test');
  await vi.waitFor(() => expect(button('Run').disabled).toBe(false));
  button('Run').click();
  await vi.waitFor(() => expect(testid('run-progress')).not.toBeNull(), { timeout: 10_000 });
  await vi.waitFor(() => expect(testid('run-progress-label')?.textContent ?? target.innerHTML).toMatch(/dense: window \d+/), { timeout: 60_000, interval: 20 });
  button('Cancel run').click();
  await vi.waitFor(
    () => {
      expect(testid('notice')?.textContent).toMatch(/cancelled.*stories260K is still loaded/);
      expect(testid('run-progress')).toBeNull();
    },
    { timeout: 10_000 },
  );
  noError();
  expect(testid('model-summary')).not.toBeNull();
  // Still usable: back to the short text, and a run completes.
  setValue($<HTMLSelectElement>('#text-evaluation')!, 'tinystories-eval');
  await runToEnd();
});

it('refuses a model too large for the memory set for this device (?memory=1) before downloading it, and stays usable', async () => {
  // The app as a link with ?memory=1 opens it: it plans for 1 GiB, not what the browser reports.
  unmount(app!);
  const url = new URL(location.href);
  url.searchParams.set('memory', '1');
  history.replaceState(history.state, '', url);
  app = mount(App, { target });
  await vi.waitFor(() => expect(button('Load TinyLlama-1.1B-Chat')).toBeTruthy());
  button('Load TinyLlama-1.1B-Chat').click();
  await vi.waitFor(() => expect(testid('error-banner')?.getAttribute('data-code')).toBe('too-large'), { timeout: 20_000 });
  expect(testid('error-message')?.textContent).toMatch(/will not fit this device: it needs about \d\.\d\d GiB of memory run layer by layer .* the memory set for this device is 1\.00 GiB/);
  expect(button('Load anyway')).toBeTruthy();
  await loadStories(); // the app goes on
});

it('says what is wrong when a model URL does not exist', async () => {
  $<HTMLInputElement>('details.from-url')!.setAttribute('open', '');
  setValue($<HTMLInputElement>('#model-url')!, '/models/nope/missing.bin');
  setValue($<HTMLInputElement>('#tokenizer-url')!, '/models/stories260K/tok512.bin');
  button('Load from URL').click();
  await vi.waitFor(() => expect(testid('error-message')?.textContent).toMatch(/missing\.bin.*404|404.*missing\.bin/), { timeout: 10_000 });
  expect(testid('error-banner')?.getAttribute('data-code')).toBe('not-found');
});

it('opens a llama2.c model from local files (nothing uploaded, nothing stored)', async () => {
  const files = [
    new File([(await fetchShared('models/stories260K/stories260K.bin')) as BlobPart], 'stories260K.bin'),
    new File([(await fetchShared('models/stories260K/tok512.bin')) as BlobPart], 'tok512.bin'),
  ];
  const input = [...target.querySelectorAll<HTMLInputElement>('input[type=file]')].find((i) => i.closest('label')?.textContent?.includes('Open model files'))!;
  const dt = new DataTransfer();
  for (const f of files) dt.items.add(f);
  input.files = dt.files;
  input.dispatchEvent(new Event('change', { bubbles: true }));
  await vi.waitFor(
    () => {
      noError();
      expect(testid('model-summary')?.querySelector('h2')?.textContent).toBe('stories260K.bin');
    },
    { timeout: 30_000 },
  );
  expect(new URL(location.href).searchParams.get('model')).toBeNull(); // local files are not a link
});
