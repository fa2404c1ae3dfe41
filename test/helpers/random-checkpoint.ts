/**
 * Seeded random Llama-family checkpoints (and their Hugging Face folders) for tests, with a
 * tiny byte-level tokenizer, so tests need no model files.
 */
import { writeHfFolder, SAFETENSORS, SAFETENSORS_INDEX } from '../../src/engine/formats/hf';
import { writeSafetensors } from '../../src/engine/formats/safetensors';
import { expectedTensors, type Checkpoint } from '../../src/engine/model/checkpoint';
import type { Llama3RopeScaling, LlamaConfig } from '../../src/engine/model/config';
import { fromFloat32, numel, type DType, type Tensor } from '../../src/engine/model/tensor';
import type { Tokenizer } from '../../src/engine/model/tokenizer';
import { mulberry32 } from '../../src/engine/runtime/sampler';

export { mulberry32 };

// ---------------------------------------------------------------- random numbers

/** Standard normal samples (Box–Muller) from a uniform source. */
function gaussian(uniform: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

// ---------------------------------------------------------------- tokenizer

const UNK = 0;
const BOS = 1;
const EOS = 2;
const BYTE_OFFSET = 3;
const SPECIALS = ['<unk>', '<s>', '</s>'];

const byteToken = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/**
 * A byte-level tokenizer: id = byte + 3 (0 <unk>, 1 <s>, 2 </s>). With a vocabulary under
 * 259 a character whose bytes do not all fit becomes <unk>; ids from 259 up are fillers
 * "<extra_N>" that encode never produces. files() is an equivalent tokenizer.json (BPE with
 * no merges and byte fallback) that transformers.js and 🤗 tokenizers load; the one
 * difference is that those split the literal text "<s>", "</s>" or "<unk>" off as special
 * tokens, where this class spells them in bytes.
 */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'hf';
  readonly bosId = BOS;
  readonly eosId = EOS;

  constructor(readonly vocabSize = 256 + BYTE_OFFSET) {
    if (vocabSize < 4) throw new Error(`ByteTokenizer: vocabulary ${vocabSize} is too small (at least 4)`);
  }

  encode(text: string): number[] {
    const encoder = new TextEncoder();
    const ids: number[] = [];
    for (const ch of text) {
      const bytes = [...encoder.encode(ch)].map((b) => b + BYTE_OFFSET);
      if (bytes.every((id) => id < this.vocabSize)) ids.push(...bytes);
      else ids.push(UNK);
    }
    return ids;
  }

  decode(ids: readonly number[]): string {
    const decoder = new TextDecoder();
    let text = '';
    let bytes: number[] = [];
    const flush = () => {
      text += decoder.decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (const id of ids) {
      if (id < BYTE_OFFSET) continue;
      if (id < BYTE_OFFSET + 256) {
        bytes.push(id - BYTE_OFFSET);
      } else {
        flush();
        text += `<extra_${id}>`;
      }
    }
    flush();
    return text;
  }

  private tokenText(id: number): string {
    if (id < BYTE_OFFSET) return SPECIALS[id];
    return id < BYTE_OFFSET + 256 ? byteToken(id - BYTE_OFFSET) : `<extra_${id}>`;
  }

  files(): Record<string, Uint8Array> {
    const vocab: Record<string, number> = {};
    for (let id = 0; id < this.vocabSize; id++) vocab[this.tokenText(id)] = id;
    const special = (id: number) => ({
      id,
      content: SPECIALS[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    const bos = { SpecialToken: { id: '<s>', type_id: 0 } };
    const tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [special(UNK), special(BOS), special(EOS)],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, bos, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<s>': { id: '<s>', ids: [BOS], tokens: ['<s>'] } },
      },
      decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: '<unk>',
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
    const tokenizerConfig = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      clean_up_tokenization_spaces: false,
    };
    const encoder = new TextEncoder();
    return {
      'tokenizer.json': encoder.encode(JSON.stringify(tokenizerJson)),
      'tokenizer_config.json': encoder.encode(JSON.stringify(tokenizerConfig, null, 2)),
    };
  }
}

// ---------------------------------------------------------------- checkpoint

export interface RandomCheckpointOptions {
  architecture?: LlamaConfig['architecture'];
  hiddenSize?: number;
  intermediateSize?: number;
  numLayers?: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  vocabSize?: number;
  maxPositions?: number;
  tie?: boolean;
  /**
   * Biases on q/k/v_proj: always on for Qwen2; for Llama, Mistral and Qwen3 `attention_bias` sets it with oBias.
   * Qwen3 (`architecture: 'Qwen3ForCausalLM'`) has the per-head q/k RMSNorms (config.qkNorm) and no MLP biases.
   */
  qkvBias?: boolean;
  oBias?: boolean;
  mlpBias?: boolean;
  /** true: llama3 scaling {factor 8, low 1, high 4, original max positions 64}. */
  ropeScaling?: boolean | Llama3RopeScaling;
  ropeTheta?: number;
  dtype?: DType;
  seed?: number;
}

const TORCH_DTYPE: Record<DType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/** The config `opts` describe; throws on bias combinations a config.json cannot express. */
export function randomConfig(opts: RandomCheckpointOptions = {}): LlamaConfig {
  const architecture = opts.architecture ?? 'LlamaForCausalLM';
  const isQwen2 = architecture === 'Qwen2ForCausalLM';
  const isQwen3 = architecture === 'Qwen3ForCausalLM';
  const hiddenSize = opts.hiddenSize ?? 32;
  const numHeads = opts.numHeads ?? 4;
  const qkvBias = opts.qkvBias ?? isQwen2;
  const oBias = opts.oBias ?? (!isQwen2 && qkvBias);
  const mlpBias = opts.mlpBias ?? false;
  if (isQwen2 ? !qkvBias || oBias || mlpBias : qkvBias !== oBias || (isQwen3 && mlpBias)) {
    throw new Error(
      `randomConfig: ${architecture} cannot have qkvBias=${qkvBias} oBias=${oBias} mlpBias=${mlpBias} ` +
        '(Qwen2: q/k/v biases only; Llama, Mistral, Qwen3: attention_bias sets q/k/v and o together; Qwen3: no MLP biases)',
    );
  }
  const dtype = opts.dtype ?? 'f32';
  const ropeScaling =
    opts.ropeScaling === true
      ? { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 }
      : opts.ropeScaling || null;
  return {
    architecture,
    hiddenSize,
    intermediateSize: opts.intermediateSize ?? 64,
    numLayers: opts.numLayers ?? 2,
    numHeads,
    numKvHeads: opts.numKvHeads ?? numHeads,
    headDim: opts.headDim ?? hiddenSize / numHeads,
    vocabSize: opts.vocabSize ?? 256 + BYTE_OFFSET,
    maxPositions: opts.maxPositions ?? 256,
    rmsNormEps: 1e-5,
    ropeTheta: opts.ropeTheta ?? 10000,
    ropeScaling,
    tieWordEmbeddings: opts.tie ?? false,
    qkvBias,
    oBias,
    mlpBias,
    qkNorm: isQwen3,
    bosTokenId: BOS,
    eosTokenId: EOS,
    torchDtype: TORCH_DTYPE[dtype],
  };
}

/**
 * A seeded random checkpoint in HF naming. Scales keep activations O(1): embeddings ~ N(0, 1),
 * weight matrices ~ N(0, 1/fan_in), biases ~ N(0, 0.1²), norm weights ~ 1 + N(0, 0.1²).
 */
export function randomCheckpoint(opts: RandomCheckpointOptions = {}): Checkpoint {
  const config = randomConfig(opts);
  const normal = gaussian(mulberry32(opts.seed ?? 1));
  const dtype = opts.dtype ?? 'f32';
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of expectedTensors(config)) {
    const values = new Float32Array(numel(shape));
    const [mean, std] = name.endsWith('norm.weight')
      ? [1, 0.1]
      : name.endsWith('.bias')
        ? [0, 0.1]
        : name === 'model.embed_tokens.weight'
          ? [0, 1]
          : [0, 1 / Math.sqrt(shape[1])];
    for (let i = 0; i < values.length; i++) values[i] = mean + std * normal();
    tensors.set(name, fromFloat32(values, shape, dtype));
  }
  return {
    config,
    tensors,
    tokenizer: new ByteTokenizer(config.vocabSize),
    source: `random(seed ${opts.seed ?? 1})`,
    format: 'hf',
  };
}

// ---------------------------------------------------------------- HF folder

/**
 * The files of a random checkpoint's Hugging Face folder; `sharded` splits the weights over
 * three shard files (tensors dealt round-robin by name) listed in model.safetensors.index.json.
 */
export function randomHfFolder(
  opts: RandomCheckpointOptions = {},
  { sharded = false }: { sharded?: boolean } = {},
): Map<string, Uint8Array> {
  const ck = randomCheckpoint(opts);
  const files = writeHfFolder(ck);
  if (!sharded) return files;
  files.delete(SAFETENSORS);
  const count = 3;
  const shardName = (s: number) => `model-${String(s + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
  const shards = Array.from({ length: count }, () => new Map<string, Tensor>());
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  [...ck.tensors.keys()].sort().forEach((name, i) => {
    const t = ck.tensors.get(name)!;
    shards[i % count].set(name, t);
    weightMap[name] = shardName(i % count);
    totalSize += t.data.byteLength;
  });
  shards.forEach((tensors, s) => files.set(shardName(s), writeSafetensors(tensors, { format: 'pt' })));
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  files.set(SAFETENSORS_INDEX, new TextEncoder().encode(JSON.stringify(index, null, 2)));
  return files;
}
