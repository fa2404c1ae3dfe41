/**
 * onnxruntime-web in the browser: WASM (multi-threaded when the page is cross-origin
 * isolated) or WebGPU. One build serves both — 'onnxruntime-web/webgpu', the native
 * WebGPU execution provider — and its .wasm comes from our own origin (Vite emits it),
 * never a CDN, so the app works offline.
 */
import * as ort from 'onnxruntime-web/webgpu';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import { WEB_WHOLE_GRAPH_BUDGET, type Runtime } from './ort';

ort.env.wasm.wasmPaths = { wasm: wasmUrl };

export type Backend = 'wasm' | 'webgpu';

/** Whether this browser can run the WebGPU backend (an adapter exists). */
export async function hasWebGpu(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  return !!gpu && (await gpu.requestAdapter().catch(() => null)) !== null;
}

export function browserRuntime(backend: Backend): Runtime {
  if (backend === 'wasm') {
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 8) : 1;
  }
  return {
    name: `onnxruntime-web ${backend}`,
    ort: ort as unknown as Runtime['ort'],
    sessionOptions: { executionProviders: [backend], graphOptimizationLevel: 'all' },
    // WASM: the plain-ops attention (GroupQueryAttention's WASM kernel is ~2× slower);
    // WebGPU: the fused kernel.
    fusedAttention: backend === 'webgpu',
    wholeGraphBudget: WEB_WHOLE_GRAPH_BUDGET,
  };
}
