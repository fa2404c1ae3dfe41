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

  test('generate --json: top-k 1 at any temperature is greedy, and greedy is the reference argmax chain', async () => {
    const ck = await loadLlama2cFile(STORIES);
    const ref = new ReferenceModel(ck);
    const V = ck.config.vocabSize;
    const gen = async (...flags: string[]) => {
      const r = await lopper('generate', '--model', STORIES, '--prompt', 'Lily wanted to', '--max-tokens', '24', ...flags, '--json');
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { prompt_ids: number[]; ids: number[]; text: string };
    };
    const greedy = await gen('--temperature', '0');
    // the oracle: argmax of the Float64 reference's logits, one token at a time
    const chain = [...greedy.prompt_ids];
    for (let i = 0; i < 24; i++) {
      const l = ref.forward(chain).logits.subarray((chain.length - 1) * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (l[j] > l[best]) best = j;
      if (best === ck.config.eosTokenId) break;
      chain.push(best);
    }
    expect(greedy.prompt_ids[0]).toBe(1);
    expect(greedy.ids).toEqual(chain.slice(greedy.prompt_ids.length));
    expect(greedy.text.startsWith('Lily wanted to')).toBe(true);
    for (const [t, seed] of [['0.8', '3'], ['2.5', '11']]) {
      expect((await gen('--temperature', t, '--top-k', '1', '--seed', seed)).ids, `T ${t} seed ${seed}`).toEqual(greedy.ids);
    }
  });

  test('generate --json with temperature and top-k: every token is among the reference top k of its prefix; the seed decides', async () => {
    const ck = await loadLlama2cFile(STORIES);
    const ref = new ReferenceModel(ck);
    const V = ck.config.vocabSize;
    const k = 5;
    const gen = async (seed: number) => {
      const r = await lopper('generate', '--model', STORIES, '--prompt', 'Lily wanted to', '--max-tokens', '30', '--temperature', '1.5', '--top-k', String(k), '--seed', String(seed), '--json');
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { prompt_ids: number[]; ids: number[] };
    };
    const runs = [await gen(1), await gen(2), await gen(3)];
    let outsideTop1 = 0;
    for (const [n, run] of runs.entries()) {
      const prefix = [...run.prompt_ids];
      for (const id of run.ids) {
        const l = ref.forward(prefix).logits.subarray((prefix.length - 1) * V);
        const sorted = [...l].sort((a, b) => b - a);
        // among the top k; within 1e-3 of the k-th logit counts too (float32 engine vs float64 reference near a tie)
        expect(l[id], `seed ${n + 1}, token ${prefix.length - run.prompt_ids.length}: id ${id}`).toBeGreaterThanOrEqual(sorted[k - 1] - 1e-3);
        if (l[id] < sorted[0]) outsideTop1++;
        prefix.push(id);
      }
    }
    // T = 1.5 over the top 5 does sample: many tokens are not the argmax, and the seeds give different texts
    expect(outsideTop1).toBeGreaterThan(10);
    expect(runs[0].ids).not.toEqual(runs[1].ids);
    expect(runs[1].ids).not.toEqual(runs[2].ids);
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

    test('--runtime cuda where onnxruntime-node has no CUDA provider: what is missing and how to install it', async () => {
      // Where a GPU server has the provider installed this is a real run instead, and the same
      // command's perplexity must equal the CPU's.
      const r = await lopper('ppl', '--model', STORIES, '--text', EVAL, '--max-windows', '1', '--runtime', 'cuda', '--json');
      if (r.code === 0) {
        const cpu = JSON.parse((await lopper('ppl', '--model', STORIES, '--text', EVAL, '--max-windows', '1', '--json')).stdout);
        expect(Math.abs(JSON.parse(r.stdout).ppl / cpu.ppl - 1)).toBeLessThan(1e-5);
        return;
      }
      expect(r.code).toBe(1);
      // (onnxruntime's own log line about the missing library may come first)
      expect(r.stderr).toMatch(/^lopper ppl: --runtime cuda: onnxruntime-node could not start its CUDA execution provider on GPU 0 \(.+\)\. .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node\n$/m);
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
