/** The compensation in the link: read, written back only where it is not the default, and sent with the run. */
import { afterEach, expect, test } from 'vitest';
import { runIdentity, sameRun } from '../../src/app/run-identity';
import { Settings } from '../../src/ui/stores/settings.svelte';

const testerUrl = location.href;
afterEach(() => history.replaceState(history.state, '', testerUrl));

test('a link restores the compensation and α; the run gets them', () => {
  const s = new Settings('?comp=linear&alpha=0.5&calib=tinystories-calib&eval=tinystories-eval');
  expect(s.params()).toMatchObject({ comp: 'linear', alpha: '0.5' });
  expect(s.runSettings('wasm')).toMatchObject({ comp: 'linear', alpha: 0.5 });
  s.writeUrl();
  expect(new Settings(location.search).params()).toEqual(s.params());
  s.comp = 'diag';
  expect(s.params()).toMatchObject({ comp: 'diag', alpha: '0.5' });
  s.comp = 'none';
  expect(s.params().comp).toBe('none');
  expect(s.params().alpha, 'α means nothing without a fitted map').toBeUndefined();
  expect(s.runSettings('wasm').alpha).toBeUndefined();
});

test('the defaults stay out of the link and the identity; bad values fall back to them', () => {
  const scalar = new Settings('?comp=scalar&alpha=2');
  expect(scalar.params().comp).toBeUndefined();
  expect(scalar.params().alpha).toBeUndefined();
  expect(sameRun(runIdentity(scalar.runSettings('wasm')), runIdentity(new Settings('').runSettings('wasm')))).toBe(true);
  const bad = new Settings('?comp=cubic&alpha=-1');
  expect(bad.comp).toBe('scalar');
  expect(bad.alpha).toBe(0);
  const negative = new Settings('?comp=linear&alpha=-1');
  expect(negative.alpha).toBe(0);
  expect(negative.params().alpha).toBeUndefined();
  expect(sameRun(runIdentity(negative.runSettings('wasm')), runIdentity(new Settings('?comp=linear').runSettings('wasm')))).toBe(true);
  expect(sameRun(runIdentity(negative.runSettings('wasm')), runIdentity(scalar.runSettings('wasm')))).toBe(false);
});
