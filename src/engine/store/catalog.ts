/**
 * The models lopper offers to download: real Llama-family checkpoints on the Hugging Face
 * hub, with their files, sizes and provenance. A file's URL is hub-shaped
 * (`{base}/{repo}/resolve/{revision}/{path}`), so the same catalog works against
 * huggingface.co or a mirror (the dev/preview server maps that shape onto ../shared/models).
 *
 * Sizes: `CatalogFile.bytes` is set only where the exact size is known (a download is
 * checked against it); `CatalogEntry.bytes` is the approximate total of all its files.
 * Parameter counts are exact, computed from each model's shape (tied embeddings counted once).
 */
import type { LlamaShape } from '../model/config';

/** The Hugging Face hub: the default base URL. */
export const HUB = 'https://huggingface.co';

/** One file of a model. */
export interface CatalogFile {
  /** Path inside the repo (may contain folders). */
  path: string;
  /** Exact size in bytes, when known: downloads are checked against it. */
  bytes?: number;
  /** What the importer does with it: a llama2.c `.bin` (model), tokenizer files, config.json, safetensors weights. */
  role: 'model' | 'tokenizer' | 'config' | 'weights';
  /** The repo holding this file when it is not the entry's own (e.g. a tokenizer published elsewhere). */
  repo?: string;
  /** Revision for `repo` (default: the entry's revision when the repo is the entry's, else 'main'). */
  revision?: string;
  /** The model loads without it (a repository or mirror that lacks it answers 404, and it is left out). */
  optional?: boolean;
}

/** A model's shape as its published config gives it (what the device check needs before any download). */
export type CatalogShape = LlamaShape;

/** A shape with the usual Llama flags: no biases, no q/k norms. */
const llama = (s: Omit<LlamaShape, 'qkvBias' | 'oBias' | 'mlpBias' | 'qkNorm'> & Partial<LlamaShape>): LlamaShape => ({
  qkvBias: false,
  oBias: false,
  mlpBias: false,
  qkNorm: false,
  ...s,
});

/** One downloadable model. */
export interface CatalogEntry {
  /** Stable id (used in URLs and settings). */
  id: string;
  /** Display name. */
  name: string;
  /** Model family, for grouping. */
  family: string;
  /** 'llama2c': a llama2.c `.bin` + tokenizer; 'hf': a Hugging Face folder (config.json, safetensors, tokenizer.json). */
  format: 'llama2c' | 'hf';
  /** Hub repo id, `owner/name`. */
  repo: string;
  /** Branch, tag or commit. */
  revision: string;
  /** The files to download (see CatalogFile.role). */
  files: CatalogFile[];
  /** The shape (the published config's fields, or the llama2.c header's): checked against the download. */
  shape: CatalogShape;
  /** Parameter count (exact, from the model's shape). */
  params: number;
  /** Approximate total download size in bytes. */
  bytes: number;
  /** License of the weights. */
  license: string;
  /** True when the hub requires accepting a license and a token (Authorization: Bearer). */
  gated?: boolean;
  /** Human-readable provenance. */
  source: string;
  /** Anything a person should know before choosing it. */
  note?: string;
}

const TINYLLAMAS = 'karpathy/tinyllamas';
/** The Llama 2 32000-token vocabulary as tokenizer.json (the hub has no llama2.c tokenizer.bin for these). */
const LLAMA2_TOKENIZER_REPO = 'Xenova/llama2.c-stories15M';
const LLAMA2_TOKENIZER_JSON_BYTES = 1_842_767; // approximate (the Llama 2 tokenizer.json)

/** A karpathy/tinyllamas model with the Llama 2 tokenizer: exact .bin size from its shape. */
function tinyStories(id: string, params: number, binBytes: number, shape: string, dims: CatalogShape): CatalogEntry {
  return {
    id,
    name: id,
    family: 'TinyStories (llama2.c)',
    format: 'llama2c',
    repo: TINYLLAMAS,
    revision: 'main',
    files: [
      { path: `${id}.bin`, bytes: binBytes, role: 'model' },
      { path: 'tokenizer.json', role: 'tokenizer', repo: LLAMA2_TOKENIZER_REPO, revision: 'main' },
    ],
    shape: dims,
    params,
    bytes: binBytes + LLAMA2_TOKENIZER_JSON_BYTES,
    license: 'MIT',
    source:
      `huggingface.co/${TINYLLAMAS}/${id}.bin — Andrej Karpathy, trained with llama2.c on TinyStories (${shape}). ` +
      `Tokenizer: the Llama 2 32000-token vocabulary as tokenizer.json from huggingface.co/${LLAMA2_TOKENIZER_REPO} ` +
      `(Xenova's transformers.js conversion of stories15M; the llama2.c-format tokenizer.bin lives in github.com/karpathy/llama2.c, not on the hub)`,
    note: 'llama2.c weights with a Hugging Face tokenizer.json (32000 tokens, BOS 1, EOS 2).',
  };
}

/** The hub files of a Hugging Face Llama folder. */
function hfFiles(): CatalogFile[] {
  return [
    { path: 'config.json', role: 'config' },
    { path: 'model.safetensors', role: 'weights' },
    { path: 'tokenizer.json', role: 'tokenizer' },
    // special tokens and chat template; tokenizer.json alone tokenizes
    { path: 'tokenizer_config.json', role: 'tokenizer', optional: true },
  ];
}

/** Every model lopper offers, smallest first. */
export const CATALOG: CatalogEntry[] = [
  {
    id: 'stories260K',
    name: 'stories260K',
    family: 'TinyStories (llama2.c)',
    format: 'llama2c',
    repo: TINYLLAMAS,
    revision: 'main',
    files: [
      // dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, seq 512, shared classifier
      { path: 'stories260K/stories260K.bin', bytes: 1_056_540, role: 'model' },
      { path: 'stories260K/tok512.bin', bytes: 6_227, role: 'tokenizer' },
    ],
    shape: llama({ hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512, tieWordEmbeddings: true }),
    params: 260_032,
    bytes: 1_056_540 + 6_227,
    license: 'MIT',
    source:
      `huggingface.co/${TINYLLAMAS}/stories260K — Andrej Karpathy, trained with llama2.c on TinyStories ` +
      '(64/172/5 layers/8 heads/4 kv heads/vocab 512/seq 512) with its own 512-token tokenizer (tok512.bin)',
    note: 'Tiny: loads in a blink, good for trying things out.',
  },
  // stories15M: 288/768/6 layers/6 heads/seq 256 → 7 int32 + 15,204,000 fp32 (incl. RoPE tables)
  tinyStories('stories15M', 15_191_712, 60_816_028, 'dim 288, hidden 768, 6 layers, 6 heads, seq 256', llama({ hiddenSize: 288, intermediateSize: 768, numLayers: 6, numHeads: 6, numKvHeads: 6, headDim: 48, vocabSize: 32000, tieWordEmbeddings: true })),
  // stories42M: 512/1376/8 layers/8 heads/seq 1024 → 7 int32 + 41,755,136 fp32
  tinyStories('stories42M', 41_689_600, 167_020_572, 'dim 512, hidden 1376, 8 layers, 8 heads, seq 1024', llama({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, headDim: 64, vocabSize: 32000, tieWordEmbeddings: true })),
  // stories110M: 768/2048/12 layers/12 heads/seq 1024 → 7 int32 + 109,595,392 fp32
  tinyStories('stories110M', 109_529_856, 438_381_596, 'dim 768, hidden 2048, 12 layers, 12 heads, seq 1024', llama({ hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 12, headDim: 64, vocabSize: 32000, tieWordEmbeddings: true })),
  {
    id: 'SmolLM2-135M',
    name: 'SmolLM2-135M',
    family: 'SmolLM2',
    format: 'hf',
    repo: 'HuggingFaceTB/SmolLM2-135M',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, vocabSize: 49152, tieWordEmbeddings: true }),
    params: 134_515_008, // hidden 576, 30 layers, 9 heads / 3 kv heads, vocab 49152, tied
    bytes: 271_200_000, // bf16 safetensors ≈ 269.0 MB + tokenizer ≈ 2.1 MB
    license: 'Apache-2.0',
    source: 'huggingface.co/HuggingFaceTB/SmolLM2-135M — Hugging Face TB research (base model, bf16 safetensors)',
  },
  {
    id: 'SmolLM2-360M',
    name: 'SmolLM2-360M',
    family: 'SmolLM2',
    format: 'hf',
    repo: 'HuggingFaceTB/SmolLM2-360M',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 960, intermediateSize: 2560, numLayers: 32, numHeads: 15, numKvHeads: 5, headDim: 64, vocabSize: 49152, tieWordEmbeddings: true }),
    params: 361_821_120, // hidden 960, 32 layers, 15 heads / 5 kv heads, vocab 49152, tied
    bytes: 725_800_000, // bf16 safetensors ≈ 723.6 MB + tokenizer ≈ 2.1 MB
    license: 'Apache-2.0',
    source: 'huggingface.co/HuggingFaceTB/SmolLM2-360M — Hugging Face TB research (base model, bf16 safetensors)',
  },
  {
    id: 'Qwen2.5-0.5B',
    name: 'Qwen2.5-0.5B',
    family: 'Qwen2.5',
    format: 'hf',
    repo: 'Qwen/Qwen2.5-0.5B',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 896, intermediateSize: 4864, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64, vocabSize: 151936, tieWordEmbeddings: true, qkvBias: true }),
    params: 494_032_768, // hidden 896, 24 layers, 14 heads / 2 kv heads, q/k/v biases, vocab 151936, tied
    bytes: 995_000_000, // bf16 safetensors ≈ 988 MB + tokenizer ≈ 7 MB
    license: 'Apache-2.0',
    source: 'huggingface.co/Qwen/Qwen2.5-0.5B — the Qwen team, Alibaba Cloud (base model, bf16 safetensors)',
    note: 'About 1 GB to download; runs layer by layer in the tab.',
  },
  {
    id: 'Qwen3-0.6B',
    name: 'Qwen3-0.6B',
    family: 'Qwen3',
    format: 'hf',
    repo: 'Qwen/Qwen3-0.6B',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 1024, intermediateSize: 3072, numLayers: 28, numHeads: 16, numKvHeads: 8, headDim: 128, vocabSize: 151936, tieWordEmbeddings: true, qkNorm: true }),
    params: 596_049_920, // hidden 1024, 28 layers, 16 heads / 8 kv heads of 128, q/k norms, vocab 151936, tied
    bytes: 1_204_000_000, // bf16 safetensors of this shape ≈ 1.19 GB + tokenizer ≈ 11 MB
    license: 'Apache-2.0',
    source: 'huggingface.co/Qwen/Qwen3-0.6B — the Qwen team, Alibaba Cloud (post-trained, bf16 safetensors)',
    note: 'About 1.2 GB to download; runs layer by layer in the tab.',
  },
  {
    id: 'TinyLlama-1.1B',
    name: 'TinyLlama-1.1B-Chat',
    family: 'TinyLlama',
    format: 'hf',
    repo: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000, tieWordEmbeddings: false }),
    params: 1_100_048_384, // hidden 2048, 22 layers, 32 heads / 4 kv heads, vocab 32000, untied
    bytes: 2_202_000_000, // bf16 safetensors ≈ 2.20 GB + tokenizer ≈ 1.8 MB
    license: 'Apache-2.0',
    source: 'huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0 — the TinyLlama project (3T-token pretraining + chat fine-tune)',
    note: 'About 2.2 GB to download and about 3 GB of memory: runs layer by layer in the tab.',
  },
  {
    id: 'Llama-3.2-1B',
    name: 'Llama-3.2-1B',
    family: 'Llama 3.2',
    format: 'hf',
    repo: 'meta-llama/Llama-3.2-1B',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, vocabSize: 128256, tieWordEmbeddings: true }),
    params: 1_235_814_400, // hidden 2048, 16 layers, 32 heads / 8 kv heads, vocab 128256, tied
    bytes: 2_480_800_000, // bf16 safetensors ≈ 2.47 GB + tokenizer ≈ 9.1 MB
    license: 'Llama 3.2 Community License',
    gated: true,
    source: 'huggingface.co/meta-llama/Llama-3.2-1B — Meta (base model, bf16 safetensors)',
    note: 'Gated: accept the license on huggingface.co, then give a Hugging Face access token (kept only in this browser). About 2.5 GB to download and about 3.3 GB of memory: runs layer by layer.',
  },
  {
    id: 'SmolLM2-1.7B',
    name: 'SmolLM2-1.7B',
    family: 'SmolLM2',
    format: 'hf',
    repo: 'HuggingFaceTB/SmolLM2-1.7B',
    revision: 'main',
    files: hfFiles(),
    shape: llama({ hiddenSize: 2048, intermediateSize: 8192, numLayers: 24, numHeads: 32, numKvHeads: 32, headDim: 64, vocabSize: 49152, tieWordEmbeddings: true }),
    params: 1_711_376_384, // hidden 2048, 24 layers, 32 heads / 32 kv heads, vocab 49152, tied
    bytes: 3_425_000_000, // bf16 safetensors ≈ 3.42 GB + tokenizer ≈ 2.1 MB
    license: 'Apache-2.0',
    source: 'huggingface.co/HuggingFaceTB/SmolLM2-1.7B — Hugging Face TB research (base model, bf16 safetensors)',
    note: 'The largest here: about 3.4 GB to download and about 4.3 GB of memory, layer by layer.',
  },
];

/** The catalog entry with this id, or undefined. */
export function catalogEntry(id: string): CatalogEntry | undefined {
  return CATALOG.find((e) => e.id === id);
}

/** The local mirror of ../shared/models served by the dev/preview/test server (browser only). */
export function localMirrorBase(): string {
  return `${globalThis.location.origin}/models`;
}

/**
 * Where `file` of `entry` is downloaded from: `${base}/${repo}/resolve/${revision}/${path}`.
 * `base` is HUB or a mirror (e.g. localMirrorBase()); a trailing slash is ignored.
 */
export function fileUrl(base: string, entry: CatalogEntry, file: CatalogFile): string {
  const repo = file.repo ?? entry.repo;
  const revision = file.revision ?? (repo === entry.repo ? entry.revision : 'main');
  const path = file.path.split('/').map(encodeURIComponent).join('/');
  return `${base.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}
