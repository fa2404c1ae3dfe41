import { availableParallelism } from 'node:os';
import * as ortWeb from 'onnxruntime-web';
import { WEB_WHOLE_GRAPH_BUDGET, type Runtime } from './ort';

/** onnxruntime-web's WASM build, run in Node: the same code path the browser's WASM backend takes. */
export function webWasmRuntime(threads = 0): Runtime {
  // onnxruntime-web defaults to half the cores; use them all, as onnxruntime-node does.
  ortWeb.env.wasm.numThreads = threads > 0 ? threads : availableParallelism();
  return {
    name: 'onnxruntime-web wasm',
    ort: ortWeb as unknown as Runtime['ort'],
    sessionOptions: { executionProviders: ['wasm'], graphOptimizationLevel: 'all' },
    // GroupQueryAttention's WASM kernel is about 2× slower than the plain-ops attention here.
    fusedAttention: false,
    wholeGraphBudget: WEB_WHOLE_GRAPH_BUDGET,
  };
}
