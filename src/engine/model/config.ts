import { LopperError } from '../errors';

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

const ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM'] as const;

type Json = Record<string, unknown>;

function num(json: Json, key: string, file: string, fallback?: number): number {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new LopperError('unsupported-config', `config is missing "${key}"`, file);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new LopperError('unsupported-config', `config "${key}" must be a number, got ${JSON.stringify(v)}`, file);
  }
  return v;
}

/** `layer_types`: absent, or one string per layer. */
function layerTypes(json: Json, numLayers: number, file: string): string[] | undefined {
  const v = json.layer_types;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((t) => typeof t === 'string')) {
    throw new LopperError('unsupported-config', `config "layer_types" must be a list of strings, got ${JSON.stringify(v)}`, file);
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

function firstId(v: unknown, fallback: number): number {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return fallback;
}

/** Map a Hugging Face config.json object to a LlamaConfig (the only place HF keys are read). */
export function fromHfConfig(json: Json, file = 'config.json'): LlamaConfig {
  const archs = json.architectures;
  const arch = Array.isArray(archs) ? archs[0] : undefined;
  if (typeof arch !== 'string' || !(ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new LopperError(
      'unsupported-architecture',
      `unsupported architecture ${JSON.stringify(arch ?? json.model_type ?? null)}; lopper supports ${ARCHITECTURES.join(', ')}`,
      file,
    );
  }
  const architecture = arch as LlamaConfig['architecture'];
  const hiddenSize = num(json, 'hidden_size', file);
  const numHeads = num(json, 'num_attention_heads', file);
  const numLayers = num(json, 'num_hidden_layers', file);
  const maxPositions = num(json, 'max_position_embeddings', file, 2048);
  const act = json.hidden_act ?? 'silu';
  if (act !== 'silu') {
    throw new LopperError('unsupported-config', `hidden_act "${String(act)}" is not supported (only silu)`, file);
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
    if (typeof sw === 'number' && sw < maxPositions) {
      throw new LopperError('unsupported-config', `sliding_window ${sw} < max_position_embeddings ${maxPositions} is not supported`, file);
    }
  }
  const rs = json.rope_scaling as Json | null | undefined;
  let ropeScaling: Llama3RopeScaling | null = null;
  if (rs) {
    const type = rs.rope_type ?? rs.type;
    if (type === 'llama3') {
      ropeScaling = {
        type: 'llama3',
        factor: num(rs, 'factor', file),
        lowFreqFactor: num(rs, 'low_freq_factor', file),
        highFreqFactor: num(rs, 'high_freq_factor', file),
        originalMaxPositions: num(rs, 'original_max_position_embeddings', file),
      };
    } else if (type !== 'default') {
      throw new LopperError('unsupported-config', `rope_scaling type ${JSON.stringify(type)} is not supported (only llama3)`, file);
    }
  }
  const types = layerTypes(json, numLayers, file);
  const attentionBias = json.attention_bias === true;
  const isQwen2 = architecture === 'Qwen2ForCausalLM';
  return {
    architecture,
    hiddenSize,
    intermediateSize: num(json, 'intermediate_size', file),
    numLayers,
    numHeads,
    numKvHeads: num(json, 'num_key_value_heads', file, numHeads),
    headDim: num(json, 'head_dim', file, hiddenSize / numHeads),
    vocabSize: num(json, 'vocab_size', file),
    maxPositions,
    rmsNormEps: num(json, 'rms_norm_eps', file, 1e-6),
    ropeTheta: num(json, 'rope_theta', file, 10000),
    ropeScaling,
    tieWordEmbeddings: json.tie_word_embeddings === true,
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: json.mlp_bias === true,
    qkNorm: architecture === 'Qwen3ForCausalLM',
    bosTokenId: firstId(json.bos_token_id, 1),
    eosTokenId: firstId(json.eos_token_id, 2),
    torchDtype: typeof json.torch_dtype === 'string' ? json.torch_dtype : undefined,
    ...(types && { layerTypes: types }),
  };
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
