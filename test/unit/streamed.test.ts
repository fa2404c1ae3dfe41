/**
 * Layer-streamed execution (runtime/engine.ts, Execution 'streamed'): every pass the pruner
 * and the evaluator use — statistics at every boundary, streams, NLL, logits, passes that
 * restart at a boundary — run as one session for every decoder layer plus one for the head,
 * whose weights are inputs fed layer after layer, so the runtime holds one layer's weights at
 * a time and builds nothing between layers or passes. Checked against the Float64 reference (≤ 1e-4 relative, as every path) and against
 * the whole-graph engine on the tiny real models and random configs (GQA, biases, bf16,
 * tied/untied, Qwen3's q/k norms, both attention kernels); pruning on a streamed runtime
 * gives the whole graph's plans, with reuse.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { compareRun, textWindows, tokenizeText } from '../../src/app/run';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { prune } from '../../src/engine/prune/plan';
import { layerWeights } from '../../src/engine/graph/llama';
import { ReferenceModel } from '../../src/engine/reference/forward';
import { chooseExecution, Engine, liveSessions, type GenerateOptions } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import type { Runtime } from '../../src/engine/runtime/ort';
import { webWasmRuntime } from '../../src/engine/runtime/web-node';
import { maxRelError, referenceStats } from '../helpers/compare';
import { DATA, MODELS } from '../helpers/paths';
import { randomCheckpoint, type RandomCheckpointOptions } from '../helpers/random-checkpoint';

const TOL = 1e-4;
const node = nodeRuntime(1);
const streamedNode: Runtime = { ...node, execution: 'streamed' };

/** A streamed runtime around a real one that records the size of every model it opens a session on. */
function recording(r: Runtime): { runtime: Runtime; created: number[] } {
  const created: number[] = [];
  const create = r.ort.InferenceSession.create.bind(r.ort.InferenceSession);
  const ort = {
    ...r.ort,
    InferenceSession: {
      create(model: Uint8Array, options?: Parameters<typeof create>[1]) {
        created.push(model.byteLength);
        return create(model, options);
      },
    },
  };
  return { runtime: { ...r, ort: ort as Runtime['ort'], execution: 'streamed' }, created };
}

function tokens(n: number, vocab: number, seed = 5): number[] {
  let s = seed;
  return Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % vocab));
}

/** Everything a streamed pass gives, against the Float64 reference: logits, NLL, cos, mean |X| and streams at every boundary. */
async function checkAgainstReference(e: Engine, ck: Checkpoint, ids: number[]): Promise<number> {
  const ref = new ReferenceModel(ck);
  const { logits, streams } = ref.forward(ids);
  const { hiddenSize: D, numLayers: L } = ck.config;
  const T = ids.length;
  const [r] = await e.pass([ids], { logits: true, nll: true, stats: true, streams: true });
  let worst = maxRelError(r.logits!, logits);
  worst = Math.max(worst, maxRelError(r.nll!, ref.nll(ids)));
  for (let k = 0; k <= L; k++) {
    worst = Math.max(worst, maxRelError(r.streams[k], streams[k]));
    const ref = referenceStats(streams[k], k < L ? streams[k + 1] : null, T, D);
    worst = Math.max(worst, maxRelError(r.absMean[k], ref.absMean));
    if (ref.cos) worst = Math.max(worst, maxRelError(r.cos[k], ref.cos));
  }
  expect(worst).toBeLessThan(TOL);
  return worst;
}

const randomCases: [string, RandomCheckpointOptions][] = [
  ['GQA, untied, head size 8 (plain-ops attention)', { numHeads: 4, numKvHeads: 2, numLayers: 3 }],
  ['Qwen2 biases, tied, head_dim 16 (fused attention on node)', { architecture: 'Qwen2ForCausalLM', hiddenSize: 48, numHeads: 4, numKvHeads: 2, headDim: 16, numLayers: 3, tie: true }],
  ['Qwen3 q/k norms, bf16, MQA, head_dim 16', { architecture: 'Qwen3ForCausalLM', hiddenSize: 32, numHeads: 4, numKvHeads: 1, headDim: 16, numLayers: 3, dtype: 'bf16' }],
  ['Llama attention + MLP biases, llama3 RoPE, f16', { numLayers: 3, qkvBias: true, oBias: true, mlpBias: true, ropeScaling: true, ropeTheta: 5e5, dtype: 'f16' }],
];

describe('streamed passes', () => {
  test.each(randomCases)('random checkpoint, %s: the reference’s numbers; one session for every layer, one for the final norm and one for every slice of the head, weights fed per layer and slice', async (_, opts) => {
    const ck = randomCheckpoint({ ...opts, seed: 13 });
    const { runtime, created } = recording(node);
    const e = new Engine(ck, runtime);
    expect(e.execution).toBe('streamed');
    const before = liveSessions();
    const ids = tokens(24, ck.config.vocabSize);
    const worst = await checkAgainstReference(e, ck, ids);
    await checkAgainstReference(e, ck, ids.slice(0, 16)); // a second pass, another length: the same two sessions
    console.log(`streamed, ${_}: max relative error vs the reference ${worst.toExponential(1)}; models of ${created.join(', ')} bytes`);
    expect(created.length).toBe(3); // the layer program, the final norm and a slice of the head, whatever L and however many passes
    // Neither graph holds a weight: each is smaller than one layer's fp32 weights.
    const layerBytes = [...layerWeights(ck, 0).values()].reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 4), 0);
    for (const bytes of created) expect(bytes).toBeLessThan(layerBytes);
    expect(liveSessions()).toBe(before + 3);

    // The head in slices of 40 rows (7 for this vocabulary) and one window per run (groups of
    // 16 tokens): the same NLL, logits, statistics and streams.
    const sliced = new Engine(ck, runtime, { headSliceFloats: 40 * ck.config.hiddenSize, streamGroupTokens: 16 });
    const want = { nll: true, logits: true, stats: true, streams: true };
    const pair = [ids.slice(0, 16), ids.slice(8, 24)];
    const [a, b] = [await e.pass(pair, want), await sliced.pass(pair, want)];
    for (const w of [0, 1]) {
      expect(maxRelError(b[w].nll!, a[w].nll!)).toBeLessThan(1e-6);
      expect(maxRelError(b[w].logits!, a[w].logits!)).toBeLessThan(1e-6);
      for (let k = 0; k <= ck.config.numLayers; k++) {
        expect(maxRelError(b[w].streams[k], a[w].streams[k])).toBeLessThan(1e-6);
        expect(maxRelError(b[w].absMean[k], a[w].absMean[k])).toBeLessThan(1e-6);
        if (k < ck.config.numLayers) expect(maxRelError(b[w].cos[k], a[w].cos[k])).toBeLessThan(1e-6);
      }
    }
    await sliced.dispose();
    await e.dispose();
    expect(liveSessions()).toBe(before); // released with the engine
  });

  test('stories260K on both Node runtimes: the reference’s numbers and the whole graph’s, for a pass from the tokens and one restarted at a boundary', async () => {
    const ck = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
    const text = readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8').slice(0, 3000);
    const windows = textWindows(tokenizeText(ck, text), 48, 3, 'text', 'eval.txt');
    for (const base of [node, webWasmRuntime(2)]) {
      const streamed = new Engine(ck, { ...base, execution: 'streamed' });
      const whole = new Engine(ck, { ...base, execution: 'whole' });
      await checkAgainstReference(streamed, ck, windows[0]);
      const want = { stats: true, streams: true, nll: true };
      const [s, w] = [await streamed.pass(windows, want), await whole.pass(windows, want)];
      for (let b = 0; b < windows.length; b++) {
        expect(maxRelError(s[b].nll!, w[b].nll!)).toBeLessThan(1e-5);
        for (let k = 0; k <= 5; k++) expect(maxRelError(s[b].absMean[k], w[b].absMean[k]), `${base.name} window ${b} boundary ${k}`).toBeLessThan(1e-5);
      }
      // restarted at boundary 2 from the whole graph's X_2
      const start = { from: 2, streams: w.map((r) => r.streams[2]) };
      const [s2, w2] = [await streamed.pass(windows, want, start), await whole.pass(windows, want, start)];
      for (let b = 0; b < windows.length; b++) {
        expect(maxRelError(s2[b].nll!, w2[b].nll!)).toBeLessThan(1e-5);
        for (let k = 3; k <= 5; k++) expect(maxRelError(s2[b].streams[k], w2[b].streams[k])).toBeLessThan(1e-5);
        for (let k = 2; k < 5; k++) expect(maxRelError(s2[b].cos[k], w2[b].cos[k])).toBeLessThan(1e-5);
      }
      const [ps, pw] = [await streamed.perplexity(tokenizeText(ck, text), 48), await whole.perplexity(tokenizeText(ck, text), 48)];
      expect(Math.abs(ps.ppl / pw.ppl - 1)).toBeLessThan(1e-6);
      await streamed.dispose();
      await whole.dispose();
    }
  });

  test('pruning on a streamed runtime: the whole graph’s plans and scales, reuse included; compareRun too', async () => {
    const ck = await loadLlama2cFile(join(MODELS, 'stories260K/stories260K.bin'));
    const windows = textWindows(tokenizeText(ck, readFileSync(join(DATA, 'tinystories/calib.txt'), 'utf8')), 64, 2, 'calibration text', 'calib.txt');
    for (const opts of [
      { metric: 'bi' as const, layers: 2, mode: 'prunecomp' as const, fold: 'paper' as const },
      { metric: 'ppl' as const, layers: 2, mode: 'prunecomp' as const, fold: 'tied' as const },
    ]) {
      const s = await prune(ck, streamedNode, windows, opts);
      const w = await prune(ck, node, windows, opts);
      expect(s.plan.removed).toEqual(w.plan.removed);
      s.plan.scales.forEach((x, i) => expect(Math.abs(x / w.plan.scales[i] - 1)).toBeLessThan(1e-5));
    }
    const evalIds = tokenizeText(ck, readFileSync(join(DATA, 'tinystories/eval.txt'), 'utf8')).slice(0, 64 * 3);
    const run = (runtime: Runtime) => compareRun(ck, runtime, windows, { metric: 'bi', layers: 2, mode: 'prunecomp', fold: 'paper', evaluation: { ids: evalIds, window: 64 } });
    const [s, w] = [await run(streamedNode), await run(node)];
    expect(s.plans.compared!.removed).toEqual(w.plans.compared!.removed);
    for (const k of ['dense', 'baseline', 'compared'] as const) expect(Math.abs(s.ppl![k]!.ppl / w.ppl![k]!.ppl - 1), k).toBeLessThan(1e-5);
  });

  test('generation and shared-context scoring layer by layer (no KV cache) equal the whole graph with its cache', async () => {
    const ck = randomCheckpoint({ numLayers: 3, seed: 2 });
    const s = new Engine(ck, streamedNode);
    const w = new Engine(ck, node);
    const ids = async (e: Engine, opts: GenerateOptions) => {
      const out: number[] = [];
      for await (const id of e.generate([1, 5, 9], { ...opts, stopAtEos: false })) out.push(id);
      return out;
    };
    // greedy and sampled: the same tokens (the same fp32 logits up to rounding; the sampler is seeded)
    for (const opts of [{ maxTokens: 12 }, { maxTokens: 12, temperature: 0.8, topK: 20, seed: 7 }]) {
      const got = await ids(s, opts);
      expect(got).toHaveLength(12);
      expect(got).toEqual(await ids(w, opts));
    }
    // the last position's logits alone, against the whole graph's last row
    const seq = [1, 5, 9, 4, 2];
    const last = (await s.pass([seq], { logits: 'last' }))[0].logits!;
    const full = (await w.pass([seq], { logits: true }))[0].logits!;
    const V = ck.config.vocabSize;
    expect(last).toHaveLength(V);
    expect(maxRelError(last, full.subarray((seq.length - 1) * V))).toBeLessThan(1e-5);
    // Σ log p(continuation | context): padded windows and NLL against the KV-cache batch
    const conts = [[3], [7, 8, 2], [4, 4]];
    const a = await s.continuationLogprobs([1, 2, 6], conts);
    const b = await w.continuationLogprobs([1, 2, 6], conts);
    a.forEach((x, i) => expect(Math.abs(x - b[i]), `continuation ${i}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(b[i]))));
    await Promise.all([s.dispose(), w.dispose()]);
  });

  test('a cancel lands within one layer: progress comes per layer, and a run aborted at its first report stops there; the engine still works', async () => {
    const ck = randomCheckpoint({ numLayers: 6, seed: 4 });
    const windows = [Array.from({ length: 16 }, (_, i) => (i * 7) % ck.config.vocabSize)];
    // a pass reports after every layer (fractions of the window), then at the end
    const steps: number[] = [];
    const e = new Engine(ck, streamedNode);
    await e.pass(windows, { stats: true }, undefined, (d, t) => steps.push(d / t));
    expect(steps).toHaveLength(ck.config.numLayers + 1);
    // compareRun on a streamed engine: cancelled at the first progress report, nothing more runs
    const controller = new AbortController();
    const reports: number[] = [];
    const run = compareRun(ck, streamedNode, windows, {
      metric: 'bi',
      layers: 2,
      mode: 'prunecomp',
      fold: 'paper',
      signal: controller.signal,
      progress: { start: () => undefined, report: (done) => (reports.push(done), controller.abort()) },
    });
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toBeGreaterThan(0);
    expect(reports[0]).toBeLessThan(1); // within the first pass: after its first layer
    // and the engine carries on
    const again: number[] = [];
    await e.pass(windows, { stats: true }, undefined, (d) => again.push(d));
    expect(again).toHaveLength(ck.config.numLayers + 1);
    await e.dispose();
  });

  test('the execution follows the fp32 weight size: tiny models run whole, over the budget streamed', () => {
    const ck = randomCheckpoint({ numLayers: 2, seed: 2 });
    expect(chooseExecution(ck)).toBe('whole');
    expect(chooseExecution(ck, 1000)).toBe('streamed');
    expect(new Engine(ck, node).execution).toBe('whole');
  });
});
