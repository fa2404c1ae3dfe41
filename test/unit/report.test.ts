/**
 * The results report (src/ui/report/): from a real run on stories260K (BI, n = 2, Prune&Comp
 * against the baseline, 3 calibration windows of 64 tokens), zero-shot accuracies of its three
 * models (PIQA and BoolQ, 6 items each) and a small lab (BI × none/scalar, n = 1…2, with the
 * zero-shot average), the report's Markdown tables show those numbers (perplexities and
 * scales to 6 significant digits, accuracies and RP to 0.01), its CSVs parse back to the very
 * same doubles, its SVGs are well-formed standalone SVG, and its link carries the settings.
 * The link's round trip through the app's settings store is test/browser/report.test.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { compareReportRun, type CompareReportSetup } from '../../src/cli/report';
import { loadTasks } from '../../src/cli/eval';
import type { LabResult } from '../../src/app/lab-data';
import { labRun, labSplit } from '../../src/app/lab';
import { compareRun, textWindows, tokenizeText, type CompareRunOutput } from '../../src/app/run';
import type { TaskResult } from '../../src/engine/eval/accuracy';
import { evaluate, type TaskItems } from '../../src/engine/eval/evaluate';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { catalogIdOfKey, reportFiles, runLink, sig6, type ReportEvaluation, type ReportFile, type ReportRun } from '../../src/app/report/report';
import { perplexitySvg, xmlEscape } from '../../src/app/report/svg';
import { csvRecords, mdTable, svgProblems } from '../helpers/report-parse';
import { DATA, MODELS } from '../helpers/paths';

const runtime = nodeRuntime(1);
const MODEL = join(MODELS, 'stories260K/stories260K.bin');
const CALIB = join(DATA, 'tinystories/calib.txt');
const EVAL = join(DATA, 'tinystories/eval.txt');
const TASKS = ['piqa', 'boolq'] as const;
const LIMIT = 6;

let ck: Checkpoint;
let run: CompareRunOutput;
let report: ReportRun;
let evaluation: ReportEvaluation;
let lab: LabResult;
let files: Map<string, string>;
let link: string;

/** Zero-shot accuracy of one model on the test's items. */
async function accuracies(m: Checkpoint, tasks: TaskItems[]): Promise<TaskResult[]> {
  const engine = new Engine(m, runtime);
  try {
    return await evaluate(m, engine, tasks, { limit: LIMIT });
  } finally {
    await engine.dispose();
  }
}

beforeAll(async () => {
  ck = await loadLlama2cFile(MODEL);
  const calibText = readFileSync(CALIB, 'utf8');
  const evalText = readFileSync(EVAL, 'utf8');
  const windows = textWindows(tokenizeText(ck, calibText), 64, 4, 'calibration text', CALIB);
  const evalIds = tokenizeText(ck, evalText).slice(0, 64 * 3);
  run = await compareRun(ck, runtime, windows.slice(0, 3), { metric: 'bi', layers: 2, mode: 'prunecomp', fold: 'paper', evaluation: { ids: evalIds, window: 64 } });
  const setup: CompareReportSetup = {
    ck,
    modelPath: MODEL,
    runtime: 'node',
    metric: 'bi',
    layers: 2,
    fold: 'paper',
    comp: 'scalar',
    alpha: 0,
    barriers: {},
    seed: 0,
    calib: { path: CALIB, text: calibText, windows: 3 },
    eval: { path: EVAL, text: evalText },
    window: 64,
  };
  report = compareReportRun(setup, run);
  const tasks = await loadTasks([...TASKS], join(DATA, 'qa'), LIMIT);
  evaluation = {
    settings: { tasks: [...TASKS], limit: LIMIT },
    source: 'the test data',
    results: { dense: await accuracies(ck, tasks), baseline: await accuracies(run.models.baseline, tasks), prunecomp: await accuracies(run.models.compared!, tasks) },
  };
  const split = labSplit(windows);
  lab = await labRun(ck, runtime, split.fit, { metrics: ['bi'], comps: ['none', 'scalar'], layers: 2, heldOut: split.heldOut, evaluation: { ids: evalIds, window: 64 }, zeroShot: { tasks, limit: LIMIT } });
  link = runLink('http://127.0.0.1:4173/', { model: 'stories260K' }, report.settings);
  const out: ReportFile[] = reportFiles({ run: report, evaluation, lab: { lab, split: { fit: split.fit.length, heldOut: split.heldOut.length, window: 64 }, alpha: 0 }, link, generator: 'the report test', date: new Date(0) });
  files = new Map(out.map((f) => [f.name, f.text]));
});

const num = (cell: string) => Number(cell);
const rel = (a: number, b: number) => Math.abs(a / b - 1);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

describe('the report of a run on stories260K', () => {
  test('its files: report.md, a CSV per table, an SVG per figure', () => {
    expect([...files.keys()]).toEqual(['report.md', 'perplexity.csv', 'removed-layers.csv', 'magnitude.csv', 'accuracy.csv', 'lab.csv', 'perplexity.svg', 'magnitude.svg', 'accuracy.svg', 'lab.svg']);
    const md = files.get('report.md')!;
    for (const name of files.keys()) if (name.endsWith('.svg')) expect(md).toContain(`](${name})`);
    expect(md).toContain(`](<${link}>)`);
    expect(md.split('\n')[0]).toBe('# stories260K: 2 of 5 layers removed — bi, Prune&Comp (scalar) vs the baseline');
  });

  test('the perplexity table: each model’s perplexity (6 significant digits) and removed layers', () => {
    const t = mdTable(files.get('report.md')!, 'Perplexity on the evaluation text');
    const want = [
      ['dense', run.ppl!.dense.ppl, '—'],
      ['baseline', run.ppl!.baseline.ppl, run.plans.baseline.removed.join(', ')],
      ['Prune&Comp (scalar)', run.ppl!.compared!.ppl, run.plans.compared!.removed.join(', ')],
    ] as const;
    expect(t.rows.map((r) => r[0])).toEqual(want.map((w) => w[0]));
    for (const [i, [, ppl, removed]] of want.entries()) {
      expect(t.rows[i][1]).toBe(sig6(ppl));
      expect(rel(num(t.rows[i][1]), ppl)).toBeLessThan(5e-6);
      expect(rel(num(t.rows[i][2]), ppl / run.ppl!.dense.ppl)).toBeLessThan(5e-6);
      expect(t.rows[i][3]).toBe(removed);
    }
    // the method's perplexity is not the baseline's (the table does not repeat one number)
    expect(num(t.rows[1][1])).not.toBe(num(t.rows[2][1]));
  });

  test('the removed-layers table: both plans’ layers in order and each step’s scale s', () => {
    const t = mdTable(files.get('report.md')!, 'Removed layers, in order');
    const comp = run.plans.compared!;
    expect(t.header).toEqual(['step', 'baseline: layer', 'Prune&Comp (scalar): layer', 'scale s', 'folded']);
    expect(t.rows.map((r) => num(r[1]))).toEqual(run.plans.baseline.removed);
    expect(t.rows.map((r) => num(r[2]))).toEqual(comp.removed);
    for (const [i, r] of t.rows.entries()) {
      expect(rel(num(r[3]), comp.scales[i])).toBeLessThan(5e-6);
      expect(r[4]).toBe(comp.steps[i].folded ? 'yes' : 'no');
    }
    expect(comp.scales.every((s) => s !== 1)).toBe(true);
  });

  test('the zero-shot table: accuracy per task, average and RP = 100 · average / the dense average', () => {
    const t = mdTable(files.get('report.md')!, 'Zero-shot accuracy');
    expect(t.header).toEqual(['model', `PIQA (acc_norm, n=${LIMIT})`, `BoolQ (acc, n=${LIMIT})`, 'average', 'RP']);
    const results = [evaluation.results.dense, evaluation.results.baseline, evaluation.results.prunecomp!];
    const denseAvg = mean(results[0].map((r) => r.reported));
    for (const [i, rs] of results.entries()) {
      const row = t.rows[i];
      for (const [j, r] of rs.entries()) expect(parseFloat(row[1 + j])).toBeCloseTo(100 * r.reported, 2);
      const avg = mean(rs.map((r) => r.reported));
      expect(num(row[3])).toBeCloseTo(100 * avg, 2);
      expect(num(row[4])).toBeCloseTo((100 * avg) / denseAvg, 2);
    }
    expect(t.rows[0][4]).toBe('100.00');
  });

  test('the lab table: every row’s perplexities and layers, each n’s best starred', () => {
    const t = mdTable(files.get('report.md')!, 'The compensation lab');
    expect(t.rows).toHaveLength(lab.rows.length + 1);
    expect(rel(num(t.rows[0][4]), lab.dense.heldOut)).toBeLessThan(5e-6);
    for (const [i, row] of lab.rows.entries()) {
      const cells = t.rows[i + 1];
      expect([num(cells[1]), cells[2], cells[3]]).toEqual([row.n, row.metric, row.comp]);
      expect(rel(num(cells[4]), row.heldOut)).toBeLessThan(5e-6);
      expect(rel(num(cells[5]), row.eval!)).toBeLessThan(5e-6);
      expect(num(cells[6])).toBeCloseTo(100 * row.zeroShot!, 2);
      expect(num(cells[7])).toBeCloseTo((100 * row.zeroShot!) / lab.dense.zeroShot!, 2);
      expect(cells[8]).toBe(row.removed.join(', '));
      expect(cells[0] === '★').toBe(lab.best.some((b) => b.n === row.n && b.metric === row.metric && b.comp === row.comp));
    }
    expect(t.rows.filter((r) => r[0] === '★')).toHaveLength(2);
  });

  test('the CSVs parse back to the same doubles', () => {
    const ppl = csvRecords(files.get('perplexity.csv')!);
    expect(ppl.map((r) => [r.model, num(r.ppl), num(r.eval_tokens), r.removed])).toEqual([
      ['dense', run.ppl!.dense.ppl, run.ppl!.dense.tokens, ''],
      ['baseline', run.ppl!.baseline.ppl, run.ppl!.baseline.tokens, run.plans.baseline.removed.join(' ')],
      ['prunecomp', run.ppl!.compared!.ppl, run.ppl!.compared!.tokens, run.plans.compared!.removed.join(' ')],
    ]);
    const steps = csvRecords(files.get('removed-layers.csv')!);
    expect(steps.map((r) => num(r.scale))).toEqual(run.plans.compared!.scales);
    expect(steps.map((r) => num(r.compared_layer))).toEqual(run.plans.compared!.removed);
    expect(steps.map((r) => num(r.baseline_score))).toEqual(run.plans.baseline.steps.map((s) => s.scores[s.at]));
    const mag = csvRecords(files.get('magnitude.csv')!);
    expect(mag.map((r) => num(r.dense))).toEqual(run.curves!.dense.map((p) => p.value));
    expect(mag.filter((r) => r.prunecomp !== '').map((r) => num(r.prunecomp))).toEqual(run.curves!.compared!.map((p) => p.value));
    const acc = csvRecords(files.get('accuracy.csv')!);
    expect(acc.map((r) => [num(r.piqa), num(r.boolq_stderr), num(r.piqa_n)])).toEqual(
      [evaluation.results.dense, evaluation.results.baseline, evaluation.results.prunecomp!].map((rs) => [rs[0].reported, rs[1].acc.stderr, LIMIT]),
    );
    const labRows = csvRecords(files.get('lab.csv')!);
    expect(labRows.slice(1).map((r) => num(r.heldout_ppl))).toEqual(lab.rows.map((r) => r.heldOut));
  });

  test('each SVG is a well-formed standalone SVG document', () => {
    for (const [name, text] of files) if (name.endsWith('.svg')) expect(svgProblems(text), name).toEqual([]);
    // the check finds what it looks for
    expect(svgProblems('<svg><title>x</title><g></svg>').length).toBeGreaterThan(0);
    expect(svgProblems(files.get('perplexity.svg')!.replace('<title>', '<title>a & b')).join()).toMatch(/an unescaped "&" in "a & b/);
  });

  test('labels are escaped: a model named with XML’s special characters still gives well-formed SVG and its text back', () => {
    const label = `<b> & "q" 'x'`;
    const svg = perplexitySvg([{ label, value: 5.5, color: '#000000' }]);
    expect(svgProblems(svg)).toEqual([]);
    expect(svg).toContain(`>${xmlEscape(label)}</text>`);
    expect(xmlEscape(label)).toBe('&lt;b&gt; &amp; &quot;q&quot; &apos;x&apos;');
  });

  test('a lab alone (the lab panel before any run): its section, table and figure, nothing of a run', () => {
    const split = { fit: 3, heldOut: 1, window: 64 };
    const out = reportFiles({ run: null, modelName: 'stories260K', lab: { lab, split, alpha: 0 }, link: null, generator: 'the report test' });
    expect(out.map((f) => f.name)).toEqual(['report.md', 'lab.csv', 'lab.svg']);
    const md = out[0].text;
    expect(md.split('\n')[0]).toBe('# stories260K: the compensation lab');
    expect(md).not.toContain('## Perplexity on the evaluation text');
    expect(mdTable(md, 'The compensation lab').rows).toHaveLength(lab.rows.length + 1);
    expect(svgProblems(out[2].text)).toEqual([]);
    expect(() => reportFiles({ run: null, link: null, generator: 'x' })).toThrow('a report needs a run or a lab');
  });

  test('the link: the settings store’s parameters, defaults left out, texts by their built-in ids', () => {
    expect(link).toBe('http://127.0.0.1:4173/?model=stories260K&metric=bi&layers=2&mode=prunecomp&fold=paper&windows=3&window=64&calib=tinystories-calib&eval=tinystories-eval');
    const linear = runLink('https://x.test/app/', null, { ...report.settings, backend: 'webgpu', comp: 'linear', alpha: 0.5, calib: 'custom:mine.txt:0123456789abcdef', skipFirst: 1 });
    const q = new URL(linear).searchParams;
    expect(Object.fromEntries(q)).toEqual({ backend: 'webgpu', metric: 'bi', layers: '2', mode: 'prunecomp', fold: 'paper', windows: '3', window: '64', calib: 'custom', eval: 'tinystories-eval', skipFirst: '1', comp: 'linear', alpha: '0.5' });
    expect(catalogIdOfKey('catalog:stories260K@main')).toBe('stories260K');
    expect(catalogIdOfKey('url:https://x/y.bin')).toBeNull();
  });
});
