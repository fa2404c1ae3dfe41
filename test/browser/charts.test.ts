/**
 * Every chart's downloads, in real Chromium with the app's stylesheet: the SVG made from the
 * chart on the page (src/ui/charts/download.ts standaloneSvg) is a well-formed document on its
 * own — xmlns, a <title>, a white background, no CSS var() or classes left, every mark of the
 * chart there — and the PNG made from it decodes at 2× the viewBox, with the curve's colours
 * where the page draws them. Plus the curve's forced log axis (scale.ts `log: true`).
 */
import { mount, tick, unmount } from 'svelte';
import { afterEach, describe, expect, test } from 'vitest';
import type { SweepResult } from '../../src/app/sweep-data';
import type { Plan } from '../../src/engine/prune/plan';
import '../../src/ui/app.css';
import AccuracyBars from '../../src/ui/charts/AccuracyBars.svelte';
import CurveChart from '../../src/ui/charts/CurveChart.svelte';
import { standaloneSvg, svgSize, svgToPng } from '../../src/ui/charts/download';
import MagnitudeChart from '../../src/ui/charts/MagnitudeChart.svelte';
import { MODE_STYLE, MODEL_COLORS, OKABE_ITO } from '../../src/app/charts/palette';
import PerplexityBars from '../../src/ui/charts/PerplexityBars.svelte';
import { valueScale } from '../../src/app/charts/scale';
import ScoreBars from '../../src/ui/charts/ScoreBars.svelte';

let mounted: ReturnType<typeof mount> | null = null;
afterEach(() => {
  if (mounted) unmount(mounted);
  mounted = null;
  document.body.innerHTML = '';
});

/** Mount a chart (`show` mounts it into the target it is given) in an 800 px wide box. */
async function render(show: (target: HTMLElement) => ReturnType<typeof mount>): Promise<HTMLElement> {
  const target = document.createElement('div');
  target.style.width = '800px';
  document.body.append(target);
  mounted = show(target);
  await tick();
  return target;
}

const L = 5;
const curve = (f: (k: number) => number) => Array.from({ length: L + 1 }, (_, k) => ({ layer: k, value: f(k) }));
const plan = (mode: Plan['mode']): Plan => ({
  metric: 'bi',
  mode,
  fold: 'paper',
  comp: 'scalar',
  alpha: 0,
  budget: null,
  barriers: { skipFirst: 0, skipLast: 0 },
  removed: [3, 2],
  scales: [1.1, 1.2],
  steps: [
    { scores: [0.5, 0.2, 0.1, 0.05, 0.3], removed: 3, at: 3, scale: 1.1, folded: true, skippedChannels: 0 },
    { scores: [0.5, 0.2, 0.08, 0.3], removed: 2, at: 2, scale: 1.2, folded: true, skippedChannels: 0 },
  ],
  untied: false,
  skippedChannels: 0,
  layersBefore: L,
  layersAfter: L - 2,
});
const sweep: SweepResult = {
  metric: 'bi',
  layers: 3,
  eval: { windows: 4, window: 128, tokens: 600 },
  dense: 8.2,
  curves: {
    baseline: [{ n: 1, removed: [3], ppl: 11 }, { n: 2, removed: [3, 2], ppl: 30 }, { n: 3, removed: [3, 2, 1], ppl: 190 }],
    iterative: [{ n: 1, removed: [3], ppl: 11 }, { n: 2, removed: [3, 1], ppl: 25 }, { n: 3, removed: [3, 1, 2], ppl: 150 }],
    'oneshot-comp': [{ n: 1, removed: [3], ppl: 9.5 }, { n: 2, removed: [3, 2], ppl: 18 }, { n: 3, removed: [3, 2, 1], ppl: 90 }],
    prunecomp: [{ n: 1, removed: [3], ppl: 9.5 }, { n: 2, removed: [3, 1], ppl: 15 }, { n: 3, removed: [3, 1, 2], ppl: 60 }],
  },
};

const CHARTS: { name: string; show: (target: HTMLElement) => ReturnType<typeof mount> }[] = [
  {
    name: 'PerplexityBars',
    show: (target) => mount(PerplexityBars, { target, props: { bars: [{ key: 'dense', label: 'dense', value: 8.2, color: MODEL_COLORS.dense }, { key: 'baseline', label: 'baseline', value: 30, color: MODEL_COLORS.baseline }] } }),
  },
  {
    name: 'MagnitudeChart',
    show: (target) => mount(MagnitudeChart, { target, props: {
      layers: L,
      removed: [3, 2],
      curves: [
        { key: 'dense', label: 'dense', points: curve((k) => 1 + k), color: MODEL_COLORS.dense },
        { key: 'baseline', label: 'baseline', points: curve((k) => (k > 3 ? 2 : 1 + k)), color: MODEL_COLORS.baseline, dash: '5 3' },
      ],
    } }),
  },
  { name: 'ScoreBars', show: (target) => mount(ScoreBars, { target, props: { plan: plan('prunecomp'), title: 'Prune&Comp', color: MODEL_COLORS.prunecomp, testid: 'scores' } }) },
  {
    name: 'AccuracyBars',
    show: (target) => mount(AccuracyBars, { target, props: {
      groups: [{ key: 'piqa', label: 'PIQA', values: [{ value: 0.5, stderr: 0.02 }, { value: 0.45, stderr: NaN }] }, { key: 'average', label: 'average', values: [{ value: 0.4, stderr: NaN }, { value: 0.38, stderr: NaN }] }],
      series: [{ key: 'dense', label: 'dense', color: MODEL_COLORS.dense }, { key: 'baseline', label: 'baseline', color: MODEL_COLORS.baseline }],
    } }),
  },
  { name: 'CurveChart', show: (target) => mount(CurveChart, { target, props: { sweep, current: { mode: 'prunecomp', n: 2 }, name: 'curve' } }) },
];

/** The drawn elements of an SVG, by kind (the standalone copy adds one rect: its background, and one title). */
const MARKS = 'rect, path, circle, line, text, polyline, polygon';
const count = (root: Element, sel: string) => root.querySelectorAll(sel).length;

describe('every chart downloads as a standalone SVG and a 2× PNG', () => {
  test.each(CHARTS)('$name', async ({ show }) => {
    const target = await render(show);
    // the chart's own svgs (legend keys are aria-hidden decorations)
    const svgs = [...target.querySelectorAll<SVGSVGElement>('svg[role=img]')];
    expect(svgs.length).toBeGreaterThan(0);
    // every chart offers the two downloads per picture, with accessible names
    const buttons = [...target.querySelectorAll('button')].map((b) => b.getAttribute('aria-label') ?? '');
    expect(buttons.filter((n) => /^Download .+ as SVG$/.test(n))).toHaveLength(svgs.length);
    expect(buttons.filter((n) => /^Download .+ as PNG$/.test(n))).toHaveLength(svgs.length);
    // the page's CSS is in effect (what the copy must resolve)
    const axis = svgs[0].querySelector('text.axis');
    if (axis) expect(getComputedStyle(axis).fill).toBe('rgb(91, 100, 119)');

    for (const svg of svgs) {
      const text = standaloneSvg(svg, 'a chart');
      expect(text).not.toMatch(/var\(|class=|style=/);
      const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
      expect(doc.querySelector('parsererror')?.textContent ?? null).toBeNull();
      const root = doc.documentElement;
      expect(root.namespaceURI).toBe('http://www.w3.org/2000/svg');
      expect(text).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(root.querySelector(':scope > title')?.textContent).toBe('a chart');
      expect(root.querySelector(':scope > rect[data-background]')?.getAttribute('fill')).toBe('#ffffff');
      for (const kind of MARKS.split(', ')) expect(count(root, kind), kind).toBe(count(svg, kind) + (kind === 'rect' ? 1 : 0));
      // an axis label keeps the colour the class gave it, now as an attribute
      const label = root.querySelector('text');
      if (label) expect(label.getAttribute('fill')).toMatch(/^rgb\(/);

      const { width, height } = svgSize(svg);
      const png = await svgToPng(text, width, height, 2);
      expect(png.type).toBe('image/png');
      const bitmap = await createImageBitmap(png);
      expect([bitmap.width, bitmap.height]).toEqual([Math.round(2 * width), Math.round(2 * height)]);
    }
  });

  test('the curve’s PNG is drawn in the chart’s colours: a Prune&Comp marker’s centre is Okabe-Ito blue, the corner white', async () => {
    const target = await render((t) => mount(CurveChart, { target: t, props: { sweep, current: { mode: 'prunecomp', n: 2 }, name: 'curve' } }));
    const svg = target.querySelector<SVGSVGElement>('svg[data-testid=curve-chart]')!;
    const marker = svg.querySelector<SVGPathElement>('[data-mark=point][data-mode=prunecomp][data-n="3"]')!;
    const box = marker.getBBox();
    const { width, height } = svgSize(svg);
    const bitmap = await createImageBitmap(await svgToPng(standaloneSvg(svg, 'curve'), width, height, 2));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d')!;
    ctx.drawImage(bitmap, 0, 0);
    const px = (x: number, y: number) => [...ctx.getImageData(Math.round(2 * x), Math.round(2 * y), 1, 1).data];
    const hex = (c: string) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
    const centre = px(box.x + box.width / 2, box.y + box.height / 2);
    hex(MODE_STYLE.prunecomp.color).forEach((v, i) => expect(Math.abs(centre[i] - v), `channel ${i}: ${centre}`).toBeLessThanOrEqual(3));
    expect(px(1, 1)).toEqual([255, 255, 255, 255]);
    // the four modes: four colours of the palette, four dashes, four markers
    const modes = Object.values(MODE_STYLE);
    expect(new Set(modes.map((m) => m.color)).size).toBe(4);
    expect(new Set(modes.map((m) => m.dash)).size).toBe(4);
    expect(new Set(modes.map((m) => m.marker)).size).toBe(4);
    for (const m of modes) expect(Object.values(OKABE_ITO)).toContain(m.color);
    // the run's point is ringed and labelled
    const ring = svg.querySelector('[data-testid=curve-current]')!;
    expect([ring.getAttribute('data-mode'), ring.getAttribute('data-n'), ring.getAttribute('data-ppl')]).toEqual(['prunecomp', '2', '15']);
    expect(svg.textContent).toContain('this run');
    expect(target.querySelector('[data-testid=curve-current-label]')?.textContent).toBe('this run: Prune&Comp, n = 2');
    // the table: a row per n, the run's cell marked
    const rows = target.querySelectorAll('[data-testid=curve-table] tbody tr');
    expect(rows).toHaveLength(4);
    expect(target.querySelector('td.current')?.getAttribute('data-ppl')).toBe('15');
  });
});

describe('the curve’s log axis (scale.ts, log: true)', () => {
  test('log whatever the span, on 1-2-5 ends and ticks around the values, increasing', () => {
    const s = valueScale([8.2, 15, 190], { log: true });
    expect(s.kind).toBe('log');
    expect([s.lo, s.hi]).toEqual([5, 200]);
    expect(s.ticks).toEqual([5, 10, 20, 50, 100, 200]);
    expect(s.frac(5)).toBe(0);
    expect(s.frac(200)).toBe(1);
    expect(s.frac(Math.sqrt(5 * 200))).toBeCloseTo(0.5, 12); // the geometric mean halfway
    expect(valueScale([8.2, 9], { log: true })).toMatchObject({ kind: 'log', lo: 5, hi: 10 });
    expect(valueScale([10, 10], { log: true })).toMatchObject({ kind: 'log', lo: 10, hi: 20 });
    // many decades: ticks thinned to powers of ten and the ends
    expect(valueScale([3, 2e6], { log: true }).ticks).toEqual([2, 10, 100, 1000, 1e4, 1e5, 1e6, 2e6]);
    // without log: true the old rule (log only beyond 100×) stands
    expect(valueScale([8.2, 190]).kind).toBe('linear');
  });
});
