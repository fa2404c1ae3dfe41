/**
 * A run's results report, one home for the app's "Download report" and `lopper compare
 * --report DIR`: `report.md` (title, model, the settings as a link back to the app, the
 * tables — perplexities, removed layers and scales, zero-shot accuracies with RP, the lab's
 * rows — and the figures embedded by relative path), every table as CSV, every figure as
 * standalone SVG (./svg.ts). Pure text builders: no DOM, no engine, so Node and the page
 * share them.
 *
 * Numbers: CSV cells are JavaScript's shortest round-trip form (parsing them gives the same
 * doubles); Markdown shows perplexities and scales to 6 significant digits, accuracies and RP
 * in % to 2 decimals (as the evaluation panel).
 */
import { averageAccuracy, retainedPerformance, type TaskResult } from '../../engine/eval/accuracy';
import { TASK_SPECS, type TaskName } from '../../engine/eval/tasks';
import { isBest, labCsv, type LabResult } from '../lab-data';
import { MODE_LABEL, planLabel, type CurvePoint, type PerplexityInfo } from '../protocol';
import { runParams, textLabel, type RunIdentity } from '../run-identity';
import type { Plan } from '../../engine/prune/plan';
import { MODEL_COLORS } from '../charts/palette';
import { accuracySvg, labSvg, magnitudeSvg, perplexitySvg } from './svg';

/** A run's settings as the report reads them: the run identity, `backend` the app's (wasm/webgpu) or the CLI's runtime. */
export type ReportSettings = Omit<RunIdentity, 'backend'> & { backend: string };

/** What the report needs of a run (the app's RunResult has it; the CLI builds it from compareRun). */
export interface ReportRun {
  model: { name: string; numLayers: number };
  settings: ReportSettings;
  calibration: { windows: number; window: number };
  evaluation: { windows: number; window: number; tokens: number };
  ppl: { dense: PerplexityInfo; baseline: PerplexityInfo; prunecomp: PerplexityInfo | null };
  plans: { baseline: Plan; prunecomp: Plan | null };
  curves: { dense: CurvePoint[]; baseline: CurvePoint[]; prunecomp: CurvePoint[] | null };
}

/** Zero-shot accuracies of the run's models (the app's EvalResult has them). */
export interface ReportEvaluation {
  settings: { tasks: TaskName[]; limit: number };
  source: string;
  results: { dense: TaskResult[]; baseline: TaskResult[]; prunecomp: TaskResult[] | null };
}

/** The compensation lab (the app's LabRunResult, `lopper lab`). */
export interface ReportLab {
  lab: LabResult;
  split: { fit: number; heldOut: number; window: number };
  alpha: number;
}

export interface ReportInput {
  /** the model's name when there is no run (a lab alone) */
  modelName?: string;
  run: ReportRun | null;
  evaluation?: ReportEvaluation | null;
  lab?: ReportLab | null;
  /** the app's link for the run's settings (runLink), or null */
  link: string | null;
  /** what made it, e.g. "the lopper app", "lopper compare" */
  generator: string;
  /** when (default now) */
  date?: Date;
}

export interface ReportFile {
  name: string;
  text: string;
}

// ---- the link back to the app ---------------------------------------------------------

/**
 * The app's link for a run's settings: the query parameters the settings store writes
 * (src/ui/stores/settings.svelte.ts `params()`: the same names, order and defaults left out),
 * from the run's identity. `model`: the catalog id or URL the app opens (null: a local model,
 * which a link cannot name). A person's own text is `custom` (its content is not in a link);
 * a backend other than the app's (the CLI's onnxruntime-node) is left to the app's choice.
 */
export function runLink(base: string, model: { model: string; tokenizer?: string } | null, s: ReportSettings): string {
  const custom = (id: string) => (id.startsWith('custom:') ? 'custom' : id);
  const params = runParams({
    ...s,
    model: model?.model,
    tokenizer: model?.tokenizer,
    backend: s.backend === 'wasm' || s.backend === 'webgpu' ? s.backend : undefined,
    calib: custom(s.calib),
    eval: custom(s.eval),
  });
  return `${base}?${new URLSearchParams(params).toString()}`;
}

/** The catalog id of a model key (`catalog:<id>@<revision>`, the worker's), else null. */
export function catalogIdOfKey(key: string): string | null {
  const m = /^catalog:(.+)@[^@]*$/.exec(key);
  return m ? m[1] : null;
}

// ---- cells ------------------------------------------------------------------------------

/** A CSV cell: numbers in their shortest round-trip form, text quoted where it must be (RFC 4180). */
function csvCell(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(v) : v;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
const csv = (rows: (string | number | null | undefined)[][]) => rows.map((r) => r.map(csvCell).join(',')).join('\n') + '\n';

/** A Markdown table cell (pipes and line breaks would break the row). */
const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
function mdTable(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const line = (cells: string[]) => `| ${cells.map(mdCell).join(' | ')} |`;
  return [line(header), `|${header.map((_, i) => (right.has(i) ? '---:' : '---')).join('|')}|`, ...rows.map(line)].join('\n') + '\n';
}

/** 6 significant digits, without trailing zeros ("—" for NaN/±Infinity). */
export const sig6 = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : Number.isFinite(x) ? String(Number(x.toPrecision(6))) : '—');
const pct2 = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(2) : '—');
const removedText = (removed: readonly number[]) => (removed.length ? removed.join(', ') : '—');

// ---- the report -------------------------------------------------------------------------

/** The report's files: report.md first, then the CSVs, then the SVGs. */
export function reportFiles(input: ReportInput): ReportFile[] {
  const { run, evaluation, lab } = input;
  if (!run && !lab) throw new Error('a report needs a run or a lab');
  const md: string[] = [];
  const tables: ReportFile[] = [];
  const figures: ReportFile[] = [];
  const name = run?.model.name ?? input.modelName ?? 'model';
  const date = (input.date ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');

  if (run) {
    const s = run.settings;
    md.push(`# ${name}: ${s.layers} of ${run.model.numLayers} layers removed — ${s.metric}, ${planOrMode(run)} vs the baseline\n`);
  } else md.push(`# ${name}: the compensation lab\n`);
  md.push(`Made by ${input.generator} on ${date}.${input.link ? ` Open these settings in the app: [${run ? 'this run' : 'this setup'} in lopper](<${input.link}>).` : ''}\n`);

  if (run) runSections(run, md, tables, figures);
  if (run && evaluation) evaluationSections(run, evaluation, md, tables, figures);
  if (lab) labSections(lab, md, tables, figures);

  md.push(`## Files\n`);
  md.push([...tables, ...figures].map((f) => `- [${f.name}](${f.name})`).join('\n') + '\n');
  return [{ name: 'report.md', text: md.join('\n') }, ...tables, ...figures];
}

const planOrMode = (run: ReportRun) => (run.plans.prunecomp ? planLabel(run.plans.prunecomp) : MODE_LABEL[run.settings.mode]);

function runSections(run: ReportRun, md: string[], tables: ReportFile[], figures: ReportFile[]): void {
  const s = run.settings;
  const base = run.plans.baseline;
  const comp = run.plans.prunecomp;
  const label = planOrMode(run);

  md.push(`## Settings\n`);
  md.push(
    mdTable(
      ['setting', 'value'],
      [
        ['model', `${run.model.name} (${run.model.numLayers} layers)`],
        ['metric', s.metric],
        ['layers removed (n)', String(s.layers)],
        ['mode', `${MODE_LABEL[s.mode]} (${s.mode}), compared with the baseline`],
        ['compensation', `${s.comp ?? 'scalar'}${s.alpha !== undefined ? `, α = ${s.alpha}` : ''}`],
        ['fold', `${s.fold}${comp?.untied ? ' (the tied embedding was untied)' : ''}`],
        ['calibration', `${run.calibration.windows} windows of ${run.calibration.window} tokens of “${textLabel(s.calib)}”`],
        ['evaluation', `${run.evaluation.windows} windows of ${run.evaluation.window} tokens of “${textLabel(s.eval)}” (${run.evaluation.tokens} predicted tokens)`],
        ...(s.skipFirst !== undefined || s.skipLast !== undefined ? [['barriers', `skip first ${s.skipFirst ?? 'default'}, skip last ${s.skipLast ?? 'default'}`]] : []),
        ...(s.seed !== undefined ? [['seed', String(s.seed)]] : []),
        ['backend', s.backend],
      ],
    ),
  );

  // Perplexities
  const models: { key: string; label: string; ppl: PerplexityInfo; plan: Plan | null }[] = [
    { key: 'dense', label: 'dense', ppl: run.ppl.dense, plan: null },
    { key: 'baseline', label: 'baseline', ppl: run.ppl.baseline, plan: base },
    ...(comp && run.ppl.prunecomp ? [{ key: 'prunecomp', label, ppl: run.ppl.prunecomp, plan: comp }] : []),
  ];
  md.push(`## Perplexity on the evaluation text\n`);
  md.push(mdTable(['model', 'perplexity', 'ratio to dense', 'layers removed, in order'], models.map((m) => [m.label, sig6(m.ppl.ppl), sig6(m.ppl.ppl / run.ppl.dense.ppl), m.plan ? removedText(m.plan.removed) : '—']), new Set([1, 2])));
  md.push(`![Perplexity of each model](perplexity.svg)\n`);
  md.push(`Lower is better; the baseline removes the same number of layers, chosen once on the dense model, with no compensation. Table: [perplexity.csv](perplexity.csv).\n`);
  tables.push({
    name: 'perplexity.csv',
    text: csv([['model', 'label', 'ppl', 'ratio_to_dense', 'eval_tokens', 'eval_windows', 'removed'], ...models.map((m) => [m.key, m.label, m.ppl.ppl, m.ppl.ppl / run.ppl.dense.ppl, m.ppl.tokens, m.ppl.windows, m.plan ? m.plan.removed.join(' ') : ''])]),
  });
  figures.push({ name: 'perplexity.svg', text: perplexitySvg(models.map((m) => ({ label: m.label, value: m.ppl.ppl, color: MODEL_COLORS[m.key as keyof typeof MODEL_COLORS] }))) });

  // Removed layers and scales
  const mapped = !!comp?.steps.some((st) => st.map);
  const steps = Array.from({ length: base.removed.length }, (_, i) => i);
  md.push(`## Removed layers, in order\n`);
  md.push(
    mdTable(
      ['step', 'baseline: layer', ...(comp ? [`${label}: layer`, 'scale s', 'folded'] : []), ...(mapped ? ['map residual', 'residual, nothing folded'] : [])],
      steps.map((i) => {
        const st = comp?.steps[i];
        return [
          String(i + 1),
          String(base.removed[i]),
          ...(comp ? [st ? String(st.removed) : '', st ? (st.map ? `— (${st.map.kind} map into layer ${st.map.layer})` : sig6(st.scale)) : '', st ? (st.folded ? 'yes' : 'no') : ''] : []),
          ...(mapped ? [st?.map ? sig6(st.map.residual) : '—', st?.map ? sig6(st.map.residualNone) : '—'] : []),
        ];
      }),
      new Set(comp ? [3, ...(mapped ? [5, 6] : [])] : []),
    ),
  );
  md.push(`Layer numbers are the original ones (0-based).${comp && comp.skippedChannels ? ` ${comp.skippedChannels} near-zero channels were left out of the scale.` : ''} Table: [removed-layers.csv](removed-layers.csv).\n`);
  tables.push({
    name: 'removed-layers.csv',
    text: csv([
      ['step', 'baseline_layer', 'baseline_score', ...(comp ? ['compared_layer', 'compared_score', 'scale', 'folded'] : []), ...(mapped ? ['map_kind', 'map_layer', 'map_residual', 'map_residual_none'] : [])],
      ...steps.map((i) => {
        const st = comp?.steps[i];
        const bs = base.steps[i];
        return [
          i + 1,
          base.removed[i],
          bs ? bs.scores[bs.at] : null,
          ...(comp ? [st?.removed, st ? st.scores[st.at] : null, st?.scale, st ? (st.folded ? 1 : 0) : null] : []),
          ...(mapped ? [st?.map?.kind, st?.map?.layer, st?.map?.residual, st?.map?.residualNone] : []),
        ];
      }),
    ]),
  });

  // Magnitude curves
  const curves = [
    { key: 'dense', label: 'dense', points: run.curves.dense, color: MODEL_COLORS.dense },
    { key: 'baseline', label: 'baseline (pruned, uncompensated)', points: run.curves.baseline, color: MODEL_COLORS.baseline, dash: '5 3' },
    ...(run.curves.prunecomp ? [{ key: 'prunecomp', label: `${label} (pruned${comp && comp.fold !== 'none' ? ', compensated' : ''})`, points: run.curves.prunecomp, color: MODEL_COLORS.prunecomp }] : []),
  ];
  const L = run.model.numLayers;
  md.push(`## The magnitude gap\n`);
  md.push(`![Mean |X_k| entering each layer](magnitude.svg)\n`);
  md.push(`Mean |X| of the residual stream entering each layer (original numbering; ${L}: the final stream), on the calibration windows. Table: [magnitude.csv](magnitude.csv).\n`);
  tables.push({
    name: 'magnitude.csv',
    text: csv([['layer', ...curves.map((c) => c.key)], ...Array.from({ length: L + 1 }, (_, k) => [k, ...curves.map((c) => c.points.find((p) => p.layer === k)?.value ?? null)])]),
  });
  const removed = [...new Set([...base.removed, ...(comp?.removed ?? [])])];
  figures.push({ name: 'magnitude.svg', text: magnitudeSvg(curves, L, removed) });
}

function evaluationSections(run: ReportRun, e: ReportEvaluation, md: string[], tables: ReportFile[], figures: ReportFile[]): void {
  const dense = e.results.dense;
  const rows = [
    { key: 'dense' as const, label: 'dense', results: dense, rp: 100 },
    { key: 'baseline' as const, label: 'baseline', results: e.results.baseline, rp: retainedPerformance(e.results.baseline, dense) },
    ...(e.results.prunecomp ? [{ key: 'prunecomp' as const, label: planOrMode(run), results: e.results.prunecomp, rp: retainedPerformance(e.results.prunecomp, dense) }] : []),
  ];
  const tasks = e.settings.tasks;
  const stderrOf = (t: TaskResult) => t[TASK_SPECS[t.task].reported].stderr;
  md.push(`## Zero-shot accuracy\n`);
  md.push(
    mdTable(
      ['model', ...tasks.map((t, i) => `${TASK_SPECS[t].title} (${TASK_SPECS[t].reported}, n=${dense[i].n})`), 'average', 'RP'],
      rows.map((r) => [r.label, ...r.results.map((t) => `${pct2(t.reported)}${Number.isFinite(stderrOf(t)) ? ` ± ${pct2(stderrOf(t))}` : ''}`), pct2(averageAccuracy(r.results)), Number.isFinite(r.rp) ? r.rp.toFixed(2) : '—']),
      new Set(Array.from({ length: tasks.length + 2 }, (_, i) => i + 1)),
    ),
  );
  md.push(`![Zero-shot accuracy per task and model](accuracy.svg)\n`);
  md.push(`Accuracy in %, ± one standard error; the first ${e.settings.limit} items of each task, from ${e.source}. RP (retained performance) = 100 × average / the dense model’s average. Table: [accuracy.csv](accuracy.csv).\n`);
  tables.push({
    name: 'accuracy.csv',
    text: csv([
      ['model', 'label', ...tasks.flatMap((t) => [t, `${t}_stderr`, `${t}_n`]), 'average', 'rp'],
      ...rows.map((r) => [r.key, r.label, ...r.results.flatMap((t) => [t.reported, stderrOf(t), t.n]), averageAccuracy(r.results), r.rp]),
    ]),
  });
  const colors = MODEL_COLORS;
  figures.push({
    name: 'accuracy.svg',
    text: accuracySvg(
      [
        ...tasks.map((t, i) => ({ label: TASK_SPECS[t].title, values: rows.map((r) => ({ value: r.results[i].reported, stderr: stderrOf(r.results[i]) })) })),
        { label: 'average', values: rows.map((r) => ({ value: averageAccuracy(r.results), stderr: NaN })) },
      ],
      rows.map((r) => ({ label: r.label, color: colors[r.key] })),
    ),
  });
}

function labSections(l: ReportLab, md: string[], tables: ReportFile[], figures: ReportFile[]): void {
  const r = l.lab;
  const z = r.dense.zeroShot !== undefined;
  md.push(`## The compensation lab\n`);
  md.push(
    `Every metric (${r.metrics.join(', ')}) × every compensation (${r.comps.join(', ')}) for n = 1…${r.layers}, fitted on ${l.split.fit} calibration windows of ${l.split.window} tokens; ` +
      `held-out perplexity on the other ${l.split.heldOut} (never fitted or chosen on). The best per n (lowest held-out perplexity) is marked ★.${r.comps.some((c) => c === 'linear' || c === 'diag') ? ` Ridge α = ${l.alpha}.` : ''}\n`,
  );
  const rp = (x: number | undefined) => (x === undefined ? '—' : (100 * (x / r.dense.zeroShot!)).toFixed(2));
  md.push(
    mdTable(
      ['best', 'n', 'metric', 'compensation', 'held-out ppl', 'eval ppl', ...(z ? ['zero-shot avg (%)', 'RP'] : []), 'layers removed, in order'],
      [
        ['', '0', 'dense', '', sig6(r.dense.heldOut), sig6(r.dense.eval), ...(z ? [pct2(r.dense.zeroShot!), '100.00'] : []), '—'],
        ...r.rows.map((row) => [isBest(r, row) ? '★' : '', String(row.n), row.metric, row.comp, sig6(row.heldOut), sig6(row.eval), ...(z ? [row.zeroShot === undefined ? '—' : pct2(row.zeroShot), rp(row.zeroShot)] : []), removedText(row.removed)]),
      ],
      new Set([1, 4, 5, ...(z ? [6, 7] : [])]),
    ),
  );
  for (const s of r.skipped) md.push(`- skipped ${s.metric} + ${s.comp}: ${s.reason}`);
  if (r.skipped.length) md.push('');
  md.push(`![The lab: held-out perplexity against layers removed](lab.svg)\n`);
  md.push(`Calibration took ${r.passes.run} layer-passes over the fit windows, against ${r.passes.naive} without the shared dense calibration and reuse. Table: [lab.csv](lab.csv).\n`);
  tables.push({ name: 'lab.csv', text: labCsv(r) });
  figures.push({ name: 'lab.svg', text: labSvg(r) });
}
