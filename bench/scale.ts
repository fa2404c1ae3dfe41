/**
 * npm run bench:scale — the engine at the sizes people prune: seeded random bf16 checkpoints
 * of the exact published shapes with their real tokenizers, written once as the hub lays them
 * out (test/helpers/real-shapes.ts) into $TMPDIR/lopper-bench-shapes/, and loaded as the CLI
 * loads them (an 8B model's weights stay on disk, read layer by layer). Each shape runs in its
 * own process, so its peak memory is its own.
 *
 * Per shape: load time, the execution chosen (whole graph or layer-streamed), a calibration
 * pass (statistics and streams, as Prune&Comp's first step) run twice — the second's tok/s and
 * GFLOP/s as a share of the runtime's MatMul ceiling measured in the same process (the best
 * of 15 warm runs of one 512×2048·2048×2048 MatMul) — a perplexity pass, and the peak resident
 * memory (and, on WASM, the size of onnxruntime's WebAssembly memory). With --compare, also
 * `compare` BI n = 2 (baseline and Prune&Comp on one calibration, perplexity of the three) on
 * the same windows. On the 135M shape: iterative Prune&Comp (BI, n = 5) streamed vs whole
 * graph side by side. Llama-3-8B (--with-8b, onnxruntime-node only): `prune` BI n = 1, the
 * dense and pruned perplexity, and the pruned model exported as a Hugging Face folder.
 *
 *   npm run bench:scale                                   every catalog shape, 2 windows × 256
 *   npm run bench:scale -- --runtime wasm                 the same on onnxruntime-web's WASM build
 *   npm run bench:scale -- --with-8b                      and the Llama-3-8B row (16 GB written once)
 *   npm run bench:scale -- --shape meta-llama__Llama-3.2-1B --windows 8 --tokens 512 --compare [--runtime wasm]
 *   npm run bench:scale -- --decode [--runtime wasm] [--shape S]
 *
 * --decode: generation instead, each decoder of each shape in its own process — 16 tokens
 * greedy after a 16-token prompt with the 8-bit KV-cache decoder (what the tab uses on WASM where
 * fp32 does not fit) and with the fp16 one (WebGPU's with shader-f16; here on the CPU runtime,
 * whose float16 products go through casts), and 4 with fp32 layer by layer (no cache): the time
 * to the first token (the session's build and the prompt), tokens/s after it, the peak RSS and,
 * on WASM, the WebAssembly memory each decoder took.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { watchWasmMemory } from '../src/engine/runtime/wasm-memory';

// onnxruntime-web's WebAssembly memory, for the WASM rows: watched from before anything imports
// onnxruntime-web, hence the dynamic imports below.
const wasmMemoryBytes = watchWasmMemory();

const { compareRun } = await import('../src/app/run');
const { writeModel } = await import('../src/cli/export');
const { loadModelPath } = await import('../src/engine/formats/load-node');
const { ElemType, GraphBuilder } = await import('../src/engine/graph/builder');
const { parameterCount } = await import('../src/engine/model/checkpoint');
const { isLazy } = await import('../src/engine/model/tensor');
const { prune } = await import('../src/engine/prune/plan');
const { Engine } = await import('../src/engine/runtime/engine');
const { nodeRuntime } = await import('../src/engine/runtime/node');
const { webWasmRuntime } = await import('../src/engine/runtime/web-node');
const { cachedShapeFolder, SHAPES } = await import('../test/helpers/real-shapes');
const { mulberry32 } = await import('../test/helpers/random-checkpoint');
type Runtime = import('../src/engine/runtime/ort').Runtime;
type ShapeName = import('../test/helpers/real-shapes').ShapeName;

const CATALOG: ShapeName[] = [
  'HuggingFaceTB__SmolLM2-135M',
  'HuggingFaceTB__SmolLM2-360M',
  'Qwen__Qwen2.5-0.5B',
  'Qwen__Qwen3-0.6B',
  'TinyLlama__TinyLlama-1.1B-Chat-v1.0',
  'meta-llama__Llama-3.2-1B',
  'HuggingFaceTB__SmolLM2-1.7B',
];
const BIG: ShapeName = 'meta-llama__Meta-Llama-3-8B';
const FOLDERS = join(tmpdir(), 'lopper-bench-shapes');

const { values } = parseArgs({
  options: {
    shape: { type: 'string' },
    runtime: { type: 'string' },
    windows: { type: 'string' },
    tokens: { type: 'string' },
    compare: { type: 'boolean' },
    'with-8b': { type: 'boolean' },
    decode: { type: 'boolean' },
    weights: { type: 'string' },
    child: { type: 'boolean' },
  },
});

/** GFLOP/s of one 512×2048 · 2048×2048 fp32 MatMul on this runtime: the best of 15 warm runs. */
async function ceiling(runtime: Runtime): Promise<number> {
  const [M, K, N] = [512, 2048, 2048];
  const g = new GraphBuilder('ceiling');
  const a = g.input('a', ElemType.FLOAT, [M, K]);
  const w = g.weight('w', [K, N], Float32Array.from({ length: K * N }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5));
  g.output(g.matmul(a, w), 'y', ElemType.FLOAT, [M, N]);
  const session = await runtime.ort.InferenceSession.create(g.encode(), runtime.sessionOptions);
  const x = new runtime.ort.Tensor('float32', Float32Array.from({ length: M * K }, (_, i) => ((i * 104729) % 997) / 997 - 0.5), [M, K]);
  const times: number[] = [];
  for (let i = 0; i < 18; i++) {
    const t0 = performance.now();
    const out = await session.run({ a: x });
    times.push(performance.now() - t0);
    out.y.dispose();
  }
  await session.release();
  const best = Math.min(...times.slice(3));
  return (2 * M * K * N) / (best / 1000) / 1e9;
}

const rssBytes = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
const since = (t: number) => (performance.now() - t) / 1000;

async function benchShape(shape: ShapeName, runtimeName: string, K: number, T: number, withCompare: boolean) {
  const runtime = runtimeName === 'wasm' ? webWasmRuntime() : nodeRuntime();
  const dir = join(FOLDERS, shape);
  let t = performance.now();
  const ck = await loadModelPath(dir);
  const loadSeconds = since(t);
  const c = ck.config;
  const ceil = await ceiling(runtime);
  const rand = mulberry32(7);
  const windows = Array.from({ length: K }, () => [c.bosTokenId, ...Array.from({ length: T - 1 }, () => Math.floor(rand() * Math.min(c.vocabSize, 30000)))]);
  const execution = new Engine(ck, runtime).execution;

  // A calibration pass (statistics and streams) twice on one engine: the first builds the sessions.
  const calEngine = new Engine(ck, runtime);
  t = performance.now();
  await calEngine.pass(windows, { stats: true, streams: true });
  const coldSeconds = since(t);
  t = performance.now();
  await calEngine.pass(windows, { stats: true, streams: true });
  const calibSeconds = since(t);
  await calEngine.dispose();
  const layerParams = parameterCount(ck) - c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2);
  const flopsPerToken = 2 * layerParams + 4 * T * c.hiddenSize * c.numLayers;
  const calibTokS = (K * T) / calibSeconds;

  const engine = new Engine(ck, runtime);
  t = performance.now();
  const ppl = await engine.perplexity(windows.flat(), T);
  const pplSeconds = since(t);
  await engine.dispose();

  let compare: Record<string, unknown> | undefined;
  if (withCompare) {
    t = performance.now();
    const run = await compareRun(ck, runtime, windows, { metric: 'bi', layers: 2, mode: 'prunecomp', fold: 'paper', evaluation: { ids: windows.flat(), window: T } });
    compare = {
      seconds: since(t),
      removed: run.plans.compared!.removed,
      scales: run.plans.compared!.scales,
      ppl: { dense: run.ppl!.dense.ppl, baseline: run.ppl!.baseline.ppl, prunecomp: run.ppl!.compared!.ppl },
    };
  }

  let streamedVsWhole: Record<string, unknown> | undefined;
  if (shape === 'HuggingFaceTB__SmolLM2-135M') {
    const run = async (execution: 'whole' | 'streamed') => {
      const t = performance.now();
      const r = await prune(ck, { ...runtime, execution }, windows, { metric: 'bi', layers: 5, mode: 'prunecomp', fold: 'paper' });
      return { seconds: since(t), removed: r.plan.removed, scales: r.plan.scales };
    };
    const whole = await run('whole');
    const streamed = await run('streamed');
    streamedVsWhole = {
      wholeSeconds: whole.seconds,
      streamedSeconds: streamed.seconds,
      ratio: streamed.seconds / whole.seconds,
      samePlan: JSON.stringify(whole.removed) === JSON.stringify(streamed.removed),
      maxScaleRelDiff: Math.max(...whole.scales.map((s, i) => Math.abs(streamed.scales[i] / s - 1))),
    };
  }

  let big: Record<string, unknown> | undefined;
  if (shape === BIG) {
    // The paper's size on this machine: prune BI n = 1, the dense and pruned perplexity, the HF export.
    t = performance.now();
    const pruned = await prune(ck, runtime, windows, { metric: 'bi', layers: 1, mode: 'prunecomp', fold: 'paper' });
    const pruneSeconds = since(t);
    const pp = async (model: typeof ck) => {
      const e = new Engine(model, runtime);
      const r = await e.perplexity(windows.flat(), T);
      await e.dispose();
      return r.ppl;
    };
    const out = mkdtempSync(join(tmpdir(), 'lopper-8b-pruned-'));
    try {
      t = performance.now();
      const dense = await pp(ck);
      const after = await pp(pruned.checkpoint);
      const pplSeconds = since(t);
      t = performance.now();
      await writeModel(pruned.checkpoint, join(out, 'model'), { format: 'hf', plan: pruned.plan });
      const exportSeconds = since(t);
      const back = await loadModelPath(join(out, 'model'));
      big = { pruneSeconds, removed: pruned.plan.removed, scales: pruned.plan.scales, ppl: { dense, pruned: after }, pplSeconds, exportSeconds, exportedLayers: back.config.numLayers };
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }

  return {
    shape,
    runtime: runtime.name,
    parameters: parameterCount(ck),
    execution,
    weights: [...ck.tensors.values()].some(isLazy) ? 'on disk' : 'in memory',
    loadSeconds,
    ceilingGflops: ceil,
    calib: { windows: K, tokens: T, coldSeconds, seconds: calibSeconds, tokS: calibTokS, gflops: (calibTokS * flopsPerToken) / 1e9, ofCeiling: (calibTokS * flopsPerToken) / 1e9 / ceil },
    ppl: { seconds: pplSeconds, tokS: (K * (T - 1)) / pplSeconds, value: ppl.ppl },
    compare,
    streamedVsWhole,
    big,
    peakRssBytes: rssBytes(),
    wasmMemoryBytes: runtimeName === 'wasm' ? wasmMemoryBytes() : undefined,
  };
}

type Row = Awaited<ReturnType<typeof benchShape>>;

/** --decode: one decoder ('q8', 'fp16' with a KV cache; 'fp32' layer by layer) on one shape, in this process. */
async function benchDecode(shape: ShapeName, runtimeName: string, weights: 'q8' | 'fp16' | 'fp32') {
  const runtime = runtimeName === 'wasm' ? webWasmRuntime() : nodeRuntime();
  const ck = await loadModelPath(join(FOLDERS, shape));
  const rand = mulberry32(11);
  const prompt = [ck.config.bosTokenId, ...Array.from({ length: 15 }, () => Math.floor(rand() * Math.min(ck.config.vocabSize, 30000)))];
  const engine = new Engine(ck, runtime, weights === 'fp32' ? { execution: 'streamed' } : { decodeWeights: weights });
  const t = performance.now();
  let first = NaN; // seconds to the first token: the session build and the prompt
  let n = 0;
  for await (const _ of engine.generate(prompt, { maxTokens: weights === 'fp32' ? 4 : 16, stopAtEos: false })) {
    void _;
    if (n++ === 0) first = since(t);
  }
  const tokS = (n - 1) / (since(t) - first);
  const wasm = runtimeName === 'wasm' ? wasmMemoryBytes() : undefined;
  await engine.dispose();
  return { shape, runtime: runtime.name, weights, parameters: parameterCount(ck), firstSeconds: first, tokS, wasmMemoryBytes: wasm, peakRssBytes: rssBytes() };
}

if (values.child && values.decode) {
  process.stdout.write(JSON.stringify(await benchDecode(values.shape as ShapeName, values.runtime ?? 'node', (values.weights ?? 'q8') as 'q8' | 'fp16' | 'fp32')) + '\n');
  process.exit(0);
}
if (!values.child && values.decode) {
  const runtime = values.runtime ?? 'node';
  const shapes: ShapeName[] = values.shape ? [values.shape as ShapeName] : CATALOG;
  const gb = (n: number | undefined) => (n === undefined ? '–' : (n / 1e9).toFixed(2));
  console.log(`| shape (${runtime}) | decoder | first token (s) | decode tok/s | × fp32 layer by layer | peak RSS (GB) | WebAssembly memory (GB) |`);
  console.log('|---|---|---|---|---|---|---|');
  for (const shape of shapes) {
    cachedShapeFolder(shape, join(FOLDERS, shape));
    const rows = (['fp32', 'q8', 'fp16'] as const).map((weights) => {
      const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/scale.ts', '--child', '--decode', '--shape', shape, '--runtime', runtime, '--weights', weights], { encoding: 'utf8', maxBuffer: 1 << 26 });
      return JSON.parse(out.trim().split('\n').pop()!) as Awaited<ReturnType<typeof benchDecode>>;
    });
    const label = { fp32: 'fp32 layer by layer', q8: '8-bit, KV cache', fp16: 'fp16, KV cache' };
    for (const r of rows) {
      console.log(`| ${shape} | ${label[r.weights]} | ${r.firstSeconds.toFixed(1)} | ${r.tokS.toFixed(2)} | ${(r.tokS / rows[0].tokS).toFixed(1)}× | ${gb(r.peakRssBytes)} | ${gb(r.wasmMemoryBytes)} |`);
    }
  }
  process.exit(0);
}

if (values.child) {
  const r = await benchShape(values.shape as ShapeName, values.runtime ?? 'node', Number(values.windows ?? 2), Number(values.tokens ?? 256), !!values.compare);
  process.stdout.write(JSON.stringify(r) + '\n');
} else {
  const runtime = values.runtime ?? 'node';
  const shapes: ShapeName[] = values.shape ? [values.shape as ShapeName] : [...CATALOG, ...(values['with-8b'] ? [BIG] : [])];
  for (const s of shapes) if (!(s in SHAPES)) throw new Error(`unknown shape ${s} (one of ${Object.keys(SHAPES).join(', ')})`);
  if (runtime === 'wasm' && shapes.includes(BIG)) throw new Error('the 8B shape runs on onnxruntime-node only');
  const rows: Row[] = [];
  for (const shape of shapes) {
    const t = performance.now();
    cachedShapeFolder(shape, join(FOLDERS, shape));
    console.error(`bench:scale ${shape} (folder ready in ${since(t).toFixed(0)} s: ${join(FOLDERS, shape)})…`);
    const args = ['--import', 'tsx', 'bench/scale.ts', '--child', '--shape', shape, '--runtime', runtime, '--windows', values.windows ?? '2', '--tokens', values.tokens ?? '256', ...(values.compare ? ['--compare'] : [])];
    const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
    rows.push(JSON.parse(out.trim().split('\n').pop()!));
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  const gb = (x: number) => (x / 1e9).toFixed(2);
  console.log(`\n${rows[0].runtime}, ${rows[0].calib.windows} windows × ${rows[0].calib.tokens} tokens`);
  console.log('| shape | params | execution | weights | load s | ceiling GFLOP/s | calib tok/s | calib GFLOP/s | of ceiling | ppl tok/s | peak RSS GB | WASM memory GB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.shape} | ${f(r.parameters / 1e6, 0)}M | ${r.execution} | ${r.weights} | ${f(r.loadSeconds)} | ${f(r.ceilingGflops)} | ${f(r.calib.tokS)} | ${f(r.calib.gflops)} | ${f(100 * r.calib.ofCeiling, 0)}% | ${f(r.ppl.tokS)} | ${gb(r.peakRssBytes)} | ${r.wasmMemoryBytes ? gb(r.wasmMemoryBytes) : '-'} |`,
    );
  }
  for (const r of rows) if (r.compare) console.log(`${r.shape}: compare BI n=2 ${JSON.stringify(r.compare)}`);
  for (const r of rows) if (r.streamedVsWhole) console.log(`${r.shape}: Prune&Comp BI n=5 streamed vs whole graph ${JSON.stringify(r.streamedVsWhole)}`);
  for (const r of rows) if (r.big) console.log(`${r.shape}: prune BI n=1, perplexity, HF export ${JSON.stringify(r.big)}`);
  console.log(`(the model folders stay in ${FOLDERS} for the next run; delete it to free the disk)`);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/scale${values.shape ? `-${values.shape}` : ''}-${runtime}.json`, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
}
