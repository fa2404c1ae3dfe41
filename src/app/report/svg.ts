/**
 * The report's figures as standalone SVG text, built without a DOM (the CLI writes them in
 * Node): the perplexity bars, the magnitude curve, the zero-shot accuracy bars and the lab's
 * lines. They take their axes from the page's charts' helpers (`valueScale` for linear/log
 * axes, `markerPath` and the Okabe-Ito palette, `num` for tick labels), so a figure reads as
 * the chart on the page does; styles are inline attributes and one <style> block, so the file
 * needs nothing else. Every text is XML-escaped.
 */
import type { LabResult, LabRow } from '../lab-data';
import type { CurvePoint } from '../protocol';
import { num } from '../format';
import { COMP_COLOR, markerPath, METRIC_STYLE, OKABE_ITO, type Marker } from '../charts/palette';
import { valueScale } from '../charts/scale';

/** `text` with XML's five special characters escaped (attribute values and text nodes alike). */
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const STYLE = '<style>text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:11px;fill:#222}.small{font-size:9.5px}.grid{stroke:#ddd;stroke-width:1}</style>';
const f1 = (v: number) => v.toFixed(1);

/** A standalone SVG document: xmlns, size, viewBox, an accessible <title>, the style, then `body`. */
function svgDoc(title: string, w: number, h: number, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">`,
    `<title>${xmlEscape(title)}</title>`,
    STYLE,
    `<rect width="${w}" height="${h}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const text = (x: number, y: number, s: string, attrs = '') => `<text x="${f1(x)}" y="${f1(y)}"${attrs ? ' ' + attrs : ''}>${xmlEscape(s)}</text>`;
const hline = (x1: number, x2: number, y: number) => `<line x1="${f1(x1)}" x2="${f1(x2)}" y1="${f1(y)}" y2="${f1(y)}" class="grid"/>`;

export interface SvgBar {
  label: string;
  value: number;
  color: string;
}

/** Horizontal bars, one per model (the page's PerplexityBars): a log axis when the values span more than 100×. */
export function perplexitySvg(bars: readonly SvgBar[], title = 'Perplexity of each model (lower is better)'): string {
  const W = 480;
  const ROW = 30;
  const LEFT = Math.max(110, Math.ceil(14 + 6.6 * Math.max(0, ...bars.map((b) => b.label.length))));
  const scale = valueScale(bars.map((b) => b.value));
  const x = (v: number) => (W - LEFT - 80) * scale.frac(v);
  const AXIS = scale.kind === 'log' ? 40 : 20;
  const H = bars.length * ROW + 6 + AXIS;
  const body: string[] = [];
  if (scale.kind === 'log') {
    for (const t of scale.ticks) {
      body.push(`<line x1="${f1(LEFT + x(t))}" x2="${f1(LEFT + x(t))}" y1="4" y2="${bars.length * ROW + 4}" class="grid"/>`);
      body.push(text(LEFT + x(t), bars.length * ROW + 14, num(t, 1), 'text-anchor="middle" class="small"'));
    }
  }
  body.push(text(LEFT + (W - LEFT) / 2, H - 4, `perplexity${scale.kind === 'log' ? ' (log scale)' : ''} · lower is better`, 'text-anchor="middle"'));
  bars.forEach((b, i) => {
    const y0 = i * ROW + 4;
    body.push(text(LEFT - 8, y0 + ROW / 2 + 4, b.label, 'text-anchor="end"'));
    body.push(`<rect x="${LEFT}" y="${y0 + 3}" width="${f1(Math.max(1, x(b.value)))}" height="${ROW - 10}" rx="3" fill="${b.color}"><title>${xmlEscape(`${b.label}: ${num(b.value, 4)}`)}</title></rect>`);
    body.push(text(LEFT + x(b.value) + 5, y0 + ROW / 2 + 4, num(b.value, 4)));
  });
  return svgDoc(title, W, H, body);
}

export interface SvgCurve {
  label: string;
  points: readonly CurvePoint[];
  color: string;
  dash?: string;
}

/** Mean |X_k| against the layer k (the page's MagnitudeChart), removed layers banded, a legend under the plot. */
export function magnitudeSvg(curves: readonly SvgCurve[], layers: number, removed: readonly number[], title = 'Magnitude of the residual stream, mean |X_k| entering each layer'): string {
  const W = 480;
  const M = { l: 56, r: 10, t: 10, b: 32 };
  const PLOT = 220;
  const H = PLOT + 16 * (curves.length + 1) + 6;
  const scale = valueScale(curves.flatMap((c) => c.points.map((p) => p.value)));
  const x = (k: number) => M.l + ((W - M.l - M.r) * k) / Math.max(1, layers);
  const y = (v: number) => PLOT - M.b - (PLOT - M.t - M.b) * scale.frac(v) * (scale.kind === 'linear' ? 1 / 1.08 : 1);
  const markers: Marker[] = ['circle', 'square', 'diamond', 'triangle'];
  const body: string[] = [];
  for (const t of scale.ticks) body.push(hline(M.l, W - M.r, y(t)), text(M.l - 6, y(t) + 4, num(t, 2), 'text-anchor="end"'));
  for (const k of removed) body.push(`<rect x="${f1(x(k) - 3)}" y="${M.t}" width="6" height="${PLOT - M.t - M.b}" fill="${OKABE_ITO.vermillion}" fill-opacity="0.18"><title>layer ${k} removed</title></rect>`);
  const step = layers <= 16 ? 1 : Math.ceil(layers / 16);
  for (let k = 0; k <= layers; k++) if (k % step === 0 || k === layers) body.push(text(x(k), PLOT - M.b + 14, k === layers ? 'out' : String(k), 'text-anchor="middle"'));
  body.push(text((W + M.l) / 2, PLOT - 3, 'stream entering layer k (original numbering)', 'text-anchor="middle"'));
  body.push(`<text transform="translate(12 ${f1((PLOT - M.b + M.t) / 2)}) rotate(-90)" text-anchor="middle">${xmlEscape(`mean |X_k|${scale.kind === 'log' ? ' (log scale)' : ''}`)}</text>`);
  curves.forEach((c, i) => {
    const d = c.points.map((p, j) => `${j ? 'L' : 'M'}${f1(x(p.layer))},${f1(y(p.value))}`).join(' ');
    body.push(`<path d="${d}" fill="none" stroke="${c.color}" stroke-width="2"${c.dash ? ` stroke-dasharray="${c.dash}"` : ''}/>`);
    for (const p of c.points) body.push(`<path d="${markerPath(markers[i % markers.length], x(p.layer), y(p.value), 2.8)}" fill="${c.color}"><title>${xmlEscape(`${c.label}: mean |X_${p.layer}| = ${num(p.value, 4)}`)}</title></path>`);
    // legend entry: the line's dash and marker beside its label
    const ly = PLOT + 12 + 16 * i;
    body.push(`<path d="M${M.l},${ly - 4}h24" stroke="${c.color}" stroke-width="2"${c.dash ? ` stroke-dasharray="${c.dash}"` : ''}/>`);
    body.push(`<path d="${markerPath(markers[i % markers.length], M.l + 12, ly - 4, 2.8)}" fill="${c.color}"/>`);
    body.push(text(M.l + 30, ly, c.label));
  });
  const ly = PLOT + 12 + 16 * curves.length;
  body.push(`<rect x="${M.l + 9}" y="${ly - 10}" width="6" height="12" fill="${OKABE_ITO.vermillion}" fill-opacity="0.18"/>`, text(M.l + 30, ly, 'removed layer'));
  return svgDoc(title, W, H, body);
}

export interface SvgAccuracyGroup {
  label: string;
  /** per series, 0..1; stderr NaN where unknown */
  values: { value: number; stderr: number }[];
}

/** Grouped bars per task and the average (the page's AccuracyBars), whiskers ± one standard error, a legend. */
export function accuracySvg(groups: readonly SvgAccuracyGroup[], series: readonly { label: string; color: string }[], title = 'Zero-shot accuracy per task and model (higher is better)'): string {
  const W = 640;
  const PLOT = 224;
  const H = PLOT + 22;
  const M = { l: 52, r: 8, t: 10, b: 44 };
  const groupW = (W - M.l - M.r) / Math.max(1, groups.length);
  const BAR = Math.min(28, (groupW * 0.8) / Math.max(1, series.length));
  const top = Math.min(1, Math.max(0.25, ...groups.flatMap((g) => g.values.map((v) => v.value + (Number.isFinite(v.stderr) ? v.stderr : 0)))) * 1.1);
  const y = (v: number) => M.t + (PLOT - M.t - M.b) * (1 - Math.max(0, v) / top);
  const pct = (v: number) => (100 * v).toFixed(1);
  const body: string[] = [];
  for (const t of [0, 0.25, 0.5, 0.75, 1].filter((t) => t <= top + 1e-9)) body.push(hline(M.l, W - M.r, y(t)), text(M.l - 4, y(t) + 4, `${Math.round(100 * t)}%`, 'text-anchor="end"'));
  groups.forEach((g, i) => {
    const x0 = M.l + i * groupW + (groupW - series.length * BAR) / 2;
    g.values.forEach((v, j) => {
      const x = x0 + j * BAR;
      body.push(`<rect x="${f1(x)}" y="${f1(y(v.value))}" width="${f1(BAR - 2)}" height="${f1(Math.max(0.5, y(0) - y(v.value)))}" rx="1.5" fill="${series[j].color}"><title>${xmlEscape(`${g.label}, ${series[j].label}: ${pct(v.value)}%${Number.isFinite(v.stderr) ? ` ± ${pct(v.stderr)}` : ''}`)}</title></rect>`);
      if (Number.isFinite(v.stderr) && v.stderr > 0) body.push(`<line x1="${f1(x + (BAR - 2) / 2)}" x2="${f1(x + (BAR - 2) / 2)}" y1="${f1(y(v.value + v.stderr))}" y2="${f1(y(v.value - v.stderr))}" stroke="#333" stroke-width="1.2"/>`);
    });
    body.push(text(x0 + (series.length * BAR) / 2 - 1, PLOT - M.b + 13, g.label, 'text-anchor="middle"'));
  });
  body.push(text((W + M.l) / 2, PLOT - 18, 'task (lm-eval-harness; acc_norm where the paper uses it)', 'text-anchor="middle"'));
  body.push(`<text transform="translate(12 ${f1((PLOT - M.b + M.t) / 2)}) rotate(-90)" text-anchor="middle">accuracy (%)</text>`);
  let lx = M.l;
  for (const s of series) {
    body.push(`<rect x="${f1(lx)}" y="${PLOT - 2}" width="12" height="10" fill="${s.color}"/>`, text(lx + 16, PLOT + 7, s.label));
    lx += 28 + 6.6 * s.label.length;
  }
  body.push(text(lx, PLOT + 7, 'whiskers: ± one standard error'));
  return svgDoc(title, W, H, body);
}

/**
 * The lab's lines (the page's LabChart): perplexity (log axis) against n = 0…N from the dense
 * model, colour by compensation, dash and marker by metric, each n's best ringed.
 */
export function labSvg(lab: LabResult, measure: 'heldOut' | 'eval' = 'heldOut'): string {
  const W = 480;
  const PLOT = 260;
  const M = { l: 52, r: 14, t: 12, b: 40 };
  const value = (r: { heldOut: number; eval: number | null }) => (measure === 'eval' ? (r.eval ?? NaN) : r.heldOut);
  const dense = value(lab.dense);
  const lines = lab.metrics.flatMap((metric) =>
    lab.comps.map((comp) => ({ metric, comp, rows: lab.rows.filter((r) => r.metric === metric && r.comp === comp).sort((a, b) => a.n - b.n) })).filter((l) => l.rows.length > 0),
  );
  const H = PLOT + 16 * (lines.length + 1) + 6;
  const scale = valueScale([dense, ...lab.rows.map(value)].filter(Number.isFinite), { log: true });
  const x = (n: number) => M.l + ((W - M.l - M.r) * n) / Math.max(1, lab.layers);
  const y = (v: number) => PLOT - M.b - (PLOT - M.t - M.b) * scale.frac(v);
  const what = measure === 'eval' ? 'evaluation-text perplexity' : 'held-out calibration perplexity';
  const body: string[] = [];
  for (const t of scale.ticks) body.push(hline(M.l, W - M.r, y(t)), text(M.l - 5, y(t) + 4, num(t, 2), 'text-anchor="end"'));
  for (let n = 0; n <= lab.layers; n++) body.push(text(x(n), PLOT - M.b + 14, String(n), 'text-anchor="middle"'));
  body.push(text((W + M.l) / 2, PLOT - 6, 'layers removed, n', 'text-anchor="middle"'));
  body.push(`<text transform="translate(12 ${f1((PLOT - M.b + M.t) / 2)}) rotate(-90)" text-anchor="middle">perplexity (log scale)</text>`);
  const pathOf = (rows: LabRow[]) => [{ n: 0, v: dense }, ...rows.map((r) => ({ n: r.n, v: value(r) }))].map((p, i) => `${i ? 'L' : 'M'}${f1(x(p.n))},${f1(y(p.v))}`).join(' ');
  lines.forEach((l, i) => {
    const style = METRIC_STYLE[l.metric];
    const dash = style.dash ? ` stroke-dasharray="${style.dash}"` : '';
    body.push(`<path d="${pathOf(l.rows)}" fill="none" stroke="${COMP_COLOR[l.comp]}" stroke-width="1.8"${dash}/>`);
    for (const r of l.rows) body.push(`<path d="${markerPath(style.marker, x(r.n), y(value(r)), 3.4)}" fill="${COMP_COLOR[l.comp]}" stroke="#ffffff" stroke-width="0.8"><title>${xmlEscape(`${l.metric} + ${l.comp}, n = ${r.n} (removed ${r.removed.join(', ')}): ${what} ${num(value(r), 4)}`)}</title></path>`);
    const ly = PLOT + 12 + 16 * i;
    body.push(`<path d="M${M.l},${ly - 4}h24" stroke="${COMP_COLOR[l.comp]}" stroke-width="1.8"${dash}/>`, `<path d="${markerPath(style.marker, M.l + 12, ly - 4, 3.4)}" fill="${COMP_COLOR[l.comp]}"/>`, text(M.l + 30, ly, `${l.metric} + ${l.comp}`));
  });
  for (const b of lab.best) {
    const row = lab.rows.find((r) => r.n === b.n && r.metric === b.metric && r.comp === b.comp);
    if (row) body.push(`<circle cx="${f1(x(b.n))}" cy="${f1(y(value(row)))}" r="8" fill="none" stroke="${OKABE_ITO.black}" stroke-width="1.4"><title>${xmlEscape(`best at n = ${b.n}: ${b.metric} + ${b.comp} (lowest held-out perplexity)`)}</title></circle>`);
  }
  body.push(`<circle cx="${f1(x(0))}" cy="${f1(y(dense))}" r="4" fill="${OKABE_ITO.black}"><title>${xmlEscape(`dense, n = 0: ${what} ${num(dense, 4)}`)}</title></circle>`);
  const ly = PLOT + 12 + 16 * lines.length;
  body.push(`<circle cx="${M.l + 12}" cy="${ly - 4}" r="5.5" fill="none" stroke="${OKABE_ITO.black}" stroke-width="1.4"/>`, text(M.l + 30, ly, 'best at its n (lowest held-out perplexity); n = 0: the dense model'));
  return svgDoc(`The compensation lab: ${what} (log scale) against layers removed`, W, H, body);
}
