/**
 * The transformers.js ONNX bundle in real Chromium: built in the page from stories260K
 * (dense, and with layers 2, 3 removed; inline and external weights; fp16 weights), handed to
 * transformers.js from memory (its env.fetch answers from the bundle: nothing is fetched from
 * a hub or a CDN; its onnxruntime-web is the app's, with the app's own .wasm), and
 * greedy-generated there. The ids must equal the engine's on onnxruntime-web WASM in the
 * same page (with fp16 weights too: no step of stories260K's greedy run is a near-tie that
 * their 7e-4 could flip, test/unit/export-onnx.test.ts).
 */
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor as HfTensor } from '@huggingface/transformers';
import * as ort from 'onnxruntime-web/webgpu';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import { beforeAll, describe, expect, test } from 'vitest';
import { exportOnnxBundle, onnxModelFile, type OnnxBundleOptions } from '../../src/engine/export/onnx';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { removeLayers } from '../../src/engine/prune/surgery';
import { Engine } from '../../src/engine/runtime/engine';
import { browserRuntime } from '../../src/engine/runtime/web';
import { loadStories260K } from './helpers/shared';

const PROMPT_IDS = [1, 403, 407, 261, 378]; // "Once upon a time" with tok512
const NEW_TOKENS = 30;
const ORG = 'lopper-export';

/** Bundles by model id (`${ORG}/${name}`), served to transformers.js from memory. */
const bundles = new Map<string, Map<string, Uint8Array>>();
/** Files transformers.js asked for: found (model id/file) and not found. */
const served: string[] = [];
const missing: string[] = [];
const HOST = 'https://bundles.lopper.invalid/';

/**
 * transformers.js's fetch (env.fetch), answering its hub-shaped requests
 * ({remoteHost}{id}/resolve/{revision}/{file}) from `bundles`: 404 for anything else (an
 * optional file it probes), so nothing leaves the page.
 */
async function memoryFetch(input: string | URL): Promise<Response> {
  const url = String(input);
  const m = new RegExp(`^${HOST}(${ORG}/[^/]+)/resolve/[^/]+/(.+)$`).exec(url);
  const bytes = m && bundles.get(m[1])?.get(m[2]);
  if (!bytes) {
    missing.push(url);
    return new Response(null, { status: 404, statusText: 'Not Found' });
  }
  served.push(`${m[1]}/${m[2]}`);
  return new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-length': String(bytes.length) } });
}

beforeAll(() => {
  env.allowLocalModels = false;
  env.allowRemoteModels = true; // "remote" is memoryFetch
  env.remoteHost = HOST;
  env.fetch = memoryFetch;
  env.useBrowserCache = false;
  // The app's onnxruntime-web files, as src/engine/runtime/web.ts points the engine at them.
  env.backends.onnx.wasm!.wasmPaths = { wasm: wasmUrl };
});

let stories: Promise<Checkpoint> | undefined;
const loadStories = (): Promise<Checkpoint> => (stories ??= loadStories260K());

async function engineGreedy(ck: Checkpoint): Promise<number[]> {
  const engine = new Engine(ck, browserRuntime('wasm'));
  try {
    const ids: number[] = [];
    for await (const id of engine.generate(PROMPT_IDS, { maxTokens: NEW_TOKENS })) ids.push(id);
    return ids;
  } finally {
    await engine.dispose();
  }
}

async function transformersGreedy(id: string): Promise<number[]> {
  const model = await AutoModelForCausalLM.from_pretrained(id, { device: 'wasm' });
  try {
    const input_ids = new HfTensor('int64', BigInt64Array.from(PROMPT_IDS.map(BigInt)), [1, PROMPT_IDS.length]);
    const out = (await model.generate({ input_ids, max_new_tokens: NEW_TOKENS, do_sample: false })) as HfTensor;
    const ids = (out.tolist() as bigint[][])[0].map(Number).slice(PROMPT_IDS.length);
    return ids.at(-1) === (model.config as { eos_token_id?: number }).eos_token_id ? ids.slice(0, -1) : ids;
  } finally {
    await model.dispose();
  }
}

describe.each([
  ['dense', 'dense', [] as number[], {} as OnnxBundleOptions],
  ['pruned (layers 2, 3 removed)', 'pruned', [2, 3], {}],
  ['pruned, weights in 3+ external data files', 'pruned-external', [2, 3], { externalDataThreshold: 0, externalDataChunkBytes: 200_000 }],
  // model_fp16.onnx only, so config.json's dtype is fp16 and transformers.js loads that file
  ['dense, fp16 weights (model_fp16.onnx) in external data files', 'dense-fp16', [], { dtypes: ['fp16'], externalDataThreshold: 0, externalDataChunkBytes: 200_000 } as OnnxBundleOptions],
])('stories260K %s, exported in the page', (_, name, removed, opts) => {
  test('transformers.js (onnxruntime-web WASM) greedy-generates the engine’s ids', async () => {
    const ck = removeLayers(await loadStories(), removed);
    const files = exportOnnxBundle(ck, opts);
    if (opts.externalDataThreshold === 0) expect([...files.keys()].filter((f) => f.startsWith(`${onnxModelFile(opts.dtypes?.[0] ?? 'fp32')}_data`)).length).toBeGreaterThan(2);
    bundles.set(`${ORG}/${name}`, files);

    // the same onnxruntime-web module as the engine's, and its wasm from this server
    expect(env.backends.onnx.wasm).toBe(ort.env.wasm);
    const tokenizer = await AutoTokenizer.from_pretrained(`${ORG}/${name}`);
    expect((tokenizer('Once upon a time').input_ids as HfTensor).tolist()[0].map(Number)).toEqual(PROMPT_IDS);

    const want = await engineGreedy(ck);
    expect(want.length).toBeGreaterThan(10);
    const got = await transformersGreedy(`${ORG}/${name}`);
    expect(got).toEqual(want);
    if (removed.length === 0) expect(ck.tokenizer.decode([...PROMPT_IDS, ...got])).toMatch(/^Once upon a time, there was a little girl named Lily\./);

    // every file of the bundle transformers.js needed came from memory; nothing from a CDN
    for (const f of files.keys()) if (f.startsWith('onnx/') || f === 'config.json') expect(served).toContain(`${ORG}/${name}/${f}`);
    expect(missing.filter((u) => u.includes('/onnx/'))).toEqual([]);
    const remote = performance.getEntriesByType('resource').map((r) => r.name).filter((u) => !u.startsWith(location.origin) && !u.startsWith('blob:'));
    expect(remote).toEqual([]);
  });
});
