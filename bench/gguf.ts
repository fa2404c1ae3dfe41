/**
 * npm run bench:gguf — the GGUF export at real size: seeded random bf16 checkpoints of the
 * published shapes with their real tokenizers (test/helpers/real-shapes.ts, cached in
 * $TMPDIR/lopper-bench-shapes/ as bench:scale keeps them), loaded as the CLI loads them, pruned
 * by two layers, written as GGUF F16 and Q8_0 with the CLI's writer, and run by llama.cpp
 * (node-llama-cpp 3.21.1, CPU) against lopper's engine on the same pruned checkpoint.
 *
 * Per shape, each step in a process of its own (so each peak RSS is that step's own):
 *   prune    Prune&Comp (BI, 2 layers, the tie-preserving fold, so a tied model stays tied; the
 *            last 2 layers barred, so later blocks are renumbered and scales folded) on one
 *            window of wikitext-2 — the plan (removed layers, scales) goes to a file;
 *   export   per type: the dense model loaded, the plan applied (applyPlan: the pruned model's
 *            folded tensors are derived, computed as the writer reads them), the GGUF written
 *            (exportFiles + writeExportFile, as `lopper export --format gguf` does): wall time,
 *            MB/s of file written, resident memory before and the peak during the export, and
 *            the file's size against the size the export announced;
 *   compare  the engine's greedy ids after a short prompt and its next-token distribution at
 *            every position of prompt + continuation (teacher-forced), against llama.cpp's for
 *            each file (greedy; probabilities with an F32 KV cache, temperature 1, no top-k/p or
 *            min-p truncation, as maxProbDiff in test/unit/gguf.test.ts): max |Δp|, the largest
 *            p (random weights give flat distributions, so |Δp| is small anyway), max |Δ ln p|
 *            over tokens at least as likely as uniform, and whether the argmax agrees at every
 *            position (with the engine's top-2 logit gap where it does not: a near-tie).
 *
 *   npm run bench:gguf                                     Llama-3.2-1B and Qwen2.5-0.5B
 *   LOPPER_GGUF_SHAPES=HuggingFaceTB__SmolLM2-135M npm run bench:gguf
 *   npm run bench:gguf -- --shapes S1,S2 --types f16,q8_0 --new-tokens 4 --weights memory,disk
 *
 * Each file is exported twice (--weights memory,disk, the default): as the CLI loads the model
 * (on this machine every catalog model is read into memory) and with LOPPER_LAZY_ABOVE=0 (the
 * weights stay in the safetensors file, read by ranges as the writer needs them: what an 8B
 * model gets); the table says whether the two files hold the same bytes (SHA-256). "peak
 * before" is the process's high-water mark before the export began (loading): a peak at or
 * below it says the export itself stayed under the load's; so the RSS is also sampled every
 * 20 ms during the export, and its rise over the RSS before the export is the export's own
 * memory. The table goes to stdout and to bench/results/gguf.txt; the GGUF files are deleted
 * at the end (--keep keeps them).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, readGgufFileInfo, type LlamaModel, type Token } from 'node-llama-cpp';
import { tokenizeText } from '../src/app/run';
import { writeExportFile } from '../src/cli/export';
import { checkExportable, exportFiles } from '../src/engine/export';
import { GGUF_TYPES, type GgufType } from '../src/engine/export/gguf';
import { loadModelPath } from '../src/engine/formats/load-node';
import { parameterCount, type Checkpoint } from '../src/engine/model/checkpoint';
import { isLazy } from '../src/engine/model/tensor';
import { applyPlan } from '../src/engine/prune/apply';
import { prune, type Plan } from '../src/engine/prune/plan';
import { Engine } from '../src/engine/runtime/engine';
import { nodeRuntime } from '../src/engine/runtime/node';
import { cutWindows } from '../src/engine/text/windows';
import { DATA } from '../test/helpers/paths';
import { cachedShapeFolder, SHAPES, type ShapeName } from '../test/helpers/real-shapes';

const FOLDERS = join(tmpdir(), 'lopper-bench-shapes');
const DEFAULT_SHAPES: ShapeName[] = ['meta-llama__Llama-3.2-1B', 'Qwen__Qwen2.5-0.5B'];
const PROMPT = 'The history of the city begins';
const CALIB_TOKENS = 128;

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    shape: { type: 'string' },
    shapes: { type: 'string' },
    types: { type: 'string' },
    type: { type: 'string' },
    plan: { type: 'string' },
    out: { type: 'string' },
    files: { type: 'string' },
    'new-tokens': { type: 'string' },
    weights: { type: 'string' },
    keep: { type: 'boolean' },
  },
});

const since = (t: number) => (performance.now() - t) / 1000;
const peakRss = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
const print = (x: unknown) => process.stdout.write(JSON.stringify(x) + '\n');

/** The dense model as the CLI loads it, with the plan's cuts applied. */
async function prunedModel(shape: ShapeName, planFile: string): Promise<{ ck: Checkpoint; loadSeconds: number; weights: string }> {
  const t = performance.now();
  const dense = await loadModelPath(join(FOLDERS, shape));
  const loadSeconds = since(t);
  // as `lopper info` says it (of the dense model: the plan's folded tensors are derived, lazy too)
  const weights = [...dense.tensors.values()].some(isLazy) ? 'on disk' : 'in memory';
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as Plan;
  return { ck: applyPlan(dense, plan), loadSeconds, weights };
}

// ---- children ----------------------------------------------------------------------------

async function childPrune(shape: ShapeName, planFile: string) {
  const ck = await loadModelPath(join(FOLDERS, shape));
  const text = readFileSync(join(DATA, 'wikitext2/wiki.test.raw'), 'utf8').slice(0, 20000);
  const windows = cutWindows(tokenizeText(ck, text), CALIB_TOKENS, 1);
  const t = performance.now();
  // skipLast 2 (Mag+'s and Taylor+'s barrier): on random weights BI would take the last layers, whose
  // removal neither renumbers a block nor folds a scale; in the middle both happen.
  const { plan } = await prune(ck, nodeRuntime(), windows, { metric: 'bi', layers: 2, mode: 'prunecomp', fold: 'tied', barriers: { skipLast: 2 } });
  const seconds = since(t);
  writeFileSync(planFile, JSON.stringify(plan));
  return { seconds, layers: ck.config.numLayers, removed: plan.removed, scales: plan.scales, parameters: parameterCount(ck), peakRssBytes: peakRss() };
}

async function childExport(shape: ShapeName, planFile: string, type: GgufType, out: string) {
  const { ck, loadSeconds, weights } = await prunedModel(shape, planFile);
  checkExportable(ck, 'gguf');
  const rssBefore = process.memoryUsage().rss;
  const peakBefore = peakRss();
  // the OS's high-water mark cannot be reset after the load: sample the RSS during the export too
  // (the writer awaits each chunk's write, so the timer runs between chunks)
  let sampledPeak = rssBefore;
  const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss())), 20);
  const t = performance.now();
  const [entry] = await exportFiles(ck, 'gguf', { ggufType: type });
  await writeExportFile(out, entry);
  const seconds = since(t);
  clearInterval(sampler);
  sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  return {
    type,
    weights,
    loadSeconds,
    layers: ck.config.numLayers,
    parameters: parameterCount(ck),
    seconds,
    announcedBytes: entry.size,
    fileBytes: statSync(out).size,
    rssBefore,
    peakBefore,
    peakRss: peakRss(),
    sampledPeak,
  };
}

interface FileComparison {
  file: string;
  loadSeconds: number;
  greedy: number[];
  greedySeconds: number;
  greedyEqual: boolean;
  tokenizeEqual: boolean;
  /** block_count and the blk.N indices in the file are 0 … layers − 1 */
  blocksRenumbered: boolean;
  maxAbsDp: number;
  maxLogRatio: number;
  argmaxAgree: number;
  positions: number;
  /**
   * where llama.cpp's greedy ids first leave the engine's (the prefix is the same up to there):
   * the new token's index, both picks, the engine's logit of its pick minus that of llama.cpp's,
   * and the rank of llama.cpp's pick among the engine's logits (1 = the engine's top)
   */
  greedySplit?: { index: number; engine: number; llama: number; engineLogitGap: number; engineRank: number };
  /** where the argmax differs: the position and the engine's top-2 logit gap there */
  disagreements: { pos: number; engineTop: number; llamaTop: number; engineGap: number }[];
}

async function childCompare(shape: ShapeName, planFile: string, files: string[], newTokens: number) {
  const { ck } = await prunedModel(shape, planFile);
  const V = ck.config.vocabSize;
  const prompt = tokenizeText(ck, PROMPT);
  const engine = new Engine(ck, nodeRuntime());
  const execution = engine.execution;
  let t = performance.now();
  const expected: number[] = [];
  for await (const id of engine.generate(prompt, { maxTokens: newTokens, stopAtEos: false })) expected.push(id);
  const engineGreedySeconds = since(t);
  const ids = [...prompt, ...expected];
  t = performance.now();
  const logits = await engine.logits(ids);
  const engineLogitsSeconds = since(t);
  await engine.dispose();

  // the engine's softmax per position, and its argmax and top-2 gap
  const engineP = ids.map((_, pos) => {
    const row = logits.subarray(pos * V, (pos + 1) * V);
    let max = -Infinity;
    let arg = 0;
    let second = -Infinity;
    for (let v = 0; v < V; v++) {
      if (row[v] > max) [second, max, arg] = [max, row[v], v];
      else if (row[v] > second) second = row[v];
    }
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    return { p: Float64Array.from(row, (x) => Math.exp(x - max) / sum), arg, gap: max - second };
  });

  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const results: FileComparison[] = [];
  for (const file of files) {
    const info = await readGgufFileInfo(file, { readTensorInfo: true });
    const blockCount = (info.metadata as unknown as Record<string, { block_count?: number }>)[String(info.metadata.general.architecture)]?.block_count;
    const blocks = new Set(info.fullTensorInfo!.map((x) => /^blk\.(\d+)\./.exec(x.name)?.[1]).filter((x) => x !== undefined).map(Number));
    const L = ck.config.numLayers;
    const blocksRenumbered = blockCount === L && blocks.size === L && [...blocks].every((b) => b < L);
    t = performance.now();
    const model: LlamaModel = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const loadSeconds = since(t);
    try {
      // greedy (llama.cpp's default KV cache), as a user would run the file
      const gctx = await model.createContext({ contextSize: 128, threads: 2 });
      const greedy: number[] = [];
      t = performance.now();
      try {
        for await (const tok of gctx.getSequence().evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
          greedy.push(tok);
          if (greedy.length >= newTokens) break;
        }
      } finally {
        await gctx.dispose();
      }
      const greedySeconds = since(t);
      const k = greedy.findIndex((id, i) => id !== expected[i]);
      let greedySplit: FileComparison['greedySplit'];
      if (k >= 0) {
        const row = logits.subarray((prompt.length - 1 + k) * V, (prompt.length + k) * V);
        const theirs = row[greedy[k]];
        greedySplit = { index: k, engine: expected[k], llama: greedy[k], engineLogitGap: row[expected[k]] - theirs, engineRank: 1 + row.filter((x) => x > theirs).length };
      }

      // teacher-forced distributions, F32 KV cache, the plain softmax
      const ctx = await model.createContext({ contextSize: 128, threads: 2, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
      let maxAbsDp = 0;
      let maxLogRatio = 0;
      let argmaxAgree = 0;
      const disagreements: FileComparison['disagreements'] = [];
      try {
        const options = { temperature: 1, topK: V, topP: 1, minP: 0 };
        const out = await ctx.getSequence().controlledEvaluate(ids.map((tok) => [tok as Token, { generateNext: { probabilities: true, options } }] as const));
        ids.forEach((_, pos) => {
          const probs = out[pos]?.next.probabilities;
          if (!probs) throw new Error(`${file}: no probabilities at position ${pos}`);
          const { p, arg, gap } = engineP[pos];
          let llamaArg = 0;
          let llamaMax = -1;
          for (let v = 0; v < V; v++) {
            const q = probs.get(v as Token) ?? 0;
            if (q > llamaMax) [llamaMax, llamaArg] = [q, v];
            maxAbsDp = Math.max(maxAbsDp, Math.abs(p[v] - q));
            // the log ratio over tokens at least as likely as uniform (far-tail ratios say little)
            if (p[v] >= 1 / V) maxLogRatio = Math.max(maxLogRatio, Math.abs(Math.log(q / p[v])));
          }
          if (llamaArg === arg) argmaxAgree++;
          else disagreements.push({ pos, engineTop: arg, llamaTop: llamaArg, engineGap: gap });
        });
      } finally {
        await ctx.dispose();
      }
      results.push({
        file,
        loadSeconds,
        greedy,
        greedySeconds,
        greedySplit,
        greedyEqual: JSON.stringify(greedy) === JSON.stringify(expected),
        blocksRenumbered,
        tokenizeEqual: JSON.stringify(model.tokenize(PROMPT)) === JSON.stringify(ck.tokenizer.encode(PROMPT)),
        maxAbsDp,
        maxLogRatio,
        argmaxAgree,
        positions: ids.length,
        disagreements,
      });
    } finally {
      await model.dispose();
    }
  }
  await llama.dispose();
  const maxP = Math.max(...engineP.map(({ p }) => p.reduce((m, x) => Math.max(m, x), 0)));
  return { prompt, expected, execution, engineGreedySeconds, engineLogitsSeconds, maxP, uniformP: 1 / V, files: results, peakRssBytes: peakRss() };
}

// ---- the parent ----------------------------------------------------------------------------

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

function child(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/gguf.ts', ...args], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'], env });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function main() {
  const shapes = (values.shapes ?? process.env.LOPPER_GGUF_SHAPES ?? DEFAULT_SHAPES.join(',')).split(',').filter(Boolean) as ShapeName[];
  for (const s of shapes) if (!(s in SHAPES)) throw new Error(`unknown shape "${s}" (one of ${Object.keys(SHAPES).join(', ')})`);
  const types = (values.types ?? 'f16,q8_0').split(',') as GgufType[];
  for (const t of types) if (!GGUF_TYPES.includes(t)) throw new Error(`unknown GGUF type "${t}" (one of ${GGUF_TYPES.join(', ')})`);
  const newTokens = Number(values['new-tokens'] ?? 4);
  if (!(Number.isInteger(newTokens) && newTokens >= 1)) throw new Error(`--new-tokens must be a whole number ≥ 1 (got "${values['new-tokens']}")`);
  const modes = (values.weights ?? 'memory,disk').split(',');
  for (const m of modes) if (m !== 'memory' && m !== 'disk') throw new Error(`--weights takes memory and/or disk (got "${m}")`);

  const work = mkdtempSync(join(tmpdir(), 'lopper-bench-gguf-'));
  const lines: string[] = [];
  const say = (s: string) => {
    console.log(s);
    lines.push(s);
  };
  const MB = 1e6;
  const gb = (n: number) => (n / 1e9).toFixed(2);
  try {
    const rows: string[] = [];
    const cmp: string[] = [];
    const notes: string[] = [];
    for (const shape of shapes) {
      let t = performance.now();
      cachedShapeFolder(shape, join(FOLDERS, shape));
      console.error(`bench:gguf ${shape}: folder ready in ${since(t).toFixed(0)} s (${join(FOLDERS, shape)}); pruning 2 layers…`);
      const planFile = join(work, `${shape}.plan.json`);
      const pr = child(['--child', 'prune', '--shape', shape, '--plan', planFile]);
      notes.push(
        `${shape}: Prune&Comp BI n=2 (tied fold) on 1 × ${CALIB_TOKENS} tokens in ${pr.seconds.toFixed(1)} s (last 2 layers barred) removed layers ${pr.removed.join(', ')} of ${pr.layers} (original indices; the layers after them renumbered) ` +
          `(scales ${pr.scales.map((s: number) => s.toFixed(4)).join(', ')}; peak RSS ${gb(pr.peakRssBytes)} GB)`,
      );
      const files: string[] = [];
      for (const type of types) {
        let first: { file: string; hash: string } | undefined;
        for (const mode of modes) {
          const out = join(work, `${shape}-${type}-${mode}.gguf`);
          console.error(`bench:gguf ${shape}: exporting ${type} (weights: ${mode === 'disk' ? 'LOPPER_LAZY_ABOVE=0' : 'as the CLI loads them'})…`);
          const e = child(['--child', 'export', '--shape', shape, '--plan', planFile, '--type', type, '--out', out], mode === 'disk' ? { ...process.env, LOPPER_LAZY_ABOVE: '0' } : process.env);
          const hash = await sha256(out);
          // the same bytes whichever way the weights were read (the second file is then dropped)
          const same = first === undefined ? '' : hash === first.hash ? 'yes' : 'NO';
          if (first === undefined) {
            first = { file: out, hash };
            files.push(out);
          } else rmSync(out);
          const hidden = e.peakRss <= e.peakBefore ? ' (≤ the load\'s peak)' : '';
          rows.push(
            `| ${shape} | ${e.layers} | ${(e.parameters / 1e6).toFixed(0)}M | ${type.toUpperCase()} | ${e.weights} | ${(e.fileBytes / MB).toFixed(1)} | ` +
              `${e.fileBytes === e.announcedBytes ? 'yes' : `NO (announced ${e.announcedBytes})`} | ${same || '–'} | ${e.seconds.toFixed(1)} | ${(e.fileBytes / MB / e.seconds).toFixed(0)} | ` +
              `${gb(e.rssBefore)} | ${gb(e.peakBefore)} | ${gb(e.peakRss)}${hidden} | ${gb(e.sampledPeak)} | ${((e.sampledPeak - e.rssBefore) / 2 ** 20).toFixed(0)} |`,
          );
        }
      }
      console.error(`bench:gguf ${shape}: engine vs llama.cpp (${newTokens} tokens greedy)…`);
      const c = child(['--child', 'compare', '--shape', shape, '--plan', planFile, '--files', files.join(','), '--new-tokens', String(newTokens)]);
      notes.push(
        `${shape}: prompt "${PROMPT}" = [${c.prompt.join(', ')}]; engine greedy [${c.expected.join(', ')}] in ${c.engineGreedySeconds.toFixed(1)} s (${c.execution === 'streamed' ? 'layer by layer, no KV cache' : 'whole graph, KV cache'}; the session's build included), ` +
          `logits of ${c.prompt.length + c.expected.length} positions in ${c.engineLogitsSeconds.toFixed(1)} s; largest engine p ${c.maxP.toExponential(2)} (uniform ${c.uniformP.toExponential(2)}); compare peak RSS ${gb(c.peakRssBytes)} GB`,
      );
      c.files.forEach((f: FileComparison, i: number) => {
        cmp.push(
          `| ${shape} | ${types[i].toUpperCase()} | ${f.blocksRenumbered ? 'yes' : 'NO'} | ${f.loadSeconds.toFixed(1)} | ${f.tokenizeEqual ? 'yes' : 'NO'} | [${f.greedy.join(', ')}] | ${f.greedyEqual ? 'yes' : 'NO'} | ` +
            `${f.maxAbsDp.toExponential(2)} | ${f.maxLogRatio.toExponential(2)} | ${f.argmaxAgree}/${f.positions} |`,
        );
        const g = f.greedySplit;
        if (g) {
          notes.push(
            `${shape} ${types[i].toUpperCase()}: greedy leaves the engine's at new token ${g.index + 1}: engine ${g.engine}, llama.cpp ${g.llama}, ` +
              `whose engine logit is ${g.engineLogitGap.toExponential(2)} below the engine's pick (rank ${g.engineRank} of ${c.uniformP ? Math.round(1 / c.uniformP) : '?'})`,
          );
        }
        for (const d of f.disagreements) {
          notes.push(`${shape} ${types[i].toUpperCase()}: argmax differs at position ${d.pos}: engine ${d.engineTop}, llama.cpp ${d.llamaTop}; the engine's top-2 logit gap there ${d.engineGap.toExponential(2)}`);
        }
      });
    }
    say(`bench:gguf ${new Date().toISOString()}: seeded random bf16 checkpoints of the published shapes (real tokenizers), pruned by 2 layers, written as GGUF (export: one process each; the weights as the CLI loads them, and with LOPPER_LAZY_ABOVE=0: on disk, read by ranges as the writer needs them)`);
    say('');
    say('| shape | layers | params | type | weights | file MB | size = announced | same bytes | export s | MB/s | RSS before GB | peak before GB | peak RSS GB | RSS during export (sampled max) GB | its rise MiB |');
    say('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) say(r);
    say('');
    say(`llama.cpp (node-llama-cpp 3.21.1, CPU, 2 threads) on each file against lopper's engine (onnxruntime-node, fp32) on the same pruned checkpoint: ${newTokens} tokens greedy (llama.cpp's default F16 KV cache); next-token distributions at every position (teacher-forced; F32 KV cache, plain softmax)`);
    say('');
    say('| shape | type | blk.0 … blk.(L−1), block_count L | llama.cpp load s | tokenizes as lopper | llama.cpp greedy | = engine greedy | max abs Δp | max abs Δ ln p (p ≥ 1/V) | argmax agree |');
    say('|---|---|---|---|---|---|---|---|---|---|');
    for (const r of cmp) say(r);
    say('');
    for (const n of notes) say(`- ${n}`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/gguf.txt', lines.join('\n') + '\n');
    if (values.keep) console.error(`bench:gguf: the files stay in ${work}`);
  } finally {
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  }
}

if (values.child) {
  const shape = values.shape as ShapeName;
  const planFile = values.plan!;
  if (values.child === 'prune') print(await childPrune(shape, planFile));
  else if (values.child === 'export') print(await childExport(shape, planFile, values.type as GgufType, values.out!));
  else if (values.child === 'compare') print(await childCompare(shape, planFile, values.files!.split(','), Number(values['new-tokens'] ?? 4)));
  else throw new Error(`unknown child step "${values.child}"`);
} else {
  await main();
}
