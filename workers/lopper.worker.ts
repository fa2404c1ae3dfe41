/// <reference lib="webworker" />
/**
 * lopper's worker: all heavy work — download, parse, calibrate, prune, evaluate, generate, export —
 * runs here, so the page never blocks. Thin: it calls src/engine and speaks the typed
 * messages of src/ui/protocol.ts (ids, progress, cancellation, errors as {code, message}).
 *
 * Requests run one at a time in arrival order (onnxruntime sessions are not shared between
 * concurrent runs); 'cancel' is handled at once and aborts its target's AbortController.
 * The loaded model, the last run's pruned models and their engines stay here between
 * requests.
 */
import { compareRun, compareRunStages, runResult, textWindows, tokenizeText } from '../src/app/run';
import { runIdentity, runKeyParts } from '../src/app/run-identity';
import { Playground } from '../src/app/playground';
import { sweepKeyParts, sweepModes, sweepRun } from '../src/app/sweep';
import { LopperError } from '../src/engine/errors';
import type { Checkpoint } from '../src/engine/model/checkpoint';
import { applyPlan } from '../src/engine/prune/apply';
import { compWithMode } from '../src/engine/prune/options';
import { prune } from '../src/engine/prune/plan';
import { budgetKeyParts, maxCuts } from '../src/app/budget-data';
import { labComps, labMetrics, labRun, labSplit } from '../src/app/lab';
import { LAB_HELD_OUT, labKeyParts } from '../src/app/lab-key';
import { chooseExecution, Engine, liveSessions } from '../src/engine/runtime/engine';
import { watchWasmMemory } from '../src/engine/runtime/wasm-memory';
import { runFlops } from '../src/app/estimate';
import { decodeWeightsFor } from '../src/engine/model/cost';
import { browserRuntime } from '../src/engine/runtime/web';
import { fetchToStore } from '../src/engine/store/download';
import { getResult, putResult, resultKey } from '../src/engine/store/cache';
import {
  exportBaseName,
  exportExtension,
  MODE_LABEL,
  planLabel,
  type Backend,
  type ErrorInfo,
  type EvalResult,
  type GenerateResult,
  type GenerateSettings,
  type GgufType,
  type OnnxDtype,
  type Ops,
  type Progress,
  type Request,
  type Response,
  type RunResult,
  type RunSettings,
  type SweepRunResult,
  type BudgetRunResult,
  type LabRunResult,
  type TextSource,
  type TokenEvent,
  type Variant,
} from '../src/app/protocol';
import { deviceInfo } from './lib/device';
import { loadModel, loadStages, TooLarge, type LoadedModel } from './lib/load';
import { Tracker } from './lib/progress';
import { checkAbort, linkFlag } from './lib/cancel';
import { checkEvalSettings, evalParts, evalStages, evaluateModels, loadItems, sourceLabel } from './lib/eval';
import { exportArchive } from './lib/export';
import { bundleBlobs } from './lib/bundle';

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (m: Response, transfer: Transferable[] = []) => scope.postMessage(m, transfer);

// ---- state kept between requests ----------------------------------------------------------

let model: LoadedModel | null = null;
/** The last run's (or cached) result and its pruned models (built from the plans when first needed). */
let last: { result: RunResult; baseline: Checkpoint | null; prunecomp: Checkpoint | null } | null = null;
/** Engines for generation, by variant and backend. */
const engines = new Map<string, Engine>();
/** The layer playground of the loaded model, for one backend and pair of texts (it keeps the models it measured). */
let play: { backend: Backend; calib: string; eval: string; pg: Playground } | null = null;

async function dropEngines(): Promise<void> {
  const all = [...engines.values()];
  engines.clear();
  for (const e of all) await e.dispose().catch(() => undefined);
}

// ---- texts -------------------------------------------------------------------------------

/** A text's content: a built-in one through the store (kept for offline use), or the person's own. */
async function readText(t: TextSource, what: string, signal: AbortSignal): Promise<{ text: string; name: string }> {
  if (t.kind === 'custom') {
    if (!t.text.trim()) throw new LopperError('bad-input', `the ${what} text “${t.name}” is empty: paste or upload some text`);
    return { text: t.text, name: t.name };
  }
  try {
    const blob = await fetchToStore(t.url, { signal, label: `text: ${t.id}` });
    return { text: await blob.text(), name: t.id };
  } catch (e) {
    if (e instanceof LopperError && e.code !== 'cancelled' && e.code !== 'quota') {
      throw Object.assign(new LopperError(e.code, `the built-in ${what} text “${t.id}” is not available (${e.message}): paste or upload a text instead`), {
        uiCode: 'text',
      });
    }
    throw e;
  }
}

/** A run's texts as the run and the sweep use them: read, tokenized, the calibration windows, the evaluation windows' count. */
async function runTexts(m: LoadedModel, s: RunSettings, signal: AbortSignal) {
  const calib = await readText(s.calib, 'calibration', signal);
  const evalText = await readText(s.eval, 'evaluation', signal);
  const calibIds = tokenizeText(m.ck, calib.text);
  const evalIds = tokenizeText(m.ck, evalText.text);
  const windows = textWindows(calibIds, s.window, s.windows, 'the calibration text', calib.name);
  const evalWindows = textWindows(evalIds, s.window, undefined, 'the evaluation text', evalText.name).length;
  checkAbort(signal);
  return { calibIds, evalIds, windows, evalWindows };
}

/** A stored result, or undefined (a damaged entry is deleted by the store; then it is simply computed again). */
async function storedResult<T>(key: string): Promise<T | undefined> {
  return getResult<T>(key).catch((e) => {
    if (e instanceof LopperError && e.code === 'corrupt') return undefined;
    throw e;
  });
}

// ---- operations ------------------------------------------------------------------------------

type Handler<K extends keyof Ops> = (req: { id: number } & Ops[K]['req'], signal: AbortSignal) => Promise<Ops[K]['result']>;

const progressPoster = (id: number) => (progress: Progress) => post({ id, type: 'progress', progress });

const handlers: { [K in keyof Ops]: Handler<K> } = {
  async device() {
    return deviceInfo();
  },

  async load(req, signal) {
    const tracker = new Tracker(loadStages(), progressPoster(req.id));
    const loaded = await loadModel(req.source, {
      signal,
      tracker,
      backend: req.backend,
      force: !!req.force,
      workload: req.workload ?? { windows: 8, window: 256 },
      memoryBytes: req.memoryBytes ?? null,
    });
    await dropEngines();
    model = loaded;
    last = null;
    play = null;
    return loaded.summary;
  },

  async cached(req) {
    const m = requireModel();
    const key = resultKey(runKeyParts(m.summary.key, runIdentity(req.settings)));
    const value = await getResult<RunResult>(key);
    if (!value) return null;
    const result = { ...value, fromCache: true };
    await adopt(result, null, null);
    return result;
  },

  async run(req, signal) {
    const m = requireModel();
    const s = req.settings;
    const identity = runIdentity(s);
    const key = resultKey(runKeyParts(m.summary.key, identity));
    if (!req.recompute) {
      const value = await storedResult<RunResult>(key);
      if (value) {
        const result = { ...value, fromCache: true };
        await adopt(result, null, null);
        return result;
      }
    }
    const t0 = performance.now();
    const L = m.ck.config.numLayers;
    if (!(Number.isInteger(s.layers) && s.layers >= 1 && s.layers < L)) {
      throw new LopperError('bad-option', `cannot remove ${s.layers} of ${L} layers: choose 1 to ${L - 1}`);
    }
    // 'none' turns the compensated mode into its uncompensated twin (prunecomp → iterative)
    const { mode, comp } = compWithMode(s.mode, s.comp ?? 'scalar');
    const options = {
      metric: s.metric,
      layers: s.layers,
      mode,
      fold: s.fold,
      comp,
      alpha: s.alpha,
      barriers: { skipFirst: s.skipFirst, skipLast: s.skipLast },
      seed: s.seed,
      curves: true,
    };
    const tracker = new Tracker(
      [{ stage: 'text', label: 'reading and tokenizing the texts', weight: 0.2 }, ...compareRunStages({ ...options, evaluation: { ids: [], window: s.window } }, s.windows)],
      progressPoster(req.id),
    );
    tracker.start('text');
    const { calibIds, evalIds, windows, evalWindows } = await runTexts(m, s, signal);
    const out = await compareRun(m.ck, runtimeFor(s.backend), windows, {
      ...options,
      evaluation: { ids: evalIds, window: s.window },
      signal,
      poll: () => checkAbort(signal),
      progress: tracker,
    });
    const computed = runResult(out, {
      key,
      model: { key: m.summary.key, name: m.summary.name, numLayers: L },
      settings: identity,
      calibration: { windows: windows.length, window: s.window, tokens: calibIds.length },
      evaluation: { windows: evalWindows, window: s.window, tokens: evalIds.length },
      computedAt: Date.now(),
      millis: performance.now() - t0,
      speed: {
        execution: chooseExecution(m.ck, runtimeFor(s.backend).wholeGraphBudget),
        // the whole run's FLOPs as the estimate counts them (src/app/estimate.ts) over its time:
        // session builds and everything else a run does are in the speed, in proportion
        flopsPerSecond: runFlops(m.ck.config, { windows: windows.length, window: s.window, layers: s.layers, mode, evalTokens: evalIds.length }) / ((performance.now() - t0) / 1000),
      },
    });
    // The plans are kept, not the pruned models: the stored dense model and a plan rebuild them (applyPlan).
    const modeLabel = out.plans.compared ? planLabel(out.plans.compared) : MODE_LABEL[mode];
    const label = `${m.summary.name}: ${s.metric}, ${s.layers} layer${s.layers === 1 ? '' : 's'}, ${modeLabel} vs baseline (${s.backend})`;
    let result = computed;
    try {
      await putResult(key, label, computed);
    } catch (e) {
      result = { ...computed, warnings: [`the result is not kept for next time: ${(e as Error).message}`] };
    }
    await adopt(result, out.models.baseline, out.models.compared);
    return result;
  },

  async sweepCached(req) {
    const m = requireModel();
    const value = await storedResult<SweepRunResult>(resultKey(sweepKeyParts(m.summary.key, runIdentity(req.settings), req.layers, sweepModes(req.modes))));
    return value ? { ...value, fromCache: true } : null;
  },

  async sweep(req, signal) {
    const m = requireModel();
    const s = req.settings;
    const modes = sweepModes(req.modes);
    const identity = runIdentity(s);
    const key = resultKey(sweepKeyParts(m.summary.key, identity, req.layers, modes));
    if (!req.recompute) {
      const value = await storedResult<SweepRunResult>(key);
      if (value) return { ...value, fromCache: true };
    }
    const t0 = performance.now();
    const points = modes.length * req.layers;
    const tracker = new Tracker(
      [
        { stage: 'text', label: 'reading and tokenizing the texts', weight: 0.2 },
        { stage: 'sweep', label: `perplexity at n = 0…${req.layers}, ${modes.length} modes`, weight: points + 1 },
      ],
      progressPoster(req.id),
    );
    tracker.start('text');
    const { evalIds, windows } = await runTexts(m, s, signal);
    tracker.start('sweep');
    let done = 0;
    const sweep = await sweepRun(m.ck, runtimeFor(s.backend), windows, {
      metric: s.metric,
      layers: req.layers,
      modes,
      fold: s.fold,
      // the compensated modes fold what the run's settings choose ('none' changes nothing: the sweep draws the uncompensated modes itself)
      comp: s.comp === 'none' ? undefined : s.comp,
      alpha: s.alpha,
      barriers: { skipFirst: s.skipFirst, skipLast: s.skipLast },
      seed: s.seed,
      evaluation: { ids: evalIds, window: s.window },
      signal,
      poll: () => checkAbort(signal),
      onPoint: (mode, p) =>
        tracker.report(++done, points, { label: `${MODE_LABEL[mode]}: n = ${p.n} (removed ${p.removed.join(', ')}), perplexity ${p.ppl.toPrecision(4)}`, force: true }),
    });
    const result: SweepRunResult = {
      key,
      fromCache: false,
      computedAt: Date.now(),
      millis: performance.now() - t0,
      model: { key: m.summary.key, name: m.summary.name, numLayers: m.ck.config.numLayers },
      settings: identity,
      sweep,
    };
    const label = `${m.summary.name}: perplexity against layers removed by ${s.metric}, n = 0…${req.layers} (${modes.map((x) => MODE_LABEL[x]).join(', ')})`;
    try {
      await putResult(key, label, result);
    } catch (e) {
      return { ...result, warnings: [`the curve is not kept for next time: ${(e as Error).message}`] };
    }
    return result;
  },

  async budgetCached(req) {
    const m = requireModel();
    const value = await storedResult<BudgetRunResult>(resultKey(budgetKeyParts(m.summary.key, runIdentity(req.settings))));
    return value ? { ...value, fromCache: true } : null;
  },

  // One run cut by cut to the most layers allowed, with an unreachable budget (every cut kept,
  // plan.budget lists each cut's calibration perplexity): any budget's n is read off that.
  async budget(req, signal) {
    const m = requireModel();
    const s = req.settings;
    const identity = runIdentity(s);
    const key = resultKey(budgetKeyParts(m.summary.key, identity));
    if (!req.recompute) {
      const value = await storedResult<BudgetRunResult>(key);
      if (value) return { ...value, fromCache: true };
    }
    const L = m.ck.config.numLayers;
    if (s.metric === 'cl') throw new LopperError('bad-option', 'a perplexity budget cuts one layer at a time: the cl metric removes one block in one shot (choose another metric)');
    const layers = maxCuts(L, s);
    if (layers < 1) throw new LopperError('bad-option', `metric ${s.metric}'s barriers leave no layer of ${L} eligible: lower them (skip first/last)`);
    const t0 = performance.now();
    const { mode, comp } = compWithMode('prunecomp', s.comp ?? 'scalar');
    const tracker = new Tracker(
      [
        { stage: 'text', label: 'reading and tokenizing the texts', weight: 0.2 },
        { stage: 'budget', label: `calibration perplexity after each of ${layers} cuts`, weight: layers + 1 },
      ],
      progressPoster(req.id),
    );
    tracker.start('text');
    const { windows } = await runTexts(m, s, signal);
    tracker.start('budget');
    const { plan } = await prune(m.ck, runtimeFor(s.backend), windows, {
      metric: s.metric,
      layers,
      mode,
      fold: s.fold,
      comp,
      alpha: s.alpha,
      budget: Number.MAX_VALUE,
      barriers: { skipFirst: s.skipFirst, skipLast: s.skipLast },
      seed: s.seed ?? 0,
      signal,
      calibration: { onProgress: () => checkAbort(signal) },
      onProgress: (e) => {
        if (e.phase === 'removed') tracker.report(e.step, layers, { label: `cut ${e.step} of ${layers}: layer ${e.removed} removed`, force: true });
      },
    });
    const b = plan.budget!;
    const result: BudgetRunResult = {
      key,
      fromCache: false,
      computedAt: Date.now(),
      millis: performance.now() - t0,
      model: { key: m.summary.key, name: m.summary.name, numLayers: L },
      settings: identity,
      budget: { metric: plan.metric, mode: plan.mode, comp: plan.comp, layers, densePpl: b.densePpl, ppls: b.ppls, removed: plan.removed, calibration: { windows: windows.length, window: s.window } },
    };
    const label = `${m.summary.name}: calibration perplexity after each of ${layers} cuts by ${s.metric} (${planLabel(plan)})`;
    try {
      await putResult(key, label, result);
    } catch (e) {
      return { ...result, warnings: [`the budget curve is not kept for next time: ${(e as Error).message}`] };
    }
    return result;
  },

  async labCached(req) {
    const m = requireModel();
    const value = await storedResult<LabRunResult>(resultKey(labKeyParts(m.summary.key, runIdentity(req.settings), req)));
    return value ? { ...value, fromCache: true } : null;
  },

  async lab(req, signal) {
    const m = requireModel();
    const s = req.settings;
    const metrics = labMetrics(req.metrics);
    const comps = labComps(req.comps);
    if (!(Number.isFinite(req.alpha) && req.alpha >= 0)) throw new LopperError('bad-option', `the ridge term α must be a number ≥ 0 (got ${req.alpha})`);
    const identity = runIdentity(s);
    const key = resultKey(labKeyParts(m.summary.key, identity, req));
    if (!req.recompute) {
      const value = await storedResult<LabRunResult>(key);
      if (value) return { ...value, fromCache: true };
    }
    const t0 = performance.now();
    const rows = metrics.length * comps.length * req.layers;
    const tracker = new Tracker(
      [
        { stage: 'text', label: 'reading and tokenizing the texts', weight: 0.2 },
        { stage: 'lab', label: `${metrics.length} metrics × ${comps.length} compensations, n = 1…${req.layers}`, weight: rows + 1 },
      ],
      progressPoster(req.id),
    );
    tracker.start('text');
    const { evalIds, windows } = await runTexts(m, s, signal);
    const { fit, heldOut } = labSplit(windows, LAB_HELD_OUT);
    tracker.start('lab');
    let done = 0;
    const lab = await labRun(m.ck, runtimeFor(s.backend), fit, {
      metrics,
      comps,
      layers: req.layers,
      alpha: req.alpha,
      fold: s.fold,
      barriers: { skipFirst: s.skipFirst, skipLast: s.skipLast },
      seed: s.seed,
      heldOut,
      evaluation: { ids: evalIds, window: s.window },
      signal,
      poll: () => checkAbort(signal),
      onRow: (row) =>
        tracker.report(++done, rows, { label: `row ${done} of ${rows}: ${row.metric}, compensation ${row.comp}, n = ${row.n}: held-out perplexity ${row.heldOut.toPrecision(4)}`, force: true, row }),
    });
    const result: LabRunResult = {
      key,
      fromCache: false,
      computedAt: Date.now(),
      millis: performance.now() - t0,
      model: { key: m.summary.key, name: m.summary.name, numLayers: m.ck.config.numLayers },
      settings: identity,
      lab,
      split: { fit: fit.length, heldOut: heldOut.length, window: s.window },
      alpha: req.alpha,
    };
    const label = `${m.summary.name}: compensation lab, ${metrics.join(', ')} × ${comps.join(', ')}, n = 1…${req.layers}`;
    try {
      await putResult(key, label, result);
    } catch (e) {
      return { ...result, warnings: [`the lab is not kept for next time: ${(e as Error).message}`] };
    }
    return result;
  },

  async generate(req, signal) {
    const ck = variantModel(req.model);
    return generate(await engineFor(req.model, req.backend), ck, req, (token) => post({ id: req.id, type: 'token', token }), signal);
  },

  async evalCached(req) {
    const m = requireModel();
    const s = checkEvalSettings(req.settings);
    const value = await storedResult<EvalResult>(resultKey(evalParts(m.summary.key, req.runKey, s)));
    return value ? { ...value, fromCache: true } : null;
  },

  async evaluate(req, signal) {
    const m = requireModel();
    const s = checkEvalSettings(req.settings);
    const run = requireRun(req.runKey);
    const key = resultKey(evalParts(m.summary.key, run.key, s));
    if (!req.recompute) {
      const value = await storedResult<EvalResult>(key);
      if (value) return { ...value, fromCache: true };
    }
    const t0 = performance.now();
    const compLabel = run.plans.prunecomp ? planLabel(run.plans.prunecomp) : MODE_LABEL.baseline;
    const variants = [
      { variant: 'dense' as const, label: 'dense' },
      { variant: 'baseline' as const, label: 'baseline' },
      ...(run.plans.prunecomp ? [{ variant: 'prunecomp' as const, label: compLabel }] : []),
    ];
    const tracker = new Tracker(evalStages(s, variants), progressPoster(req.id));
    const tasks = await loadItems(s, tracker, signal);
    const models = variants.map((v) => ({ ...v, ck: variantModel(v.variant) }));
    const scored = await evaluateModels(models, runtimeFor(s.backend), tasks, tracker, signal);
    const result: EvalResult = {
      key,
      fromCache: false,
      computedAt: Date.now(),
      millis: performance.now() - t0,
      runKey: run.key,
      model: { key: m.summary.key, name: m.summary.name },
      settings: { tasks: s.tasks, limit: s.limit, data: s.data, backend: s.backend },
      source: sourceLabel(s),
      results: { dense: scored.get('dense')!, baseline: scored.get('baseline')!, prunecomp: scored.get('prunecomp') ?? null },
    };
    const label = `${m.summary.name}: zero-shot accuracy on ${s.tasks.join(', ')} (${s.limit} items each), dense, baseline${run.plans.prunecomp ? ` and ${compLabel}` : ''} (${run.settings.metric}, −${run.settings.layers} layers)`;
    try {
      await putResult(key, label, result);
    } catch (e) {
      return { ...result, warnings: [`the evaluation is not kept for next time: ${(e as Error).message}`] };
    }
    return result;
  },

  async export(req, signal) {
    const t0 = performance.now();
    const m = requireModel();
    const run = req.model === 'dense' ? (last?.result ?? null) : requireRun(req.runKey);
    const ck = variantModel(req.model);
    const base = exportBaseName(m.summary.name, req.model, req.format, run, req.dtype);
    const name = `${base}${exportExtension(req.format)}`;
    const tracker = new Tracker([{ stage: 'export', label: `writing ${name}`, weight: 1 }], progressPoster(req.id));
    tracker.start('export');
    const options = !req.dtype ? {} : req.format === 'gguf' ? { ggufType: req.dtype as GgufType } : { dtypes: [req.dtype as OnnxDtype] };
    const archive = await exportArchive(ck, req.format, options, base, signal, (sent, total) =>
      tracker.report(sent, total ?? sent * 2, { label: `writing ${name}: ${mb(sent)}${total ? ` of ${mb(total)}` : ''}` }),
    );
    post({ id: req.id, type: 'stream', stream: { name, bytes: archive.bytes, stream: archive.stream } }, [archive.stream]);
    const bytes = await archive.finished;
    return { name, bytes, millis: performance.now() - t0 };
  },

  async bundle(req, signal) {
    const m = requireModel();
    const run = req.model === 'dense' ? (last?.result ?? null) : requireRun(req.runKey);
    const ck = variantModel(req.model);
    const tracker = new Tracker([{ stage: 'bundle', label: 'making the transformers.js bundle', weight: 1 }], progressPoster(req.id));
    tracker.start('bundle');
    const b = await bundleBlobs(ck, req.dtype, signal, (done, total) => tracker.report(done, total, { label: `making the transformers.js bundle: ${mb(done)} of ${mb(total)}` }));
    return { ...b, name: exportBaseName(m.summary.name, req.model, 'onnx', run, b.dtype) };
  },

  // The layer playground: a newer click cancels the older request (the page), so only the last state is measured.
  async playground(req, signal) {
    const m = requireModel();
    const calib = (await readText(req.calib, 'calibration', signal)).text;
    const evalText = (await readText(req.eval, 'evaluation', signal)).text;
    if (!play || play.backend !== req.backend || play.calib !== calib || play.eval !== evalText) {
      play = { backend: req.backend, calib, eval: evalText, pg: Playground.fromTexts(m.ck, runtimeFor(req.backend), calib, evalText) };
    }
    return play.pg.compute({ removed: req.removed, compensate: req.compensate, fold: req.fold }, { signal, poll: () => checkAbort(signal) });
  },
};

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** The engine generation uses for a variant on a backend (kept between generations). */
async function engineFor(v: Variant, backend: Backend): Promise<Engine> {
  const key = `${v}:${backend}`;
  let engine = engines.get(key);
  if (!engine) {
    const ck = variantModel(v);
    const runtime = runtimeFor(backend);
    const decodeWeights = decodeWeightsFor(ck.config, chooseExecution(ck, runtime.wholeGraphBudget), backend, (await deviceInfo()).gpu);
    engine = new Engine(ck, runtime, { decodeWeights });
    // A streamed engine keeps a layer's fp32 weights and a head slice in its buffers (and the
    // runtime's copy), an 8-bit decoder its session: one at a time, not one per model.
    if (engine.execution === 'streamed') await dropEngines();
    engines.set(key, engine);
  }
  return engine;
}

/** The current run, checked to be the one the page shows (`runKey`). */
function requireRun(runKey: string | undefined): RunResult {
  requireModel();
  if (!last) throw Object.assign(new LopperError('bad-input', 'nothing is pruned yet: run the pruning first'), { uiCode: 'no-model' });
  if (runKey !== undefined && last.result.key !== runKey) {
    throw new LopperError('bad-input', 'the pruned models changed since this page showed them: look at the results again, then retry');
  }
  return last.result;
}

/** Make a result the current one; its pruned models are built from the plans when first needed. */
async function adopt(result: RunResult, baseline: Checkpoint | null, prunecomp: Checkpoint | null): Promise<void> {
  for (const v of ['baseline', 'prunecomp']) {
    for (const b of ['wasm', 'webgpu']) {
      const e = engines.get(`${v}:${b}`);
      if (e) {
        engines.delete(`${v}:${b}`);
        await e.dispose().catch(() => undefined);
      }
    }
  }
  last = { result, baseline, prunecomp };
}

function requireModel(): LoadedModel {
  if (!model) throw Object.assign(new LopperError('bad-input', 'no model is loaded: choose one first'), { uiCode: 'no-model' });
  return model;
}

function variantModel(v: Variant): Checkpoint {
  const m = requireModel();
  if (v === 'dense') return m.ck;
  if (!last) throw Object.assign(new LopperError('bad-input', 'nothing is pruned yet: run the pruning first'), { uiCode: 'no-model' });
  if (v === 'baseline') return (last.baseline ??= applyPlan(m.ck, last.result.plans.baseline));
  const plan = last.result.plans.prunecomp;
  if (!plan) throw new LopperError('bad-input', 'this run pruned with the baseline only: choose another mode to compare');
  return (last.prunecomp ??= applyPlan(m.ck, plan));
}

const runtimes = new Map<Backend, ReturnType<typeof browserRuntime>>();
function runtimeFor(backend: Backend) {
  if (backend === 'webgpu' && gpuLost !== null) {
    throw Object.assign(new Error(`the WebGPU device was lost earlier (${gpuLost})`), { gpuLost: true });
  }
  let r = runtimes.get(backend);
  if (!r) runtimes.set(backend, (r = browserRuntime(backend)));
  return r;
}

/** Why onnxruntime's WebGPU device was lost, once it was (WebGPU requests then fail at once). */
let gpuLost: string | null = null;
let watchingGpu = false;
/** After the first WebGPU work: watch onnxruntime's device for loss. */
function watchGpu(): void {
  const r = runtimes.get('webgpu');
  if (!r || watchingGpu) return;
  type Lost = { message?: string; reason?: string };
  const env = (r.ort as unknown as { env?: { webgpu?: { device?: Promise<{ lost?: Promise<Lost> }> } } }).env;
  try {
    const device = env?.webgpu?.device;
    if (!device) return;
    watchingGpu = true;
    void device
      .then((d) => d.lost?.then((info) => (gpuLost = info.message || info.reason || 'unknown reason')))
      .catch(() => undefined);
  } catch {
    // no device yet
  }
}

async function generate(
  engine: Engine,
  ck: Checkpoint,
  s: GenerateSettings,
  onToken: (t: TokenEvent) => void,
  signal: AbortSignal,
): Promise<GenerateResult> {
  const prompt = tokenizeText(ck, s.prompt);
  const promptText = ck.tokenizer.decode(prompt);
  const ids: number[] = [];
  const t0 = performance.now();
  let lastPost = 0;
  const textNow = () => {
    const full = ck.tokenizer.decode([...prompt, ...ids]);
    return full.startsWith(promptText) ? full.slice(promptText.length) : full;
  };
  // Tokens/s after the first token (which also pays for building the decoder and the prompt); with one token, its own rate.
  let first = NaN;
  const rate = () => (ids.length > 1 ? (ids.length - 1) / Math.max(1e-3, (performance.now() - first) / 1000) : ids.length / Math.max(1e-3, (performance.now() - t0) / 1000));
  // Layer by layer with fp32 weights no KV cache is kept: each token runs the sequence through every layer again.
  const weights =
    engine.decodeWeights === 'q8'
      ? '8-bit weights, KV cache'
      : engine.decodeWeights === 'fp16'
        ? 'fp16 weights, KV cache'
        : engine.execution === 'streamed'
          ? 'fp32, layer by layer, no KV cache'
          : 'fp32, KV cache';
  for await (const id of engine.generate(prompt, { maxTokens: s.maxTokens, temperature: s.temperature, topK: s.topK, seed: s.seed })) {
    ids.push(id);
    if (ids.length === 1) first = performance.now();
    checkAbort(signal);
    if (performance.now() - lastPost > 80) {
      lastPost = performance.now();
      onToken({ text: textNow(), tokens: ids.length, tokensPerSecond: rate(), weights });
    }
  }
  const text = textNow();
  onToken({ text, tokens: ids.length, tokensPerSecond: rate(), weights });
  return { model: s.model, text, ids, promptIds: prompt, tokens: ids.length, tokensPerSecond: rate(), millis: performance.now() - t0, firstTokenMillis: first - t0, weights };
}

// ---- errors -------------------------------------------------------------------------------------

const GPU_LOST = /device (was |is )?lost|GPUDevice.*(lost|destroyed)|DXGI_ERROR|context lost/i;

/** The words of a runtime error that say why the device went (onnxruntime wraps them in its internals). */
function lossReason(message: string): string {
  const phrase = message.match(/[^:.()]*\b(lost|destroyed)\b[^:.()]*/i);
  return phrase ? phrase[0].trim() : 'no reason given';
}

function toErrorInfo(e: unknown, backend: Backend | undefined): ErrorInfo {
  const uiCode = (e as { uiCode?: string } | null)?.uiCode;
  if (backend === 'webgpu' && (gpuLost !== null || (e as { gpuLost?: boolean } | null)?.gpuLost)) {
    return { code: 'gpu-lost', message: `the WebGPU device was lost (${gpuLost ?? 'unknown reason'}): switch to the WASM backend and run again; the model and results are kept` };
  }
  if (e instanceof TooLarge) return { code: 'too-large', message: e.message };
  if (e instanceof LopperError) return { code: uiCode ?? e.code, message: e.message };
  const message = e instanceof Error ? e.message : String(e);
  if ((e as { name?: string } | null)?.name === 'QuotaExceededError') {
    return { code: 'quota', message: `browser storage is full (${message}): free space in the storage panel and try again` };
  }
  if (backend === 'webgpu' && GPU_LOST.test(message)) {
    return { code: 'gpu-lost', message: `the WebGPU device was lost (${lossReason(message)}): switch to the WASM backend and run again` };
  }
  console.error(e);
  return { code: 'internal', message: `unexpected error: ${message}` };
}

// ---- dispatch ---------------------------------------------------------------------------------

const controllers = new Map<number, AbortController>();
let queue: Promise<unknown> = Promise.resolve();

/**
 * In a production build onnxruntime-web is bundled into this file, so its WASM threads
 * (Emscripten pthread workers, named "em-pthread…") and its proxy worker load this very
 * script: there the runtime's own message handler must stay in place.
 */
const runtimeHelper = /^(em-pthread|ort-wasm-proxy)/.test(scope.name ?? '');

function onRequest(e: MessageEvent<Request>): void {
  const req = e.data;
  if (req.op === 'cancel') {
    controllers.get(req.target)?.abort();
    return;
  }
  const controller = new AbortController();
  controllers.set(req.id, controller);
  linkFlag(controller, req.cancelFlag);
  const backend = 'backend' in req ? req.backend : 'settings' in req ? (req.settings as RunSettings).backend : undefined;
  const work = async () => {
    try {
      checkAbort(controller.signal, 'cancelled before it started');
      const handler = handlers[req.op] as Handler<typeof req.op>;
      const result = await handler(req as never, controller.signal);
      post({ id: req.id, type: 'done', result });
    } catch (err) {
      post({ id: req.id, type: 'error', error: toErrorInfo(err, backend) });
    } finally {
      controllers.delete(req.id);
      if (backend === 'webgpu') watchGpu();
    }
  };
  // 'device' needs nothing the queue guards; everything else runs in order.
  if (req.op === 'device') void work();
  else queue = queue.then(work);
}

if (!runtimeHelper) {
  scope.onmessage = onRequest;
  const wasmMemoryBytes = watchWasmMemory();
  // For diagnostics (the e2e tests read it through the devtools protocol): what this worker
  // holds open, and its WebAssembly memory (which never shrinks: its size now is its peak).
  (scope as unknown as { lopperDiagnostics: () => { liveSessions: number; engines: number; wasmMemoryBytes: number } }).lopperDiagnostics = () => ({
    liveSessions: liveSessions(),
    engines: engines.size,
    wasmMemoryBytes: wasmMemoryBytes(),
  });
}
