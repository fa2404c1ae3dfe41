/**
 * Weights that stay on disk (model/tensor.ts lazyTensor, loadHfFolder's lazyAbove): what an
 * 8B model's 16 GB need on a machine that cannot hold them. A lazy checkpoint must give the
 * same numbers as the same folder read into memory — every pass, plan, scale, folded tensor
 * and exported byte — while holding no tensor data itself; and a file changed after loading
 * is an error naming it, not wrong numbers.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { concatChunks } from '../../src/engine/formats/chunks';
import { hfFolderFiles, loadHfFolder, SAFETENSORS } from '../../src/engine/formats/hf';
import { DirSource } from '../../src/engine/formats/node-source';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { isLazy } from '../../src/engine/model/tensor';
import { prune } from '../../src/engine/prune/plan';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { lopper } from '../helpers/cli';
import { randomHfFolder, type RandomCheckpointOptions } from '../helpers/random-checkpoint';

const node = nodeRuntime(1);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function folder(opts: RandomCheckpointOptions, sharded = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-lazy-'));
  dirs.push(dir);
  for (const [name, bytes] of randomHfFolder(opts, { sharded })) writeFileSync(join(dir, name), bytes);
  return dir;
}

const bytesOf = (ck: Checkpoint) => new Map([...ck.tensors].map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
const exportBytes = (ck: Checkpoint) => new Map(hfFolderFiles(ck).map((f) => [f.name, Buffer.from(concatChunks(f))]));

function tokens(n: number, vocab: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31), 3 + (s % (vocab - 3))));
}

const cases: [string, RandomCheckpointOptions, boolean][] = [
  ['bf16, GQA, untied, one file', { dtype: 'bf16', numLayers: 5, numHeads: 4, numKvHeads: 2, seed: 21 }, false],
  ['f16, tied, sharded', { dtype: 'f16', numLayers: 5, tie: true, seed: 22 }, true],
  ['Qwen3 q/k norms, bf16, head_dim 16', { architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 16, numLayers: 5, dtype: 'bf16', seed: 23 }, false],
];

describe('lazy weights', () => {
  test.each(cases)('%s: the same bytes, passes, plans, folds and export as the folder read into memory', async (_, opts, sharded) => {
    const dir = folder(opts, sharded);
    const eager = await loadHfFolder(new DirSource(dir));
    const lazy = await loadHfFolder(new DirSource(dir), { lazyAbove: 0 });
    expect([...eager.tensors.values()].some(isLazy)).toBe(false);
    expect([...lazy.tensors.values()].every(isLazy)).toBe(true);
    expect(bytesOf(lazy)).toEqual(bytesOf(eager));

    // Passes, streamed (as a model over the budget runs) and whole: the same floats.
    const V = eager.config.vocabSize;
    const windows = [tokens(32, V, 1), tokens(32, V, 2), tokens(32, V, 3)];
    for (const execution of ['streamed', 'whole'] as const) {
      const [a, b] = [new Engine(eager, { ...node, execution }), new Engine(lazy, { ...node, execution })];
      const want = { stats: true, nll: true, streams: true };
      const [ra, rb] = [await a.pass(windows, want), await b.pass(windows, want)];
      expect(rb).toEqual(ra);
      await a.dispose();
      await b.dispose();
    }

    // Prune&Comp with both folds (the paper's unties and scales the embedding): the same plan,
    // scales, folded tensors (lazy ones, derived) and exported files.
    for (const fold of ['paper', 'tied'] as const) {
      const opts = { metric: 'bi' as const, layers: 2, mode: 'prunecomp' as const, fold };
      const streamed = { ...node, execution: 'streamed' as const };
      const [pe, pl] = [await prune(eager, streamed, windows, opts), await prune(lazy, streamed, windows, opts)];
      expect(pl.plan.removed).toEqual(pe.plan.removed);
      expect(pl.plan.scales).toEqual(pe.plan.scales);
      expect([...pl.checkpoint.tensors.values()].every(isLazy)).toBe(true);
      expect(bytesOf(pl.checkpoint)).toEqual(bytesOf(pe.checkpoint));
      expect(exportBytes(pl.checkpoint)).toEqual(exportBytes(pe.checkpoint));
    }
  });

  test('a weight file cut short after loading: the next read names the file, no numbers', async () => {
    const dir = folder({ dtype: 'bf16', numLayers: 3, seed: 5 });
    const lazy = await loadHfFolder(new DirSource(dir), { lazyAbove: 0 });
    truncateSync(join(dir, SAFETENSORS), 1000);
    const e = new Engine(lazy, { ...node, execution: 'streamed' });
    await expect(e.pass([tokens(8, lazy.config.vocabSize, 1)], { nll: true })).rejects.toMatchObject({
      code: 'truncated',
      message: expect.stringContaining(join(dir, SAFETENSORS)),
    });
    await e.dispose();
  });

  test('the CLI reads folders over LOPPER_LAZY_ABOVE lazily: compare gives the in-memory results, info says where the weights are', async () => {
    const dir = folder({ dtype: 'bf16', numLayers: 4, seed: 9 });
    const text = join(dir, 'text.txt');
    writeFileSync(text, 'Once upon a time there was a little robot who liked to count the stars at night. '.repeat(12));
    const args = ['compare', '--model', dir, '--metric', 'bi', '--layers', '1', '--calib', text, '--eval', text, '--window', '64', '--json'];
    const inMemory = await lopper(...args);
    process.env.LOPPER_LAZY_ABOVE = '0';
    try {
      const onDisk = await lopper(...args);
      expect(onDisk.stderr).toBe('');
      const strip = (s: string) => JSON.parse(s, (k, v) => (k.endsWith('Seconds') || k === 'seconds' ? undefined : v));
      expect(strip(onDisk.stdout)).toEqual(strip(inMemory.stdout));
      const info = JSON.parse((await lopper('info', '--model', dir, '--json')).stdout);
      expect(info.weights).toBe('on disk');
    } finally {
      delete process.env.LOPPER_LAZY_ABOVE;
    }
    expect(JSON.parse((await lopper('info', '--model', dir, '--json')).stdout).weights).toBe('in memory');
  }, 120_000);
});
