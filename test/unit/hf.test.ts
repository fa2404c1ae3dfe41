import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { LopperError, type ErrorCode } from '../../src/engine/errors';
import { hfFolderFiles, loadHfFolder, writeHfFolder } from '../../src/engine/formats/hf';
import { expectedTensors } from '../../src/engine/model/checkpoint';
import { fromHfConfig } from '../../src/engine/model/config';
import { writeFolder } from '../../src/engine/formats/hf-node';
import { DirSource } from '../../src/engine/formats/node-source';
import { parseSafetensors, writeSafetensors } from '../../src/engine/formats/safetensors';
import { MemorySource, rangeOf } from '../../src/engine/formats/source';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { HfTokenizer } from '../../src/engine/text/hf-tokenizer';
import { SHARED } from '../helpers/paths';
import { ByteTokenizer, randomCheckpoint, randomConfig, randomHfFolder, type RandomCheckpointOptions } from '../helpers/random-checkpoint';

const SRC = 'mem-model';
const TEXT = 'Once upon a time, a naïve café served 🍰 — twice.\n';

function expectSameCheckpoint(loaded: Checkpoint, ck: Checkpoint): void {
  expect(loaded.format).toBe('hf');
  expect(loaded.config).toEqual(ck.config);
  expect([...loaded.tensors.keys()].sort()).toEqual([...ck.tensors.keys()].sort());
  for (const [name, t] of ck.tensors) expect(loaded.tensors.get(name), name).toEqual(t);
  expect(loaded.tokenizer.vocabSize).toBe(ck.tokenizer.vocabSize);
  const ids = ck.tokenizer.encode(TEXT);
  expect(loaded.tokenizer.encode(TEXT)).toEqual(ids);
  expect(loaded.tokenizer.decode([1, ...ids, 2])).toBe(ck.tokenizer.decode(ids));
}

async function expectLoadError(files: Map<string, Uint8Array>, code: ErrorCode, ...fragments: string[]): Promise<void> {
  const err = await loadHfFolder(new MemorySource(SRC, files)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LopperError);
  expect((err as LopperError).code).toBe(code);
  for (const f of fragments) expect((err as LopperError).message).toContain(f);
}

const json = (files: Map<string, Uint8Array>, name: string) => JSON.parse(new TextDecoder().decode(files.get(name)));
const setJson = (files: Map<string, Uint8Array>, name: string, value: unknown) =>
  files.set(name, new TextEncoder().encode(JSON.stringify(value)));

describe('HF folder round trip (random checkpoint → writeHfFolder → loadHfFolder)', () => {
  const cases: Record<string, RandomCheckpointOptions> = {
    'Llama, untied': {},
    'Llama, tied': { tie: true },
    'GQA (4 heads, 2 kv heads)': { numHeads: 4, numKvHeads: 2 },
    'head_dim ≠ hidden/heads': { hiddenSize: 24, numHeads: 4, numKvHeads: 1, headDim: 8 },
    'Qwen2, q/k/v biases, tied': { architecture: 'Qwen2ForCausalLM', tie: true, numKvHeads: 2 },
    'Qwen3, q/k norms, GQA, head_dim ≠ hidden/heads, tied, BF16': { architecture: 'Qwen3ForCausalLM', tie: true, numKvHeads: 2, headDim: 16, dtype: 'bf16' },
    'Qwen3 attention_bias': { architecture: 'Qwen3ForCausalLM', qkvBias: true, oBias: true },
    'Llama attention_bias (q/k/v/o biases) and mlp_bias': { qkvBias: true, oBias: true, mlpBias: true },
    'rope_scaling llama3, rope_theta 500000': { ropeScaling: true, ropeTheta: 500000 },
    Mistral: { architecture: 'MistralForCausalLM', numKvHeads: 1 },
    F16: { dtype: 'f16', numKvHeads: 2 },
    BF16: { dtype: 'bf16', tie: true },
    'vocabulary under 259 (unknown bytes)': { vocabSize: 100 },
    'vocabulary over 259 (filler tokens)': { vocabSize: 300, seed: 7 },
  };
  for (const [label, opts] of Object.entries(cases)) {
    test(label, async () => {
      const loaded = await loadHfFolder(new MemorySource(SRC, randomHfFolder(opts)));
      expectSameCheckpoint(loaded, randomCheckpoint(opts));
    });
  }

  test('sharded: model.safetensors.index.json and three shards', async () => {
    const opts: RandomCheckpointOptions = { numLayers: 3, dtype: 'bf16', qkvBias: true, oBias: true };
    const files = randomHfFolder(opts, { sharded: true });
    expect(files.has('model.safetensors')).toBe(false);
    const shards = new Set(Object.values(json(files, 'model.safetensors.index.json').weight_map));
    expect(shards.size).toBe(3);
    for (const shard of shards) expect(files.has(shard as string)).toBe(true);
    expectSameCheckpoint(await loadHfFolder(new MemorySource(SRC, files)), randomCheckpoint(opts));
  });

  test('each shard is read once, by ranges that cover it exactly (never whole)', async () => {
    const files = randomHfFolder({}, { sharded: true });
    const whole: string[] = [];
    const ranges = new Map<string, [number, number][]>();
    const src = new MemorySource(SRC, files);
    const read = src.read.bind(src);
    src.read = (path) => (whole.push(path), read(path));
    src.readRange = async (path, offset, length) => {
      ranges.set(path, [...(ranges.get(path) ?? []), [offset, length]]);
      return rangeOf(await read(path), offset, length, path); // what MemorySource.readRange does, past the spy on read
    };
    await loadHfFolder(src);
    expect(whole.filter((p) => p.endsWith('.safetensors'))).toEqual([]);
    const shards = [...files.keys()].filter((p) => p.endsWith('.safetensors'));
    expect([...ranges.keys()].sort()).toEqual(shards.sort());
    for (const shard of shards) {
      // the 8-byte length, the header, then the tensors: back to back, each byte once
      let at = 0;
      for (const [offset, length] of ranges.get(shard)!) {
        expect(offset, shard).toBe(at);
        at += length;
      }
      expect(at, shard).toBe(files.get(shard)!.length);
    }
  });

  test('written files: config.json keys, generation_config.json, metadata format pt', () => {
    const files = writeHfFolder(randomCheckpoint({ numLayers: 3, tie: true, dtype: 'f16' }));
    expect([...files.keys()].sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const config = json(files, 'config.json');
    expect(config).toMatchObject({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 3, tie_word_embeddings: true, torch_dtype: 'float16' });
    expect(json(files, 'generation_config.json')).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
    const weights = parseSafetensors(files.get('model.safetensors')!, 'model.safetensors');
    expect(weights.has('lm_head.weight')).toBe(false);
    expect(weights.get('model.norm.weight')!.dtype).toBe('f16');
  });

  test('tokenizer files (incl. special_tokens_map.json) are carried through load and written back', async () => {
    const files = randomHfFolder();
    files.set('special_tokens_map.json', new TextEncoder().encode('{"bos_token": "<s>"}'));
    const rewritten = writeHfFolder(await loadHfFolder(new MemorySource(SRC, files)));
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      expect(rewritten.get(name), name).toEqual(files.get(name));
    }
  });

  test('a Mistral config.json says it has no sliding window (transformers would default to 4096)', () => {
    const files = writeHfFolder(randomCheckpoint({ architecture: 'MistralForCausalLM' }));
    expect(json(files, 'config.json')).toMatchObject({ model_type: 'mistral', sliding_window: null });
  });

  test('a tied checkpoint that still stores lm_head.weight loads without it', async () => {
    const files = randomHfFolder({ tie: true });
    const ck = randomCheckpoint({ tie: true });
    const withHead = new Map(ck.tensors).set('lm_head.weight', ck.tensors.get('model.embed_tokens.weight')!);
    files.set('model.safetensors', writeSafetensors(withHead));
    expectSameCheckpoint(await loadHfFolder(new MemorySource(SRC, files)), ck);
  });

  test('sharding above maxShardSize as save_pretrained does: model order, a new shard when the next tensor would not fit', async () => {
    const ck = randomCheckpoint({ numLayers: 2, hiddenSize: 32, intermediateSize: 64, vocabSize: 300 });
    // tensor bytes: embedding 300·32·4 = 38400, q/k/v/o 4096, gate/up/down 8192, norms 128, lm_head 38400
    const files = writeHfFolder(ck, { maxShardSize: 30_000 });
    const index = json(files, 'model.safetensors.index.json');
    const shardOf = (name: string) => index.weight_map[name] as string;
    const count = new Set(Object.values(index.weight_map)).size;
    expect(shardOf('model.embed_tokens.weight')).toBe(`model-00001-of-0000${count}.safetensors`); // larger than the limit: alone
    expect(Object.values(index.weight_map).filter((s) => s === shardOf('model.embed_tokens.weight'))).toHaveLength(1);
    expect(shardOf('model.layers.0.self_attn.q_proj.weight')).toBe(`model-00002-of-0000${count}.safetensors`);
    // huggingface_hub puts an oversized tensor in its shard at once: lm_head's comes before the final norm's
    expect(shardOf('lm_head.weight')).toBe(`model-0000${count - 1}-of-0000${count}.safetensors`);
    expect(shardOf('model.norm.weight')).toBe(`model-0000${count}-of-0000${count}.safetensors`);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort());
    for (const [name, bytes] of files) {
      if (!name.endsWith('.safetensors')) continue;
      const tensors = [...parseSafetensors(bytes, name).values()];
      const size = tensors.reduce((n, t) => n + t.data.byteLength, 0);
      expect(size <= 30_000 || tensors.length === 1, name).toBe(true);
    }
    expectSameCheckpoint(await loadHfFolder(new MemorySource(SRC, files)), ck);
    // at or above the weights' size: one model.safetensors, no index
    expect([...writeHfFolder(ck, { maxShardSize: 1e9 }).keys()]).toContain('model.safetensors');
    expect(() => writeHfFolder(ck, { maxShardSize: 0 })).toThrow(/largest shard size/);
  });

  test('hfFolderFiles: weights as views of the tensors, sizes that add up', () => {
    const ck = randomCheckpoint({ dtype: 'bf16' });
    const files = hfFolderFiles(ck);
    const weights = files.find((f) => f.name === 'model.safetensors')!;
    const chunks = [...weights.chunks];
    expect(chunks.slice(1).every((c) => [...ck.tensors.values()].some((t) => t.data.buffer === c.buffer))).toBe(true);
    for (const f of files) expect([...f.chunks].reduce((n, c) => n + c.length, 0), f.name).toBe(f.size);
  });

  test('writeFolder → DirSource on disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lopper-hf-'));
    try {
      const opts: RandomCheckpointOptions = { numKvHeads: 2, dtype: 'bf16' };
      const files = randomHfFolder(opts, { sharded: true });
      await writeFolder(join(dir, 'nested', 'model'), files);
      expect(new Uint8Array(await readFile(join(dir, 'nested', 'model', 'config.json')))).toEqual(files.get('config.json'));
      expectSameCheckpoint(await loadHfFolder(new DirSource(join(dir, 'nested', 'model'))), randomCheckpoint(opts));
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

describe('Qwen3 configs as published (../shared/configs)', () => {
  const published = async (name: string) => JSON.parse(await readFile(join(SHARED, 'configs', name), 'utf8')) as Record<string, unknown>;

  test('Qwen3-0.6B and Qwen3-8B read exactly as published: q/k norms, head_dim 128 ≠ D/H, no biases, θ 1e6', async () => {
    for (const [name, D, F, L, H, tied] of [
      ['Qwen__Qwen3-0.6B.json', 1024, 3072, 28, 16, true],
      ['Qwen__Qwen3-8B.json', 4096, 12288, 36, 32, false],
    ] as const) {
      const c = fromHfConfig(await published(name), name);
      expect(c, name).toEqual({
        architecture: 'Qwen3ForCausalLM',
        hiddenSize: D,
        intermediateSize: F,
        numLayers: L,
        numHeads: H,
        numKvHeads: 8,
        headDim: 128,
        vocabSize: 151936,
        maxPositions: 40960,
        rmsNormEps: 1e-6,
        ropeTheta: 1e6,
        ropeScaling: null,
        tieWordEmbeddings: tied,
        qkvBias: false,
        oBias: false,
        mlpBias: false,
        qkNorm: true,
        bosTokenId: 151643,
        eosTokenId: 151645,
        torchDtype: 'bfloat16',
      });
      const shapes = expectedTensors(c);
      expect(shapes.get('model.layers.0.self_attn.q_norm.weight')).toEqual([128]);
      expect(shapes.get(`model.layers.${L - 1}.self_attn.k_norm.weight`)).toEqual([128]);
      expect(shapes.get('model.layers.0.self_attn.q_proj.weight')).toEqual([H * 128, D]);
      expect(shapes.has('model.layers.0.self_attn.q_proj.bias')).toBe(false);
      expect(shapes.has('lm_head.weight')).toBe(!tied);
      expect(shapes.size).toBe(L * 11 + 2 + (tied ? 0 : 1));
    }
  });

  test('a folder whose config.json has Qwen3-0.6B\'s keys (dims shrunk) loads, and writes back a config transformers reads as Qwen3', async () => {
    const opts: RandomCheckpointOptions = {
      architecture: 'Qwen3ForCausalLM', hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16,
      tie: true, ropeTheta: 1e6, dtype: 'bf16', seed: 9,
    };
    const shrunk = {
      ...(await published('Qwen__Qwen3-0.6B.json')),
      hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, max_window_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      head_dim: 16, vocab_size: 259, bos_token_id: 1, eos_token_id: 2, // the byte tokenizer's ids
    };
    const files = randomHfFolder(opts);
    setJson(files, 'config.json', shrunk);
    const loaded = await loadHfFolder(new MemorySource(SRC, files));
    const want = { ...randomConfig(opts), rmsNormEps: 1e-6, maxPositions: 40960 };
    expect(loaded.config).toEqual(want);
    expectSameCheckpoint(loaded, { ...randomCheckpoint(opts), config: want });

    const rewritten = writeHfFolder(loaded);
    expect(json(rewritten, 'config.json')).toMatchObject({
      architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 16, attention_bias: false, use_sliding_window: false,
      sliding_window: null, tie_word_embeddings: true, rope_theta: 1e6, rms_norm_eps: 1e-6, torch_dtype: 'bfloat16',
    });
    expect(json(rewritten, 'config.json')).not.toHaveProperty('mlp_bias');
    expectSameCheckpoint(await loadHfFolder(new MemorySource(SRC, rewritten)), loaded);
  });

  test('use_sliding_window: true is refused with the reason', async () => {
    const files = randomHfFolder({ architecture: 'Qwen3ForCausalLM' });
    setJson(files, 'config.json', { ...json(files, 'config.json'), use_sliding_window: true, sliding_window: 4096, max_window_layers: 1 });
    await expectLoadError(files, 'unsupported-config', `${SRC}/config.json`, 'sliding-window attention (use_sliding_window: true) is not supported');
  });
});

describe('HF folder errors name the file', () => {
  test('truncated model.safetensors', async () => {
    const files = randomHfFolder();
    const bytes = files.get('model.safetensors')!;
    files.set('model.safetensors', bytes.subarray(0, bytes.length - 10));
    await expectLoadError(files, 'truncated', `${SRC}/model.safetensors`);
  });

  test('header length past the end of model.safetensors', async () => {
    const files = randomHfFolder();
    const bytes = files.get('model.safetensors')!.slice();
    new DataView(bytes.buffer).setBigUint64(0, 1n << 40n, true);
    files.set('model.safetensors', bytes);
    await expectLoadError(files, 'truncated', `${SRC}/model.safetensors`, String(1n << 40n));
  });

  test('a shape that disagrees with config.json', async () => {
    const files = randomHfFolder({ intermediateSize: 64 });
    setJson(files, 'config.json', { ...json(files, 'config.json'), intermediate_size: 48 });
    await expectLoadError(files, 'shape-mismatch', `${SRC}/model.safetensors`, 'model.layers.0.mlp.gate_proj.weight', '[64,32]', '[48,32]');
  });

  test('a missing tensor', async () => {
    const files = randomHfFolder();
    const ck = randomCheckpoint();
    ck.tensors.delete('model.layers.1.self_attn.k_proj.weight');
    files.set('model.safetensors', writeSafetensors(ck.tensors));
    await expectLoadError(files, 'missing-tensor', `${SRC}/model.safetensors`, 'model.layers.1.self_attn.k_proj.weight');
  });

  test('a tensor the index places in a shard that lacks it', async () => {
    const files = randomHfFolder({}, { sharded: true });
    const index = json(files, 'model.safetensors.index.json');
    const shard = index.weight_map['model.norm.weight'];
    const other = Object.values(index.weight_map).find((s) => s !== shard);
    setJson(files, 'model.safetensors.index.json', { ...index, weight_map: { ...index.weight_map, 'model.norm.weight': other } });
    await expectLoadError(files, 'missing-tensor', `${SRC}/${other}`, 'model.norm.weight');
  });

  test('a shard listed in the index that is absent', async () => {
    const files = randomHfFolder({}, { sharded: true });
    files.delete('model-00002-of-00003.safetensors');
    await expectLoadError(files, 'not-found', `${SRC}/model-00002-of-00003.safetensors`, 'model.safetensors.index.json');
  });

  test('an unknown dtype', async () => {
    const files = randomHfFolder();
    const bytes = files.get('model.safetensors')!;
    const text = new TextDecoder('latin1').decode(bytes);
    const at = text.indexOf('"F32"', text.indexOf('"model.embed_tokens.weight"'));
    bytes.set(new TextEncoder().encode('"F64"'), at); // same length: the header stays well formed
    await expectLoadError(files, 'unknown-dtype', `${SRC}/model.safetensors`, 'model.embed_tokens.weight', 'F64');
  });

  test('an unsupported architecture', async () => {
    const files = randomHfFolder();
    setJson(files, 'config.json', { ...json(files, 'config.json'), architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' });
    await expectLoadError(files, 'unsupported-architecture', `${SRC}/config.json`, 'GPT2LMHeadModel');
  });

  test('config.json that is not JSON', async () => {
    const files = randomHfFolder();
    files.set('config.json', new TextEncoder().encode('{"architectures": ['));
    await expectLoadError(files, 'corrupt', `${SRC}/config.json`);
  });

  test('no config.json', async () => {
    const files = randomHfFolder();
    files.delete('config.json');
    await expectLoadError(files, 'not-found', SRC, 'config.json', 'model.safetensors', 'tokenizer.json');
  });

  test('no weights', async () => {
    const files = randomHfFolder();
    files.delete('model.safetensors');
    await expectLoadError(files, 'not-found', SRC, 'model.safetensors', 'model.safetensors.index.json');
  });

  test('no tokenizer.json', async () => {
    const files = randomHfFolder();
    files.delete('tokenizer.json');
    await expectLoadError(files, 'not-found', SRC, 'tokenizer.json');
  });
});

describe('ByteTokenizer (test helper) through its tokenizer.json', () => {
  test('ids are bytes + 3 and decode restores the text', async () => {
    const tok = new ByteTokenizer();
    expect(tok.encode('Hi é')).toEqual([0x48 + 3, 0x69 + 3, 0x20 + 3, 0xc3 + 3, 0xa9 + 3]);
    expect(tok.decode([1, ...tok.encode(TEXT), 2])).toBe(TEXT);
    const hf = await HfTokenizer.create(tok.files(), { bosTokenId: 1, eosTokenId: 2, vocabSize: tok.vocabSize }, SRC);
    expect(hf.encode(TEXT)).toEqual(tok.encode(TEXT));
    expect(hf.decode(tok.encode(TEXT))).toBe(TEXT);
  });

  test('a vocabulary under 259 turns characters whose bytes do not fit into <unk>', async () => {
    const tok = new ByteTokenizer(100);
    expect(tok.encode('A_a€')).toEqual([0x41 + 3, 0x5f + 3, 0, 0]);
    expect((await HfTokenizer.create(tok.files(), { bosTokenId: 1, eosTokenId: 2, vocabSize: tok.vocabSize }, SRC)).encode('A_a€')).toEqual([0x41 + 3, 0x5f + 3, 0, 0]);
  });
});

describe('HfTokenizer', () => {
  const dir = new URL('../../../shared/models/tiny-random-llama-onnx-fp16/', import.meta.url);

  test('the Llama-2 32k tokenizer.json encodes "Hello world" to [15043, 3186] and decodes back', async () => {
    const files = {
      'tokenizer.json': new Uint8Array(await readFile(new URL('tokenizer.json', dir))),
      'tokenizer_config.json': new Uint8Array(await readFile(new URL('tokenizer_config.json', dir))),
    };
    const tok = await HfTokenizer.create(files, { bosTokenId: 1, eosTokenId: 2, vocabSize: 32000 }, dir.pathname);
    expect(tok.kind).toBe('hf');
    expect(tok.vocabSize).toBe(32000);
    expect(tok.encode('Hello world')).toEqual([15043, 3186]);
    expect(tok.decode([1, 15043, 3186, 2])).toBe('Hello world');
    expect(tok.decode([])).toBe('');
    const out = tok.files();
    expect(Object.keys(out).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    for (const [name, bytes] of Object.entries(files)) expect(out[name]).toBe(bytes);
  });

  test('a tokenizer.json that is not JSON names the file', async () => {
    const make = () => HfTokenizer.create({ 'tokenizer.json': new TextEncoder().encode('not json') }, { bosTokenId: 1, eosTokenId: 2, vocabSize: 10 }, SRC);
    await expect(make()).rejects.toThrow(LopperError);
    await expect(make()).rejects.toThrow(`${SRC}/tokenizer.json`);
  });
});
