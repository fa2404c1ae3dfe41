/**
 * transformers.js on its own, in a worker of its own: it gets a model's exported bundle
 * (src/app/try-export.ts TjsRequest: the files as Blobs, made by lopper's worker) and nothing
 * else of lopper — not its engine, graphs or tokenizer — loads it with AutoTokenizer and
 * AutoModelForCausalLM as any transformers.js app would, and greedy-generates from the prompt.
 *
 * Nothing is fetched: transformers.js finds every file of the bundle in a custom cache
 * (env.customCache) that answers from the Blobs; its fetch answers nothing (404), so a file the
 * bundle lacks is a clear error, never a request to the hub. onnxruntime-web's .wasm is
 * the app's own (the URL Vite emits for it, precached by the service worker), not the CDN
 * transformers.js would pick. One request per worker: the page terminates it when done, which
 * frees the session and its WebAssembly memory.
 */
/// <reference lib="webworker" />
import { AutoModelForCausalLM, AutoTokenizer, BaseStreamer, env, Tensor } from '@huggingface/transformers';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import type { TjsMessage, TjsRequest, TjsResult } from '../src/app/try-export';
import { withoutEos } from '../src/app/try-export';
import { Tracker } from './lib/progress';

const scope = self as unknown as DedicatedWorkerGlobalScope;
const post = (m: TjsMessage) => scope.postMessage(m);

/** The id transformers.js knows the bundle by (any valid Hugging Face id: only the cache below answers for it). */
const MODEL_ID = 'lopper/exported-bundle';
/** A cache key's file path: transformers.js asks for `{localModelPath}{id}/{file}` and `{remoteHost}{id}/resolve/{revision}/{file}`. */
const KEY = new RegExp(`(?:^|/)${MODEL_ID}/(?:resolve/[^/]+/)?(.+)$`);

let files = new Map<string, Blob>();

env.allowLocalModels = false;
// transformers.js wants one source on; the "remote" one is a fetch that answers 404 to everything,
// so a file the cache lacks is an error naming it (optional ones are skipped) and nothing leaves the tab.
env.allowRemoteModels = true;
env.remoteHost = 'https://bundle.lopper.invalid/';
env.fetch = async () => new Response(null, { status: 404, statusText: 'not in the exported bundle' });
env.useBrowserCache = false;
env.useWasmCache = false;
env.useCustomCache = true;
env.customCache = {
  async match(request: string | Request): Promise<Response | undefined> {
    const key = typeof request === 'string' ? request : request.url;
    const blob = files.get(KEY.exec(key)?.[1] ?? '');
    return blob ? new Response(blob, { headers: { 'content-length': String(blob.size) } }) : undefined;
  },
  async put() {
    // everything is here already
  },
};
// After transformers.js's import, which points onnxruntime-web at a CDN when nothing is set.
env.backends.onnx.wasm!.wasmPaths = { wasm: wasmUrl };

/** Collects what generate() streams: its first put is the prompt, then one id per step. */
class Collect extends BaseStreamer {
  prompt: number[] | null = null;
  ids: number[] = [];
  first = NaN;
  constructor(private readonly onId: (ids: number[]) => void) {
    super();
  }
  put(value: bigint[][]): void {
    const row = value[0].map(Number);
    if (this.prompt === null) {
      this.prompt = row;
      return;
    }
    this.ids.push(...row);
    if (Number.isNaN(this.first)) this.first = performance.now();
    this.onId(this.ids);
  }
  end(): void {}
}

async function run(req: TjsRequest): Promise<TjsResult> {
  files = new Map(req.files.map((f) => [f.path, f.blob]));
  const total = req.files.reduce((a, f) => a + f.blob.size, 0);
  const tracker = new Tracker(
    [
      { stage: 'tjs-load', label: 'transformers.js loads the bundle', weight: 1 },
      { stage: 'tjs-generate', label: 'transformers.js generates', weight: 1 },
    ],
    (progress) => post({ type: 'progress', progress }),
  );
  tracker.start('tjs-load');
  const t0 = performance.now();
  const loaded = new Map<string, number>();
  const progress_callback = (p: { status: string; file?: string; loaded?: number }) => {
    if (p.status !== 'progress' || !p.file) return;
    loaded.set(p.file, p.loaded ?? 0);
    const done = [...loaded.values()].reduce((a, b) => a + b, 0);
    tracker.report(done, total, { label: `transformers.js reads ${p.file}` });
  };
  const tokenizer = await AutoTokenizer.from_pretrained(MODEL_ID, { progress_callback });
  const model = await AutoModelForCausalLM.from_pretrained(MODEL_ID, { device: 'wasm', dtype: req.dtype, progress_callback });
  try {
    files = new Map(); // read: the session holds the weights now
    const loadMillis = performance.now() - t0;
    tracker.start('tjs-generate');
    const encoded = tokenizer(req.prompt);
    const input_ids = encoded.input_ids as Tensor;
    const promptIds = (input_ids.tolist() as (bigint | number)[][])[0].map(Number);
    // The continuation as it reads after the prompt: decoded with it, the prompt's text cut off
    // (decoded alone, its first token would lose the space before it).
    const promptText = tokenizer.decode(promptIds, { skip_special_tokens: true });
    const after = (ids: number[]) => {
      const full = tokenizer.decode([...promptIds, ...ids], { skip_special_tokens: true });
      return full.startsWith(promptText) ? full.slice(promptText.length) : full;
    };
    let lastPost = 0;
    const collect = new Collect((ids) => {
      tracker.report(ids.length, req.maxTokens, { label: `transformers.js generates: ${ids.length} of ${req.maxTokens} tokens` });
      if (performance.now() - lastPost > 80) {
        lastPost = performance.now();
        post({ type: 'token', ids: [...ids], text: after(ids) });
      }
    });
    await model.generate({ input_ids, attention_mask: encoded.attention_mask as Tensor, max_new_tokens: req.maxTokens, do_sample: false, streamer: collect as never }); // typed as a TextStreamer; generate() calls put and end only
    const eos = (model.generation_config as { eos_token_id?: number | number[] } | null)?.eos_token_id ?? (model.config as { eos_token_id?: number | number[] }).eos_token_id;
    const ids = withoutEos(collect.ids, eos);
    const n = collect.ids.length;
    const tokensPerSecond = n > 1 ? (n - 1) / Math.max(1e-3, (performance.now() - collect.first) / 1000) : n / Math.max(1e-3, (performance.now() - t0 - loadMillis) / 1000);
    return { promptIds, ids, text: after(ids), loadMillis, tokensPerSecond, version: env.version };
  } finally {
    await model.dispose();
  }
}

// onnxruntime-web's WASM threads may load the chunk this worker is in: there its own handler stays.
if (!/^(em-pthread|ort-wasm-proxy)/.test(scope.name ?? '')) {
  scope.onmessage = (e: MessageEvent<TjsRequest>) => {
    run(e.data).then(
      (result) => post({ type: 'done', result }),
      (err: unknown) => post({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
    );
  };
}
