import type { InferenceSession, Tensor } from 'onnxruntime-common';

/** The part of an onnxruntime module (onnxruntime-web or onnxruntime-node) the engine uses. */
export interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: typeof Tensor;
}

/** A runtime: an onnxruntime module plus how to open sessions on it. */
export interface Runtime {
  /** What it is, for tables and the UI: "onnxruntime-node cpu", "onnxruntime-web wasm", "onnxruntime-web webgpu". */
  name: string;
  ort: OrtModule;
  sessionOptions: InferenceSession.SessionOptions;
  /** Whether its execution provider has com.microsoft GroupQueryAttention (with RoPE). */
  fusedAttention: boolean;
  /**
   * How engines on this runtime run their passes: the whole graph, layer by layer, or (absent)
   * chosen per model by its size (runtime/engine.ts chooseExecution).
   */
  execution?: 'whole' | 'streamed';
  /** fp32 weight bytes above which chooseExecution streams a model on this runtime (default WHOLE_GRAPH_BUDGET). */
  wholeGraphBudget?: number;
}

/**
 * onnxruntime-web's whole-graph budget: its WebAssembly memory (4 GiB at most) holds the
 * graph's protobuf and the session's copy of the weights, about 3× the fp32 weights with
 * the working memory (SmolLM2-360M: 4.23 GB for 1.45 GB of fp32 weights, bench:scale), so a
 * whole graph is kept to 1 GiB of fp32 weights (about 3 GiB of WebAssembly memory).
 */
export const WEB_WHOLE_GRAPH_BUDGET = 2 ** 30;
