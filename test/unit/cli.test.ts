/** The CLI as a person runs it: `lopper …` in a child process, stdout/stderr and exit codes. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { lopper } from '../helpers/cli';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { ReferenceModel, referencePerplexity } from '../../src/engine/reference/forward';
import { DATA, MODELS } from '../helpers/paths';

const STORIES = join(MODELS, 'stories260K/stories260K.bin');
const EVAL = join(DATA, 'tinystories/eval.txt');


describe('lopper CLI', () => {
  test('generate: stories260K greedy from BOS', async () => {
    const r = await lopper('generate', '--model', STORIES, '--max-tokens', '40');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Once upon a time, there was a little girl named Lily\./);
  });

  test('generate --json with a prompt and sampling', async () => {
    const r = await lopper('generate', '--model', STORIES, '--prompt', 'The cat', '--max-tokens', '10', '--temperature', '0.8', '--top-k', '20', '--seed', '3', '--json');
    const j = JSON.parse(r.stdout);
    expect(j.prompt_ids.slice(0, 1)).toEqual([1]);
    expect(j.text.startsWith('The cat')).toBe(true);
    expect(j.ids.length).toBeLessThanOrEqual(10);
  });

  test('ppl --json equals the Float64 reference on the same text (first 4 windows)', async () => {
    const r = await lopper('ppl', '--model', STORIES, '--text', EVAL, '--window', '256', '--max-windows', '4', '--json');
    expect(r.code).toBe(0);
    const got = JSON.parse(r.stdout);
    const ck = await loadLlama2cFile(STORIES);
    const ids = [1, ...ck.tokenizer.encode(readFileSync(EVAL, 'utf8'))];
    const want = referencePerplexity(new ReferenceModel(ck), ids, 256, 4);
    expect(got.tokens).toBe(want.tokens);
    expect(got.windows).toBe(4);
    expect(Math.abs(got.ppl / want.ppl - 1)).toBeLessThan(1e-4);
  });

  test('convert --to hf, then info and ppl on the folder give the same model and perplexity', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'lopper-')), 'stories-hf');
    expect((await lopper('convert', '--model', STORIES, '--to', 'hf', '--out', out)).code).toBe(0);
    const info = JSON.parse((await lopper('info', '--model', out, '--json')).stdout);
    expect(info.format).toBe('hf');
    expect(info.config.numLayers).toBe(5);
    expect(info.tokenizer).toBe('hf');
    const a = JSON.parse((await lopper('ppl', '--model', STORIES, '--text', EVAL, '--max-windows', '3', '--json')).stdout);
    const b = JSON.parse((await lopper('ppl', '--model', out, '--text', EVAL, '--max-windows', '3', '--json')).stdout);
    expect(b.tokens).toBe(a.tokens);
    expect(Math.abs(b.ppl / a.ppl - 1)).toBeLessThan(1e-6);
  });

  test('the WASM runtime gives the same perplexity as the native one', async () => {
    const a = JSON.parse((await lopper('ppl', '--model', STORIES, '--text', EVAL, '--max-windows', '2', '--json')).stdout);
    const b = JSON.parse((await lopper('ppl', '--model', STORIES, '--text', EVAL, '--max-windows', '2', '--runtime', 'wasm', '--json')).stdout);
    expect(Math.abs(b.ppl / a.ppl - 1)).toBeLessThan(1e-5);
  });

  describe('bad input: a message on stderr, non-zero exit, no stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lopper-bad-'));
    const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

    test('missing model', async () => {
      const r = await lopper('info', '--model', join(dir, 'nope.bin'));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('nope.bin');
      noStack(r.stderr);
    });

    test('truncated llama2.c file names the file', async () => {
      const bin = join(dir, 'model.bin');
      writeFileSync(bin, readFileSync(STORIES).subarray(0, 5000));
      writeFileSync(join(dir, 'tokenizer.bin'), readFileSync(join(MODELS, 'stories260K/tok512.bin')));
      const r = await lopper('ppl', '--model', bin, '--text', EVAL);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('model.bin');
      noStack(r.stderr);
    });

    test('text shorter than one window', async () => {
      const txt = join(dir, 'short.txt');
      writeFileSync(txt, 'Once upon a time');
      const r = await lopper('ppl', '--model', STORIES, '--text', txt, '--window', '256');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/fewer than one window of 256/);
      noStack(r.stderr);
    });

    test('malformed and unknown options, unknown command', async () => {
      const a = await lopper('ppl', '--model', STORIES, '--text', EVAL, '--window', 'abc');
      expect(a.code).toBe(1);
      expect(a.stderr).toContain('--window');
      const b = await lopper('info', '--model', STORIES, '--bogus');
      expect(b.code).toBe(1);
      expect(b.stderr).toContain('--bogus');
      const c = await lopper('frobnicate');
      expect(c.code).toBe(2);
      for (const r of [a, b, c]) noStack(r.stderr);
    });
  });
});
