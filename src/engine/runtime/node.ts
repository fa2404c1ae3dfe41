import * as ortNode from 'onnxruntime-node';
import { LopperError } from '../errors';
import { ElemType, GraphBuilder } from '../graph/builder';
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

/**
 * onnxruntime-node's CUDA execution provider, for a GPU server (`--runtime cuda`). The same
 * graphs in fp32; attention from plain ops (onnxruntime's fused GroupQueryAttention takes fp16
 * or bf16 on CUDA, not fp32). Models over the whole-graph budget stream layer by layer as on
 * the CPU, each layer's weights copied to the GPU when it runs. Needs the CUDA EP's libraries,
 * which onnxruntime-node downloads at install time only when asked
 * (`ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node`, CUDA 12 and cuDNN 9 on the
 * machine); without them this throws an 'unsupported-runtime' error saying so. Untested where
 * no GPU is present: on a machine without one, only that error is.
 */
export async function cudaRuntime(deviceId = 0): Promise<Runtime> {
  const runtime: Runtime = {
    name: `onnxruntime-node cuda:${deviceId}`,
    ort: ortNode as unknown as Runtime['ort'],
    sessionOptions: { executionProviders: [{ name: 'cuda', deviceId }], graphOptimizationLevel: 'all' },
    fusedAttention: false,
  };
  // A one-op session: onnxruntime loads the CUDA provider's libraries here, or fails to.
  const g = new GraphBuilder('cuda_probe');
  g.output(g.op('Relu', [g.input('x', ElemType.FLOAT, [1])]), 'y', ElemType.FLOAT, [1]);
  try {
    await (await runtime.ort.InferenceSession.create(g.encode(), { ...runtime.sessionOptions, logSeverityLevel: 4 })).release();
  } catch (e) {
    const reason = String((e as Error).message ?? e)
      .split('\n')[0]
      .replace(/\x1b\[[0-9;]*m/g, '');
    throw new LopperError(
      'unsupported-runtime',
      `--runtime cuda: onnxruntime-node could not start its CUDA execution provider on GPU ${deviceId} (${reason}). On a machine with an NVIDIA GPU, CUDA 12 and cuDNN 9, install the provider with ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node`,
    );
  }
  return runtime;
}
