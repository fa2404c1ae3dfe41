/**
 * The compensation lab's data (src/app/lab.ts computes it): every metric × every compensation
 * for n = 1…N, each model scored on held-out calibration windows, the best per n. Nothing
 * here loads the engine, so the page imports it (the lab's table and CSV download).
 */
import { LopperError } from '../engine/errors';
import { COMP_CHOICES, METRICS, type CompChoice, type Metric } from '../engine/prune/options';

/** The compensations a lab compares by default: none (iterative), then Prune&Comp's scalar, ReplaceMe's linear and diagonal maps. */
export const LAB_COMPS: readonly CompChoice[] = COMP_CHOICES;

/** One model: `metric` with `comp` after n removals (`removed`: original indices, in removal order). */
export interface LabRow {
  metric: Metric;
  comp: CompChoice;
  n: number;
  removed: number[];
  /** perplexity on the held-out calibration windows (what the best is chosen by) */
  heldOut: number;
  /** perplexity on the evaluation text (null without one) */
  eval: number | null;
  /** zero-shot average accuracy over the asked tasks (absent when none were asked) */
  zeroShot?: number;
}

export interface LabBest {
  n: number;
  metric: Metric;
  comp: CompChoice;
  heldOut: number;
  eval: number | null;
  zeroShot?: number;
}

export interface LabResult {
  layers: number;
  metrics: Metric[];
  comps: CompChoice[];
  dense: { heldOut: number; eval: number | null; zeroShot?: number };
  /** n ascending, then metric, then comp, in the orders asked */
  rows: LabRow[];
  /** per n (ascending), the row with the lowest held-out perplexity */
  best: LabBest[];
  /** combinations (or their larger n) that could not run, with the LopperError's message */
  skipped: { metric: Metric; comp: CompChoice; reason: string }[];
  /**
   * Layer-passes over the fit windows (one decoder layer over every window) that calibration
   * ran, against what the same runs cost without the shared dense calibration and reuse: a
   * full dense calibration per combination and a full pass of the current model at every step.
   * Not counted (the same either way): held-out/evaluation perplexities and Taylor+'s gradients.
   */
  passes: { run: number; naive: number };
  seconds: number;
}

/** A requested list (untrusted: the CLI's flag, the page's request): known names, at least one, no repeats. */
function checkList<T extends string>(list: readonly string[], known: readonly T[], flag: string): T[] {
  if (list.length === 0) throw new LopperError('bad-option', `${flag} takes some of ${known.join(', ')} (got none)`);
  for (const [i, m] of list.entries()) {
    if (!(known as readonly string[]).includes(m)) throw new LopperError('bad-option', `${flag} takes some of ${known.join(', ')} (got "${m}")`);
    if (list.indexOf(m) !== i) throw new LopperError('bad-option', `${flag} names "${m}" twice`);
  }
  return [...list] as T[];
}

export const labMetrics = (list: readonly string[]): Metric[] => checkList(list, METRICS, '--metrics');
export const labComps = (list: readonly string[]): CompChoice[] => checkList(list, COMP_CHOICES, '--comps');

/** Per n, the row with the lowest held-out perplexity (the first such row on a tie). */
export function bestPerN(rows: readonly LabRow[]): LabBest[] {
  const best = new Map<number, LabRow>();
  for (const r of rows) if (!best.has(r.n) || r.heldOut < best.get(r.n)!.heldOut) best.set(r.n, r);
  return [...best.values()]
    .sort((a, b) => a.n - b.n)
    .map((r) => ({ n: r.n, metric: r.metric, comp: r.comp, heldOut: r.heldOut, eval: r.eval, ...(r.zeroShot !== undefined && { zeroShot: r.zeroShot }) }));
}

/** Whether `row` is its n's best. */
export const isBest = (r: LabResult, row: LabRow): boolean => r.best.some((b) => b.n === row.n && b.metric === row.metric && b.comp === row.comp);

/** The rows as CSV: n, metric, comp, held-out and eval perplexity, removed layers, best (1/0); n = 0 is the dense model. */
export function labCsv(r: LabResult): string {
  const z = r.dense.zeroShot !== undefined;
  const lines = [['n', 'metric', 'comp', 'heldout_ppl', 'eval_ppl', ...(z ? ['zeroshot_avg', 'rp'] : []), 'removed', 'best'].join(',')];
  const num = (x: number | null | undefined) => (x === null || x === undefined ? '' : String(x));
  lines.push(['0', '', '', num(r.dense.heldOut), num(r.dense.eval), ...(z ? [num(r.dense.zeroShot), '1'] : []), '', ''].join(','));
  for (const row of r.rows) {
    const rp = z && row.zeroShot !== undefined ? row.zeroShot / r.dense.zeroShot! : undefined;
    lines.push([String(row.n), row.metric, row.comp, num(row.heldOut), num(row.eval), ...(z ? [num(row.zeroShot), num(rp)] : []), row.removed.join(' '), isBest(r, row) ? '1' : '0'].join(','));
  }
  return lines.join('\n') + '\n';
}

/**
 * The lab as a text table (lopper lab, bench:lab): one row per n × metric × comp with the
 * held-out and evaluation perplexities (and the zero-shot average and RP when measured) and the
 * layers removed, the best per n marked "*"; then one line per skipped combination and the passes.
 */
export function labTable(r: LabResult): string {
  const z = r.dense.zeroShot !== undefined;
  const f = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toPrecision(6));
  const pct = (x: number | undefined) => (x === undefined ? '-' : (100 * x).toFixed(2));
  const header = ['', 'n', 'metric', 'comp', 'held-out ppl', 'eval ppl', ...(z ? ['zero-shot', 'RP'] : []), 'removed'];
  const body = [
    ['', '0', 'dense', '', f(r.dense.heldOut), f(r.dense.eval), ...(z ? [pct(r.dense.zeroShot), '100.00'] : []), ''],
    ...r.rows.map((row) => [
      isBest(r, row) ? '*' : '',
      String(row.n),
      row.metric,
      row.comp,
      f(row.heldOut),
      f(row.eval),
      ...(z ? [pct(row.zeroShot), row.zeroShot === undefined ? '-' : pct(row.zeroShot / r.dense.zeroShot!)] : []),
      removedList(row.removed),
    ]),
  ];
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c].length)));
  const right = new Set([1, 4, 5, ...(z ? [6, 7] : [])]);
  const lines = all.map((row) => row.map((cell, c) => (right.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd());
  for (const b of r.best) lines.push(`best at n = ${b.n}: ${b.metric} + ${b.comp} (held-out ${f(b.heldOut)}, eval ${f(b.eval)})`);
  for (const s of r.skipped) lines.push(`skipped ${s.metric} + ${s.comp}: ${s.reason}`);
  const { run, naive } = r.passes;
  lines.push(`calibration: ${fmtPasses(run)} layer-passes over the fit windows, ${fmtPasses(naive)} without the shared dense calibration and reuse (${(naive / Math.max(run, 1e-9)).toFixed(2)}× as many); ${r.seconds.toFixed(1)} s`);
  return lines.join('\n') + '\n';
}

const fmtPasses = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
const removedList = (removed: readonly number[]) => removed.join(' ');
