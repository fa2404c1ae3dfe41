/**
 * `lopper compare … --report DIR`: the run's results report (src/app/report/report.ts, the
 * same files the app's "Download report" zips) written into DIR — report.md, the tables as
 * CSV, the figures as SVG. DIR is created when missing; files of the same names in it are
 * replaced, nothing else is touched. The settings' link points at the app (`--app-url`,
 * default where `npm start` serves it), naming the model by its catalog id when the model
 * file is a catalog model's, and the texts by their built-in ids when they are the app's
 * built-in texts (else `custom`: a link cannot carry a text).
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { LopperError } from '../engine/errors';
import type { Checkpoint } from '../engine/model/checkpoint';
import type { Barriers, CompChoice, Fold, Metric } from '../engine/prune/options';
import { catalogEntry } from '../engine/store/catalog';
import type { CompareRunOutput } from '../app/run';
import { runIdentity } from '../app/run-identity';
import type { TextSource } from '../app/protocol';
import { reportFiles, runLink, type ReportRun } from '../app/report/report';
import { TEXTS } from '../app/texts';

/** The options --report adds to compare. */
export const reportArgs = { report: { type: 'string' }, 'app-url': { type: 'string' } } as const;

/** Where `npm start` serves the app: the default base of the report's link. */
export const DEFAULT_APP_URL = 'http://127.0.0.1:4173/';

/** --report's folder, checked before any work: a path that exists must be a folder. */
export async function reportDir(v: Record<string, unknown>): Promise<string | null> {
  const dir = v.report;
  if (dir === undefined) return null;
  if (typeof dir !== 'string' || dir === '') throw new LopperError('bad-option', '--report takes a folder');
  let s;
  try {
    s = await stat(dir);
  } catch {
    return dir;
  }
  if (!s.isDirectory()) throw new LopperError('bad-option', '--report must be a folder (it exists and is not one)', dir);
  return dir;
}

/** --app-url: an http(s) URL, default DEFAULT_APP_URL. */
export function appUrl(v: Record<string, unknown>): string {
  const u = (v['app-url'] as string | undefined) ?? DEFAULT_APP_URL;
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new LopperError('bad-option', `--app-url must be a URL (got "${u}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new LopperError('bad-option', `--app-url must be an http(s) URL (got "${u}")`);
  return url.origin + url.pathname;
}

/** A text file as the app would name it: a built-in text's id when the file is one (its path and size), else the person's own. */
function textSource(path: string, text: string): TextSource {
  const abs = resolve(path).split('\\').join('/');
  const t = TEXTS.find((t) => abs.endsWith('/' + t.path) && new TextEncoder().encode(text).length === t.bytes);
  return t ? { kind: 'builtin', id: t.id, url: t.path } : { kind: 'custom', name: basename(path), text };
}

export interface CompareReportSetup {
  ck: Checkpoint;
  modelPath: string;
  /** the runtime the CLI ran on (node, wasm, cuda): the report's "backend" */
  runtime: string;
  metric: Metric;
  layers: number;
  fold: Fold;
  comp: CompChoice;
  alpha: number;
  barriers: Partial<Barriers>;
  seed: number;
  calib: { path: string; text: string; windows: number };
  eval: { path: string; text: string };
  window: number;
}

/** The report's view of a compare run (compareRun with evaluation and curves). */
export function compareReportRun(s: CompareReportSetup, run: CompareRunOutput): ReportRun {
  if (!run.ppl || !run.curves) throw new Error('a report needs compareRun with evaluation and curves');
  // the identity the app gives the same setup (defaults left out the same way), backend aside
  const { backend: _backend, ...id } = runIdentity({
    backend: 'wasm',
    metric: s.metric,
    layers: s.layers,
    mode: 'prunecomp',
    fold: s.fold,
    windows: s.calib.windows,
    window: s.window,
    skipFirst: s.barriers.skipFirst,
    skipLast: s.barriers.skipLast,
    seed: s.metric === 'random' ? s.seed : undefined,
    comp: s.comp,
    alpha: s.comp === 'linear' || s.comp === 'diag' ? s.alpha : undefined,
    calib: textSource(s.calib.path, s.calib.text),
    eval: textSource(s.eval.path, s.eval.text),
  });
  const dense = run.ppl.dense;
  return {
    model: { name: modelName(s.modelPath), numLayers: s.ck.config.numLayers },
    settings: { ...id, backend: `onnxruntime (${s.runtime}, lopper CLI)` },
    calibration: { windows: s.calib.windows, window: s.window },
    evaluation: { windows: dense.windows, window: s.window, tokens: dense.tokens },
    ppl: { dense, baseline: run.ppl.baseline, prunecomp: run.ppl.compared },
    plans: { baseline: run.plans.baseline, prunecomp: run.plans.compared },
    curves: { dense: run.curves.dense, baseline: run.curves.baseline, prunecomp: run.curves.compared },
  };
}

/** A model path's name: the .bin's name without .bin, or the folder's. */
const modelName = (path: string) => basename(resolve(path)).replace(/\.bin$/i, '');

/** Write the report of a compare run into `dir`; returns the files' paths. */
export async function writeCompareReport(dir: string, s: CompareReportSetup, run: CompareRunOutput, base: string): Promise<string[]> {
  const report = compareReportRun(s, run);
  const catalogId = catalogEntry(report.model.name)?.id ?? null;
  const files = reportFiles({ run: report, link: runLink(base, catalogId ? { model: catalogId } : null, report.settings), generator: 'lopper compare' });
  try {
    await mkdir(dir, { recursive: true });
    const paths: string[] = [];
    for (const f of files) {
      const p = join(dir, f.name);
      await writeFile(p, f.text);
      paths.push(p);
    }
    return paths;
  } catch (e) {
    throw new LopperError('bad-option', `cannot write the report: ${(e as Error).message}`, dir);
  }
}
