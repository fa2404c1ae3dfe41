/** Settings live in the URL: a link restores a setup; bad values fall back to the defaults. */
import { afterEach, expect, test } from 'vitest';
import { runIdentity, sameRun } from '../../src/app/run-identity';
import { DEFAULTS, Settings } from '../../src/ui/stores/settings.svelte';

const testerUrl = location.href;
afterEach(() => history.replaceState(history.state, '', testerUrl));

test('a link restores every setting, and writing them back keeps other parameters', () => {
  const s = new Settings('?model=SmolLM2-135M&backend=webgpu&metric=mag&layers=3&mode=oneshot-comp&fold=tied&windows=16&window=128&calib=wikitext2-test&eval=custom&skipFirst=1&skipLast=0');
  expect(s.params()).toEqual({
    model: 'SmolLM2-135M',
    backend: 'webgpu',
    metric: 'mag',
    layers: '3',
    mode: 'oneshot-comp',
    fold: 'tied',
    windows: '16',
    window: '128',
    calib: 'wikitext2-test',
    eval: 'custom',
    skipFirst: '1',
    skipLast: '0',
  });
  const url = new URL(testerUrl);
  url.searchParams.set('data', '/elsewhere');
  history.replaceState(history.state, '', url);
  s.writeUrl();
  const q = new URL(location.href).searchParams;
  expect(q.get('data')).toBe('/elsewhere');
  expect(new Settings(location.search).params()).toEqual(s.params());
  // a custom text is not in the URL: the run asks for it
  expect(() => s.runSettings('wasm')).toThrow(/paste or upload/);
});

test('unknown or malformed values fall back to the defaults', () => {
  const s = new Settings('?metric=nope&layers=-2&mode=zzz&fold=x&windows=0&window=1&backend=cuda&calib=missing');
  expect(s.metric).toBe(DEFAULTS.metric);
  expect(s.layers).toBe(DEFAULTS.layers);
  expect(s.mode).toBe(DEFAULTS.mode);
  expect(s.fold).toBe(DEFAULTS.fold);
  expect(s.windows).toBe(DEFAULTS.windows);
  expect(s.window).toBe(DEFAULTS.window);
  expect(s.backend).toBeNull();
  expect(s.calib).toBe('tinystories-calib');
  const r = s.runSettings('wasm');
  expect(r.calib).toEqual({ kind: 'builtin', id: 'tinystories-calib', url: `${location.origin}/data/tinystories/calib.txt` });
  expect(r.skipFirst).toBeUndefined();
});

test('the random metric’s seed: in the link and in the run’s identity for metric random only', () => {
  const s = new Settings('?metric=random&seed=7&calib=tinystories-calib&eval=tinystories-eval');
  expect(s.params().seed).toBe('7');
  expect(s.runSettings('wasm').seed).toBe(7);
  const other = new Settings('?metric=random&seed=8&calib=tinystories-calib&eval=tinystories-eval');
  expect(sameRun(runIdentity(s.runSettings('wasm')), runIdentity(other.runSettings('wasm')))).toBe(false);
  // Other metrics do not read a seed: it is neither in the link nor in the identity, so it cannot split their cache.
  const bi = new Settings('?metric=bi&seed=7');
  expect(bi.params().seed).toBeUndefined();
  expect('seed' in runIdentity(bi.runSettings('wasm'))).toBe(false);
  expect(sameRun(runIdentity(bi.runSettings('wasm')), runIdentity(new Settings('?metric=bi').runSettings('wasm')))).toBe(true);
});
