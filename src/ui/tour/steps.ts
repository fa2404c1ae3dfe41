/**
 * The guided tour's steps as data: what each says, with the numbers of the run on screen
 * plugged in, and which part of the page it points at (selectors, mostly of `data-tour`
 * attributes in src/ui/**).
 * Plain functions of a TourContext, no DOM, so the texts can be tested in Node
 * (test/unit/tour.test.ts). Tour.svelte renders them; `math` blocks are TeX, typeset by KaTeX.
 *
 * The numbers come from the run shown in the results section (the person's own, or the
 * precomputed stories260K example on a first visit) and from the layer playground.
 */
import type { PlaygroundRemoval } from '../../app/playground';
import type { RunResult } from '../../app/protocol';
import { num } from '../../app/format';
import { MODE_LABEL } from '../../app/protocol';

export interface TourContext {
  /** the loaded model, if any */
  model: { name: string; numLayers: number; hiddenSize: number } | null;
  /** the run the results section shows (the person's, or the example) */
  result: RunResult | null;
  /** whether `result` is the precomputed example */
  example: boolean;
  /** the playground's state, once a model is loaded; the numbers (null while being computed) are for exactly that state */
  playground: { removed: number[]; compensate: boolean; densePpl: number | null; ppl: number | null; removals: PlaygroundRemoval[] } | null;
}

/** A paragraph (plain text) or a displayed formula (TeX). */
export type TourBlock = { p: string } | { math: string };

/** Something a step offers to do for the reader (Tour.svelte maps the kind to the app's stores). */
export type TourAction =
  | { kind: 'load-stories'; label: string }
  /** remove `layer` in the playground, uncompensated (every other layer restored) */
  | { kind: 'remove-layer'; layer: number; label: string }
  | { kind: 'restore-all'; label: string }
  /** turn the playground's compensation on */
  | { kind: 'compensate'; label: string };

export interface TourStep {
  id: string;
  title: string;
  /** CSS selectors of the element the step points at (mostly `data-tour` attributes), in order of preference: the first on the page wins */
  targets: string[];
  body(ctx: TourContext): TourBlock[];
  action?(ctx: TourContext): TourAction | null;
}

/** Which model the tour is written for, and offers to load. */
export const TOUR_MODEL = { id: 'stories260K', name: 'stories260K', size: '1 MB' };

const f = (x: number | null | undefined, sig = 4) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : num(x, sig));

/** The layer the dense model's scores rank lowest (the baseline's first removal), with its score, and the highest. */
function scoreExtremes(r: RunResult): { low: { k: number; v: number }; high: { k: number; v: number } } | null {
  const scores = r.plans.baseline.steps[0]?.scores ?? [];
  const eligible = scores.map((v, k) => ({ k, v })).filter((e): e is { k: number; v: number } => e.v !== null && Number.isFinite(e.v));
  if (eligible.length === 0) return null;
  const low = eligible.reduce((a, b) => (b.v < a.v ? b : a));
  const high = eligible.reduce((a, b) => (b.v > a.v ? b : a));
  return { low, high };
}

/** The score whose value moved most (relative) between the compared plan's first and second steps, by original index. */
export function largestRescore(r: RunResult): { layer: number; before: number; after: number; firstCut: number } | null {
  const plan = r.plans.prunecomp;
  if (!plan || plan.steps.length < 2 || plan.metric === 'cl') return null;
  const [s0, s1] = plan.steps;
  // step 2's scores are indexed in the model after the first cut: map back to original indices
  const original = Array.from({ length: plan.layersBefore }, (_, k) => k).filter((k) => k !== s0.removed);
  let best: { layer: number; before: number; after: number; firstCut: number } | null = null;
  s1.scores.forEach((after, i) => {
    const layer = original[i];
    const before = s0.scores[layer];
    if (after === null || before === null || before === undefined || !(Math.abs(before) > 0)) return;
    const change = Math.abs(after - before) / Math.abs(before);
    if (!best || change > Math.abs(best.after - best.before) / Math.abs(best.before)) best = { layer, before, after, firstCut: s0.removed };
  });
  return best;
}

/** Mean |X| entering original layer k (k = numLayers: the final stream) on a curve, or null. */
function at(points: { layer: number; value: number }[] | null | undefined, k: number): number | null {
  return points?.find((p) => p.layer === k)?.value ?? null;
}

function runLabel(ctx: TourContext): string {
  const r = ctx.result!;
  return `${ctx.example ? 'the precomputed example' : 'this run'} (${r.model.name}, ${r.settings.metric}, n = ${r.settings.layers})`;
}

const needRun: TourBlock = { p: 'Load a model and press Run: this step then shows that run’s numbers.' };

export const TOUR_STEPS: TourStep[] = [
  {
    id: 'stack',
    title: 'A stack of layers over one stream',
    targets: ['[data-tour=model]', '[data-tour=picker]'],
    body: (ctx) => [
      {
        p: 'A Llama-family model turns each token into a vector of D numbers — the residual stream — and passes it up a stack of L decoder layers. Layer k reads the stream X_k and adds its update: attention, then an MLP.',
      },
      { math: 'X_{k+1} \\;=\\; X_k \\;+\\; \\underbrace{\\mathrm{Attn}_k(X_k) + \\mathrm{MLP}_k(\\,\\cdot\\,)}_{\\text{layer } k\\text{’s update}}' },
      ctx.model
        ? { p: `${ctx.model.name} has L = ${ctx.model.numLayers} layers and D = ${ctx.model.hiddenSize} channels. Removing layer k hands X_k straight to layer k + 1: its update is simply gone.` }
        : { p: `The tour runs live on ${TOUR_MODEL.name}, a ${TOUR_MODEL.size} model trained on children’s stories: load it to follow along.` },
    ],
    action: (ctx) => (ctx.model ? null : { kind: 'load-stories', label: `Load ${TOUR_MODEL.name} (${TOUR_MODEL.size})` }),
  },
  {
    id: 'scores',
    title: 'How much does each layer change the stream?',
    targets: ['[data-tour=scores]', '[data-tour=results]'],
    body: (ctx) => {
      const r = ctx.result;
      const blocks: TourBlock[] = [
        { p: 'A layer whose output points the same way as its input changes little. Block Influence (BI) measures that with the cosine between the stream entering and leaving the layer, over every token t:' },
        { math: '\\mathrm{BI}_k \\;=\\; \\frac{1}{T}\\sum_{t} \\Bigl(1 - \\cos\\bigl(X_k[t],\\, X_{k+1}[t]\\bigr)\\Bigr)' },
      ];
      if (!r) return [...blocks, needRun];
      const e = scoreExtremes(r);
      if (e)
        blocks.push({
          p: `In ${runLabel(ctx)}, scored with ${r.settings.metric} on the dense model: layer ${e.low.k} changes the stream least (${f(e.low.v)}), layer ${e.high.k} most (${f(e.high.v)}). The baseline removes the ${r.settings.layers} lowest at once: layer${r.plans.baseline.removed.length > 1 ? 's' : ''} ${r.plans.baseline.removed.join(' and ')}.`,
        });
      return blocks;
    },
  },
  {
    id: 'remove',
    title: 'Remove a layer and watch',
    targets: ['[data-tour=playground]', '[data-tour=layer-strip]'],
    body: (ctx) => {
      const pg = ctx.playground;
      const blocks: TourBlock[] = [
        { p: 'Click a layer in the strip to remove it (click again to restore it). The perplexity on a short text — how surprised the model is by the next token; lower is better — and a sentence the model writes greedily update at once.' },
      ];
      if (pg && pg.removed.length > 0)
        blocks.push({
          p: `Now: layer${pg.removed.length > 1 ? 's' : ''} ${pg.removed.join(', ')} removed${pg.compensate ? ', compensated' : ', no compensation'}: perplexity ${f(pg.ppl)} against the dense model’s ${f(pg.densePpl)}.`,
        });
      else if (!pg) blocks.push({ p: 'Load the model (step 1) to use the playground.' });
      return blocks;
    },
    action: (ctx) => {
      const pg = ctx.playground;
      if (!pg) return null;
      if (pg.removed.length > 0) return { kind: 'restore-all', label: 'Restore every layer' };
      const e = ctx.result && ctx.model && ctx.result.model.numLayers === ctx.model.numLayers ? scoreExtremes(ctx.result) : null;
      const layer = e?.low.k ?? 0;
      return { kind: 'remove-layer', layer, label: `Remove layer ${layer} for me` };
    },
  },
  {
    id: 'gap',
    title: 'The magnitude gap',
    targets: ['[data-tour=magnitude]', '[data-tour=results]'],
    body: (ctx) => {
      const r = ctx.result;
      const blocks: TourBlock[] = [
        { p: 'Layers make the stream larger: each adds its update, and the mean |X| grows from the embedding to the output. Skip a layer and every layer after it reads a stream smaller than the one it was trained on.' },
      ];
      if (!r) return [...blocks, needRun];
      const L = r.model.numLayers;
      const x0 = at(r.curves.dense, 0);
      const xL = at(r.curves.dense, L);
      const bL = at(r.curves.baseline, L);
      blocks.push({
        p: `In ${runLabel(ctx)}: mean |X| is ${f(x0)} at the embedding and ${f(xL)} at the output of the dense model; after the baseline’s cuts the output’s is ${f(bL)}${xL && bL ? ` (${num((100 * (xL - bL)) / xL, 2)} % less)` : ''}. The chart plots it layer by layer; the shaded bands are the removed layers.`,
      });
      return blocks;
    },
  },
  {
    id: 'scale',
    title: 'One number closes the gap: the scale s',
    targets: ['[data-tour=scale]', '[data-tour=results]'],
    body: (ctx) => {
      const r = ctx.result;
      const blocks: TourBlock[] = [
        { p: 'Before removing layer k, Prune&Comp measures how much larger the stream leaving it is than the stream entering it: per channel c and calibration window m, the mean |X| over tokens after (a) and before (b), and s is the mean of their ratios.' },
        { math: 's \\;=\\; \\frac{1}{D}\\sum_{c=1}^{D}\\; \\frac{1}{N}\\sum_{m=1}^{N} \\frac{a_m[c]}{b_m[c]}' },
        { math: '\\begin{gathered} a_m[c] = \\operatorname{mean}_t \\bigl|X_{k+1}[t, c]\\bigr| \\\\ b_m[c] = \\operatorname{mean}_t \\bigl|X_{k}[t, c]\\bigr| \\end{gathered}' },
      ];
      if (!r) return [...blocks, needRun];
      const plan = r.plans.prunecomp;
      const st = plan?.steps[0];
      if (!plan || !st || plan.fold === 'none') return [...blocks, { p: `${runLabel(ctx)} uses no compensation (${MODE_LABEL[r.settings.mode]}): choose Prune&Comp and run to see s.` }];
      const k = st.removed;
      const b = at(r.curves.dense, k);
      const a = at(r.curves.dense, k + 1);
      if (a !== null && b !== null)
        blocks.push(
          { p: `Prune&Comp’s first cut in ${runLabel(ctx)} is layer ${k}. On the dense model the ratio of the mean magnitudes is close to s (the mean of per-channel ratios weighs every channel equally):` },
          { math: `\\frac{\\operatorname{mean} |X_{${k + 1}}|}{\\operatorname{mean} |X_{${k}}|} = \\frac{${f(a)}}{${f(b)}} = ${f(a / b)} \\qquad s = ${f(st.scale)}` },
        );
      return blocks;
    },
  },
  {
    id: 'fold',
    title: 'Folding s into the weights costs nothing',
    targets: ['[data-tour=fold]', '[data-tour=scale]', '[data-tour=results]'],
    body: (ctx) => {
      const r = ctx.result;
      const blocks: TourBlock[] = [
        { p: 'No operation is added. s multiplies the weights that write into the stream before the cut — the token embedding, and in every layer before it the attention output (o_proj) and MLP output (down_proj) projections — so the whole stream before the cut is s times larger.' },
        { p: 'The layers there read the stream through an RMSNorm, which removes any positive factor, so they compute exactly what they did; the stream reaching the layer after the cut now has the size the removed layer would have given it. The final RMSNorm before the output head removes a global factor too: multiplying the layers after the cut by 1/s instead gives the same logits.' },
        { math: '\\mathrm{RMSNorm}(\\alpha x) = \\frac{\\alpha x}{\\sqrt{\\tfrac{1}{D}\\sum_c \\alpha^2 x_c^2 + \\varepsilon}} \\;\\approx\\; \\mathrm{RMSNorm}(x) \\quad (\\alpha > 0)' },
      ];
      const plan = r?.plans.prunecomp;
      if (plan && plan.fold !== 'none')
        blocks.push({
          p: `${runLabel(ctx)}: ${plan.fold === 'paper' ? 'the paper’s fold (embedding and the layers before each cut × s)' : 'the tie-preserving fold (the layers after each cut × 1/s)'}${plan.untied ? '; the embedding was tied to the output head, so it was untied first (scaling it would scale the logits)' : ''}. Scales: ${plan.scales.map((s) => f(s)).join(', ')}.`,
        });
      const pg = ctx.playground;
      const measured = pg?.compensate ? pg.removals.filter((x) => x.s !== null) : [];
      if (pg && measured.length > 0 && pg.ppl !== null)
        blocks.push({
          p: `In the playground, compensated: ${measured.map((x) => `layer ${x.layer} with s = ${f(x.s)} (${f(x.meanAfter)} / ${f(x.meanBefore)} in mean |X|)`).join(', ')}; perplexity ${f(pg.ppl)} against the dense model’s ${f(pg.densePpl)}.`,
        });
      return blocks;
    },
    action: (ctx) => (ctx.playground && ctx.playground.removed.length > 0 && !ctx.playground.compensate ? { kind: 'compensate', label: 'Compensate the playground’s removal' } : null),
  },
  {
    id: 'recompute',
    title: 'Why the loop scores again after each cut',
    targets: ['[data-testid=score-chart-prunecomp]', '[data-tour=scores]', '[data-tour=results]'],
    body: (ctx) => {
      const r = ctx.result;
      const blocks: TourBlock[] = [
        { p: 'After a cut and its fold, the stream after the cut is different, so the layers there change it by different amounts. Prune&Comp removes one layer at a time and scores the current model before each cut; the baseline keeps the dense model’s scores. (lopper does not run everything again: the statistics before the cut only change by s, so only the layers from the cut on are run again.)' },
      ];
      const c = r ? largestRescore(r) : null;
      if (c)
        blocks.push({
          p: `In ${runLabel(ctx)}: after removing layer ${c.firstCut}, layer ${c.layer}’s score went from ${f(c.before)} to ${f(c.after)}. The step-by-step score panels show every step.`,
        });
      else if (r) blocks.push({ p: 'This run removes too few layers (or scores a block once) to show a second scoring: run Prune&Comp with n ≥ 2 to see one.' });
      return blocks;
    },
  },
  {
    id: 'compare',
    title: 'Compare the methods',
    targets: ['[data-tour=curve]', '[data-tour=perplexity]', '[data-tour=results]'],
    body: (ctx) => {
      const r = ctx.result;
      const blocks: TourBlock[] = [
        { p: 'Every layer-pruning paper draws one picture: perplexity against the number of layers removed. The baseline removes the lowest-scored layers at once, uncompensated; “iterative” scores again after each cut; “one-shot + compensation” folds s into the baseline’s choice; Prune&Comp does both.' },
      ];
      if (!r) return [...blocks, needRun];
      blocks.push({
        p: `${runLabel(ctx)}, perplexity on the evaluation text: dense ${f(r.ppl.dense.ppl)}, baseline ${f(r.ppl.baseline.ppl)}${r.ppl.prunecomp ? `, ${MODE_LABEL[r.settings.mode]} ${f(r.ppl.prunecomp.ppl)}` : ''}. “Draw the curve” computes every n in one sweep.`,
      });
      return blocks;
    },
  },
];

/** The step a URL hash opens: `#tour=3` → index 2; null for anything else (or out of range). */
export function tourStepFromHash(hash: string, count = TOUR_STEPS.length): number | null {
  const m = /^#?tour=(\d{1,3})$/.exec(hash);
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 1 && n <= count ? n - 1 : null;
}

/** The hash of step `index` (0-based): `#tour=index+1`. */
export const tourHash = (index: number): string => `#tour=${index + 1}`;
