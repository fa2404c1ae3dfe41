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
}
