/**
 * What a model costs on an Engine: the memory it will take, before anything is downloaded,
 * and the floating-point operations of a token. The memory: before anything is downloaded: the weights
 * as stored, the engine's own buffers and what the runtime (onnxruntime's WebAssembly memory,
 * or a GPU's buffers) holds at once. The device check (workers/lib/device.ts) compares these
 * figures with what the device reports; bench:app prints them beside the measured ones.
 *
 * Whole graph: one protobuf holding every weight in fp32 (built in the JS heap, then parsed by
 * the runtime, which keeps its own copy) — about 3× the fp32 weights in the runtime
 * (SmolLM2-360M: 4.23 GB of WebAssembly memory for 1.45 GB of fp32 weights).
 * Streamed (engine.ts streamedPass): one decoder layer's weights in fp32 in reused buffers
 * and their copy in the runtime, the activations of one group of ~1024 tokens, one slice of
 * the LM head (≤ 2^26 floats of weights and of logits) — whatever the number of layers.
 */
import { expectedTensors, layerPrefix } from './checkpoint';
import type { LlamaShape } from './config';

/**
 * How an Engine runs its passes (runtime/engine.ts): 'whole', one graph holding every weight
 * in fp32, or 'streamed', one decoder layer at a time.
 */
export type Execution = 'whole' | 'streamed';

/**
 * How generation's decoder holds its weights (runtime/engine.ts Engine.decodeWeights): fp32,
 * 8-bit rows (graph/quantize.ts), or float16 matrices multiplied in float16.
 */
export type DecodeWeights = 'fp32' | 'q8' | 'fp16';

/** The most floats one slice of the streamed LM head holds (engine.ts headSliceFloats' default). */
export const HEAD_SLICE_FLOATS = 2 ** 26;
/** About how many tokens go through a streamed layer in one run (engine.ts streamGroupTokens' default). */
export const STREAM_GROUP_TOKENS = 1024;

export interface Workload {
  /** windows in one pass (calibration windows) */
  windows: number;
  /** tokens per window */
  window: number;
}

export interface MemoryNeeds {
  execution: Execution;
  /** the weights as stored (their own dtype), in the JS heap */
  weightBytes: number;
  /** the engine's buffers in the JS heap: fp32 weights being fed (a layer and a head slice, or the whole protobuf) and the streams of a pass */
  engineBytes: number;
  /** what the runtime holds at its peak: WebAssembly memory on WASM (at most 4 GiB), mostly GPU buffers on WebGPU */
  runtimeBytes: number;
  /** weightBytes + engineBytes + runtimeBytes */
  totalBytes: number;
  /** the largest fp32 buffer one run feeds the runtime (a GPU's buffer limits apply to it) */
  largestFeed: { name: string; bytes: number };
}

const F32 = 4;

/** Parameters of one decoder layer, and its largest weight. */
function layerShape(c: LlamaShape): { params: number; largest: { name: string; params: number } } {
  let params = 0;
  let largest = { name: '', params: 0 };
  const p = layerPrefix(0);
  for (const [name, shape] of expectedTensors({ ...c, numLayers: 1 })) {
    if (!name.startsWith(p)) continue;
    const n = shape.reduce((a, b) => a * b, 1);
    params += n;
    if (n > largest.params) largest = { name: name.slice(p.length), params: n };
  }
  return { params, largest };
}

/**
 * Activations of `tokens` tokens through one decoder layer, attending over windows of
 * `window` tokens (fp32): the stream in and out, the normed stream, q/k/v and attention output,
 * the MLP's three intermediates, the scores and probabilities of every head.
 */
function layerActivations(c: LlamaShape, tokens: number, window: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return F32 * tokens * (4 * c.hiddenSize + 2 * q + 2 * kv + 3 * c.intermediateSize + 2 * c.numHeads * window);
}

/** What `config` with `weightBytes` of stored weights takes running `workload` with `execution`. */
export function memoryNeeds(c: LlamaShape, weightBytes: number, parameters: number, execution: Execution, workload: Workload): MemoryNeeds {
  const { hiddenSize: D, vocabSize: V } = c;
  const T = Math.max(1, workload.window);
  const B = Math.max(1, workload.windows);
  const streams = 3 * F32 * B * T * D; // a pass's input, output and one kept boundary
  if (execution === 'whole') {
    const fp32 = parameters * F32;
    const runtimeBytes = 3 * fp32 + layerActivations(c, T, T) + F32 * T * V;
    const engineBytes = fp32 + streams; // the protobuf, while the session is built
    const embed = V * D * F32;
    return { execution, weightBytes, engineBytes, runtimeBytes, totalBytes: weightBytes + engineBytes + runtimeBytes, largestFeed: { name: 'model.embed_tokens.weight', bytes: embed } };
  }
  const layer = layerShape(c);
  const group = Math.max(1, Math.floor(STREAM_GROUP_TOKENS / T)) * T; // tokens in one run
  const tokens = Math.min(group, B * T);
  const headRows = Math.max(1, Math.min(V, Math.floor(HEAD_SLICE_FLOATS / D), Math.floor(HEAD_SLICE_FLOATS / tokens)));
  const headSlice = F32 * headRows * D;
  const logitsSlice = F32 * headRows * tokens;
  const layerFp32 = F32 * layer.params;
  const runtimeBytes = layerFp32 + layerActivations(c, tokens, T) + headSlice + logitsSlice;
  const engineBytes = layerFp32 + headSlice + streams;
  const largestFeed =
    headSlice > F32 * layer.largest.params ? { name: 'lm_head (one slice)', bytes: headSlice } : { name: `a layer's ${layer.largest.name}`, bytes: F32 * layer.largest.params };
  return { execution, weightBytes, engineBytes, runtimeBytes, totalBytes: weightBytes + engineBytes + runtimeBytes, largestFeed };
}

/**
 * Floating-point operations of one token through the model in a window of `window` tokens:
 * 2 per weight of every decoder layer (the matrix products), the attention's scores and
 * weighted values (2·2·hd per head per earlier token, window/2 on average), and with `head`
 * the LM head's 2·V·D. Norms, RoPE and softmax are left out (a few per cent at most).
 */
export function flopsPerToken(c: LlamaShape, window: number, head: boolean): number {
  const layer = layerShape(c).params;
  const attention = 2 * c.numHeads * c.headDim * window; // QKᵀ and PV: 2 × 2·hd·(window/2) per head
  return c.numLayers * (2 * layer + attention) + (head ? 2 * c.vocabSize * c.hiddenSize : 0);
}

/** Bytes of an 8-bit weight [rows, cols] (graph/quantize.ts): a code per weight, a float32 scale and a zero point per row. */
export function q8Bytes(rows: number, cols: number): number {
  return rows * (cols + 4 + 1);
}

/**
 * The 8-bit KV-cache decoder's weights (graph/llama.ts, decode with weights 'q8'): every
 * matrix 8-bit (a tied head reads the embedding's codes), norms and biases fp32. About one
 * byte a parameter.
 */
export function q8DecoderBytes(c: LlamaShape): number {
  let bytes = 0;
  for (const [, shape] of expectedTensors(c)) bytes += shape.length === 2 ? q8Bytes(shape[0], shape[1]) : F32 * shape[0];
  return bytes;
}

/**
 * WebAssembly memory the 8-bit decoder takes on onnxruntime-web: about 2.8× its weights — the
 * model bytes copied in, the session's initializers, a tied head's row slices, one slice
 * dequantized (Llama-3.2-1B: 3.45 GB for 1.24 GB of 8-bit weights, bench:scale --decode) — taken
 * as 3×.
 */
export function q8DecoderRuntimeBytes(c: LlamaShape): number {
  return 3 * q8DecoderBytes(c);
}

/** WebAssembly (32-bit) memory: onnxruntime-web's WASM backend holds everything it computes in it. */
export const WASM_MEMORY_BYTES = 4 * 2 ** 30;

/**
 * The fp16 KV-cache decoder's weights (graph/llama.ts, decode with weights 'fp16'): every
 * matrix in float16 (a tied head is the embedding), norms and biases fp32. About two bytes a
 * parameter.
 */
export function fp16DecoderBytes(c: LlamaShape): number {
  let bytes = 0;
  for (const [, shape] of expectedTensors(c)) bytes += shape.length === 2 ? 2 * shape[0] * shape[1] : F32 * shape[0];
  return bytes;
}

/**
 * WebAssembly memory the fp16 decoder takes on onnxruntime-web's WebGPU backend while its
 * session is built: the model's bytes are copied into WebAssembly memory and its initializers
 * read from there before they go to GPU buffers — taken as 2× its weights.
 */
export function fp16DecoderRuntimeBytes(c: LlamaShape): number {
  return 2 * fp16DecoderBytes(c);
}

/** What decides the decoder on WebGPU: the adapter's float16 shaders and its buffer limits. */
export interface GpuFeatures {
  shaderF16: boolean;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/**
 * The weights generation decodes with on onnxruntime-web's `backend` (runtime/engine.ts
 * DecodeWeights): fp32 with a KV cache where the model runs as one graph; layer by layer on
 * WASM, 8-bit with a KV cache where that decoder fits WebAssembly's memory (about 6× the tokens/s
 * of fp32 layer by layer for Llama-3.2-1B); on WebGPU, fp16 with a KV cache where the adapter
 * has shader-f16, the decoder's bytes fit WebAssembly's memory and its largest matrix (the
 * embedding or head, V × D) a GPU buffer; else fp32 layer by layer (no cache).
 */
export function decodeWeightsFor(c: LlamaShape, execution: Execution, backend: 'wasm' | 'webgpu', gpu: GpuFeatures | null = null): DecodeWeights {
  if (execution === 'whole') return 'fp32';
  if (backend === 'wasm') return q8DecoderRuntimeBytes(c) < WASM_MEMORY_BYTES ? 'q8' : 'fp32';
  const largest = 2 * c.vocabSize * c.hiddenSize;
  const fits = gpu !== null && gpu.shaderF16 && fp16DecoderRuntimeBytes(c) < WASM_MEMORY_BYTES && largest <= Math.min(gpu.maxBufferSize, gpu.maxStorageBufferBindingSize);
  return fits ? 'fp16' : 'fp32';
}
