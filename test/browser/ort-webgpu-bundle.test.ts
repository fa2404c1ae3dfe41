/**
 * onnxruntime-web ships two WebGPU builds. The default entry ('onnxruntime-web', used by
 * smoke.test.ts) is the JSEP build (ort-wasm-simd-threaded.jsep.wasm, WebGPU kernels in
 * JS/WGSL). 'onnxruntime-web/webgpu' is the native WebGPU EP compiled into the wasm
 * (ort-wasm-simd-threaded.asyncify.wasm). Both must give the same numbers here.
 */
import * as ort from 'onnxruntime-web/webgpu';
import asyncifyWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import { expect, it } from 'vitest';
import { matMulAddModel, maxAbsDiff } from './helpers/tiny-model';

ort.env.wasm.numThreads = 4;
ort.env.wasm.wasmPaths = { wasm: asyncifyWasmUrl };

it('onnxruntime-web/webgpu runs the model on WebGPU and on WASM with the right numbers', async () => {
  const model = matMulAddModel();
  const { m, k, n } = model.dims;
  for (const ep of ['webgpu', 'wasm'] as const) {
    const session = await ort.InferenceSession.create(model.bytes, {
      executionProviders: [ep],
      preferredOutputLocation: ep === 'webgpu' ? 'gpu-buffer' : 'cpu',
    });
    const y = (await session.run({ X: new ort.Tensor('float32', model.x, [m, k]) })).Y;
    expect(y.location).toBe(ep === 'webgpu' ? 'gpu-buffer' : 'cpu');
    expect(y.dims).toEqual([m, n]);
    expect(maxAbsDiff((await y.getData(true)) as Float32Array, model.expected)).toBeLessThan(1e-4);
    await session.release();
  }
  expect(ort.env.wasm.numThreads).toBe(4);
  const wasm = performance.getEntriesByType('resource').map((e) => e.name).filter((u) => u.endsWith('.wasm'));
  expect(wasm.some((u) => u.includes('asyncify'))).toBe(true);
  for (const u of wasm) expect(new URL(u).origin).toBe(location.origin);
});
