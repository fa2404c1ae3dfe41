/**
 * `lopper compare … --report DIR` (src/cli/report.ts): on stories260K (BI, n = 2, 3 windows of
 * 64 tokens, one thread) it writes report.md, the tables as CSV and the figures as SVG into DIR
 * (created, nested), and the numbers in them are `lopper compare --json`'s exactly (the same
 * computation on onnxruntime-node, one thread); a DIR that exists and is not a folder is
 * refused before any work, and files already in DIR other than the report's stay.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { lopper } from '../helpers/cli';
import { DATA, MODELS } from '../helpers/paths';
import { csvRecords, mdTable, svgProblems } from '../helpers/report-parse';

const args = ['compare', '--model', join(MODELS, 'stories260K/stories260K.bin'), '--metric', 'bi', '--layers', '2', '--calib', join(DATA, 'tinystories/calib.txt'), '--eval', join(DATA, 'tinystories/eval.txt'), '--calib-windows', '3', '--window', '64', '--threads', '1'];

interface Json {
  dense: { ppl: number; curve: { layer: number; value: number }[] };
  baseline: { ppl: number; removed: number[]; scales: number[] };
  prunecomp: { ppl: number; removed: number[]; scales: number[]; curve: { layer: number; value: number }[] };
}

let tmp: string;
let json: Json;
let dir: string;
let stderr: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lopper-report-'));
  dir = join(tmp, 'nested', 'report');
  const [a, b] = await Promise.all([lopper(...args, '--json'), lopper(...args, '--report', dir)]);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
  json = JSON.parse(a.stdout) as Json;
  stderr = b.stderr;
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('lopper compare --report DIR', () => {
  test('writes report.md, the CSVs and the SVGs into a new nested folder, and says so', () => {
    expect(readdirSync(dir).sort()).toEqual(['magnitude.csv', 'magnitude.svg', 'perplexity.csv', 'perplexity.svg', 'removed-layers.csv', 'report.md']);
    expect(stderr).toContain(`report: 6 files in ${dir}`);
    for (const f of ['perplexity.svg', 'magnitude.svg']) expect(svgProblems(readFileSync(join(dir, f), 'utf8')), f).toEqual([]);
  });

  test('its numbers are compare --json’s', () => {
    const ppl = csvRecords(readFileSync(join(dir, 'perplexity.csv'), 'utf8'));
    expect(ppl.map((r) => Number(r.ppl))).toEqual([json.dense.ppl, json.baseline.ppl, json.prunecomp.ppl]);
    expect(ppl.map((r) => r.removed)).toEqual(['', json.baseline.removed.join(' '), json.prunecomp.removed.join(' ')]);
    const steps = csvRecords(readFileSync(join(dir, 'removed-layers.csv'), 'utf8'));
    expect(steps.map((r) => Number(r.scale))).toEqual(json.prunecomp.scales);
    expect(steps.map((r) => Number(r.baseline_layer))).toEqual(json.baseline.removed);
    const mag = csvRecords(readFileSync(join(dir, 'magnitude.csv'), 'utf8'));
    expect(mag.map((r) => Number(r.dense))).toEqual(json.dense.curve.map((p) => p.value));
    expect(mag.filter((r) => r.prunecomp !== '').map((r) => Number(r.prunecomp))).toEqual(json.prunecomp.curve.map((p) => p.value));
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    const t = mdTable(md, 'Perplexity on the evaluation text');
    expect(t.rows.map((r) => Number(r[1]))).toEqual([json.dense.ppl, json.baseline.ppl, json.prunecomp.ppl].map((x) => Number(x.toPrecision(6))));
    expect(md).toContain('](<http://127.0.0.1:4173/?model=stories260K&metric=bi&layers=2&mode=prunecomp&fold=paper&windows=3&window=64&calib=tinystories-calib&eval=tinystories-eval>)');
  });

  test('refuses a DIR that is a file, before any work; keeps other files in an existing DIR; checks --app-url', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'keep me');
    const r = await lopper(...args, '--report', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`lopper compare: ${file}: --report must be a folder (it exists and is not one)\n`);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
    const bad = await lopper(...args, '--report', dir, '--app-url', 'ftp://x');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--app-url must be an http(s) URL');
    const other = join(dir, 'notes.txt');
    writeFileSync(other, 'mine');
    const again = await lopper(...args, '--report', dir, '--app-url', 'https://lopper.example/app/');
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(other, 'utf8')).toBe('mine');
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toContain('(<https://lopper.example/app/?model=stories260K&');
  });
});
