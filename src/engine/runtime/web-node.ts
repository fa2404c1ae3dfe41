import * as ortWeb from 'onnxruntime-web';
import type { Runtime } from './ort';

/** onnxruntime-web's WASM build, run in Node: the same code path the browser's WASM backend takes. */
export function webWasmRuntime(threads = 0): Runtime {
  if (threads > 0) ortWeb.env.wasm.numThreads = threads;
  return {
    name: 'onnxruntime-web wasm',
    ort: ortWeb as unknown as Runtime['ort'],
    sessionOptions: { executionProviders: ['wasm'], graphOptimizationLevel: 'all' },
    fusedAttention: true,
  };
}
