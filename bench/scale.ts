/**
 * npm run bench:scale — the engine at the sizes people prune: seeded random bf16 checkpoints
 * of the exact published shapes (../shared/configs), each in its own process (so its peak
 * memory is its own), on onnxruntime-node by default.
 *
 * Per shape: the execution the engine chooses (whole graph or layer-streamed), a calibration
 * pass (statistics and streams, as Prune&Comp's first step; K windows of T tokens) run twice —
 * the first builds the sessions, the second's tok/s
 * and GFLOP/s as a share of the runtime's MatMul ceiling measured in the same process (the
 * best of 15 warm runs of one 512×2048·2048×2048 MatMul), a perplexity pass, and the peak
 * resident memory. On the 135M shape also: iterative Prune&Comp (BI, n = 5) streamed vs whole
 * graph, side by side, with the plans compared.
 *
 *   npm run bench:scale                                  every shape below (8B only with --with-8b)
 *   npm run bench:scale -- --shape meta-llama__Llama-3.2-1B --windows 2 --tokens 256 [--runtime wasm]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { expectedTensors, parameterCount, type Checkpoint } from '../src/engine/model/checkpoint';
import { fromHfConfig } from '../src/engine/model/config';
import type { Tensor } from '../src/engine/model/tensor';
import { ElemType, GraphBuilder } from '../src/engine/graph/builder';
import { prune } from '../src/engine/prune/plan';
import { Engine } from '../src/engine/runtime/engine';
import { nodeRuntime } from '../src/engine/runtime/node';
import type { Runtime } from '../src/engine/runtime/ort';
import { webWasmRuntime } from '../src/engine/runtime/web-node';
import { ByteTokenizer, mulberry32 } from '../test/helpers/random-checkpoint';
import { SHARED } from '../test/helpers/paths';

const SHAPES = [
  'HuggingFaceTB__SmolLM2-135M',
  'HuggingFaceTB__SmolLM2-360M',
  'Qwen__Qwen2.5-0.5B',
  'Qwen__Qwen3-0.6B',
  'TinyLlama__TinyLlama-1.1B-Chat-v1.0',
  'meta-llama__Llama-3.2-1B',
  'HuggingFaceTB__SmolLM2-1.7B',
];
const BIG = 'meta-llama__Meta-Llama-3-8B';

const { values } = parseArgs({
  options: {
    shape: { type: 'string' },
    runtime: { type: 'string' },
    windows: { type: 'string' },
    tokens: { type: 'string' },
    'with-8b': { type: 'boolean' },
  },
});

/**
 * A seeded random checkpoint of a published config in bf16: matrices uniform in ±√(3/fan_in)
 * (unit-variance activations), norm gains 1, biases small; the bf16 bits are the upper half of
 * each float32 (truncation: it is a benchmark, not a numerics test).
 */
function randomBf16(configName: string, seed = 1): Checkpoint {
  const config = fromHfConfig(JSON.parse(readFileSync(join(SHARED, 'configs', `${configName}.json`), 'utf8')), `${configName}.json`);
  const rand = mulberry32(seed);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(n);
    const norm = name.endsWith('norm.weight');
    const a = name.endsWith('.bias') ? 0.02 : name === 'model.embed_tokens.weight' ? 1 : Math.sqrt(3 / shape[shape.length - 1]);
    for (let i = 0; i < n; i++) {
      f[0] = norm ? 1 : (2 * rand() - 1) * a;
      data[i] = u[0] >>> 16;
    }
    tensors.set(name, { dtype: 'bf16', shape, data });
  }
  return { config, tensors, tokenizer: new ByteTokenizer(config.vocabSize), source: `random ${configName}`, format: 'hf' };
}

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

const rssGb = () => process.resourceUsage().maxRSS / 1e6; // maxRSS is in kB

async function benchShape(shape: string, runtimeName: string, K: number, T: number) {
  const runtime = runtimeName === 'wasm' ? webWasmRuntime() : nodeRuntime();
  const t0 = performance.now();
  const ck = randomBf16(shape);
  const made = (performance.now() - t0) / 1000;
  const c = ck.config;
  const ceil = await ceiling(runtime);
  const rand = mulberry32(7);
  const windows = Array.from({ length: K }, () => Array.from({ length: T }, () => Math.floor(rand() * Math.min(c.vocabSize, 30000))));
  const execution = new Engine(ck, runtime).execution;

  // A calibration pass (statistics and streams) twice on one engine: the first builds the
  // sessions; the second is warm for the whole graph (streamed passes build theirs every time).
  const calEngine = new Engine(ck, runtime);
  const t1 = performance.now();
  await calEngine.pass(windows, { stats: true, streams: true });
  const coldSeconds = (performance.now() - t1) / 1000;
  const t1b = performance.now();
  await calEngine.pass(windows, { stats: true, streams: true });
  const calibSeconds = (performance.now() - t1b) / 1000;
  await calEngine.dispose();
  const layerParams = parameterCount(ck) - c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2);
  const flopsPerToken = 2 * layerParams + 4 * T * c.hiddenSize * c.numLayers;
  const calibTokS = (K * T) / calibSeconds;

  const engine = new Engine(ck, runtime);
  const t2 = performance.now();
  const ppl = await engine.perplexity(windows.flat(), T);
  const pplSeconds = (performance.now() - t2) / 1000;
  await engine.dispose();

  let streamedVsWhole: Record<string, unknown> | undefined;
  if (shape === 'HuggingFaceTB__SmolLM2-135M') {
    const run = async (execution: 'whole' | 'streamed') => {
      const t = performance.now();
      const r = await prune(ck, { ...runtime, execution }, windows, { metric: 'bi', layers: 5, mode: 'prunecomp', fold: 'paper' });
      return { seconds: (performance.now() - t) / 1000, removed: r.plan.removed, scales: r.plan.scales };
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
  return {
    shape,
    runtime: runtime.name,
    parameters: parameterCount(ck),
    execution,
    madeSeconds: made,
    ceilingGflops: ceil,
    calib: { windows: K, tokens: T, coldSeconds, seconds: calibSeconds, tokS: calibTokS, gflops: (calibTokS * flopsPerToken) / 1e9, ofCeiling: (calibTokS * flopsPerToken) / 1e9 / ceil },
    ppl: { seconds: pplSeconds, tokS: (K * (T - 1)) / pplSeconds, value: ppl.ppl },
    peakRssGb: rssGb(),
    streamedVsWhole,
  };
}

if (values.shape) {
  const r = await benchShape(values.shape, values.runtime ?? 'node', Number(values.windows ?? 2), Number(values.tokens ?? 256));
  process.stdout.write(JSON.stringify(r) + '\n');
} else {
  const shapes = [...SHAPES, ...(values['with-8b'] ? [BIG] : [])];
  const rows: Awaited<ReturnType<typeof benchShape>>[] = [];
  for (const shape of shapes) {
    console.error(`bench:scale ${shape}…`);
    const args = ['--import', 'tsx', 'bench/scale.ts', '--shape', shape, '--runtime', values.runtime ?? 'node', '--windows', values.windows ?? '2', '--tokens', values.tokens ?? '256'];
    const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
    rows.push(JSON.parse(out.trim().split('\n').pop()!));
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log('| shape | params | execution | ceiling GFLOP/s | first calib pass s | calib tok/s (second pass) | calib GFLOP/s | of ceiling | ppl tok/s | peak RSS GB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.shape} | ${(r.parameters / 1e6).toFixed(0)}M | ${r.execution} | ${f(r.ceilingGflops)} | ${f(r.calib.coldSeconds)} | ${f(r.calib.tokS)} | ${f(r.calib.gflops)} | ${f(100 * r.calib.ofCeiling, 0)}% | ${f(r.ppl.tokS)} | ${f(r.peakRssGb, 2)} |`);
  }
  for (const r of rows) if (r.streamedVsWhole) console.log(`${r.shape}: Prune&Comp BI n=5 streamed vs whole graph ${JSON.stringify(r.streamedVsWhole)}`);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/scale.json', JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
}
