/**
 * llama2.c checkpoints: Karpathy's legacy `.bin` export (version 0), read into a Checkpoint
 * and written back.
 *
 * Header: 7 × int32 (little-endian)
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *   vocab_size (> 0: the classifier shares the embedding; < 0: a separate wcls follows),
 *   seq_len
 * Then float32 (head_size = dim / n_heads, kv_dim = n_kv_heads * head_size, L = n_layers):
 *   token_embedding_table [vocab_size, dim]
 *   rms_att_weight        [L, dim]
 *   wq                    [L, dim, dim]        rows are outputs; RoPE pairs rows (2i, 2i+1)
 *   wk                    [L, kv_dim, dim]     same pairing
 *   wv                    [L, kv_dim, dim]
 *   wo                    [L, dim, dim]
 *   rms_ffn_weight        [L, dim]
 *   w1                    [L, hidden_dim, dim]
 *   w2                    [L, dim, hidden_dim]
 *   w3                    [L, hidden_dim, dim]
 *   rms_final_weight      [dim]
 *   freq_cis_real         [seq_len, head_size / 2]   cos(pos · θ_i), unused by run.c
 *   freq_cis_imag         [seq_len, head_size / 2]   sin(pos · θ_i), unused by run.c
 *   wcls                  [vocab_size, dim]    only when vocab_size < 0
 * RoPE θ = 10000, RMSNorm ε = 1e-5, BOS = 1, EOS = 2 are fixed by run.c.
 */
import { LopperError } from '../errors';
import { checkFinite, layerPrefix, validateTensors, type Checkpoint } from '../model/checkpoint';
import { checkConfig, describeConfig, type LlamaConfig } from '../model/config';
import { f32Tensor, numel, toFloat32, type Tensor } from '../model/tensor';
import { permuteRope } from '../model/rope';
import { Llama2cTokenizer } from '../text/llama2c-tokenizer';
import { concatChunks, type FileChunks } from './chunks';

const HEADER_BYTES = 7 * 4;
const ROPE_THETA = 10000;
const RMS_NORM_EPS = 1e-5;
/** The first int32 of llama2.c's later export versions (1 and 2), which this reader does not take. */
const VERSIONED_MAGIC = 0x616b3432;

/**
 * Per-layer weights in file order, each stored as [L, ...shape]: the HF name within the
 * layer, its shape, and, for q/k, the number of heads whose RoPE rows are permuted.
 */
const LAYER_WEIGHTS: { name: string; shape: (c: LlamaConfig) => number[]; ropeHeads?: (c: LlamaConfig) => number }[] = [
  { name: 'input_layernorm.weight', shape: (c) => [c.hiddenSize] }, // rms_att_weight
  { name: 'self_attn.q_proj.weight', shape: (c) => [c.numHeads * c.headDim, c.hiddenSize], ropeHeads: (c) => c.numHeads }, // wq
  { name: 'self_attn.k_proj.weight', shape: (c) => [c.numKvHeads * c.headDim, c.hiddenSize], ropeHeads: (c) => c.numKvHeads }, // wk
  { name: 'self_attn.v_proj.weight', shape: (c) => [c.numKvHeads * c.headDim, c.hiddenSize] }, // wv
  { name: 'self_attn.o_proj.weight', shape: (c) => [c.hiddenSize, c.numHeads * c.headDim] }, // wo
  { name: 'post_attention_layernorm.weight', shape: (c) => [c.hiddenSize] }, // rms_ffn_weight
  { name: 'mlp.gate_proj.weight', shape: (c) => [c.intermediateSize, c.hiddenSize] }, // w1
  { name: 'mlp.down_proj.weight', shape: (c) => [c.hiddenSize, c.intermediateSize] }, // w2
  { name: 'mlp.up_proj.weight', shape: (c) => [c.intermediateSize, c.hiddenSize] }, // w3
];

/** Floats in the file after the header: everything but the two RoPE tables, plus those. */
function floatCount(c: LlamaConfig): number {
  let n = c.vocabSize * c.hiddenSize; // token_embedding_table
  for (const w of LAYER_WEIGHTS) n += c.numLayers * numel(w.shape(c));
  n += c.hiddenSize; // rms_final_weight
  n += 2 * c.maxPositions * (c.headDim / 2); // freq_cis_real, freq_cis_imag
  if (!c.tieWordEmbeddings) n += c.vocabSize * c.hiddenSize; // wcls
  return n;
}

function readHeader(model: Uint8Array, file: string): LlamaConfig {
  if (model.byteLength < HEADER_BYTES) {
    throw new LopperError('truncated', `${model.byteLength} bytes: too short for a llama2.c header (${HEADER_BYTES} bytes)`, file);
  }
  const view = new DataView(model.buffer, model.byteOffset, HEADER_BYTES);
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => view.getInt32(4 * i, true));
  if (dim === VERSIONED_MAGIC) {
    throw new LopperError(
      'unsupported-config',
      `llama2.c export version ${view.getInt32(4, true)} is not supported; export with legacy_export (version 0)`,
      file,
    );
  }
  const header =
    `dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} ` +
    `n_kv_heads=${nKvHeads} vocab_size=${vocab} seq_len=${seqLen}`;
  const sane =
    dim > 0 && hiddenDim > 0 && nLayers > 0 && nHeads > 0 && nKvHeads > 0 && vocab !== 0 && seqLen > 0 &&
    dim % nHeads === 0 && (dim / nHeads) % 2 === 0 && nHeads % nKvHeads === 0;
  if (!sane) throw new LopperError('corrupt', `not a llama2.c header: ${header}`, file);
  const config: LlamaConfig = {
    architecture: 'LlamaForCausalLM',
    hiddenSize: dim,
    intermediateSize: hiddenDim,
    numLayers: nLayers,
    numHeads: nHeads,
    numKvHeads: nKvHeads,
    headDim: dim / nHeads,
    vocabSize: Math.abs(vocab),
    maxPositions: seqLen,
    rmsNormEps: RMS_NORM_EPS,
    ropeTheta: ROPE_THETA,
    ropeScaling: null,
    tieWordEmbeddings: vocab > 0,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: false,
    bosTokenId: 1,
    eosTokenId: 2,
    torchDtype: 'float32',
  };
  try {
    checkConfig(config);
  } catch (e) {
    throw new LopperError('corrupt', `not a llama2.c header lopper can run (${header}): ${(e as Error).message}`, file);
  }
  return config;
}

/**
 * The weights of a llama2.c checkpoint (q/k rows permuted to HF's rotate-half layout; other
 * weights view `model`'s bytes when they are 4-byte aligned), after checking the header and
 * that the file holds exactly what it implies, with finite values.
 */
export function llama2cWeights(model: Uint8Array, file: string): { config: LlamaConfig; tensors: Map<string, Tensor> } {
  const c = readHeader(model, file);
  const expected = HEADER_BYTES + 4 * floatCount(c);
  if (model.byteLength !== expected) {
    throw new LopperError(
      model.byteLength < expected ? 'truncated' : 'corrupt',
      `the header (${describeConfig(c)}, seq_len ${c.maxPositions}) implies ${expected} bytes but the file has ${model.byteLength}`,
      file,
    );
  }
  const start = model.byteOffset + HEADER_BYTES;
  const floats =
    start % 4 === 0
      ? new Float32Array(model.buffer, start, floatCount(c))
      : new Float32Array(model.slice(HEADER_BYTES).buffer);
  let offset = 0;
  const take = (shape: number[]) => floats.subarray(offset, (offset += numel(shape)));
  const plain = (shape: number[]) => f32Tensor(shape, take(shape));

  const tensors = new Map<string, Tensor>();
  tensors.set('model.embed_tokens.weight', plain([c.vocabSize, c.hiddenSize]));
  for (const w of LAYER_WEIGHTS) {
    for (let l = 0; l < c.numLayers; l++) {
      const shape = w.shape(c);
      const data = take(shape);
      tensors.set(layerPrefix(l) + w.name, f32Tensor(shape, w.ropeHeads ? permuteRope(data, w.ropeHeads(c), c.headDim, true) : data));
    }
  }
  tensors.set('model.norm.weight', plain([c.hiddenSize]));
  offset += 2 * c.maxPositions * (c.headDim / 2); // freq_cis_real, freq_cis_imag: recomputed on write
  if (!c.tieWordEmbeddings) tensors.set('lm_head.weight', plain([c.vocabSize, c.hiddenSize]));
  checkFinite(tensors, file);
  return { config: c, tensors: validateTensors(c, tensors, file, 'the header') };
}

/** A llama2.c checkpoint and its llama2.c tokenizer as a Checkpoint (see llama2cWeights). */
export function loadLlama2c(model: Uint8Array, tokenizer: Uint8Array, names: { model: string; tokenizer: string }): Checkpoint {
  const { config, tensors } = llama2cWeights(model, names.model);
  const tok = new Llama2cTokenizer(tokenizer, names.tokenizer);
  if (tok.vocabSize !== config.vocabSize) {
    throw new LopperError(
      'shape-mismatch',
      `the tokenizer has ${tok.vocabSize} tokens but ${names.model} has vocab_size ${config.vocabSize}`,
      names.tokenizer,
    );
  }
  return { config, tensors, tokenizer: tok, source: names.model, format: 'llama2c' };
}

/** What in `c` a llama2.c checkpoint cannot hold (run.c would compute something else); empty when it can. */
export function llama2cProblems(c: LlamaConfig): string[] {
  const problems: string[] = [];
  if (c.qkvBias || c.oBias) problems.push('attention biases');
  if (c.mlpBias) problems.push('MLP biases');
  if (c.qkNorm) problems.push('per-head q/k RMSNorm (Qwen3 q_norm/k_norm: run.c has no such step)');
  if (c.ropeScaling) problems.push(`RoPE scaling (${c.ropeScaling.type})`);
  if (c.headDim * c.numHeads !== c.hiddenSize) {
    problems.push(`head_dim ${c.headDim} ≠ hidden_size / num_heads = ${c.hiddenSize / c.numHeads}`);
  }
  if (c.headDim % 2 !== 0) problems.push(`odd head_dim ${c.headDim}`);
  if (c.numHeads % c.numKvHeads !== 0) problems.push(`num_heads ${c.numHeads} not a multiple of num_kv_heads ${c.numKvHeads}`);
  if (c.ropeTheta !== ROPE_THETA) problems.push(`rope_theta ${c.ropeTheta} (llama2.c uses ${ROPE_THETA})`);
  if (c.rmsNormEps !== RMS_NORM_EPS) problems.push(`rms_norm_eps ${c.rmsNormEps} (llama2.c uses ${RMS_NORM_EPS})`);
  if (c.bosTokenId !== 1 || c.eosTokenId !== 2) problems.push(`BOS/EOS ids ${c.bosTokenId}/${c.eosTokenId} (llama2.c uses 1/2)`);
  return problems;
}

/** Throws a LopperError naming everything in `ck` a llama2.c checkpoint cannot hold. */
export function checkLlama2c(ck: Checkpoint): void {
  const problems = llama2cProblems(ck.config);
  if (problems.length) {
    throw new LopperError('unsupported-config', `llama2.c cannot express this model: ${problems.join('; ')}`, ck.source);
  }
}

/**
 * RoPE tables as model.py's precompute_freqs_cis computes them in float32:
 * θ_i = 1 / 10000^(2i / head_size), angle = pos · θ_i, then cos and sin. Each step here is
 * rounded to float32 the same way; cos and sin are correctly rounded, where PyTorch's are
 * within 1 ulp, so a few entries of an exported file can differ from it in the last bit.
 */
function freqCis(headDim: number, seqLen: number): [real: Float32Array, imag: Float32Array] {
  const f = Math.fround;
  const half = headDim / 2;
  const real = new Float32Array(seqLen * half);
  const imag = new Float32Array(seqLen * half);
  for (let i = 0; i < half; i++) {
    const theta = f(1 / f(ROPE_THETA ** f(f(2 * i) / headDim)));
    for (let pos = 0; pos < seqLen; pos++) {
      const angle = f(pos * theta);
      real[pos * half + i] = Math.cos(angle);
      imag[pos * half + i] = Math.sin(angle);
    }
  }
  return [real, imag];
}

/**
 * `ck` as a llama2.c `.bin` (the inverse of loadLlama2c; the tokenizer is written apart), as
 * chunks made one tensor at a time when iterated (f32 tensors that need no RoPE permutation
 * are views of their data, not copies). Refuses, naming each, what llama2.c cannot express:
 * biases, RoPE scaling, rope_theta ≠ 10000, rms_norm_eps ≠ 1e-5, head_dim ≠ D/H, BOS/EOS
 * other than 1/2. GQA (n_kv_heads) and an untied classifier (negative vocab_size) it holds.
 */
export function llama2cChunks(ck: Checkpoint): FileChunks {
  const c = ck.config;
  checkLlama2c(ck);
  const tensors = validateTensors(c, ck.tensors, ck.source);
  const get = (name: string) => toFloat32(tensors.get(name)!);
  const bytes = (data: Float32Array) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

  function* chunks(): Generator<Uint8Array> {
    const header = new Uint8Array(HEADER_BYTES);
    const vocab = c.tieWordEmbeddings ? c.vocabSize : -c.vocabSize;
    const fields = [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, vocab, c.maxPositions];
    const view = new DataView(header.buffer);
    fields.forEach((v, i) => view.setInt32(4 * i, v, true));
    yield header;
    yield bytes(get('model.embed_tokens.weight'));
    for (const w of LAYER_WEIGHTS) {
      for (let l = 0; l < c.numLayers; l++) {
        const data = get(layerPrefix(l) + w.name);
        yield bytes(w.ropeHeads ? permuteRope(data, w.ropeHeads(c), c.headDim, false) : data);
      }
    }
    yield bytes(get('model.norm.weight'));
    for (const table of freqCis(c.headDim, c.maxPositions)) yield bytes(table);
    if (!c.tieWordEmbeddings) yield bytes(get('lm_head.weight'));
  }
  return { size: HEADER_BYTES + 4 * floatCount(c), chunks: chunks() };
}

/** llama2cChunks as one array. */
export function writeLlama2c(ck: Checkpoint): Uint8Array {
  return concatChunks(llama2cChunks(ck));
}

/** The llama2.c model file's name in an export (the CLI's `prune --out` and `export`). */
export const LLAMA2C_MODEL = 'model.bin';
/** The llama2.c tokenizer's name in an export, as llama2.c's run.c looks for it. */
export const LLAMA2C_TOKENIZER = 'tokenizer.bin';

/**
 * The files of a llama2.c export: model.bin, and tokenizer.bin when the model came with a
 * llama2.c tokenizer. A model with another tokenizer (tokenizer.json) gets that
 * tokenizer's own files beside model.bin: llama2.c's run.c cannot read them, and lopper
 * does not convert them (see `llama2cTokenizerNote`).
 */
export function llama2cFiles(ck: Checkpoint): ({ name: string } & FileChunks)[] {
  const model = { name: LLAMA2C_MODEL, ...llama2cChunks(ck) };
  const files = ck.tokenizer.files();
  const tokenizer = ck.tokenizer.kind === 'llama2c' ? { [LLAMA2C_TOKENIZER]: Object.values(files)[0] } : files;
  return [model, ...Object.entries(tokenizer).map(([name, bytes]) => ({ name, size: bytes.length, chunks: [bytes] }))];
}

/** Why a llama2.c export has no tokenizer.bin, or undefined when it has one. */
export function llama2cTokenizerNote(ck: Checkpoint): string | undefined {
  if (ck.tokenizer.kind === 'llama2c') return undefined;
  return `the model's tokenizer is a Hugging Face tokenizer.json, which llama2.c's run.c cannot read and lopper does not convert: it is written as ${Object.keys(ck.tokenizer.files()).join(', ')} beside ${LLAMA2C_MODEL}`;
}
