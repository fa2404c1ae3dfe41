/**
 * The browser environment lopper relies on, proved in real Chromium:
 * cross-origin isolation, multi-threaded WASM and WebGPU (SwiftShader) through
 * onnxruntime-web with files from our own server, and the shared models folder.
 */
// The build the app uses (src/engine/runtime/web.ts): native WebGPU EP + WASM in one .wasm.
// Its bundle embeds the Emscripten loader (.mjs) and fetches one .wasm; pointing wasmPaths
// at Vite's own URL for that file keeps it local in dev, tests and builds.
import * as ort from 'onnxruntime-web/webgpu';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import { describe, expect, it } from 'vitest';
import { matMulAddModel, maxAbsDiff } from './helpers/tiny-model';

const THREADS = 4;
ort.env.wasm.numThreads = THREADS;
ort.env.wasm.wasmPaths = { wasm: wasmUrl };

const model = matMulAddModel();

function ortResources(): string[] {
  return performance
    .getEntriesByType('resource')
    .map((e) => e.name)
    .filter((n) => /ort-wasm|onnxruntime-web/.test(n));
}

describe('browser environment', () => {
  it('is cross-origin isolated (COOP/COEP), so SharedArrayBuffer exists', () => {
    expect(crossOriginIsolated).toBe(true);
    expect(typeof SharedArrayBuffer).toBe('function');
  });

  it('runs a model on the WASM backend with several threads and gets the right numbers', async () => {
    const session = await ort.InferenceSession.create(model.bytes, { executionProviders: ['wasm'] });
    const { m, k, n } = model.dims;
    const out = await session.run({ X: new ort.Tensor('float32', model.x, [m, k]) });
    const y = out.Y;
    expect(y.dims).toEqual([m, n]);
    expect(maxAbsDiff(y.data as Float32Array, model.expected)).toBeLessThan(1e-4);
    // ORT resets numThreads to 1 when it cannot start its thread pool (no SharedArrayBuffer).
    expect(ort.env.wasm.numThreads).toBe(THREADS);
    await session.release();

    // Its .wasm came from this server (never a CDN).
    const resources = ortResources();
    expect(resources.some((r) => r.endsWith('.wasm'))).toBe(true);
    for (const r of resources) expect(new URL(r).origin).toBe(location.origin);
  });

  it('has a WebGPU adapter', async () => {
    const adapter = await navigator.gpu.requestAdapter();
    expect(adapter).not.toBeNull();
    console.log('WebGPU adapter:', JSON.stringify({ ...adapterInfo(adapter!.info) }));
  });

  it('runs the same model on the WebGPU execution provider with the right numbers', async () => {
    const session = await ort.InferenceSession.create(model.bytes, {
      executionProviders: ['webgpu'],
      // Keep Y on the GPU: proves the WebGPU EP produced it (the CPU EP cannot).
      preferredOutputLocation: 'gpu-buffer',
    });
    const { m, k, n } = model.dims;
    const out = await session.run({ X: new ort.Tensor('float32', model.x, [m, k]) });
    const y = out.Y;
    expect(y.location).toBe('gpu-buffer');
    expect(y.dims).toEqual([m, n]);
    const data = (await y.getData(true)) as Float32Array;
    expect(maxAbsDiff(data, model.expected)).toBeLessThan(1e-4);
    await session.release();
  });
});

describe('shared models folder', () => {
  const bin = 'models/stories260K/stories260K.bin';

  it(`is readable through /@fs/ (${__LOPPER_SHARED_FS__})`, async () => {
    const res = await fetch(`${__LOPPER_SHARED_FS__}/${bin}`);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(1056540);
  });

  it('is mirrored at /models/ with Content-Length and Range support', async () => {
    const res = await fetch(`/${bin}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('1056540');
    expect((await res.arrayBuffer()).byteLength).toBe(1056540);

    // The llama2.c header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len.
    const part = await fetch(`/${bin}`, { headers: { Range: 'bytes=0-27' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 0-27/1056540');
    expect([...new Int32Array(await part.arrayBuffer())]).toEqual([64, 172, 5, 8, 4, 512, 512]);

    // The hub's URL shape maps onto the same folder.
    const hub = await fetch('/models/karpathy/stories260K/resolve/main/tok512.bin', { method: 'HEAD' });
    expect(hub.status).toBe(200);
    expect(hub.headers.get('content-length')).toBe('6227');

    // A file the mirror lacks is a 404 (not the app's index.html).
    expect((await fetch('/models/stories260K/missing.bin')).status).toBe(404);
  });
});

function adapterInfo(info: GPUAdapterInfo) {
  return { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description };
}
