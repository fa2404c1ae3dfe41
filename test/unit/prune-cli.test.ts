/** `lopper prune` and `lopper compare` as a person runs them (child process, JSON output, errors, --out). */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { lopper } from '../helpers/cli';

const STORIES = '../shared/models/stories260K/stories260K.bin';
const CALIB = '../shared/data/tinystories/calib.txt';
const EVAL = '../shared/data/tinystories/eval.txt';


const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

describe('lopper compare', () => {
  test('--json (the issue\'s command): dense, baseline and Prune&Comp', async () => {
    const r = await lopper('compare', '--model', STORIES, '--metric', 'bi', '--layers', '2', '--calib', CALIB, '--eval', EVAL, '--window', '256', '--fold', 'paper', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.dense.ppl).toBeGreaterThan(1);
    expect(j.baseline.removed).toHaveLength(2);
    expect(j.baseline.ppl).toBeGreaterThan(j.dense.ppl);
    expect(j.prunecomp.removed).toHaveLength(2);
    expect(j.prunecomp.scales).toHaveLength(2);
    expect(j.prunecomp.ppl).toBeGreaterThan(j.dense.ppl);
    expect(j.prunecomp.untied).toBe(true);
    expect(j.prunecomp.steps[1].scores).toHaveLength(4);
    expect(j.calibration).toEqual({ windows: 8, window: 256 });
    expect(j.eval.windows).toBeGreaterThan(1);
  });

  test('table: dense, baseline and Prune&Comp rows', async () => {
    const r = await lopper('compare', '--model', STORIES, '--metric', 'reverse', '--layers', '1', '--calib', CALIB, '--eval', EVAL, '--calib-windows', '2');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^dense\s+\d+\.\d{4}/m);
    expect(r.stdout).toMatch(/^baseline\s+\d+\.\d{4}\s+4\s/m);
    expect(r.stdout).toMatch(/^Prune&Comp\s+\d+\.\d{4}\s+4\s+\(\d\.\d{4}\)/m); // last layer: measured, not folded
  });

  test('--eval is required', async () => {
    const r = await lopper('compare', '--model', STORIES, '--metric', 'bi', '--layers', '1', '--calib', CALIB);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--eval is required');
  });
});

describe('lopper prune', () => {
  test('--out writes a llama2.c model that `ppl` reads, with the perplexity prune reported', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'lopper-prune-')), 'pruned');
    const r = await lopper('prune', '--model', STORIES, '--metric', 'bi', '--layers', '2', '--mode', 'prunecomp', '--calib', CALIB, '--calib-windows', '4', '--eval', EVAL, '--out', dir, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.out).toBe(join(dir, 'model.bin'));
    expect(readdirSync(dir).sort()).toEqual(['model.bin', 'plan.json', 'prune-layers.txt', 'tokenizer.bin']);
    expect(j.removed).toHaveLength(2);
    expect(j.layersAfter).toBe(3);
    expect(j.mode).toBe('prunecomp');
    const info = JSON.parse((await lopper('info', '--model', j.out, '--json')).stdout);
    expect(info.config.numLayers).toBe(3);
    expect(info.config.tieWordEmbeddings).toBe(false); // paper fold on a tied model: untied
    const p = JSON.parse((await lopper('ppl', '--model', j.out, '--text', EVAL, '--window', '256', '--json')).stdout);
    expect(p.tokens).toBe(j.pruned.tokens);
    expect(Math.abs(p.ppl / j.pruned.ppl - 1)).toBeLessThan(1e-6);
    const d = JSON.parse((await lopper('ppl', '--model', STORIES, '--text', EVAL, '--window', '256', '--json')).stdout);
    expect(Math.abs(d.ppl / j.dense.ppl - 1)).toBeLessThan(1e-9);
    // no temporary folder left beside it
    expect(readdirSync(join(dir, '..'))).toEqual(['pruned']);
  });

  test('--out to a Hugging Face folder for an HF model (baseline mode, into an existing empty folder)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lopper-prune-hf-'));
    const hf = join(root, 'hf');
    expect((await lopper('convert', '--model', STORIES, '--to', 'hf', '--out', hf)).code).toBe(0);
    const out = join(root, 'pruned');
    mkdirSync(out); // an existing empty folder is fine
    const r = await lopper('prune', '--model', hf, '--metric', 'angular', '--layers', '1', '--mode', 'baseline', '--calib', CALIB, '--calib-windows', '2', '--eval', EVAL, '--out', out, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.out).toBe(out);
    expect(existsSync(join(out, 'config.json'))).toBe(true);
    const p = JSON.parse((await lopper('ppl', '--model', out, '--text', EVAL, '--json')).stdout);
    expect(Math.abs(p.ppl / j.pruned.ppl - 1)).toBeLessThan(1e-6);
  });

  describe('bad input: a message, exit 1, no stack trace, nothing written', () => {
    const root = mkdtempSync(join(tmpdir(), 'lopper-prune-bad-'));
    const empty = join(root, 'empty.txt');
    const short = join(root, 'short.txt');
    writeFileSync(empty, '');
    writeFileSync(short, 'Once upon a time');
    const base = ['--model', STORIES, '--metric', 'bi', '--mode', 'prunecomp', '--calib', CALIB];
    const cases: [string, string[], RegExp][] = [
      ['n ≥ number of layers', [...base, '--layers', '5'], /cannot remove 5 of 5 layers/],
      ['barriers leave nothing', ['--model', STORIES, '--metric', 'mag', '--mode', 'prunecomp', '--calib', CALIB, '--layers', '1'], /mag cannot remove 1 of 5.*--skip-first/],
      ['empty calibration text', ['--model', STORIES, '--metric', 'bi', '--mode', 'prunecomp', '--calib', empty, '--layers', '1'], /empty\.txt: calibration text: the text has 1 token/],
      ['too-short calibration text', ['--model', STORIES, '--metric', 'bi', '--mode', 'prunecomp', '--calib', short, '--layers', '1'], /short\.txt: calibration text: .*fewer than one window of 256/],
      ['too-short evaluation text', [...base, '--layers', '1', '--eval', short], /short\.txt: evaluation text/],
      ['unknown metric', ['--model', STORIES, '--metric', 'nope', '--mode', 'prunecomp', '--calib', CALIB, '--layers', '1'], /--metric must be one of/],
      ['unknown mode', ['--model', STORIES, '--metric', 'bi', '--mode', 'fast', '--calib', CALIB, '--layers', '1'], /--mode must be one of/],
      ['bad fold', [...base, '--layers', '1', '--fold', 'both'], /--fold must be paper or tied/],
    ];
    test.each(cases)('%s', async (_, args, message) => {
      const out = join(root, 'out-' + Math.random().toString(36).slice(2));
      const r = await lopper('prune', ...args, '--out', out);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      noStack(r.stderr);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]);
    });

    test('--out that is a non-empty folder', async () => {
      const out = join(root, 'full');
      mkdirSync(out);
      writeFileSync(join(out, 'keep.txt'), 'x');
      const r = await lopper('prune', ...base, '--layers', '1', '--out', out);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('--out must be a new or empty folder');
      expect(readdirSync(out)).toEqual(['keep.txt']);
    });
  });
});
