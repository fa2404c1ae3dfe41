/**
 * lopper's command line: the same engine as the app, on onnxruntime-node (or, with
 * --runtime wasm, onnxruntime-web's WASM build).
 *
 *   lopper info     --model MODEL [--json]
 *   lopper ppl      --model MODEL --text FILE [--window W] [--max-windows K] [--json]
 *   lopper generate --model MODEL [--prompt TEXT] [--max-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]
 *   lopper convert  --model MODEL --to FORMAT --out DIR (= export --format FORMAT)
 *   lopper export   --model MODEL --format hf|llama2c|onnx|gguf --out DIR|FILE.zip|FILE.gguf [--max-shard-size SIZE] [--dtype …]
 *   lopper prune    --model MODEL --metric M --layers N --mode MODE --calib FILE [--calib-windows K] [--window W]
 *                   [--fold paper|tied] [--eval FILE] [--out DIR [--format hf|llama2c|onnx|gguf]] [--json]
 *   lopper lab      --model MODEL --calib FILE [--eval FILE] [--layers N] [--metrics …] [--comps …]: every metric × compensation
 *   lopper compare  --model MODEL --metric M --layers N --calib FILE --eval FILE [...]: baseline vs Prune&Comp
 *   lopper eval     --model MODEL --task T1,T2,… [--limit N] [--data DIR|hub] [--dump FILE] [--json]
 *
 * MODEL is a llama2.c .bin (tokenizer beside it, or --tokenizer FILE) or a Hugging Face folder.
 */
import { readFile } from 'node:fs/promises';
import { LopperError } from '../engine/errors';
import { planJson } from '../engine/export/plan';
import { loadModelPath } from '../engine/formats/load-node';
import { parameterCount, type Checkpoint } from '../engine/model/checkpoint';
import { describeConfig } from '../engine/model/config';
import { isLazy } from '../engine/model/tensor';
import { chooseExecution, Engine, WHOLE_GRAPH_BUDGET } from '../engine/runtime/engine';
import { cudaRuntime, nodeRuntime } from '../engine/runtime/node';
import type { Runtime } from '../engine/runtime/ort';
import { COMP_CHOICES, compWithMode, isMetric, METRICS, MODES, type CompChoice, type Metric, type Mode } from '../engine/prune/options';
import { prune, type Plan, type PruneOptions } from '../engine/prune/plan';
import { compareRun, textWindows, tokenizeText } from '../app/run';
import { SWEEP_MODES, sweepCsv, sweepRun } from '../app/sweep';
import { labCsv, labRun, labSplit, labTable } from '../app/lab';
import { MODE_LABEL } from '../app/protocol';
import { float, int, parse, required } from './args';
import { checkOutDir, dtypeOption, exportCommand, pruneOutFormat, writeModel } from './export';
import { appUrl, reportArgs, reportDir, writeCompareReport } from './report';
import { evalCommand, loadTasks, SHARED_QA } from './eval';
import { parseTaskList, TASKS } from '../engine/eval/tasks';
import { existsSync } from 'node:fs';

const USAGE = `usage: lopper <command> [options]

commands:
  info      --model MODEL [--json]
  ppl       --model MODEL --text FILE [--window W=256] [--max-windows K] [--json]
  generate  --model MODEL [--prompt TEXT] [--max-tokens N=256] [--temperature T=0] [--top-k K] [--seed S] [--json]
  convert   --model MODEL --to FORMAT --out DIR   (the same as export --format FORMAT)
  export    --model MODEL --format hf|llama2c|onnx|gguf --out DIR|FILE.zip|FILE.gguf [--max-shard-size SIZE=5GB] [--json]
            [--dtype fp32|fp16|both]  (onnx: onnx/model.onnx, onnx/model_fp16.onnx or both; default fp32)
            [--dtype f32|f16|bf16|q8_0]  (gguf, for llama.cpp/Ollama/LM Studio; default: the weights' own type)
  prune     --model MODEL --metric METRIC --layers N --mode MODE --calib FILE
            [--calib-windows K=8] [--window W=256] [--fold paper|tied] [--eval FILE] [--json]
            [--budget B]  (cut one layer at a time, up to --layers (default: all but one), and stop before
            the first cut after which the calibration perplexity would exceed B × the dense model's)
            [--out DIR [--format hf|llama2c|onnx|gguf] [--dtype …]]  (default: the model's format; plan.json and
            prune-layers.txt, for llama-quantize --prune-layers, beside it)
  sweep     --model MODEL --metric METRIC --layers N --calib FILE --eval FILE [--modes M,M…] [--csv|--json]
            perplexity against layers removed, n = 0…N, per mode (default ${SWEEP_MODES.join(',')}):
            one pruning run per mode to N layers, each model on the way measured
  lab       --model MODEL --calib FILE [--eval FILE] [--layers N=min(L−1,4)] [--metrics M,M…] [--comps C,C…]
            [--held-out F=0.25] [--calib-windows K=8] [--window W=256] [--alpha A] [--task T,T… [--limit N]] [--csv|--json]
            every metric × every compensation (default all of each) for n = 1…N on one calibration of
            the dense model: each model's perplexity on the last ceil(F·K) calibration windows (held out:
            never fitted or chosen on), on --eval, and with --task its zero-shot average and RP; the
            best per n (lowest held-out perplexity) marked *
  compare   --model MODEL --metric METRIC --layers N --calib FILE --eval FILE
            [--calib-windows K=8] [--window W=256] [--fold paper|tied] [--json]
            [--report DIR [--app-url URL]]  (report.md, the tables as CSV, the figures as SVG, into DIR;
            its settings link opens the app at URL, default http://127.0.0.1:4173/)
            (baseline and Prune&Comp side by side)
  eval      --model MODEL --task TASK[,TASK…] [--limit N] [--data DIR|hub] [--dump FILE] [--json]
            zero-shot accuracy (lm-eval-harness conventions); TASK: ${TASKS.join('|')}
            --data: a folder of the tasks' .jsonl files (default ../shared/data/qa when present)
            or hub (the Hugging Face datasets server, or --datasets-server URL); --dump: one JSON line per item

pruning options:
  METRIC             ${METRICS.join('|')}
  MODE               ${MODES.join('|')}
  --skip-first N, --skip-last N   eligibility barriers (default: the paper's per metric)
  --comp C           what the compensated modes fold at each cut: scalar (Prune&Comp's s, default),
                     linear (ReplaceMe's least-squares D×D map, folded into down_proj of the layer before
                     the cut; the scalar where the cut is layer 0), diag (its diagonal), or none (the
                     uncompensated twin: prunecomp → iterative, oneshot-comp → baseline)
  --alpha A          ridge term of the linear/diag fits (default 0, as ReplaceMe)
  --seed S           seed of the random metric (default 0)
  --no-reuse         recompute every layer at every step instead of reusing statistics (exact for
                     the paper fold, where reuse is exact only up to the RMSNorm ε term)

common options:
  --tokenizer FILE   llama2.c tokenizer .bin, when it is not beside the model
  --runtime node|wasm|cuda  onnxruntime-node on the CPU (default), onnxruntime-web's WASM build, or
                     onnxruntime-node's CUDA execution provider on an NVIDIA GPU (--gpu N, default 0;
                     needs ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node; untested here)
  --threads N        CPU threads (default: all)

MODEL is a llama2.c .bin checkpoint or a Hugging Face model folder.`;

const common = {
  model: { type: 'string' },
  tokenizer: { type: 'string' },
  runtime: { type: 'string' },
  threads: { type: 'string' },
  gpu: { type: 'string' },
  json: { type: 'boolean' },
} as const;

async function runtimeFor(values: Record<string, unknown>): Promise<Runtime> {
  const threads = int(values, 'threads', 0, 0);
  switch (values.runtime ?? 'node') {
    case 'node':
      return nodeRuntime(threads);
    case 'wasm':
      return (await import('../engine/runtime/web-node')).webWasmRuntime(threads);
    case 'cuda':
      return cudaRuntime(int(values, 'gpu', 0, 0) ?? 0);
    default:
      throw new LopperError('bad-option', `--runtime must be node, wasm or cuda (got "${String(values.runtime)}")`);
  }
}

async function openModel(values: Record<string, unknown>): Promise<Checkpoint> {
  return loadModelPath(required(values, 'model'), values.tokenizer as string | undefined);
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new LopperError('not-found', 'cannot read the text file', path);
  }
}

const out = (s: string) => process.stdout.write(s);

// ---------------------------------------------------------------- pruning

const pruneArgs = {
  ...common,
  metric: { type: 'string' },
  layers: { type: 'string' },
  calib: { type: 'string' },
  'calib-windows': { type: 'string' },
  window: { type: 'string' },
  fold: { type: 'string' },
  comp: { type: 'string' },
  alpha: { type: 'string' },
  eval: { type: 'string' },
  'skip-first': { type: 'string' },
  'skip-last': { type: 'string' },
  seed: { type: 'string' },
  'no-reuse': { type: 'boolean' },
} as const;

interface PruneSetup {
  ck: Checkpoint;
  runtime: Runtime;
  window: number;
  /** calibration windows (token ids, BOS first) */
  windows: number[][];
  /** evaluation text's ids (BOS first), when --eval was given */
  evalIds?: number[];
  opts: Omit<PruneOptions, 'mode'>;
  /** --comp: a compensation, or 'none' (the compensated modes' uncompensated twins: compWithMode) */
  comp: CompChoice;
}

/** Options, texts and model for prune/compare/sweep, all checked before any work. */
async function pruneSetup(v: Record<string, unknown>, evalRequired: boolean, layersOptional = false): Promise<PruneSetup> {
  const metric = required(v, 'metric');
  if (!isMetric(metric)) throw new LopperError('bad-option', `--metric must be one of ${METRICS.join(', ')} (got "${metric}")`);
  if (int(v, 'layers', undefined, 1) === undefined && !layersOptional) throw new LopperError('bad-option', '--layers is required');
  const comp = (v.comp as string | undefined) ?? 'scalar';
  if (!(COMP_CHOICES as readonly string[]).includes(comp)) throw new LopperError('bad-option', `--comp must be one of ${COMP_CHOICES.join(', ')} (got "${comp}")`);
  // without --layers (a budget's most): all but one (the barriers may allow fewer: prune says so)
  const { opts, ...rest } = await calibrationSetup(v, evalRequired, (L) => L - 1);
  return { ...rest, comp: comp as CompChoice, opts: { ...opts, metric: metric as Metric } };
}

/**
 * The options every calibrated command shares (--layers, --alpha, --window, --calib-windows,
 * --fold, barriers, --seed, --no-reuse), the texts, the model and its calibration windows, all
 * checked before any work. `defaultLayers`: n when --layers is not given.
 */
async function calibrationSetup(v: Record<string, unknown>, evalRequired: boolean, defaultLayers: (L: number) => number): Promise<Omit<PruneSetup, 'comp' | 'opts'> & { opts: Omit<PruneOptions, 'mode' | 'metric'> }> {
  let layers = int(v, 'layers', undefined, 1);
  const alpha = float(v, 'alpha', 0);
  if (alpha < 0) throw new LopperError('bad-option', `--alpha must be ≥ 0 (got ${alpha})`);
  const window = int(v, 'window', 256, 2)!;
  const K = int(v, 'calib-windows', 8, 1)!;
  const fold = (v.fold as string | undefined) ?? 'paper';
  if (fold !== 'paper' && fold !== 'tied') throw new LopperError('bad-option', `--fold must be paper or tied (got "${fold}")`);
  const barriers = { skipFirst: int(v, 'skip-first', undefined, 0), skipLast: int(v, 'skip-last', undefined, 0) };
  const seed = int(v, 'seed', 0, 0);
  const calibPath = required(v, 'calib');
  const evalPath = evalRequired ? required(v, 'eval') : (v.eval as string | undefined);
  const calibText = await readText(calibPath);
  const evalText = evalPath === undefined ? undefined : await readText(evalPath);
  const ck = await openModel(v);
  layers ??= defaultLayers(ck.config.numLayers);
  if (layers >= ck.config.numLayers) throw new LopperError('bad-option', `cannot remove ${layers} of ${ck.config.numLayers} layers: at least one must remain`);
  const windows = textWindows(tokenizeText(ck, calibText), window, K, 'calibration text', calibPath);
  const evalIds = evalText === undefined ? undefined : tokenizeText(ck, evalText);
  if (evalIds) textWindows(evalIds, window, undefined, 'evaluation text', evalPath!);
  return { ck, runtime: await runtimeFor(v), window, windows, evalIds, opts: { layers, fold, barriers, seed, reuse: !v['no-reuse'], alpha } };
}

async function perplexityOf(ck: Checkpoint, runtime: Runtime, ids: number[], window: number) {
  const engine = new Engine(ck, runtime);
  try {
    const r = await engine.perplexity(ids, window);
    return { ppl: r.ppl, tokens: r.tokens, windows: r.windows };
  } finally {
    await engine.dispose();
  }
}

/** A compared plan's name in tables: Prune&Comp (scalar), its linear/diag variants, or the uncompensated mode. */
const compLabel = (p: Plan) => (p.comp === 'linear' || p.comp === 'diag' ? `${MODE_LABEL[p.mode]} (${p.comp})` : MODE_LABEL[p.mode]);

const fmtScales = (p: Plan) => p.scales.map((s, i) => (p.steps[i].map ? p.steps[i].map!.kind : p.steps[i].folded ? s.toFixed(4) : `(${s.toFixed(4)})`)).join(', ');

/** What was folded at each step: scales, or maps with how much of the removed layers' effect each left unexplained. */
function compLine(plan: Plan): string {
  if (plan.fold === 'none') return '';
  if (plan.comp === 'scalar') return `scales ${fmtScales(plan)} (fold ${plan.fold}${plan.untied ? ', embeddings untied' : ''}; in parentheses: measured, nothing to fold)\n`;
  const steps = plan.steps.filter((st) => st.folded || st.map);
  const each = steps.map((st) =>
    st.map
      ? `layer ${st.removed}: ${st.map.kind} map into layer ${st.map.layer}'s down_proj, residual ${st.map.residual.toPrecision(3)} (deleting alone ${st.map.residualNone.toPrecision(3)})`
      : `layer ${st.removed}: scalar s = ${st.scale.toFixed(4)} (no layer before it to fold a map into)`,
  );
  return `compensation ${plan.comp} (α = ${plan.alpha}): ${each.join('; ')}\n`;
}

function budgetLine(b: NonNullable<Plan['budget']>): string {
  const limit = b.factor * b.densePpl;
  const why =
    b.stopped === 'budget'
      ? `stopped: removing layer ${b.rejected!.removed} next would give ${b.rejected!.ppl.toFixed(4)} > ${limit.toFixed(4)}`
      : `stopped at the most layers allowed, within the budget`;
  return `budget ${b.factor} × dense calibration perplexity ${b.densePpl.toFixed(4)} = ${limit.toFixed(4)}; after each cut ${b.ppls.map((p) => p.toFixed(4)).join(', ') || '(none)'}; ${why}\n`;
}

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  async info(argv) {
    const v = parse(argv, common);
    const ck = await openModel(v);
    const dtypes = [...new Set([...ck.tensors.values()].map((t) => t.dtype))];
    const execution = chooseExecution(ck);
    // 'on disk': weight files over LOPPER_LAZY_ABOVE stay there, read layer by layer (formats/load-node.ts)
    const weights = [...ck.tensors.values()].some(isLazy) ? 'on disk' : 'in memory';
    const info = { source: ck.source, format: ck.format, config: ck.config, parameters: parameterCount(ck), dtypes, tokenizer: ck.tokenizer.kind, execution, weights };
    if (v.json) out(JSON.stringify(info, null, 2) + '\n');
    else {
      out(`${ck.source} (${ck.format})\n${describeConfig(ck.config)}\n`);
      out(`parameters: ${info.parameters.toLocaleString('en')}  dtype: ${dtypes.join(',')}  tied: ${ck.config.tieWordEmbeddings}  tokenizer: ${ck.tokenizer.kind}  weights: ${weights}\n`);
      const fp32 = (info.parameters * 4) / 2 ** 30;
      out(
        execution === 'whole'
          ? `passes: one whole graph (fp32 weights ${fp32.toFixed(2)} GiB ≤ ${(WHOLE_GRAPH_BUDGET / 2 ** 30).toFixed(1)} GiB)\n`
          : `passes: layer by layer (fp32 weights ${fp32.toFixed(2)} GiB > ${(WHOLE_GRAPH_BUDGET / 2 ** 30).toFixed(1)} GiB; generation needs the whole graph)\n`,
      );
    }
  },

  async ppl(argv) {
    const v = parse(argv, { ...common, text: { type: 'string' }, window: { type: 'string' }, 'max-windows': { type: 'string' } });
    const window = int(v, 'window', 256, 2)!;
    const maxWindows = int(v, 'max-windows');
    const text = await readText(required(v, 'text'));
    const ck = await openModel(v);
    const ids = tokenizeText(ck, text);
    const engine = new Engine(ck, await runtimeFor(v));
    try {
      const r = await engine.perplexity(ids, window, { maxWindows });
      const result = { ppl: r.ppl, tokens: r.tokens, windows: r.windows };
      out(v.json ? JSON.stringify(result) + '\n' : `perplexity ${r.ppl.toFixed(4)} over ${r.tokens} tokens in ${r.windows} windows of ${window}\n`);
    } finally {
      await engine.dispose();
    }
  },

  async generate(argv) {
    const v = parse(argv, {
      ...common,
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      seed: { type: 'string' },
    });
    const ck = await openModel(v);
    const prompt = (v.prompt as string | undefined) ?? '';
    const ids = tokenizeText(ck, prompt);
    const engine = new Engine(ck, await runtimeFor(v));
    const opts = {
      maxTokens: int(v, 'max-tokens', 256)!,
      temperature: float(v, 'temperature', 0),
      topK: int(v, 'top-k', 0, 0),
      seed: int(v, 'seed', 0, 0),
    };
    const generated: number[] = [];
    let printed = '';
    const t0 = performance.now();
    try {
      for await (const id of engine.generate(ids, opts)) {
        generated.push(id);
        if (!v.json) {
          // Decode the whole continuation each time: multi-byte characters may span tokens.
          const text = ck.tokenizer.decode([...ids, ...generated]);
          if (text.startsWith(printed) && !text.endsWith('\uFFFD')) {
            out(text.slice(printed.length));
            printed = text;
          }
        }
      }
    } finally {
      await engine.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const text = ck.tokenizer.decode([...ids, ...generated]);
    if (v.json) out(JSON.stringify({ text, prompt_ids: ids, ids: generated, tokens_per_second: generated.length / seconds }) + '\n');
    else out(text.slice(printed.length) + '\n');
  },

  async prune(argv) {
    const v = parse(argv, { ...pruneArgs, mode: { type: 'string' }, budget: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' }, dtype: { type: 'string' } });
    const mode = required(v, 'mode');
    if (!(MODES as readonly string[]).includes(mode)) throw new LopperError('bad-option', `--mode must be one of ${MODES.join(', ')} (got "${mode}")`);
    const budget = v.budget === undefined ? undefined : float(v, 'budget', 0);
    const dir = v.out as string | undefined;
    if (dir !== undefined) await checkOutDir(dir);
    const { ck, runtime, window, windows, evalIds, opts, comp } = await pruneSetup(v, false, budget !== undefined);
    const format = pruneOutFormat(v, ck, dir);
    const types = dtypeOption(v, format);
    const { plan, checkpoint } = await prune(ck, runtime, windows, { ...opts, ...compWithMode(mode as Mode, comp), budget });
    const dense = evalIds && (await perplexityOf(ck, runtime, evalIds, window));
    const pruned = evalIds && (await perplexityOf(checkpoint, runtime, evalIds, window));
    const model = dir === undefined ? undefined : await writeModel(checkpoint, dir, { format, plan, ...types });
    if (v.json) {
      const result = {
        model: ck.source,
        metric: plan.metric,
        mode: plan.mode,
        layers: opts.layers,
        ...planJson(plan),
        layersBefore: plan.layersBefore,
        layersAfter: plan.layersAfter,
        calibration: { windows: windows.length, window },
        ...(dense && { dense, pruned }),
        ...(model !== undefined && { out: model }),
      };
      out(JSON.stringify(result) + '\n');
      return;
    }
    out(`removed layers ${plan.removed.join(', ')} (original indices, in removal order) of ${plan.layersBefore} by ${plan.metric}, mode ${plan.mode}\n`);
    out(compLine(plan));
    if (plan.budget) out(budgetLine(plan.budget));
    if (dense && pruned) out(`perplexity dense ${dense.ppl.toFixed(4)} → pruned ${pruned.ppl.toFixed(4)} (${dense.windows} windows of ${window})\n`);
    if (model !== undefined) out(`wrote the pruned model: ${model} (plan.json and prune-layers.txt beside it)\n`);
  },

  async sweep(argv) {
    const v = parse(argv, { ...pruneArgs, modes: { type: 'string' }, csv: { type: 'boolean' } });
    // checked by sweepRun (sweepModes), which names a bad one
    const modes = (v.modes === undefined ? SWEEP_MODES : String(v.modes).split(',').map((m) => m.trim())) as Mode[];
    const { ck, runtime, window, windows, evalIds, opts } = await pruneSetup(v, true);
    const r = await sweepRun(ck, runtime, windows, { ...opts, modes, evaluation: { ids: evalIds!, window } });
    if (v.json) {
      out(JSON.stringify({ model: ck.source, ...r, calibration: { windows: windows.length, window } }) + '\n');
      return;
    }
    if (v.csv) {
      out(sweepCsv(r));
      return;
    }
    const header = ['n', ...modes.map((m) => MODE_LABEL[m])];
    const rows = [header, ...Array.from({ length: r.layers + 1 }, (_, n) => [String(n), ...modes.map((m) => (n === 0 ? r.dense : r.curves[m]![n - 1].ppl).toPrecision(6))])];
    const widths = header.map((_, c) => Math.max(...rows.map((row) => row[c].length)));
    out(`${ck.source}: perplexity against layers removed by ${opts.metric} (of ${ck.config.numLayers}); ${r.eval.windows} eval windows of ${window}\n`);
    for (const row of rows) out(row.map((cell, c) => (c === 0 ? cell.padStart(widths[c]) : cell.padStart(widths[c]))).join('  ') + '\n');
    for (const m of modes) out(`${MODE_LABEL[m]}: removes ${r.curves[m]!.at(-1)!.removed.join(', ')} in that order\n`);
  },

  async lab(argv) {
    const { metric: _m, comp: _c, ...calibrationArgs } = pruneArgs;
    const v = parse(argv, {
      ...calibrationArgs,
      metrics: { type: 'string' },
      comps: { type: 'string' },
      'held-out': { type: 'string' },
      task: { type: 'string' },
      limit: { type: 'string' },
      data: { type: 'string' },
      csv: { type: 'boolean' },
    });
    // lists are checked by labRun (labMetrics, labComps), which names a bad entry
    const list = (flag: 'metrics' | 'comps') => (v[flag] === undefined ? undefined : String(v[flag]).split(',').map((m) => m.trim()));
    const heldOutFraction = float(v, 'held-out', 0.25);
    const tasks = v.task === undefined ? undefined : parseTaskList(String(v.task));
    const limit = int(v, 'limit');
    const { ck, runtime, window, windows, evalIds, opts } = await calibrationSetup(v, false, (L) => Math.min(L - 1, 4));
    const { fit, heldOut } = labSplit(windows, heldOutFraction);
    const data = (v.data as string | undefined) ?? (existsSync(SHARED_QA) ? SHARED_QA : 'hub');
    const zeroShot = tasks && { tasks: await loadTasks(tasks, data, limit), limit };
    const r = await labRun(ck, runtime, fit, {
      ...opts,
      metrics: list('metrics') as Metric[] | undefined,
      comps: list('comps') as CompChoice[] | undefined,
      layers: opts.layers,
      heldOut,
      evaluation: evalIds && { ids: evalIds, window },
      zeroShot,
    });
    if (v.json) {
      out(JSON.stringify({ model: ck.source, ...r, calibration: { fit: fit.length, heldOut: heldOut.length, window }, ...(tasks && { tasks, limit: limit ?? null }) }) + '\n');
      return;
    }
    if (v.csv) {
      out(labCsv(r));
      return;
    }
    out(`${ck.source}: ${r.metrics.length} metrics × ${r.comps.length} compensations, n = 1…${r.layers} of ${ck.config.numLayers} layers; fit on ${fit.length} windows of ${window}, held out ${heldOut.length}${tasks ? `; zero-shot ${tasks.join(',')}${limit ? ` (first ${limit})` : ''}` : ''}\n`);
    out(labTable(r));
  },

  async compare(argv) {
    const v = parse(argv, { ...pruneArgs, ...reportArgs });
    const reportTo = await reportDir(v);
    const reportBase = reportTo === null ? '' : appUrl(v);
    const { ck, runtime, window, windows, evalIds, opts, comp: choice } = await pruneSetup(v, true);
    const { mode, comp } = compWithMode('prunecomp', choice);
    const run = await compareRun(ck, runtime, windows, {
      ...opts,
      fold: opts.fold ?? 'paper',
      mode,
      comp,
      evaluation: { ids: evalIds!, window },
      curves: !!v.json || reportTo !== null,
    });
    if (reportTo !== null) {
      const [calibPath, evalPath] = [required(v, 'calib'), required(v, 'eval')];
      const setup = { ck, modelPath: required(v, 'model'), runtime: String(v.runtime ?? 'node'), metric: opts.metric, layers: opts.layers, fold: opts.fold ?? 'paper', comp: choice, alpha: opts.alpha ?? 0, barriers: opts.barriers ?? {}, seed: opts.seed ?? 0, window };
      const written = await writeCompareReport(reportTo, { ...setup, calib: { path: calibPath, text: await readText(calibPath), windows: windows.length }, eval: { path: evalPath, text: await readText(evalPath) } }, run, reportBase);
      if (!v.json) process.stderr.write(`report: ${written.length} files in ${reportTo} (${written.map((p) => p.slice(p.lastIndexOf('/') + 1)).join(', ')})\n`);
    }
    const { dense, baseline: basePpl, compared: compPpl } = run.ppl!;
    const [base, compared] = [run.plans.baseline, run.plans.compared!];
    if (v.json) {
      const result = {
        model: ck.source,
        metric: opts.metric,
        layers: opts.layers,
        calibration: { windows: windows.length, window },
        eval: { tokens: dense.tokens, windows: dense.windows },
        dense: { ppl: dense.ppl, curve: run.curves!.dense },
        baseline: { ...planJson(base), ppl: basePpl.ppl, curve: run.curves!.baseline },
        prunecomp: { ...planJson(compared), ppl: compPpl!.ppl, curve: run.curves!.compared },
      };
      out(JSON.stringify(result) + '\n');
      return;
    }
    const rows = [
      ['', 'perplexity', 'layers removed', 'scales'],
      ['dense', dense.ppl.toFixed(4), '-', '-'],
      ['baseline', basePpl.ppl.toFixed(4), base.removed.join(', '), '-'],
      [compLabel(compared), compPpl!.ppl.toFixed(4), compared.removed.join(', '), compared.fold === 'none' ? '-' : fmtScales(compared)],
    ];
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    out(`${ck.source}: ${opts.metric}, ${opts.layers} of ${ck.config.numLayers} layers, fold ${compared.fold}${compared.untied ? ' (embeddings untied)' : ''}; ${dense.windows} eval windows of ${window}\n`);
    for (const r of rows) out(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd() + '\n');
    if (compared.comp === 'linear' || compared.comp === 'diag') out(compLine(compared));
  },

  async eval(argv) {
    const v = parse(argv, { ...common, task: { type: 'string' }, limit: { type: 'string' }, data: { type: 'string' }, 'datasets-server': { type: 'string' }, dump: { type: 'string' } });
    const args = {
      tasks: required(v, 'task'),
      limit: int(v, 'limit'),
      data: v.data as string | undefined,
      datasetsServer: v['datasets-server'] as string | undefined,
      dump: v.dump as string | undefined,
      json: !!v.json,
    };
    const ck = await openModel(v);
    await evalCommand(ck, await runtimeFor(v), args, out);
  },

  export: (argv) => exportCommand(argv, out),

  /** `convert --to F` is `export --format F` (kept for the scripts that use it). */
  async convert(argv) {
    await exportCommand(argv.map((a) => (a === '--to' ? '--format' : a.startsWith('--to=') ? '--format=' + a.slice(5) : a)), out);
  },

};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(USAGE + '\n');
    return name ? 0 : 2;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command && (rest.includes('--help') || rest.includes('-h'))) {
    out(USAGE + '\n');
    return 0;
  }
  if (!command) {
    process.stderr.write(`lopper: unknown command "${name}"\n\n${USAGE}\n`);
    return 2;
  }
  try {
    await command(rest);
    return 0;
  } catch (e) {
    if (e instanceof LopperError) {
      process.stderr.write(`lopper ${name}: ${e.message}\n`);
      return 1;
    }
    // Nothing a file or an option can cause gets here: this is a bug in lopper.
    process.stderr.write(`lopper ${name}: internal error, a bug in lopper (please report it with this trace):\n${(e as Error)?.stack ?? String(e)}\n`);
    return 70;
  }
}
