/**
 * npm run bench — engine throughput on this machine, per Node runtime, side by side.
 *
 * For stories260K and a seeded random model of SmolLM2-135M's shape, each in its own
 * process (so peak memory is its own): calibration pass (windows of 512 tokens, statistics
 * included), perplexity pass, KV-cache decoding, peak RSS; and the runtime's ceiling, one
 * 512×2048 by 2048×2048 fp32 MatMul. The calibration pass's GFLOP/s counts
 * 2·(decoder-layer parameters) + 4·T·D·L per token (all T keys scored, as the graph does);
 * PyTorch's published figure for this pass uses the same count.
 *
 *   npm run bench                      all models × runtimes, table + bench/results/engine.json
 *   npm run bench -- --model 135m --runtime wasm
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadLlama2cFile } from '../src/engine/formats/llama2c-node';
import { ElemType, GraphBuilder } from '../src/engine/graph/builder';
import type { Checkpoint } from '../src/engine/model/checkpoint';
import { Engine } from '../src/engine/runtime/engine';
import { nodeRuntime } from '../src/engine/runtime/node';
import type { Runtime } from '../src/engine/runtime/ort';
import { webWasmRuntime } from '../src/engine/runtime/web-node';
import { MODELS } from '../test/helpers/paths';
import { randomCheckpoint } from '../test/helpers/random-checkpoint';

/** PyTorch 1.13 eager fp32, OpenBLAS, 2 threads, this machine kind, 135M shape (issue #2). */
const PYTORCH = { calibTokS: 430, calibGflops: 106, pplTokS: 370, decodeTokS: 27 };
const WINDOW = 512;

const MODEL_NAMES = ['stories260K', '135m'] as const;
const RUNTIME_NAMES = ['node', 'wasm'] as const;

function loadModel(name: string): Promise<Checkpoint> | Checkpoint {
  if (name === 'stories260K') return loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
  return randomCheckpoint({
    hiddenSize: 576,
    intermediateSize: 1536,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    vocabSize: 49152,
    maxPositions: 2048,
    tie: true,
    seed: 135,
  });
}

const runtimeFor = (name: string): Runtime => (name === 'node' ? nodeRuntime() : webWasmRuntime());

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, (performance.now() - t0) / 1000];
}

/** GFLOP/s of one 512×2048 · 2048×2048 MatMul: the most this runtime gets from this machine. */
async function ceiling(runtime: Runtime): Promise<number> {
  const [M, K, N] = [512, 2048, 2048];
  const g = new GraphBuilder('ceiling');
  const a = g.input('a', ElemType.FLOAT, [M, K]);
  g.output(g.matmul(a, g.weight('w', [K, N], new Float32Array(K * N).map((_, i) => ((i % 97) - 48) / 97))), 'y', ElemType.FLOAT, [M, N]);
  const session = await runtime.ort.InferenceSession.create(g.encode(), runtime.sessionOptions);
  const feeds = { a: new runtime.ort.Tensor('float32', new Float32Array(M * K).map((_, i) => ((i % 89) - 44) / 89), [M, K]) };
  await session.run(feeds);
  const reps = 8;
  const [, s] = await timed(async () => {
    for (let i = 0; i < reps; i++) await session.run(feeds);
  });
  await session.release();
  return (2 * M * K * N * reps) / s / 1e9;
}

/** One model on one runtime, in this process. */
async function benchOne(modelName: string, runtimeName: string) {
  const runtime = runtimeFor(runtimeName);
  const ck = await loadModel(modelName);
  const c = ck.config;
  const slow = modelName === '135m' && runtimeName === 'wasm';
  const nWindows = slow ? 2 : modelName === '135m' ? 4 : 16;
  const vocab = c.vocabSize;
  let seed = 1;
  const window = () => [c.bosTokenId, ...Array.from({ length: WINDOW - 1 }, () => (seed = (seed * 48271) % 2147483647) % vocab)];
  const windows = Array.from({ length: nWindows }, window);

  const ceilingGflops = await ceiling(runtime);
  const engine = new Engine(ck, runtime);

  const [, calibBuild] = await timed(() => engine.stats([windows[0]]));
  const [, calibS] = await timed(async () => {
    for (const w of windows) await engine.stats([w]);
  });
  const [, pplBuild] = await timed(() => engine.nll([windows[0]]));
  const [, pplS] = await timed(async () => {
    for (const w of windows) await engine.nll([w]);
  });

  const decodeTokens = slow ? 16 : 64;
  let first = 0;
  let n = 0;
  const [, genS] = await timed(async () => {
    for await (const _ of engine.generate([c.bosTokenId], { maxTokens: decodeTokens + 1, stopAtEos: false })) {
      if (n++ === 0) first = performance.now();
    }
  });
  const decodeS = (performance.now() - first) / 1000;
  await engine.dispose();

  const layerParams = c.numLayers * (c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize);
  const flopPerToken = 2 * layerParams + 4 * WINDOW * c.numHeads * c.headDim * c.numLayers;
  const calibTokS = (nWindows * WINDOW) / calibS;
  const calibGflops = (calibTokS * flopPerToken) / 1e9;
  return {
    model: modelName,
    runtime: runtime.name,
    ceilingGflops,
    calibTokS,
    calibGflops,
    calibOfCeiling: calibGflops / ceilingGflops,
    pplTokS: (nWindows * WINDOW) / pplS,
    decodeTokS: (n - 1) / decodeS,
    generateS: genS,
    sessionBuildS: { calib: calibBuild, ppl: pplBuild },
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    windows: nWindows,
  };
}

type Row = Awaited<ReturnType<typeof benchOne>>;

function table(rows: Row[]): string {
  const head = ['model', 'runtime', 'ceiling GFLOP/s', 'calib tok/s', 'calib GFLOP/s', 'of ceiling', 'ppl tok/s', 'decode tok/s', 'peak RSS MB'];
  const body = rows.map((r) => [
    r.model,
    r.runtime,
    r.ceilingGflops.toFixed(1),
    r.calibTokS.toFixed(0),
    r.calibGflops.toFixed(1),
    (100 * r.calibOfCeiling).toFixed(0) + '%',
    r.pplTokS.toFixed(0),
    r.decodeTokS.toFixed(1),
    r.peakRssMB.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((x, i) => x.padStart(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

function versusPytorch(rows: Row[]): string {
  const lines = ['', 'SmolLM2-135M shape vs PyTorch 1.13 eager fp32 (OpenBLAS, 2 threads) on this machine kind:'];
  for (const r of rows.filter((r) => r.model === '135m')) {
    const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
    lines.push(
      `  ${r.runtime}: calibration ${r.calibTokS.toFixed(0)} vs ${PYTORCH.calibTokS} tok/s (${x(r.calibTokS, PYTORCH.calibTokS)}), ` +
        `perplexity ${r.pplTokS.toFixed(0)} vs ${PYTORCH.pplTokS} tok/s (${x(r.pplTokS, PYTORCH.pplTokS)}), ` +
        `decode ${r.decodeTokS.toFixed(1)} vs ${PYTORCH.decodeTokS} tok/s (${x(r.decodeTokS, PYTORCH.decodeTokS)})`,
    );
  }
  return lines.join('\n');
}

const { values } = parseArgs({ options: { model: { type: 'string' }, runtime: { type: 'string' }, child: { type: 'boolean' } } });
if (values.child) {
  process.stdout.write(JSON.stringify(await benchOne(values.model!, values.runtime!)) + '\n');
} else {
  const models = values.model ? [values.model] : [...MODEL_NAMES];
  const runtimes = values.runtime ? [values.runtime] : [...RUNTIME_NAMES];
  const rows: Row[] = [];
  for (const model of models) {
    for (const runtime of runtimes) {
      process.stderr.write(`bench ${model} on ${runtime}…\n`);
      const outText = execFileSync(process.execPath, ['--import', 'tsx', 'bench/engine.ts', '--child', '--model', model, '--runtime', runtime], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 24,
      });
      rows.push(JSON.parse(outText.trim().split('\n').pop()!));
    }
  }
  console.log(table(rows));
  console.log(versusPytorch(rows));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/engine.json', JSON.stringify({ date: new Date().toISOString(), pytorch: PYTORCH, rows }, null, 2));
  console.log('\nwrote bench/results/engine.json');
}
