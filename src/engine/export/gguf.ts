/**
 * A model as GGUF, the file llama.cpp (and Ollama, LM Studio, node-llama-cpp …) loads: one file
 * holding its hyperparameters, its tokenizer (./gguf-vocab) and its tensors, written as
 * llama.cpp's convert_hf_to_gguf.py writes them (the container: ./gguf-file). Tensor shapes are
 * ne, innermost first: an HF [out, in] weight is ne = [in, out], the same bytes.
 *
 * Architectures: `llama` (Llama, Mistral, llama2.c; q/k rows reordered to the interleaved RoPE
 * pairs llama.cpp's `llama` rotates, as the converter's permute() does), `qwen2` (q/k/v biases)
 * and `qwen3` (q/k RMSNorm gains); both Qwens rotate halves (NEOX), as Hugging Face does, so
 * their rows stay. A tied LM head is written once, as token_embd.weight: llama.cpp uses it for
 * the output when output.weight is absent. Llama 3 RoPE scaling becomes the converter's
 * rope_freqs.weight (the factor each frequency is divided by).
 *
 * Tensor types: F32 keeps float32; F16/BF16 round matrices to half precision and keep 1-D
 * tensors (norm gains, biases, rope_freqs) in F32, as the converter does; Q8_0 quantizes each
 * matrix whose rows split into blocks of 32 (block: f16 scale d = max|x|/127, 32 int8
 * round(x/d), ggml's quantize_row_q8_0_ref) and writes the others as F16.
 */
import { LopperError } from '../errors';
import { layerPrefix, validateTensors, type Checkpoint } from '../model/checkpoint';
import type { LlamaConfig } from '../model/config';
import { permuteRope, ropeInvFreq } from '../model/rope';
import { f16ToF32, f32ArrayToF16, f32ToBf16, f32ToF16, numel, widenedRange, type Tensor } from '../model/tensor';
import type { FileChunks } from '../formats/chunks';
import { f32, ggufHeader, GGUF_ALIGNMENT, str, u32, type Metadata } from './gguf-file';
import { ggufVocab } from './gguf-vocab';

export const GGUF_TYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
/** The weight type of a GGUF export (`--dtype`), llama.cpp's names lowercased. */
export type GgufType = (typeof GGUF_TYPES)[number];
export const isGgufType = (s: unknown): s is GgufType => (GGUF_TYPES as readonly unknown[]).includes(s);

/** ggml_type ids. */
const GGML = { f32: 0, f16: 1, q8_0: 8, bf16: 30 } as const;
type TensorType = keyof typeof GGML;
/** general.file_type: llama_ftype (ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16). */
const FILE_TYPE: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
/** Q8_0: 32 weights per block, stored as an f16 scale and 32 int8. */
const Q8_BLOCK = 32;
const Q8_BLOCK_BYTES = 2 + Q8_BLOCK;

export interface GgufOptions {
  /** Weight type (default: f32 for float32 models, f16 for f16 ones, bf16 for bf16 ones). */
  ggufType?: GgufType;
  /** general.name (default: the model's file or folder name). */
  ggufName?: string;
}

/** The GGUF file's name in an export folder: `model-f16.gguf`. */
export const ggufFileName = (type: GgufType): string => `model-${type}.gguf`;

/** The type a model is written as when none is asked for: its own storage type. */
export function defaultGgufType(ck: Checkpoint): GgufType {
  const t = ck.tensors.get('model.embed_tokens.weight');
  return t?.dtype ?? 'f32';
}

// ---- the model ---------------------------------------------------------------------------

type Arch = 'llama' | 'qwen2' | 'qwen3';

function archOf(c: LlamaConfig): Arch {
  if (c.architecture === 'Qwen2ForCausalLM') return 'qwen2';
  if (c.architecture === 'Qwen3ForCausalLM') return 'qwen3';
  return 'llama';
}

/** What in `c` llama.cpp's architecture for it cannot hold; empty when it can. */
export function ggufProblems(c: LlamaConfig): string[] {
  const arch = archOf(c);
  const problems: string[] = [];
  if (arch === 'qwen2') {
    if (c.oBias) problems.push('an o_proj bias (llama.cpp\'s qwen2 has none)');
    if (c.mlpBias) problems.push('MLP biases (llama.cpp\'s qwen2 has none)');
  }
  if (arch === 'qwen3' && (c.qkvBias || c.oBias || c.mlpBias)) problems.push('biases (llama.cpp\'s qwen3 has none)');
  if (arch !== 'qwen3' && c.qkNorm) problems.push('per-head q/k RMSNorm outside Qwen3');
  if (c.headDim % 2 !== 0) problems.push(`odd head_dim ${c.headDim}`);
  return problems;
}

/** One tensor of the file: its GGUF name, ne (innermost first), type, and how its values are made. */
interface GgufTensor {
  name: string;
  ne: number[];
  type: TensorType;
  /** Rows: a matrix's ne[1]; a 1-D tensor's values, each a row of one. */
  rowCount: number;
  /** Rows per read: a whole q/k head when its rows are permuted. */
  rowsPerRead: number;
  /** Float32 values of rows [row, row + n) in file order. */
  rows(row: number, n: number): Float32Array;
}

/** HF names within a layer → GGUF names within blk.N (llama.cpp's tensor names). */
const LAYER_NAMES: [hf: string, gguf: string][] = [
  ['input_layernorm.weight', 'attn_norm.weight'],
  ['self_attn.q_proj.weight', 'attn_q.weight'],
  ['self_attn.q_proj.bias', 'attn_q.bias'],
  ['self_attn.k_proj.weight', 'attn_k.weight'],
  ['self_attn.k_proj.bias', 'attn_k.bias'],
  ['self_attn.v_proj.weight', 'attn_v.weight'],
  ['self_attn.v_proj.bias', 'attn_v.bias'],
  ['self_attn.o_proj.weight', 'attn_output.weight'],
  ['self_attn.o_proj.bias', 'attn_output.bias'],
  ['self_attn.q_norm.weight', 'attn_q_norm.weight'],
  ['self_attn.k_norm.weight', 'attn_k_norm.weight'],
  ['post_attention_layernorm.weight', 'ffn_norm.weight'],
  ['mlp.gate_proj.weight', 'ffn_gate.weight'],
  ['mlp.gate_proj.bias', 'ffn_gate.bias'],
  ['mlp.up_proj.weight', 'ffn_up.weight'],
  ['mlp.up_proj.bias', 'ffn_up.bias'],
  ['mlp.down_proj.weight', 'ffn_down.weight'],
  ['mlp.down_proj.bias', 'ffn_down.bias'],
];

/** Of a weight [rows, cols]: its type in a file of `type` (1-D tensors stay F32; Q8_0 needs whole blocks per row). */
function tensorType(type: GgufType, shape: number[]): TensorType {
  if (shape.length === 1 || type === 'f32') return 'f32';
  if (type === 'q8_0') return shape[1] % Q8_BLOCK === 0 ? 'q8_0' : 'f16';
  return type;
}

function tensorBytes(type: TensorType, n: number): number {
  return type === 'f32' ? 4 * n : type === 'q8_0' ? (n / Q8_BLOCK) * Q8_BLOCK_BYTES : 2 * n;
}

/** Rows per read of an unpermuted tensor: about 1 Mi values, whole rows. */
const READ_VALUES = 1 << 20;

function tensorOf(name: string, t: Tensor, type: GgufType, ropeHeads?: { headDim: number }): GgufTensor {
  const shape = t.shape;
  const cols = shape.length === 1 ? 1 : shape[1];
  const rowCount = shape[0];
  const read = (row: number, n: number) => widenedRange(t, row * cols, n * cols);
  if (ropeHeads) {
    // llama.cpp's `llama` rotates pairs (2i, 2i+1): reorder each head's rows from HF's halves
    const hd = ropeHeads.headDim;
    return {
      name,
      ne: [...shape].reverse(),
      type: tensorType(type, shape),
      rowCount,
      rowsPerRead: hd,
      rows: (row, n) => {
        const out = new Float32Array(n * cols);
        for (let r = 0; r < n; r += hd) out.set(permuteRope(read(row + r, hd), 1, hd, false), r * cols);
        return out;
      },
    };
  }
  return {
    name,
    ne: [...shape].reverse(),
    type: tensorType(type, shape),
    rowCount,
    rowsPerRead: Math.max(1, Math.min(rowCount, Math.floor(READ_VALUES / cols))),
    rows: read,
  };
}

/**
 * llama3 RoPE scaling as llama.cpp takes it: per frequency, the factor it is divided by
 * (unscaled inv_freq / scaled inv_freq), the converter's rope_freqs.weight [headDim/2].
 */
function ropeFreqFactors(c: LlamaConfig): Float32Array {
  const scaled = ropeInvFreq(c);
  const plain = ropeInvFreq({ ...c, ropeScaling: null });
  return Float32Array.from(plain, (f, i) => f / scaled[i]);
}

function modelTensors(ck: Checkpoint, type: GgufType): GgufTensor[] {
  const c = ck.config;
  const tensors = validateTensors(c, ck.tensors, ck.source);
  const permute = archOf(c) === 'llama';
  const out: GgufTensor[] = [tensorOf('token_embd.weight', tensors.get('model.embed_tokens.weight')!, type)];
  if (c.ropeScaling) {
    const factors = ropeFreqFactors(c);
    out.push(tensorOf('rope_freqs.weight', { dtype: 'f32', shape: [factors.length], data: factors }, type));
  }
  for (let i = 0; i < c.numLayers; i++) {
    for (const [hf, gguf] of LAYER_NAMES) {
      const t = tensors.get(layerPrefix(i) + hf);
      if (!t) continue;
      const qk = permute && /^self_attn\.[qk]_proj\./.test(hf);
      out.push(tensorOf(`blk.${i}.${gguf}`, t, type, qk ? { headDim: c.headDim } : undefined));
    }
  }
  out.push(tensorOf('output_norm.weight', tensors.get('model.norm.weight')!, type));
  if (!c.tieWordEmbeddings) out.push(tensorOf('output.weight', tensors.get('lm_head.weight')!, type));
  return out;
}

function hyperparameters(ck: Checkpoint, arch: Arch, type: GgufType, name: string): Metadata {
  const c = ck.config;
  return [
    ['general.architecture', str(arch)],
    ['general.type', str('model')],
    ['general.name', str(name)],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.quantization_version', u32(2)],
    [`${arch}.vocab_size`, u32(c.vocabSize)],
    [`${arch}.context_length`, u32(c.maxPositions)],
    [`${arch}.embedding_length`, u32(c.hiddenSize)],
    [`${arch}.block_count`, u32(c.numLayers)],
    [`${arch}.feed_forward_length`, u32(c.intermediateSize)],
    [`${arch}.attention.head_count`, u32(c.numHeads)],
    [`${arch}.attention.head_count_kv`, u32(c.numKvHeads)],
    [`${arch}.attention.key_length`, u32(c.headDim)],
    [`${arch}.attention.value_length`, u32(c.headDim)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps)],
    [`${arch}.rope.dimension_count`, u32(c.headDim)],
    [`${arch}.rope.freq_base`, f32(c.ropeTheta)],
  ];
}

/** The name a model gets inside its GGUF: the file or folder it came from, without extension. */
function modelName(ck: Checkpoint): string {
  const base = ck.source.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? 'model';
  return base.replace(/\.bin$/, '') || 'model';
}

function checkArchitecture(ck: Checkpoint): void {
  const problems = ggufProblems(ck.config);
  if (problems.length) throw new LopperError('unsupported-config', `llama.cpp's GGUF cannot express this model: ${problems.join('; ')}`, ck.source);
}

/**
 * Throws a LopperError naming everything in `ck` a GGUF for llama.cpp cannot hold, the
 * tokenizer included (converted to see: a command refuses before long work, not after).
 */
export function checkGguf(ck: Checkpoint): void {
  checkArchitecture(ck);
  ggufVocab(ck);
}

/**
 * `ck` as one GGUF file of `type`: the header (metadata, tokenizer, tensor infos) made at once,
 * the tensors as chunks made when iterated, a block of rows at a time (a lazy tensor reads only
 * those rows), so the file is never in memory whole.
 */
export function ggufChunks(ck: Checkpoint, opts: GgufOptions = {}): FileChunks & { type: GgufType } {
  checkArchitecture(ck); // the tokenizer is converted once, below, and throws there
  const type = opts.ggufType ?? defaultGgufType(ck);
  if (!isGgufType(type)) throw new LopperError('bad-option', `unknown GGUF type "${String(type)}" (one of ${GGUF_TYPES.join(', ')})`);
  const arch = archOf(ck.config);
  const tensors = modelTensors(ck, type);
  const metadata = [...hyperparameters(ck, arch, type, opts.ggufName ?? modelName(ck)), ...ggufVocab(ck)];

  let offset = 0;
  const sizes = tensors.map((t) => tensorBytes(t.type, numel(t.ne)));
  const infos = tensors.map((t, i) => {
    const info = { name: t.name, ne: t.ne, ggmlType: GGML[t.type], offset };
    offset += align(sizes[i]);
    return info;
  });
  const header = ggufHeader(metadata, infos);

  function* chunks(): Generator<Uint8Array> {
    yield header;
    for (const [i, t] of tensors.entries()) {
      for (let r = 0; r < t.rowCount; r += t.rowsPerRead) yield encode(t.rows(r, Math.min(t.rowsPerRead, t.rowCount - r)), t.type);
      const pad = align(sizes[i]) - sizes[i];
      if (pad) yield new Uint8Array(pad);
    }
  }
  return { size: header.length + offset, chunks: chunks(), type };
}

const align = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** Float32 values as the bytes of a tensor of `type`. */
export function encode(values: Float32Array, type: TensorType): Uint8Array {
  switch (type) {
    case 'f32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'f16': {
      const h = f32ArrayToF16(values);
      return new Uint8Array(h.buffer);
    }
    case 'bf16': {
      const h = Uint16Array.from(values, f32ToBf16);
      return new Uint8Array(h.buffer);
    }
    case 'q8_0':
      return quantizeQ8_0(values);
  }
}

/**
 * ggml's quantize_row_q8_0_ref, in float32 as ggml computes it: per block of 32, d = amax/127,
 * q = roundf(x · (1/d)) (halves away from zero), d stored as f16.
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const f = Math.fround;
  const blocks = x.length / Q8_BLOCK;
  const out = new Uint8Array(blocks * Q8_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q8_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_BLOCK; j++) amax = Math.max(amax, Math.abs(x[at + j]));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    const o = b * Q8_BLOCK_BYTES;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < Q8_BLOCK; j++) {
      const v = f(x[at + j] * id);
      view.setInt8(o + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
  return out;
}

/** Q8_0 bytes back to float32 (d · q): what llama.cpp's weights are after quantization. */
export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / Q8_BLOCK; b++) {
    const o = b * Q8_BLOCK_BYTES;
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < Q8_BLOCK; j++) out[b * Q8_BLOCK + j] = d * view.getInt8(o + 2 + j);
  }
  return out;
}

/** The files of a GGUF export: one, `model-<type>.gguf`. */
export function ggufFiles(ck: Checkpoint, opts: GgufOptions = {}): ({ name: string } & FileChunks)[] {
  const { type, ...file } = ggufChunks(ck, opts);
  return [{ name: ggufFileName(type), ...file }];
}
