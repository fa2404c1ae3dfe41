import * as ortNode from 'onnxruntime-node';
import type { Runtime } from './ort';

/** Native onnxruntime on the CPU: the CLI's default in Node (several times faster than WASM). */
export function nodeRuntime(threads = 0): Runtime {
  return {
    name: 'onnxruntime-node cpu',
    ort: ortNode as unknown as Runtime['ort'],
    sessionOptions: { executionProviders: ['cpu'], intraOpNumThreads: threads, graphOptimizationLevel: 'all' },
    fusedAttention: true,
  };
}
