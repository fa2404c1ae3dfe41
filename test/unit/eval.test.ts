/**
 * Zero-shot evaluation (src/engine/eval): lm-eval-harness's requests and metrics, and the
 * `lopper eval` command. The dumped log-likelihoods are recomputed here with the Float64
 * reference forward on the dumped token ids: tolerance 1e-5 relative per choice.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { meanWithStderr, retainedPerformance, taskResult } from '../../src/engine/eval/accuracy';
import { encodeRequest, scoreItem, type ContinuationScorer } from '../../src/engine/eval/score';
import { parseFoundryJsonl, parseTaskList, TASK_SPECS, TASKS, type McItem } from '../../src/engine/eval/tasks';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { ReferenceModel } from '../../src/engine/reference/forward';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { webWasmRuntime } from '../../src/engine/runtime/web-node';
import { lopper } from '../helpers/cli';
import { DATA, MODELS } from '../helpers/paths';
import { ByteTokenizer, randomCheckpoint } from '../helpers/random-checkpoint';

const STORIES = join(MODELS, 'stories260K/stories260K.bin');
const QA = join(DATA, 'qa');

/** Σ log p(continuation | context) with the Float64 reference: the independent computation. */
function referenceLogprob(model: ReferenceModel, context: number[], continuation: number[]): number {
  const V = model.config.vocabSize;
  const ids = [...context, ...continuation];
  const { logits } = model.forward(ids.slice(0, -1));
  let sum = 0;
  continuation.forEach((id, j) => {
    const row = logits.subarray((context.length - 1 + j) * V, (context.length + j) * V);
    const max = row.reduce((m, x) => Math.max(m, x), -Infinity);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    sum += row[id] - lse;
  });
  return sum;
}

describe('tasks', () => {
  test('every task file of shared/data/qa parses, with lm-eval prompts', () => {
    for (const task of TASKS) {
      const file = join(QA, TASK_SPECS[task].localFile);
      const items = parseFoundryJsonl(task, readFileSync(file, 'utf8'), file);
      expect(items.length).toBeGreaterThan(0);
      for (const it of items) {
        expect(it.gold).toBeGreaterThanOrEqual(0);
        expect(it.gold).toBeLessThan(it.choices.length);
        for (const c of it.choices) expect(c.continuation).toBe(' ' + c.text);
      }
    }
    const arc = parseFoundryJsonl('arc_easy', readFileSync(join(QA, 'arc_easy.jsonl'), 'utf8'), 'arc_easy.jsonl')[1];
    expect(arc.choices[0].context).toBe('Question: Which piece of safety equipment is used to keep mold spores from entering the respiratory system?\nAnswer:');
    expect(arc.choices[1]).toMatchObject({ continuation: ' breathing mask', text: 'breathing mask' });
    const piqa = parseFoundryJsonl('piqa', readFileSync(join(QA, 'piqa.jsonl'), 'utf8'), 'piqa.jsonl')[1];
    expect(piqa.choices[0].context).toBe('Question: dresser\nAnswer:');
    const wino = parseFoundryJsonl('winogrande', readFileSync(join(QA, 'winogrande.jsonl'), 'utf8'), 'winogrande.jsonl')[0];
    expect(wino.choices.map((c) => c.context)).toEqual(['Sarah was a much better surgeon than Maria so Sarah', 'Sarah was a much better surgeon than Maria so Maria']);
    expect(wino.choices[0].continuation).toBe(' always got the easier cases.');
    const boolq = parseFoundryJsonl('boolq', readFileSync(join(QA, 'boolq.jsonl'), 'utf8'), 'boolq.jsonl')[0];
    expect(boolq.choices.map((c) => c.continuation)).toEqual([' no', ' yes']);
    expect(boolq.choices[0].context).toMatch(/\nQuestion: [^\n]+\?\nAnswer:$/);
  });

  test('bad rows and task names are clear errors', () => {
    expect(() => parseFoundryJsonl('copa', '{"query": "x", "choices": ["a"], "gold": 0}\n', 'f.jsonl')).toThrow('f.jsonl:1: "choices" is not a list of at least two strings');
    expect(() => parseFoundryJsonl('copa', '{"query": "x", "choices": ["a", "b"], "gold": 2}\n', 'f.jsonl')).toThrow('f.jsonl:1: "gold" is not a choice index 0..1');
    expect(() => parseFoundryJsonl('copa', '\n{"query": "x",\n', 'f.jsonl')).toThrow('f.jsonl:2: not a JSON object');
    expect(() => parseFoundryJsonl('copa', '', 'f.jsonl')).toThrow('f.jsonl: no items');
    expect(() => parseTaskList('piqa,mmlu')).toThrow('unknown task "mmlu"');
    expect(parseTaskList('piqa, arc_easy,piqa')).toEqual(['piqa', 'arc_easy']);
  });
});

describe('requests and metrics', () => {
  const tok = new ByteTokenizer(300);

  test('encodeRequest: lm-eval _encode_pair (trailing spaces move to the continuation), BOS first', () => {
    const r = encodeRequest(tok, 1, 100, 'ab ', 'cd');
    expect(r.context).toEqual([1, ...tok.encode('ab')]);
    expect(r.continuation).toEqual(tok.encode(' cd'));
  });

  test('encodeRequest: too long keeps the last max+1 tokens, continuation whole', () => {
    const r = encodeRequest(tok, 1, 8, 'abcdefghij', 'xyz');
    expect(r.continuation).toEqual(tok.encode('xyz'));
    expect(r.context).toEqual(tok.encode('efghij'));
    expect(r.context.length + r.continuation.length).toBe(9);
    // a continuation longer than the positions: its last 2 tokens are scored, after its first
    expect(encodeRequest(tok, 1, 2, 'a', 'xyz')).toEqual({ context: tok.encode('x'), continuation: tok.encode('yz') });
  });

  test('acc, acc_norm (by characters), numpy tie-breaking, stderr and RP', async () => {
    // A scorer that returns fixed log-likelihoods per continuation: predictions follow by hand.
    const fixed: Record<string, number> = { ' a': -2, ' bbbb': -4, ' cc': -3, ' dd': -2 };
    const scorer: ContinuationScorer = {
      continuationLogprobs: async (_ctx, conts) => conts.map((c) => fixed[String.fromCharCode(...c.map((id) => id))]),
    };
    const item = (gold: number, texts: string[]): McItem => ({ gold, choices: texts.map((t) => ({ context: 'q', continuation: ' ' + t, text: t })) });
    const encode = (_context: string, continuation: string) => ({ context: [1], continuation: [...continuation].map((ch) => ch.charCodeAt(0)) });
    const a = await scoreItem(scorer, item(1, ['a', 'bbbb']), encode); // acc: a (−2 > −4); norm: −2/1 vs −4/4 = −1 → bbbb
    expect([a.pred, a.predNorm]).toEqual([0, 1]);
    const b = await scoreItem(scorer, item(1, ['cc', 'dd', 'a']), encode); // −3, −2, −2: first max → 1
    expect(b.pred).toBe(1);
    const r = taskResult('arc_easy', [a, b, a]);
    expect(r.acc.value).toBeCloseTo(1 / 3, 12);
    expect(r.acc_norm.value).toBeCloseTo(1, 12);
    expect(r.reported).toBe(r.acc_norm.value); // ARC reports acc_norm
    // lm-eval's stderr: sample std (n−1) / √n
    expect(meanWithStderr([0, 1, 1, 1]).stderr).toBeCloseTo(Math.sqrt(0.25 / 4), 12);
    expect(retainedPerformance([r], [{ ...r, reported: 0.5 }])).toBeCloseTo(200, 9);
  });
});

describe('engine scoring', () => {
  test.each([nodeRuntime(), webWasmRuntime()])('continuations scored together equal each scored alone and the Float64 reference ($name)', async (runtime) => {
    const ck = await loadLlama2cFile(STORIES);
    const engine = new Engine(ck, runtime);
    const model = new ReferenceModel(ck);
    const context = [1, ...ck.tokenizer.encode('Once upon a time, there was a')];
    const conts = [' little girl', ' dog', ' big red ball that'].map((s) => ck.tokenizer.encode('Once upon a time, there was a' + s).slice(context.length - 1));
    const together = await engine.continuationLogprobs(context, conts);
    for (const [j, c] of conts.entries()) {
      const [alone] = await engine.continuationLogprobs(context, [c]);
      const ref = referenceLogprob(model, context, c);
      expect(Math.abs(together[j] - alone) / Math.abs(ref)).toBeLessThan(1e-6);
      expect(Math.abs(together[j] - ref) / Math.abs(ref)).toBeLessThan(1e-5);
    }
    await engine.dispose();
  });

  test('every config feature (GQA, Qwen2 biases, head_dim ≠ D/H, llama3 RoPE, untied head): scores equal the Float64 reference', async () => {
    const ck = randomCheckpoint({ architecture: 'Qwen2ForCausalLM', hiddenSize: 48, numHeads: 4, numKvHeads: 2, headDim: 16, numLayers: 3, vocabSize: 300, tie: false, ropeScaling: true, seed: 3 });
    const engine = new Engine(ck, nodeRuntime());
    const model = new ReferenceModel(ck);
    for (const context of [[1], [1, 40, 41, 42, 43, 44, 45, 46]]) {
      const conts = [[50, 51, 52], [60], [70, 71, 72, 73, 74]];
      const got = await engine.continuationLogprobs(context, conts);
      conts.forEach((c, j) => {
        const ref = referenceLogprob(model, context, c);
        expect(Math.abs(got[j] - ref) / Math.abs(ref)).toBeLessThan(1e-5);
      });
    }
    await engine.dispose();
  });
});

describe('lopper eval', () => {
  test('the issue\'s command: acc, acc_norm, stderr per task; --dump matches the Float64 reference within 1e-5', async () => {
    const dump = join(mkdtempSync(join(tmpdir(), 'lopper-eval-')), 'dump.jsonl');
    const r = await lopper('eval', '--model', STORIES, '--task', 'piqa,arc_easy,winogrande', '--limit', '200', '--json', '--dump', dump);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    for (const task of ['piqa', 'arc_easy', 'winogrande']) {
      const t = j.results[task];
      expect(t.n).toBe(200);
      for (const k of ['acc', 'acc_norm']) {
        expect(t[k]).toBeGreaterThanOrEqual(0);
        expect(t[k]).toBeLessThanOrEqual(1);
        expect(t[`${k}_stderr`]).toBeCloseTo(Math.sqrt((t[k] * (1 - t[k])) / 199), 12);
      }
    }
    const lines = readFileSync(dump, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(600);
    // acc recomputed from the dump
    const piqa = lines.filter((l) => l.task === 'piqa');
    expect(piqa.filter((l) => l.pred === l.gold).length / 200).toBeCloseTo(j.results.piqa.acc, 12);

    const ck = await loadLlama2cFile(STORIES);
    const model = new ReferenceModel(ck);
    let worst = 0;
    // every 5th item of each task (the reference is slow): 120 items, ~300 choices
    for (const l of lines.filter((_, i) => i % 5 === 0)) {
      for (const c of l.choices) {
        const ref = referenceLogprob(model, c.context_ids, c.continuation_ids);
        worst = Math.max(worst, Math.abs(c.loglikelihood - ref) / Math.abs(ref));
        // lm-eval's encoding: context + continuation = BOS + encode(context text + continuation text)
        if (c.context_ids.length + c.continuation_ids.length <= ck.config.maxPositions) expect(c.context_ids[0]).toBe(ck.config.bosTokenId);
      }
    }
    expect(worst).toBeLessThan(1e-5);
  }, 120_000);

  test('table output, errors name the problem', async () => {
    const r = await lopper('eval', '--model', STORIES, '--task', 'copa', '--limit', '20');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^copa\s+20\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d \(acc\)$/m);
    expect(r.stdout).toMatch(/^average\s+\d+\.\d\d$/m);
    const bad = await lopper('eval', '--model', STORIES, '--task', 'mmlu');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown task "mmlu"');
    const noData = await lopper('eval', '--model', STORIES, '--task', 'copa', '--data', tmpdir());
    expect(noData.code).toBe(1);
    expect(noData.stderr).toContain('no data for task copa');
    const noDump = await lopper('eval', '--model', STORIES, '--task', 'copa', '--limit', '2', '--dump', join(tmpdir(), 'no-such-folder-lopper', 'd.jsonl'));
    expect(noDump.code).toBe(1);
    expect(noDump.stderr).toContain('cannot write the dump file');
  });
});
