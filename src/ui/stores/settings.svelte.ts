/**
 * The settings of a setup, kept in the page URL so a setup is a link:
 *
 *   ?model=stories260K&backend=wasm&metric=bi&layers=2&mode=prunecomp&fold=paper&windows=8&window=256
 *    &calib=tinystories-calib&eval=tinystories-eval[&skipFirst=…&skipLast=…][&comp=linear&alpha=…][&tokenizer=…]
 *
 * `model` is a catalog id, or a URL (then `tokenizer` for a llama2.c .bin). Pasted or
 * uploaded texts stay in memory only (the URL says `calib=custom`). Other parameters in the
 * URL (e.g. `data`) are left alone.
 */
import { COMP_CHOICES, isMetric, METRICS, MODES, type CompChoice, type Metric, type Mode } from '../../engine/prune/options';
import type { Backend, Fold, RunSettings, TextSource } from '../../app/protocol';
import { DEFAULT_CALIB, DEFAULT_EVAL, textById, textUrl } from '../../app/texts';
import { runParams } from '../../app/run-identity';
import { writeUrlParams } from '../url';

export { COMP_CHOICES, METRICS, MODES };

/** Short names for the metric menu (the full definitions: docs/PRUNE_AND_COMP.md §4). */
export const METRIC_LABEL: Record<Metric, string> = {
  bi: 'BI (CosSim)',
  angular: 'angular distance',
  cl: 'CL block (CosSim)',
  mag: 'Mag+ (Σ|W|)',
  ppl: 'PPL (bypass loss)',
  taylor: 'Taylor+',
  reverse: 'reverse order',
  random: 'random',
};

/** What each metric measures (shown under the menu). */
export const METRIC_NOTE: Record<Metric, string> = {
  bi: 'Block Influence: mean 1 − cos(X_k, X_k+1) over tokens',
  angular: 'arccos(cos(X_k, X_k+1))/π on the last token',
  cl: 'a contiguous block of n layers, chosen once: 1 − cos(X_i, X_i+n)',
  mag: 'Σ|W| over the layer’s weights',
  ppl: 'calibration loss with the layer bypassed',
  taylor: 'Σ|W ⊙ ∂L/∂W| over the layer’s weights',
  reverse: 'the last layers first',
  random: 'a seeded random order (seed 0)',
};

/** Names for the compensation menu. */
export const COMP_LABEL: Record<CompChoice, string> = {
  none: 'none',
  scalar: 'scalar (Prune&Comp)',
  linear: 'linear (ReplaceMe map)',
  diag: 'diagonal map',
};

/** What each compensation folds at each cut (shown under the menu; the maths: src/engine/prune/fit.ts). */
export const COMP_NOTE: Record<CompChoice, string> = {
  none: 'nothing: the layers are simply deleted (Prune&Comp becomes iterative pruning, one-shot + compensation the baseline)',
  scalar: 'one scale s per cut, the magnitude gap, folded into the weights (Prune&Comp)',
  linear: 'a D×D least-squares map from the layer before the cut to the stream after it, folded into that layer’s down_proj (ReplaceMe)',
  diag: 'the map’s diagonal: one least-squares factor per channel, folded into down_proj of the layer before the cut',
};

/** Whether a compensation fits a map, so the ridge term α means something. */
export const fitsMap = (c: CompChoice): boolean => c === 'linear' || c === 'diag';

export const DEFAULTS = {
  metric: 'bi' as Metric,
  layers: 2,
  mode: 'prunecomp' as Mode,
  fold: 'paper' as Fold,
  comp: 'scalar' as CompChoice,
  alpha: 0,
  windows: 8,
  window: 256,
};

export interface CustomText {
  name: string;
  text: string;
}

/** Every URL parameter the settings read and write (writeUrl replaces exactly these). */
const URL_PARAMS = ['model', 'tokenizer', 'backend', 'metric', 'layers', 'mode', 'fold', 'windows', 'window', 'calib', 'eval', 'skipFirst', 'skipLast', 'seed', 'comp', 'alpha', 'memory'] as const;

function intParam(q: URLSearchParams, name: string, min: number, fallback: number): number {
  const v = Number(q.get(name));
  return q.has(name) && Number.isInteger(v) && v >= min ? v : fallback;
}
function optIntParam(q: URLSearchParams, name: string): number | undefined {
  const v = Number(q.get(name));
  return q.has(name) && q.get(name) !== '' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

/** A number input left empty binds null: that means "the default". */
const opt = (v: number | null | undefined): number | undefined => (v === null || v === undefined || !Number.isFinite(v) ? undefined : v);

export class Settings {
  /** catalog id or URL of the model ('' = none chosen) */
  model = $state('');
  /** tokenizer URL for a llama2.c model given by URL */
  tokenizer = $state('');
  /** null until chosen: the app then takes WebGPU on a hardware adapter, else WASM (defaultBackend, model.svelte.ts) */
  backend = $state<Backend | null>(null);
  metric = $state<Metric>(DEFAULTS.metric);
  layers = $state(DEFAULTS.layers);
  mode = $state<Mode>(DEFAULTS.mode);
  fold = $state<Fold>(DEFAULTS.fold);
  /** what the compensated mode folds at each cut ('none': its uncompensated twin) */
  comp = $state<CompChoice>(DEFAULTS.comp);
  /** the ridge term α of the linear/diag fits (≥ 0) */
  alpha = $state(DEFAULTS.alpha);
  windows = $state(DEFAULTS.windows);
  window = $state(DEFAULTS.window);
  skipFirst = $state<number | null | undefined>(undefined);
  skipLast = $state<number | null | undefined>(undefined);
  /** the random metric's seed (only the random metric reads it, so only it sends one) */
  seed = $state(0);
  /**
   * GiB of memory the device check plans for in place of what the browser reports (null: the
   * device's figure). Only from the URL (?memory=2): for a tab that must stay small, and tests.
   */
  memoryGiB = $state<number | null>(null);
  /** built-in text id, or 'custom' */
  calib = $state(DEFAULT_CALIB);
  eval = $state(DEFAULT_EVAL);
  customCalib = $state<CustomText | null>(null);
  customEval = $state<CustomText | null>(null);

  constructor(search = location.search) {
    this.read(search);
  }

  read(search: string): void {
    const q = new URLSearchParams(search);
    this.model = q.get('model') ?? '';
    this.tokenizer = q.get('tokenizer') ?? '';
    const b = q.get('backend');
    this.backend = b === 'wasm' || b === 'webgpu' ? b : null;
    const m = q.get('metric') ?? '';
    this.metric = isMetric(m) ? m : DEFAULTS.metric;
    this.layers = intParam(q, 'layers', 1, DEFAULTS.layers);
    const mode = q.get('mode') ?? '';
    this.mode = (MODES as readonly string[]).includes(mode) ? (mode as Mode) : DEFAULTS.mode;
    const fold = q.get('fold');
    this.fold = fold === 'tied' || fold === 'paper' ? fold : DEFAULTS.fold;
    const comp = q.get('comp') ?? '';
    this.comp = (COMP_CHOICES as readonly string[]).includes(comp) ? (comp as CompChoice) : DEFAULTS.comp;
    const alpha = Number(q.get('alpha'));
    this.alpha = q.get('alpha') && Number.isFinite(alpha) && alpha >= 0 ? alpha : DEFAULTS.alpha;
    this.windows = intParam(q, 'windows', 1, DEFAULTS.windows);
    this.window = intParam(q, 'window', 2, DEFAULTS.window);
    this.skipFirst = optIntParam(q, 'skipFirst');
    this.skipLast = optIntParam(q, 'skipLast');
    this.seed = intParam(q, 'seed', 0, 0);
    const memory = Number(q.get('memory'));
    this.memoryGiB = q.get('memory') && Number.isFinite(memory) && memory > 0 ? memory : null;
    const calib = q.get('calib');
    this.calib = calib && (calib === 'custom' || textById(calib)) ? calib : DEFAULT_CALIB;
    const ev = q.get('eval');
    this.eval = ev && (ev === 'custom' || textById(ev)) ? ev : DEFAULT_EVAL;
  }

  /** The settings as URL parameters (defaults included, so a link pins the setup). */
  params(): Record<string, string> {
    return runParams({
      model: this.model,
      tokenizer: this.tokenizer,
      backend: this.backend ?? undefined,
      metric: this.metric,
      layers: this.layers,
      mode: this.mode,
      fold: this.fold,
      windows: this.windows,
      window: this.window,
      calib: this.calib,
      eval: this.eval,
      skipFirst: opt(this.skipFirst),
      skipLast: opt(this.skipLast),
      seed: this.seed,
      comp: this.comp,
      alpha: this.alphaValue(),
      memoryGiB: this.memoryGiB ?? undefined,
    });
  }

  /** Write the settings into the page URL (replaceState: no history entry per change). */
  writeUrl(): void {
    writeUrlParams(URL_PARAMS, this.params());
  }

  /** α as a number ≥ 0 (an input left empty or negative: 0) */
  alphaValue(): number {
    const a = opt(this.alpha);
    return a !== undefined && a >= 0 ? a : 0;
  }

  private text(choice: string, custom: CustomText | null, what: string): TextSource {
    if (choice === 'custom') {
      if (!custom) throw new Error(`choose a ${what} text: paste or upload one, or pick a built-in text`);
      return { kind: 'custom', name: custom.name, text: custom.text };
    }
    const t = textById(choice)!;
    return { kind: 'builtin', id: t.id, url: textUrl(t) };
  }

  /** What the worker needs for a run (throws with a plain message when a custom text is missing). */
  runSettings(backend: Backend): RunSettings {
    return {
      backend,
      metric: this.metric,
      layers: this.layers,
      mode: this.mode,
      fold: this.fold,
      windows: this.windows,
      window: this.window,
      skipFirst: opt(this.skipFirst),
      skipLast: opt(this.skipLast),
      seed: this.metric === 'random' ? (opt(this.seed) ?? 0) : undefined,
      comp: this.comp,
      alpha: fitsMap(this.comp) ? this.alphaValue() : undefined,
      calib: this.text(this.calib, this.customCalib, 'calibration'),
      eval: this.text(this.eval, this.customEval, 'evaluation'),
    };
  }
}

