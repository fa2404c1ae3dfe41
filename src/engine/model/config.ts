import { LopperError, shown } from '../errors';

/** llama3-style RoPE frequency scaling (Llama-3.1/3.2 `rope_scaling` with rope_type "llama3"). */
export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/**
 * The one normalized description of a Llama-family decoder. Every source's config keys
 * are mapped here (fromHfConfig, the llama2.c header reader) and nowhere else.
 */
export interface LlamaConfig {
  /** The Hugging Face architecture this came from or will be written as. */
  architecture: 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM' | 'Qwen3ForCausalLM';
  hiddenSize: number; // D
  intermediateSize: number; // F
  numLayers: number; // L
  numHeads: number; // H
  numKvHeads: number; // Hkv (GQA when < H)
  headDim: number; // hd (usually D / H)
  vocabSize: number; // V
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** Biases on q_proj, k_proj, v_proj (Qwen2; Llama's attention_bias). */
  qkvBias: boolean;
  /** Bias on o_proj (Llama's attention_bias). */
  oBias: boolean;
  /** Biases on gate/up/down_proj (Llama's mlp_bias). */
  mlpBias: boolean;
  /**
   * Per-head RMSNorm on queries and keys before RoPE (Qwen3's self_attn.q_norm / k_norm,
   * gains [hd], eps rmsNormEps).
   */
  qkNorm: boolean;
  bosTokenId: number;
  eosTokenId: number;
  torchDtype?: string;
  /**
   * Hugging Face `layer_types`, one entry per decoder layer ("full_attention", …), when the
   * config.json had them: kept so an export writes them back, with removed layers' entries dropped.
   */
  layerTypes?: string[];
}

/** What a model's tensors and their sizes follow from (expectedTensors, model/cost.ts): a config's shape fields. */
export type LlamaShape = Pick<
  LlamaConfig,
  'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'vocabSize' | 'tieWordEmbeddings' | 'qkvBias' | 'oBias' | 'mlpBias' | 'qkNorm'
>;

const ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM'] as const;

/**
 * What the engine can represent, and so what a config (config.json or a llama2.c header) may
 * claim: every size is a whole number in these bounds, checked before anything is allocated
 * from it. Well above every model lopper is for (Llama-3.1-405B: D 16384, F 53248, L 126, H 128,
 * V 128256, 131072 positions). Positions are a limit, never allocated up front.
 */
export const CONFIG_LIMITS = {
  hiddenSize: 1 << 16,
  intermediateSize: 1 << 18,
  numLayers: 1024,
  numHeads: 1024,
  headDim: 1024,
  vocabSize: 1 << 24,
  maxPositions: 1 << 24,
} as const;

type Json = Record<string, unknown>;

/** A finite number at `key` (or the fallback when absent), > 0 unless `positive` is false. */
function num(json: Json, key: string, file: string, fallback?: number, positive = true): number {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new LopperError('unsupported-config', `config is missing "${key}"`, file);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new LopperError('unsupported-config', `config "${key}" must be a number, got ${shown(v)}`, file);
  }
  if (positive && !(v > 0)) throw new LopperError('unsupported-config', `config "${key}" must be above 0, got ${v}`, file);
  return v;
}

/** A whole number at `key` in 1..max (or the fallback when absent). */
function whole(json: Json, key: string, file: string, max: number, fallback?: number): number {
  const v = num(json, key, file, fallback, false);
  checkWhole(key, v, max, file);
  return v;
}

/** `value` (named `key` in messages) is a whole number in 1..max. */
export function checkWhole(key: string, value: number, max: number, file?: string): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new LopperError('unsupported-config', `config "${key}" must be a whole number from 1 to ${max}, got ${value}`, file);
  }
}

/** `layer_types`: absent, or one string per layer. */
function layerTypes(json: Json, numLayers: number, file: string): string[] | undefined {
  const v = json.layer_types;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((t) => typeof t === 'string')) {
    throw new LopperError('unsupported-config', `config "layer_types" must be a list of strings, got ${shown(v)}`, file);
  }
  checkLayerTypes(v, numLayers, file);
  return [...v];
}

/** layer_types must name every layer once: its length is num_hidden_layers. */
export function checkLayerTypes(types: readonly string[], numLayers: number, file?: string): void {
  if (types.length !== numLayers) {
    throw new LopperError(
      'unsupported-config',
      `config "layer_types" has ${types.length} entries but num_hidden_layers is ${numLayers} (one per layer)`,
      file,
    );
  }
}

/** bos_token_id / eos_token_id: absent (the fallback), an id, or a list whose first entry is the id; within the vocabulary. */
function tokenId(json: Json, key: string, fallback: number, vocabSize: number, file: string): number {
  const raw = json[key];
  if (raw === undefined || raw === null) return fallback;
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!(Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocabSize)) {
    throw new LopperError('unsupported-config', `config "${key}" must be a token id from 0 to ${vocabSize - 1}, got ${shown(v)}`, file);
  }
  return v as number;
}

/**
 * Sizes that must agree with each other, for every source: heads divide into kv-head groups,
 * RoPE rotates pairs (even head_dim), the BOS/EOS ids are in the vocabulary.
 */
export function checkConfig(c: LlamaConfig, file?: string): void {
  for (const key of Object.keys(CONFIG_LIMITS) as (keyof typeof CONFIG_LIMITS)[]) checkWhole(key, c[key], CONFIG_LIMITS[key], file);
  checkWhole('numKvHeads', c.numKvHeads, c.numHeads, file);
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new LopperError('unsupported-config', `num_attention_heads ${c.numHeads} is not a multiple of num_key_value_heads ${c.numKvHeads}`, file);
  }
  if (c.headDim % 2 !== 0) throw new LopperError('unsupported-config', `head_dim ${c.headDim} is odd (RoPE rotates pairs)`, file);
  for (const [key, id] of [['bos_token_id', c.bosTokenId], ['eos_token_id', c.eosTokenId]] as const) {
    if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) {
      throw new LopperError('unsupported-config', `${key} ${id} is outside the vocabulary of ${c.vocabSize}`, file);
    }
  }
}

/** Map a Hugging Face config.json object to a LlamaConfig (the only place HF keys are read). */
export function fromHfConfig(json: Json, file = 'config.json'): LlamaConfig {
  const archs = json.architectures;
  const arch = Array.isArray(archs) ? archs[0] : undefined;
  if (typeof arch !== 'string' || !(ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new LopperError(
      'unsupported-architecture',
      `unsupported architecture ${shown(arch ?? json.model_type ?? null)}; lopper supports ${ARCHITECTURES.join(', ')}`,
      file,
    );
  }
  const architecture = arch as LlamaConfig['architecture'];
  const L = CONFIG_LIMITS;
  const hiddenSize = whole(json, 'hidden_size', file, L.hiddenSize);
  const numHeads = whole(json, 'num_attention_heads', file, L.numHeads);
  const numLayers = whole(json, 'num_hidden_layers', file, L.numLayers);
  const maxPositions = whole(json, 'max_position_embeddings', file, L.maxPositions, 2048);
  const vocabSize = whole(json, 'vocab_size', file, L.vocabSize);
  const act = json.hidden_act ?? 'silu';
  if (act !== 'silu') {
    throw new LopperError('unsupported-config', `hidden_act ${shown(act)} is not supported (only "silu")`, file);
  }
  if ((architecture === 'Qwen2ForCausalLM' || architecture === 'Qwen3ForCausalLM') && json.use_sliding_window === true) {
    throw new LopperError(
      'unsupported-config',
      'sliding-window attention (use_sliding_window: true) is not supported: lopper computes full causal attention in every layer',
      file,
    );
  }
  if (architecture === 'MistralForCausalLM') {
    const sw = json.sliding_window;
    if (sw !== undefined && sw !== null && (typeof sw !== 'number' || sw < maxPositions)) {
      throw new LopperError('unsupported-config', `sliding_window ${shown(sw)} < max_position_embeddings ${maxPositions} is not supported`, file);
    }
  }
  const rs = json.rope_scaling;
  let ropeScaling: Llama3RopeScaling | null = null;
  if (rs !== undefined && rs !== null) {
    if (typeof rs !== 'object' || Array.isArray(rs)) {
      throw new LopperError('unsupported-config', `config "rope_scaling" must be an object or null, got ${shown(rs)}`, file);
    }
    const r = rs as Json;
    const type = r.rope_type ?? r.type;
    if (type === 'llama3') {
      ropeScaling = {
        type: 'llama3',
        factor: num(r, 'factor', file),
        lowFreqFactor: num(r, 'low_freq_factor', file),
        highFreqFactor: num(r, 'high_freq_factor', file),
        originalMaxPositions: whole(r, 'original_max_position_embeddings', file, L.maxPositions),
      };
      if (!(ropeScaling.highFreqFactor > ropeScaling.lowFreqFactor)) {
        throw new LopperError('unsupported-config', `rope_scaling high_freq_factor ${ropeScaling.highFreqFactor} must be above low_freq_factor ${ropeScaling.lowFreqFactor}`, file);
      }
    } else if (type !== 'default') {
      throw new LopperError('unsupported-config', `rope_scaling type ${shown(type)} is not supported (only llama3)`, file);
    }
  }
  const types = layerTypes(json, numLayers, file);
  const attentionBias = json.attention_bias === true;
  const isQwen2 = architecture === 'Qwen2ForCausalLM';
  const numKvHeads = whole(json, 'num_key_value_heads', file, numHeads, numHeads);
  if (json.head_dim == null && hiddenSize % numHeads !== 0) {
    throw new LopperError('unsupported-config', `no "head_dim" and hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`, file);
  }
  const config: LlamaConfig = {
    architecture,
    hiddenSize,
    intermediateSize: whole(json, 'intermediate_size', file, L.intermediateSize),
    numLayers,
    numHeads,
    numKvHeads,
    headDim: whole(json, 'head_dim', file, L.headDim, hiddenSize / numHeads),
    vocabSize,
    maxPositions,
    rmsNormEps: num(json, 'rms_norm_eps', file, 1e-6),
    ropeTheta: num(json, 'rope_theta', file, 10000),
    ropeScaling,
    tieWordEmbeddings: json.tie_word_embeddings === true,
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: json.mlp_bias === true,
    qkNorm: architecture === 'Qwen3ForCausalLM',
    bosTokenId: tokenId(json, 'bos_token_id', 1, vocabSize, file),
    eosTokenId: tokenId(json, 'eos_token_id', 2, vocabSize, file),
    torchDtype: typeof json.torch_dtype === 'string' ? json.torch_dtype.slice(0, 40) : undefined,
    ...(types && { layerTypes: types }),
  };
  checkConfig(config, file);
  return config;
}

/** The inverse of fromHfConfig: a config.json other tools load. */
export function toHfConfig(c: LlamaConfig): Json {
  const isQwen2 = c.architecture === 'Qwen2ForCausalLM';
  if (c.qkNorm !== (c.architecture === 'Qwen3ForCausalLM')) {
    throw new LopperError('unsupported-config', `a config.json cannot say ${c.architecture} with${c.qkNorm ? '' : 'out'} q/k norms (only Qwen3 has them)`);
  }
  const modelType = { LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2', Qwen3ForCausalLM: 'qwen3' }[
    c.architecture
  ];
  const json: Json = {
    architectures: [c.architecture],
    model_type: modelType,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling
      ? {
          rope_type: 'llama3',
          factor: c.ropeScaling.factor,
          low_freq_factor: c.ropeScaling.lowFreqFactor,
          high_freq_factor: c.ropeScaling.highFreqFactor,
          original_max_position_embeddings: c.ropeScaling.originalMaxPositions,
        }
      : null,
    tie_word_embeddings: c.tieWordEmbeddings,
    hidden_act: 'silu',
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    torch_dtype: c.torchDtype ?? 'float32',
  };
  if (c.layerTypes) {
    checkLayerTypes(c.layerTypes, c.numLayers);
    json.layer_types = [...c.layerTypes];
  }
  if (c.architecture === 'Qwen3ForCausalLM') {
    json.attention_bias = c.oBias; // Qwen3Config has no mlp_bias
    json.use_sliding_window = false;
    json.sliding_window = null;
  } else if (!isQwen2) {
    json.attention_bias = c.oBias;
    json.mlp_bias = c.mlpBias;
  }
  // transformers' MistralConfig defaults sliding_window to 4096: say there is none.
  if (c.architecture === 'MistralForCausalLM') json.sliding_window = null;
  return json;
}

export function describeConfig(c: LlamaConfig): string {
  return `${c.architecture}: D=${c.hiddenSize} F=${c.intermediateSize} L=${c.numLayers} H=${c.numHeads} Hkv=${c.numKvHeads} hd=${c.headDim} V=${c.vocabSize}`;
}
