/**
 * The charts' colours, in one place: the Okabe-Ito palette (Okabe & Ito 2008), whose eight
 * colours stay distinct for the common colour-vision deficiencies. Lines also differ by dash
 * and marker shape, so colour is never the only cue.
 */
import type { CompChoice, Metric, Mode } from '../../engine/prune/options';

export const OKABE_ITO = {
  black: '#000000',
  orange: '#E69F00',
  skyBlue: '#56B4E9',
  green: '#009E73',
  yellow: '#F0E442',
  blue: '#0072B2',
  vermillion: '#D55E00',
  purple: '#CC79A7',
} as const;

/** The three models a run shows: dense, the baseline, the compared mode's. */
export const MODEL_COLORS = { dense: OKABE_ITO.black, baseline: OKABE_ITO.orange, prunecomp: OKABE_ITO.blue } as const;

/** The removed layer (score bars) and the removed-layer bands. */
export const REMOVED_COLOR = OKABE_ITO.vermillion;

export type Marker = 'circle' | 'square' | 'triangle' | 'diamond';

/** How each mode's line is drawn on the curve: colour, dash (SVG stroke-dasharray, '' solid), marker. */
export const MODE_STYLE: Record<Mode, { color: string; dash: string; marker: Marker }> = {
  baseline: { color: OKABE_ITO.orange, dash: '7 4', marker: 'circle' },
  iterative: { color: OKABE_ITO.purple, dash: '2 3', marker: 'square' },
  'oneshot-comp': { color: OKABE_ITO.green, dash: '9 3 2 3', marker: 'triangle' },
  prunecomp: { color: OKABE_ITO.blue, dash: '', marker: 'diamond' },
};

/** The lab's lines: colour by compensation ('none' black: nothing folded)… */
export const COMP_COLOR: Record<CompChoice, string> = {
  none: OKABE_ITO.black,
  scalar: OKABE_ITO.blue,
  linear: OKABE_ITO.vermillion,
  diag: OKABE_ITO.green,
};

/** …and dash and marker by metric. */
export const METRIC_STYLE: Record<Metric, { dash: string; marker: Marker }> = {
  bi: { dash: '', marker: 'circle' },
  angular: { dash: '7 4', marker: 'square' },
  mag: { dash: '2 3', marker: 'triangle' },
  ppl: { dash: '9 3 2 3', marker: 'diamond' },
  cl: { dash: '12 3', marker: 'circle' },
  taylor: { dash: '4 2 4 6', marker: 'square' },
  reverse: { dash: '1 2', marker: 'triangle' },
  random: { dash: '6 2 1 2 1 2', marker: 'diamond' },
};

/** An SVG path for a marker of size r centred on (x, y). */
export function markerPath(m: Marker, x: number, y: number, r: number): string {
  const f = (v: number) => v.toFixed(1);
  switch (m) {
    case 'circle':
      return `M${f(x - r)},${f(y)}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0Z`;
    case 'square':
      return `M${f(x - r * 0.85)},${f(y - r * 0.85)}h${f(1.7 * r)}v${f(1.7 * r)}h${f(-1.7 * r)}Z`;
    case 'triangle':
      return `M${f(x)},${f(y - r * 1.1)}L${f(x + r)},${f(y + r * 0.75)}L${f(x - r)},${f(y + r * 0.75)}Z`;
    case 'diamond':
      return `M${f(x)},${f(y - r * 1.2)}L${f(x + r)},${f(y)}L${f(x)},${f(y + r * 1.2)}L${f(x - r)},${f(y)}Z`;
  }
}

/** What a metric's score is, for the score charts' axis. */
export const SCORE_AXIS: Record<Metric, string> = {
  bi: 'score (BI = 1 − cos)',
  angular: 'score (angular distance, arccos(cos)/π)',
  cl: 'score (block: 1 − cos)',
  mag: 'score (Mag+: Σ|W|)',
  ppl: 'score (calibration loss without the layer)',
  taylor: 'score (Taylor+: Σ|W ⊙ ∂L/∂W|)',
  reverse: 'score (reverse order)',
  random: 'score (random, seeded)',
};
