/**
 * The app shell in real Chromium: mount App, load stories260K from the /models/ mirror
 * through the model worker, and read the summary the page shows.
 */
import { mount, unmount } from 'svelte';
import { afterEach, expect, it, vi } from 'vitest';
import App from '../../src/ui/App.svelte';

let app: ReturnType<typeof mount> | null = null;
const testerUrl = location.href;
afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
  history.replaceState(history.state, '', testerUrl); // the app records ?model= in the URL
});

function field(label: string): string {
  const dd = document.querySelector(`[data-testid=model-summary] dd[data-field="${label}"] strong`);
  return dd?.textContent?.trim() ?? '';
}

it('loads stories260K (llama2.c + tok512) from the mirror and shows its summary', async () => {
  const target = document.createElement('div');
  document.body.append(target);
  app = mount(App, { target });

  const model = target.querySelector<HTMLInputElement>('input[name=model]')!;
  const tokenizer = target.querySelector<HTMLInputElement>('input[name=tokenizer]')!;
  expect(model.value).toBe('/models/stories260K/stories260K.bin');
  expect(tokenizer.value).toBe('/models/stories260K/tok512.bin');

  target.querySelector<HTMLButtonElement>('button[type=submit]')!.click();
  await vi.waitFor(
    () => {
      const err = target.querySelector('.error');
      if (err) throw new Error(`page shows an error: ${err.textContent}`);
      expect(target.querySelector('[data-testid=model-summary]')).not.toBeNull();
    },
    { timeout: 30_000, interval: 50 },
  );

  expect(field('Architecture')).toBe('LlamaForCausalLM');
  expect(field('Layers')).toBe('5');
  expect(field('Hidden size')).toBe('64');
  expect(field('MLP size')).toBe('172');
  expect(field('Heads')).toBe('8');
  expect(field('KV heads')).toBe('4');
  expect(field('Vocabulary')).toBe('512');
  expect(field('Embeddings')).toBe('tied');
  expect(field('Dtype')).toBe('f32');
  // embed 512·64 + 5 layers · (2·64 norms + 64·64 q + 2·32·64 k,v + 64·64 o + 3·172·64 mlp) + 64 final norm
  const expected = 512 * 64 + 5 * (2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 172 * 64) + 64;
  expect(field('Parameters')).toBe(new Intl.NumberFormat('en-US').format(expected));
  expect(target.querySelectorAll('.stack .layer')).toHaveLength(5);
  // The loaded model is a link: ?model=…&tokenizer=…
  expect(new URL(location.href).searchParams.get('model')).toBe('/models/stories260K/stories260K.bin');
});

it('says what is wrong when the URL does not exist', async () => {
  const target = document.createElement('div');
  document.body.append(target);
  app = mount(App, { target });
  const model = target.querySelector<HTMLInputElement>('input[name=model]')!;
  model.value = '/models/nope/missing.bin';
  model.dispatchEvent(new Event('input', { bubbles: true }));
  target.querySelector<HTMLButtonElement>('button[type=submit]')!.click();
  await vi.waitFor(
    () => {
      const text = target.querySelector('.error')?.textContent ?? '';
      expect(text, target.innerHTML + ' @ ' + location.href).toMatch(/missing\.bin.*404|404.*missing\.bin/);
    },
    { timeout: 10_000 },
  );
});
