/**
 * The messages between the UI and workers/lopper.worker.ts. Every request carries an id;
 * the worker answers with any number of progress/token events for that id (and, for an
 * export, one 'stream' event carrying the archive), then exactly one 'done' or 'error'. { op: 'cancel', target } aborts a request (its AbortController):
 * the request then ends with an error of code 'cancelled'. No DOM types beyond File.
 */
import type { TaskResult } from '../engine/eval/accuracy';
import type { TaskName } from '../engine/eval/tasks';
import type { CompChoice, Fold, Metric, Mode } from '../engine/prune/options';
import type { Plan } from '../engine/prune/plan';
import type { ExportFormat } from '../engine/export';
import type { GgufType } from '../engine/export/gguf';
import type { OnnxDtype } from '../engine/export/onnx';
import type { Execution } from '../engine/runtime/engine';
import type { DecodeWeights, MemoryNeeds, Workload } from '../engine/model/cost';
import type { RunTimings } from './run';
import type { PlaygroundResult } from './playground';
import type { Backend } from '../engine/runtime/web';
import type { DownloadProgress } from '../engine/store/download';
import type { RunIdentity } from './run-identity';
import type { SweepResult } from './sweep-data';
import type { BudgetCurve } from './budget-data';
import type { LabResult, LabRow } from './lab-data';
import type { BundleFile } from './try-export';

export type { Backend, DownloadProgress, ExportFormat, Fold, GgufType, OnnxDtype, PlaygroundResult };
/** Which model a generation runs: the dense model, the baseline-pruned one, or the one the chosen mode pruned. */
export type Variant = 'dense' | 'baseline' | 'prunecomp';

// ---- requests --------------------------------------------------------------------------

/** Where a model comes from. */
export type ModelSource =
  /** a catalog entry, downloaded from `base` (the hub or a mirror) into IndexedDB */
  | { kind: 'catalog'; id: string; base: string; token?: string }
  /** a llama2.c .bin + its tokenizer .bin, or (no tokenizer, not .bin) a Hugging Face folder URL */
  | { kind: 'url'; model: string; tokenizer?: string }
  | { kind: 'llama2c-files'; model: File; tokenizer: File }
  /** a Hugging Face folder's files, keyed by path relative to the folder */
  | { kind: 'hf-files'; name: string; files: { path: string; file: File }[] };

/** A text: a built-in one fetched from `url`, or the person's own (pasted or uploaded). */
export type TextSource = { kind: 'builtin'; id: string; url: string } | { kind: 'custom'; name: string; text: string };

/**
 * A run's settings. Every field identifies the run (src/app/run-identity.ts): it is part of
 * the result cache's key, kept in the stored result, and compared by the page, with no other
 * list to update.
 */
export interface RunSettings {
  backend: Backend;
  metric: Metric;
  /** layers to remove (n) */
  layers: number;
  /** the method compared with the baseline ('baseline': the baseline alone) */
  mode: Mode;
  fold: Fold;
  /** calibration windows (K) */
  windows: number;
  /** tokens per window (W), calibration and evaluation */
  window: number;
  /** eligibility barriers (undefined: the metric's defaults, the paper's) */
  skipFirst?: number;
  skipLast?: number;
  /** the random metric's seed (undefined: 0) */
  seed?: number;
  /**
   * what the compensated mode folds at each cut (undefined: 'scalar', Prune&Comp's s; results
   * stored before it existed are scalar); 'none' turns the mode into its uncompensated twin (compWithMode)
   */
  comp?: CompChoice;
  /** the ridge term α of the linear/diag fits (undefined: 0) */
  alpha?: number;
  calib: TextSource;
  eval: TextSource;
}

export interface GenerateSettings {
  model: Variant;
  prompt: string;
  maxTokens: number;
  /** 0: greedy */
  temperature: number;
  /** 0: all tokens */
  topK: number;
  seed: number;
  backend: Backend;
}

/** Where the zero-shot tasks' items come from: the data mirror (`{dataBase}/qa/<file>`) or the Hugging Face datasets server. */
export type TaskData = 'mirror' | 'hub';

export interface EvalSettings {
  /** in the order of TASKS */
  tasks: TaskName[];
  /** items per task: the first `limit` of each */
  limit: number;
  data: TaskData;
  /** the data mirror's base URL (`{origin}/data` by default; see src/app/texts.ts) */
  dataBase: string;
  backend: Backend;
}


/** Request payload and result type of each operation. */
export interface Ops {
  /** what this device offers (no model needed) */
  device: { req: Record<string, never>; result: DeviceInfo };
  /** fetch (or read), check against the device, parse; the model then stays in the worker */
  load: {
    req: {
      source: ModelSource;
      backend: Backend;
      /** load even when the device check says it will not fit */
      force?: boolean;
      /** the windows the device check plans for (the run settings'; default 8 × 256) */
      workload?: Workload;
      /** memory to plan for in place of what the device reports, in bytes (the ?memory= URL parameter) */
      memoryBytes?: number;
    };
    result: ModelSummary;
  };
  /** a stored result for these settings and the loaded model, or null (computes nothing) */
  cached: { req: { settings: RunSettings }; result: RunResult | null };
  /** prune (baseline + the chosen mode), evaluate, measure; a stored result is returned unless `recompute` */
  run: { req: { settings: RunSettings; recompute?: boolean }; result: RunResult };
  /** stream a continuation (token events), then the totals */
  generate: { req: GenerateSettings; result: GenerateResult };
  /** the stored evaluation for these settings and the current run (`runKey`), or null (computes nothing) */
  evalCached: { req: { settings: EvalSettings; runKey: string }; result: EvalResult | null };
  /** zero-shot accuracy of the dense model and the run's pruned models; a stored result is returned unless `recompute` */
  evaluate: { req: { settings: EvalSettings; runKey: string; recompute?: boolean }; result: EvalResult };
  /** the stored sweep for these settings, N and modes, or null (computes nothing) */
  sweepCached: { req: SweepRequest; result: SweepRunResult | null };
  /**
   * perplexity against layers removed, n = 0…layers, per mode (src/app/sweep.ts sweepRun) with a
   * run's settings (its n and mode aside); a progress event per point; a stored result is returned unless `recompute`
   */
  sweep: { req: SweepRequest & { recompute?: boolean }; result: SweepRunResult };
  /** the stored budget curve for these settings, or null (computes nothing) */
  budgetCached: { req: { settings: RunSettings }; result: BudgetRunResult | null };
  /**
   * the calibration perplexity after each cut, up to the most layers the settings allow, from
   * one budgeted run (src/app/budget-data.ts): any budget's n is then read off at once; a
   * progress event per cut; a stored result is returned unless `recompute`
   */
  budget: { req: { settings: RunSettings; recompute?: boolean }; result: BudgetRunResult };
  /** the stored lab for these settings and choices, or null (computes nothing) */
  labCached: { req: LabRequest; result: LabRunResult | null };
  /**
   * the compensation lab (src/app/lab.ts labRun): every metric × compensation, n = 1…layers, on
   * the run settings' texts (a quarter of the calibration windows held out); a progress event
   * per row, carrying it; a stored result is returned unless `recompute`
   */
  lab: { req: LabRequest & { recompute?: boolean }; result: LabRunResult };
  /**
   * one model as a .zip (a GGUF as its one .gguf file): a 'stream' event carries the bytes (a
   * transferred ReadableStream the page writes to disk); 'done' follows once the page has read
   * all of it (or cancelled)
   */
  export: {
    req: {
      model: Variant;
      format: ExportFormat;
      /** the ONNX bundle's weights (default fp32): onnx/model.onnx or onnx/model_fp16.onnx; a GGUF's type (default: the weights' own) */
      dtype?: ExportDtype;
      /** the run the pruned models come from */
      runKey?: string;
    };
    result: ExportResult;
  };
  /**
   * the layer playground (src/app/playground.ts): the loaded model with `removed` (original
   * layer indices, in click order) taken out, compensated or not; the texts' first windows
   */
  playground: {
    req: { removed: number[]; compensate: boolean; fold: Fold; backend: Backend; calib: TextSource; eval: TextSource };
    result: PlaygroundResult;
  };
  /**
   * one model's transformers.js bundle as Blobs, the export's files (workers/lib/bundle.ts), for
   * "Try it in transformers.js": `dtype` fp32 by default, fp16 when the fp32 bundle is too large
   * for the tab, refused with the sizes when that is too; progress events as it is made
   */
  bundle: { req: { model: Variant; dtype?: OnnxDtype; runKey?: string }; result: BundleResult };
}
export type Op = keyof Ops;

/**
 * `cancelFlag` (where the page is cross-origin isolated): a shared Int32Array(1) the page sets
 * to 1 to cancel. The worker polls it inside long computations, whose onnxruntime calls may
 * never yield to the worker's event loop (so a 'cancel' message would wait until they end).
 */
export type Request =
  | { [K in Op]: { id: number; op: K; cancelFlag?: Int32Array } & Ops[K]['req'] }[Op]
  | { id: number; op: 'cancel'; target: number };

// ---- responses -------------------------------------------------------------------------

/** One progress report of a long request (posted at most ~10 per second, plus every stage/step change). */
export interface Progress {
  /**
   * machine name of the stage: download, parse, check, text, calibrate, prune-baseline, prune, ppl-dense, ppl-baseline,
   * ppl-prunecomp, curves; evaluate: data, eval-dense, eval-baseline, eval-prunecomp; export: export
   */
  stage: string;
  /** what a person reads: "Prune&Comp: step 2 of 2 (removed layer 3, s = 1.12)" */
  label: string;
  /** within the stage */
  done: number;
  total: number;
  /** the whole request, 0..1 */
  fraction: number;
  /** seconds left for the whole request, when it can be estimated */
  etaSeconds: number | null;
  elapsedSeconds: number;
  /** the stages of this request in order, with their state */
  stages?: { stage: string; label: string; state: 'done' | 'running' | 'pending' }[];
  /** pruning steps: the step and what it removed */
  step?: { index: number; count: number; removed: number; scale: number };
  download?: DownloadProgress;
  /** the lab: the row just measured */
  row?: LabRow;
}

export interface ErrorInfo {
  /**
   * LopperError codes (bad-input, bad-option, not-found, corrupt, truncated, cancelled, quota, …)
   * plus: too-large (the device check refused), gpu-lost (the WebGPU device was lost),
   * no-model (nothing loaded), text (a built-in text could not be fetched), internal (a bug)
   */
  code: string;
  message: string;
}

export type Response =
  | { id: number; type: 'progress'; progress: Progress }
  | { id: number; type: 'token'; token: TokenEvent }
  | { id: number; type: 'stream'; stream: ExportStream }
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'error'; error: ErrorInfo };

export interface TokenEvent {
  /** the continuation so far (prompt excluded), decoded */
  text: string;
  tokens: number;
  tokensPerSecond: number;
  /** the weights and decoding generation uses, in words ("fp32, KV cache"; "fp32, layer by layer, no KV cache") */
  weights: string;
}

/** An export's bytes, sent (transferred) before its 'done'. */
export interface ExportStream {
  /** suggested file name, e.g. stories260K-prunecomp-hf.zip */
  name: string;
  /** the archive's size when known up front */
  bytes: number | null;
  stream: ReadableStream<Uint8Array>;
}

// ---- results ---------------------------------------------------------------------------

export interface DeviceInfo {
  webgpu: boolean;
  /**
   * WebGPU adapter limits, when an adapter exists; `fallback`: a software adapter
   * (SwiftShader, llvmpipe…: GPUAdapterInfo.isFallbackAdapter or its name), slower than WASM
   */
  gpu: { description: string; maxBufferSize: number; maxStorageBufferBindingSize: number; fallback: boolean; /** the adapter offers 'shader-f16' */ shaderF16: boolean } | null;
  /** navigator.deviceMemory in bytes (a coarse bucket; Chrome caps it at 8 GiB on some platforms, this Chromium reads 16), or null where unknown */
  deviceMemoryBytes: number | null;
  crossOriginIsolated: boolean;
  /** WASM threads the runtime uses */
  threads: number;
}

/** Whether a model fits this device, with the numbers that decided it. */
export interface DeviceCheck {
  fits: boolean;
  /** needs.totalBytes */
  estimatedBytes: number;
  /** what the model takes, part by part, with the execution the engine will choose (src/engine/model/cost.ts) */
  needs: MemoryNeeds;
  /** how generation will decode (model/cost.ts decodeWeightsFor): 8-bit (WASM) or fp16 (WebGPU) weights with the WebAssembly memory they take, or fp32 */
  decode: { weights: DecodeWeights; runtimeBytes: number | null };
  /** the windows the estimate is for (the run settings' calibration windows and window length) */
  workload: Workload;
  /** what the device reports (navigator.deviceMemory), or the figure set by hand (?memory=) */
  deviceMemoryBytes: number | null;
  /** deviceMemoryBytes is the figure set by hand, not the device's */
  memorySetByHand: boolean;
  gpu: DeviceInfo['gpu'];
  backend: Backend;
  /** each reason it will not fit, in plain words with the numbers */
  problems: string[];
}

export interface ModelSummary {
  /** identifies the model in caches and results (catalog id, URL, or local file names and sizes) */
  key: string;
  /** catalog id when it came from the catalog */
  catalogId: string | null;
  name: string;
  source: string;
  format: 'llama2c' | 'hf';
  architecture: string;
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  parameterCount: number;
  tiedEmbeddings: boolean;
  dtypes: { dtype: string; parameters: number }[];
  tokenizer: { kind: string; vocabSize: number; bosId: number; eosId: number };
  /** bytes read (from the network, IndexedDB or files) */
  bytesRead: number;
  /** bytes that came from the network this time (0: everything was stored already) */
  bytesDownloaded: number;
  millis: number;
  device: DeviceCheck;
}

/** Mean over channels and windows of mean_t |X_k|, at the boundary entering ORIGINAL layer `layer` (numLayers: the final stream). */
export interface CurvePoint {
  layer: number;
  value: number;
}

export interface PerplexityInfo {
  ppl: number;
  tokens: number;
  windows: number;
}

/** What every result the worker stores and returns for a run's settings starts with (a run, a sweep). */
export interface StoredRunResult {
  key: string;
  /** true when it came from the result cache */
  fromCache: boolean;
  /** when it was computed (ms since the epoch) */
  computedAt: number;
  millis: number;
  model: { key: string; name: string; numLayers: number };
  /** the settings that identify it, texts by identity (a built-in's id; custom texts by name and hash: textLabel gives the name) */
  settings: RunIdentity;
  /** what could not be kept (storage full), in plain words */
  warnings?: string[];
}

export interface RunResult extends StoredRunResult {
  calibration: { windows: number; window: number; tokens: number };
  evaluation: { windows: number; window: number; tokens: number };
  ppl: { dense: PerplexityInfo; baseline: PerplexityInfo; prunecomp: PerplexityInfo | null };
  plans: { baseline: Plan; prunecomp: Plan | null };
  curves: { dense: CurvePoint[]; baseline: CurvePoint[]; prunecomp: CurvePoint[] | null };
  /**
   * how fast this device ran the dense model (its first calibration pass and its perplexity, in
   * tokens and seconds) and the whole run (FLOP/s as src/app/estimate.ts counts a run's
   * operations: what later runs' estimates divide by); absent in results stored before
   */
  timings?: RunTimings & { execution: Execution; flopsPerSecond: number };
}

export interface GenerateResult {
  model: Variant;
  text: string;
  ids: number[];
  /** the prompt as lopper's tokenizer encodes it (BOS first) */
  promptIds: number[];
  tokens: number;
  /** after the first token (the first also pays for building the decoder and reading the prompt) */
  tokensPerSecond: number;
  millis: number;
  /** until the first token (NaN when none came) */
  firstTokenMillis: number;
  /** as TokenEvent.weights */
  weights: string;
}

/** Zero-shot accuracy of the dense model and a run's pruned models on the same items. */
export interface EvalResult {
  key: string;
  /** true when it came from the result cache */
  fromCache: boolean;
  computedAt: number;
  millis: number;
  /** the run whose pruned models were evaluated (RunResult.key) */
  runKey: string;
  model: { key: string; name: string };
  settings: { tasks: TaskName[]; limit: number; data: TaskData; backend: Backend };
  /** where the items came from, in words ("the data mirror, /data/qa/…", "the Hugging Face datasets server") */
  source: string;
  /** one TaskResult per task, in the order of settings.tasks (n: items scored, at most limit) */
  results: { dense: TaskResult[]; baseline: TaskResult[]; prunecomp: TaskResult[] | null };
  /** what could not be kept (storage full), in plain words */
  warnings?: string[];
}

export interface SweepRequest {
  /** the run whose settings the sweep uses (all but its layers and mode) */
  settings: RunSettings;
  /** the largest n */
  layers: number;
  modes: Mode[];
}

/** A sweep as the worker stores and returns it. */
export interface SweepRunResult extends StoredRunResult {
  /** (settings: the run's it was computed with; its layers and mode are not part of its key) */
  sweep: SweepResult;
}

/** A budget curve as the worker stores and returns it (settings: the ones it was computed with; n, mode and the evaluation text are not part of its key). */
export interface BudgetRunResult extends StoredRunResult {
  budget: BudgetCurve;
}

export interface LabRequest {
  /** the texts, windows, backend, fold, barriers and seed the lab runs with (its metric, n, mode and compensation aside) */
  settings: RunSettings;
  metrics: Metric[];
  comps: CompChoice[];
  /** the largest n */
  layers: number;
  /** the ridge term of the linear/diag fits */
  alpha: number;
}

/** A lab as the worker stores and returns it. */
export interface LabRunResult extends StoredRunResult {
  lab: LabResult;
  /** the calibration windows fitted on and held out */
  split: { fit: number; heldOut: number; window: number };
  alpha: number;
}

/** A model's transformers.js bundle, made for trying it in the tab. */
export interface BundleResult {
  files: BundleFile[];
  /** the weights it holds (onnx/model.onnx or onnx/model_fp16.onnx) */
  dtype: OnnxDtype;
  bytes: number;
  /** why the weights are not the ones asked for, or null */
  note: string | null;
  /** the name its .zip gets (without .zip) */
  name: string;
}

export interface ExportResult {
  name: string;
  /** bytes the page read */
  bytes: number;
  millis: number;
}

/** An export's weight type: an ONNX bundle's (fp32, fp16) or a GGUF's (f32, f16, bf16, q8_0). */
export type ExportDtype = OnnxDtype | GgufType;

/**
 * A file and folder name for an export: model, which model (with the run's metric and
 * layers), format (and an ONNX bundle's fp16, a GGUF's type) — e.g. stories260K-prunecomp-bi-2-hf,
 * stories260K-dense-onnx-fp16, stories260K-dense-gguf-q8_0.
 */
export function exportBaseName(modelName: string, variant: Variant, format: ExportFormat, run: Pick<RunResult, 'settings'> | null, dtype?: ExportDtype): string {
  const which = variant === 'dense' || !run ? variant : `${variant === 'baseline' ? 'baseline' : run.settings.mode}-${run.settings.metric}-${run.settings.layers}`;
  const type = (format === 'onnx' && dtype === 'fp16') || (format === 'gguf' && dtype) ? `-${dtype}` : '';
  return `${modelName}-${which}-${format}${type}`.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
}

/** The extension of an export's download: a GGUF is its one file, every other format a .zip of its folder. */
export const exportExtension = (format: ExportFormat): '.gguf' | '.zip' => (format === 'gguf' ? '.gguf' : '.zip');

/** A plan's compensation: 'none' in the uncompensated modes; plans stored before the choice existed folded the scalar. */
export function planComp(p: Pick<Plan, 'fold'> & { comp?: Plan['comp'] }): Plan['comp'] {
  return p.comp ?? (p.fold === 'none' ? 'none' : 'scalar');
}

/** The name a person reads for a plan's method: its mode, and what it folded when compensated — "Prune&Comp (linear)". */
export function planLabel(p: Pick<Plan, 'mode' | 'fold'> & { comp?: Plan['comp'] }): string {
  const comp = planComp(p);
  return comp === 'none' ? MODE_LABEL[p.mode] : `${MODE_LABEL[p.mode]} (${comp})`;
}

/** Names a person reads for each mode's pruned model. */
export const MODE_LABEL: Record<Mode, string> = {
  prunecomp: 'Prune&Comp',
  baseline: 'baseline',
  iterative: 'iterative, no compensation',
  'oneshot-comp': 'one-shot + compensation',
};
