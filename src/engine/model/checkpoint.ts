import { LopperError } from '../errors';
import type { LlamaConfig, LlamaShape } from './config';
import { numel, type Tensor } from './tensor';
import type { Tokenizer } from './tokenizer';

/**
 * The single model representation: a normalized config, named tensors in Hugging Face
 * naming and layout (rotate-half RoPE; weights [out, in]), and a tokenizer. Every
 * importer produces one, every exporter and the engine consume one.
 *
 * Shapes (D hidden, F intermediate, H heads, Hkv kv heads, hd head dim, V vocab):
 *   model.embed_tokens.weight                       [V, D]
 *   model.layers.{i}.input_layernorm.weight         [D]
 *   model.layers.{i}.self_attn.q_proj.weight        [H*hd, D]    (+ .bias [H*hd] if qkvBias)
 *   model.layers.{i}.self_attn.k_proj.weight        [Hkv*hd, D]  (+ .bias)
 *   model.layers.{i}.self_attn.v_proj.weight        [Hkv*hd, D]  (+ .bias)
 *   model.layers.{i}.self_attn.o_proj.weight        [D, H*hd]    (+ .bias [D] if oBias)
 *   model.layers.{i}.self_attn.q_norm.weight        [hd]         (qkNorm: per-head RMSNorm gain on q)
 *   model.layers.{i}.self_attn.k_norm.weight        [hd]         (qkNorm: per-head RMSNorm gain on k)
 *   model.layers.{i}.post_attention_layernorm.weight [D]
 *   model.layers.{i}.mlp.gate_proj.weight           [F, D]       (+ .bias if mlpBias)
 *   model.layers.{i}.mlp.up_proj.weight             [F, D]       (+ .bias)
 *   model.layers.{i}.mlp.down_proj.weight           [D, F]       (+ .bias [D])
 *   model.norm.weight                               [D]
 *   lm_head.weight                                  [V, D]       (absent when tied)
 */
export interface Checkpoint {
  config: LlamaConfig;
  tensors: Map<string, Tensor>;
  tokenizer: Tokenizer;
  /** Where it came from, for messages (a path or a URL). */
  source: string;
  /** The source format, so exporters can write the same kind back. */
  format: 'llama2c' | 'hf';
}

export const layerPrefix = (i: number) => `model.layers.${i}.`;

/** Names and expected shapes of every tensor the config (or a catalog entry's shape) calls for. */
export function expectedTensors(c: LlamaShape): Map<string, number[]> {
  const D = c.hiddenSize;
  const F = c.intermediateSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const out = new Map<string, number[]>();
  out.set('model.embed_tokens.weight', [c.vocabSize, D]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    out.set(p + 'input_layernorm.weight', [D]);
    out.set(p + 'self_attn.q_proj.weight', [q, D]);
    out.set(p + 'self_attn.k_proj.weight', [kv, D]);
    out.set(p + 'self_attn.v_proj.weight', [kv, D]);
    out.set(p + 'self_attn.o_proj.weight', [D, q]);
    if (c.qkvBias) {
      out.set(p + 'self_attn.q_proj.bias', [q]);
      out.set(p + 'self_attn.k_proj.bias', [kv]);
      out.set(p + 'self_attn.v_proj.bias', [kv]);
    }
    if (c.oBias) out.set(p + 'self_attn.o_proj.bias', [D]);
    if (c.qkNorm) {
      out.set(p + 'self_attn.q_norm.weight', [c.headDim]);
      out.set(p + 'self_attn.k_norm.weight', [c.headDim]);
    }
    out.set(p + 'post_attention_layernorm.weight', [D]);
    out.set(p + 'mlp.gate_proj.weight', [F, D]);
    out.set(p + 'mlp.up_proj.weight', [F, D]);
    out.set(p + 'mlp.down_proj.weight', [D, F]);
    if (c.mlpBias) {
      out.set(p + 'mlp.gate_proj.bias', [F]);
      out.set(p + 'mlp.up_proj.bias', [F]);
      out.set(p + 'mlp.down_proj.bias', [D]);
    }
  }
  out.set('model.norm.weight', [D]);
  if (!c.tieWordEmbeddings) out.set('lm_head.weight', [c.vocabSize, D]);
  return out;
}

/**
 * Check that `tensors` holds exactly what the config calls for, with the right shapes. Extra tensors that HF checkpoints commonly carry (rotary inv_freq) are
 * dropped; a tied model's redundant lm_head.weight is dropped too; a layer the config does not
 * have is an error (num_hidden_layers disagrees with the weights). `configName` is what the
 * messages call the config ("config.json", the header).
 */
export function validateTensors(c: LlamaConfig, tensors: Map<string, Tensor>, file: string, configName = 'the config'): Map<string, Tensor> {
  const expected = expectedTensors(c);
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) throw new LopperError('missing-tensor', `missing tensor "${name}" (${configName} calls for shape [${shape}])`, file);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new LopperError(
        'shape-mismatch',
        `tensor "${name}" has shape [${t.shape}] but ${configName} implies [${shape}]`,
        file,
      );
    }
  }
  const kept = new Map<string, Tensor>();
  for (const [name, t] of tensors) {
    if (expected.has(name)) kept.set(name, t);
    else {
      const layer = LAYER_NAME.exec(name);
      if (layer && Number(layer[1]) >= c.numLayers) {
        throw new LopperError('shape-mismatch', `the weights have tensor "${name.slice(0, 80)}" but ${configName} says num_hidden_layers is ${c.numLayers}`, file);
      }
    }
  }
  return kept;
}

const LAYER_NAME = /^model\.layers\.(\d+)\./;

/** Throws a 'non-finite' LopperError naming the first tensor with NaN or ±Inf values, and how many (every importer, per file). */
export function checkFinite(tensors: Map<string, Tensor>, file: string): void {
  let first: { name: string; count: number } | undefined;
  let total = 0;
  let inTensors = 0;
  for (const [name, t] of tensors) {
    const count = nonFiniteCount(t);
    if (count === 0) continue;
    first ??= { name, count };
    total += count;
    inTensors++;
  }
  if (first) {
    const more = inTensors > 1 ? `; ${total} in ${inTensors} tensors` : '';
    throw new LopperError('non-finite', `tensor "${first.name}" has ${first.count} non-finite value${first.count === 1 ? '' : 's'} (NaN or ±Infinity)${more}`, file);
  }
}

/** NaN and ±Infinity values in a tensor, counted from the bit patterns (all exponent bits set). */
export function nonFiniteCount(t: Tensor): number {
  let n = 0;
  const data = t.data; // read once
  if (t.dtype === 'f32') {
    const d = data as Float32Array;
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7f800000) === 0x7f800000) n++;
  } else {
    const exp = t.dtype === 'f16' ? 0x7c00 : 0x7f80;
    const bits = data as Uint16Array;
    for (let i = 0; i < bits.length; i++) if ((bits[i] & exp) === exp) n++;
  }
  return n;
}

export function tensor(ck: Checkpoint, name: string): Tensor {
  const t = ck.tensors.get(name);
  if (!t) throw new LopperError('missing-tensor', `missing tensor "${name}"`, ck.source);
  return t;
}

/** The LM head's weight: lm_head.weight, or the embedding when tied. */
export function lmHeadName(c: LlamaConfig): string {
  return c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
}

export function parameterCount(ck: Checkpoint): number {
  let n = 0;
  for (const t of ck.tensors.values()) n += numel(t.shape);
  return n;
}

/**
 * The weights of decoder layer k whose gradients the graph outputs (all of them: the four
 * attention projections, the three MLP projections, both norm gains, the q/k norm gains and
 * biases the config has), with their HF shapes. Taylor+ scores layer k over exactly these.
 */
export function layerWeightShapes(c: LlamaConfig, k: number): Map<string, number[]> {
  const p = layerPrefix(k);
  return new Map([...expectedTensors(c)].filter(([name]) => name.startsWith(p)));
}
