import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { llama2cChunks, llama2cFiles, llama2cProblems, loadLlama2c, writeLlama2c } from '../../src/engine/formats/llama2c';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { expectedTensors, layerPrefix, type Checkpoint } from '../../src/engine/model/checkpoint';
import { mulberry32 } from '../helpers/random-checkpoint';

const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));

/** The three llama2.c models in ../shared/models and their headers (see its README). */
const CASES = [
  { model: 'stories260K/stories260K.bin', tokenizer: 'stories260K/tok512.bin', header: [64, 172, 5, 8, 4, 512, 512] },
  { model: 'llama2xs-tinystories/model.bin', tokenizer: 'llama2xs-tinystories/tok512.bin', header: [64, 192, 5, 8, 4, 512, 256] },
  { model: 'babyllama-tok105/model5000.bin', tokenizer: 'babyllama-tok105/tok105.bin', header: [128, 352, 5, 8, 4, 105, 256] },
];

const read = async (rel: string) => new Uint8Array(await readFile(join(MODELS, rel)));

async function load(rel: { model: string; tokenizer: string }): Promise<{ ck: Checkpoint; bytes: Uint8Array }> {
  const bytes = await read(rel.model);
  const ck = loadLlama2c(bytes, await read(rel.tokenizer), rel);
  return { ck, bytes };
}

/** Offsets (in floats after the 28-byte header) of one model's sections, straight from the README's layout. */
function layout(h: number[]) {
  const [dim, hidden, L, heads, kvHeads, vocab, seq] = h;
  const V = Math.abs(vocab);
  const hd = dim / heads;
  const kv = kvHeads * hd;
  const sizes: [string, number][] = [
    ['emb', V * dim], ['rms_att', L * dim], ['wq', L * dim * dim], ['wk', L * kv * dim], ['wv', L * kv * dim],
    ['wo', L * dim * dim], ['rms_ffn', L * dim], ['w1', L * hidden * dim], ['w2', L * dim * hidden],
    ['w3', L * hidden * dim], ['rms_final', dim], ['cos', (seq * hd) / 2], ['sin', (seq * hd) / 2],
  ];
  const at: Record<string, number> = {};
  let off = 0;
  for (const [name, n] of sizes) {
    at[name] = off;
    off += n;
  }
  return { at, end: off };
}

/** Index of the first element where a and b differ (-1: equal); toEqual is slow on megabytes. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

function expectLopperError(fn: () => unknown, code: string, ...inMessage: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(LopperError);
  expect((err as LopperError).code).toBe(code);
  for (const s of inMessage) expect((err as LopperError).message).toContain(s);
}

describe.each(CASES)('$model', (c) => {
  test('header, config and tensor shapes', async () => {
    const { ck, bytes } = await load(c);
    const [dim, hidden, layers, heads, kvHeads, vocab, seq] = c.header;
    expect(Array.from(new Int32Array(bytes.slice(0, 28).buffer))).toEqual(c.header);
    expect(ck.format).toBe('llama2c');
    expect(ck.config).toMatchObject({
      architecture: 'LlamaForCausalLM',
      hiddenSize: dim,
      intermediateSize: hidden,
      numLayers: layers,
      numHeads: heads,
      numKvHeads: kvHeads,
      headDim: dim / heads,
      vocabSize: vocab,
      maxPositions: seq,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: true,
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      qkNorm: false,
      bosTokenId: 1,
      eosTokenId: 2,
    });
    const expected = expectedTensors(ck.config);
    expect([...ck.tensors.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, shape] of expected) {
      const t = ck.tensors.get(name)!;
      expect(t.shape, name).toEqual(shape);
      expect(t.dtype).toBe('f32');
      expect(t.data.length).toBe(shape.reduce((a, b) => a * b, 1));
    }
    expect(ck.tokenizer.kind).toBe('llama2c');
    expect(ck.tokenizer.vocabSize).toBe(vocab);
  });

  test('unpermuted weights are the file\'s floats; q/k rows are HF-permuted', async () => {
    const { ck, bytes } = await load(c);
    const floats = new Float32Array(bytes.slice(28).buffer);
    const { at } = layout(c.header);
    const [dim, hidden, , heads, kvHeads] = c.header;
    const hd = dim / heads;
    expect(firstDifference(ck.tensors.get('model.embed_tokens.weight')!.data, floats.subarray(0, at.rms_att))).toBe(-1);
    const w2 = ck.tensors.get(layerPrefix(3) + 'mlp.down_proj.weight')!.data;
    expect(firstDifference(w2, floats.subarray(at.w2 + 3 * dim * hidden, at.w2 + 4 * dim * hidden))).toBe(-1);
    // HF permute: row h*hd + s*hd/2 + i  ←  llama2.c row h*hd + 2i + s
    const wk = ck.tensors.get(layerPrefix(2) + 'self_attn.k_proj.weight')!.data;
    const kvDim = kvHeads * hd;
    const fileWk = floats.subarray(at.wk + 2 * kvDim * dim, at.wk + 3 * kvDim * dim);
    for (let h = 0; h < kvHeads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        for (let s = 0; s < 2; s++) {
          const hfRow = h * hd + s * (hd / 2) + i;
          const cRow = h * hd + 2 * i + s;
          expect(firstDifference(wk.subarray(hfRow * dim, (hfRow + 1) * dim), fileWk.subarray(cRow * dim, (cRow + 1) * dim))).toBe(-1);
        }
      }
    }
  });

  test('writeLlama2c(load(x)) equals x but for last-bit differences in the RoPE tables', async () => {
    const { ck, bytes } = await load(c);
    const out = writeLlama2c(ck);
    expect(out.byteLength).toBe(bytes.byteLength);
    const { at, end } = layout(c.header);
    const tablesStart = 28 + 4 * at.cos;
    const tablesEnd = 28 + 4 * end;
    expect(firstDifference(out.subarray(0, tablesStart), bytes.subarray(0, tablesStart))).toBe(-1);
    expect(firstDifference(out.subarray(tablesEnd), bytes.subarray(tablesEnd))).toBe(-1);
    // freq_cis_real/imag: PyTorch's float32 cos/sin are within 1 ulp; ours are correctly rounded.
    const mine = new Int32Array(out.slice(tablesStart, tablesEnd).buffer);
    const theirs = new Int32Array(bytes.slice(tablesStart, tablesEnd).buffer);
    let differing = 0;
    let maxUlps = 0;
    for (let i = 0; i < mine.length; i++) {
      maxUlps = Math.max(maxUlps, Math.abs(mine[i] - theirs[i]));
      if (mine[i] !== theirs[i]) differing++;
    }
    expect(maxUlps).toBe(1);
    expect(differing / mine.length).toBeLessThan(0.06);
    // and the written file loads back to the same tensors
    const again = loadLlama2c(out, ck.tokenizer.files()['tokenizer.bin'], { model: 'written.bin', tokenizer: 'tok.bin' });
    for (const [name, t] of ck.tensors) expect(firstDifference(again.tensors.get(name)!.data, t.data), name).toBe(-1);
  });
});

describe('RoPE layouts', () => {
  /** llama2.c run.c: rotate pairs (2i, 2i+1) of each head by pos · 10000^(-2i/hd). */
  function ropeInterleaved(v: Float64Array, hd: number, pos: number): Float64Array {
    const out = new Float64Array(v.length);
    for (let j = 0; j < v.length; j += 2) {
      const i = (j % hd) / 2;
      const a = pos * 10000 ** (-(2 * i) / hd);
      out[j] = v[j] * Math.cos(a) - v[j + 1] * Math.sin(a);
      out[j + 1] = v[j] * Math.sin(a) + v[j + 1] * Math.cos(a);
    }
    return out;
  }
  /** Hugging Face rotate_half: pair (i, i + hd/2) of each head, same frequencies. */
  function ropeHalves(v: Float64Array, hd: number, pos: number): Float64Array {
    const out = new Float64Array(v.length);
    const half = hd / 2;
    for (let h = 0; h < v.length; h += hd) {
      for (let i = 0; i < half; i++) {
        const a = pos * 10000 ** (-(2 * i) / hd);
        const x = v[h + i];
        const y = v[h + i + half];
        out[h + i] = x * Math.cos(a) - y * Math.sin(a);
        out[h + i + half] = x * Math.sin(a) + y * Math.cos(a);
      }
    }
    return out;
  }
  const matvec = (w: Float32Array, x: Float64Array) => {
    const rows = w.length / x.length;
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) for (let k = 0; k < x.length; k++) out[r] += w[r * x.length + k] * x[k];
    return out;
  };

  test.each(CASES)('interleaved RoPE with the file\'s wq/wk = rotate-half RoPE with the imported ones ($model)', async (c) => {
    const { ck, bytes } = await load(c);
    const floats = new Float32Array(bytes.slice(28).buffer);
    const { at } = layout(c.header);
    const [dim, , , heads, kvHeads] = c.header;
    const hd = dim / heads;
    const kvDim = kvHeads * hd;
    const rand = mulberry32(7);
    const l = 1;
    const x = Float64Array.from({ length: dim }, () => rand() * 2 - 1);
    const fileWq = floats.subarray(at.wq + l * dim * dim, at.wq + (l + 1) * dim * dim);
    const fileWk = floats.subarray(at.wk + l * kvDim * dim, at.wk + (l + 1) * kvDim * dim);
    const hfWq = ck.tensors.get(layerPrefix(l) + 'self_attn.q_proj.weight')!.data as Float32Array;
    const hfWk = ck.tensors.get(layerPrefix(l) + 'self_attn.k_proj.weight')!.data as Float32Array;
    for (const [posQ, posK] of [[0, 0], [5, 3], [200, 17]]) {
      const q1 = ropeInterleaved(matvec(fileWq, x), hd, posQ);
      const k1 = ropeInterleaved(matvec(fileWk, x), hd, posK);
      const q2 = ropeHalves(matvec(hfWq, x), hd, posQ);
      const k2 = ropeHalves(matvec(hfWk, x), hd, posK);
      // element by element, through the permutation
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < hd / 2; i++) {
          for (let s = 0; s < 2; s++) {
            expect(Math.abs(q2[h * hd + s * (hd / 2) + i] - q1[h * hd + 2 * i + s])).toBeLessThan(1e-12);
          }
        }
      }
      // and what attention sees: q·k per head (GQA: query head h reads kv head h / (H/Hkv))
      for (let h = 0; h < heads; h++) {
        const kh = Math.floor(h / (heads / kvHeads));
        let dot1 = 0;
        let dot2 = 0;
        for (let j = 0; j < hd; j++) {
          dot1 += q1[h * hd + j] * k1[kh * hd + j];
          dot2 += q2[h * hd + j] * k2[kh * hd + j];
        }
        expect(Math.abs(dot1 - dot2)).toBeLessThan(1e-12);
      }
    }
  });
});

describe('errors', () => {
  const stories = CASES[0];

  test('a truncated or oversized model names the file and both byte counts', async () => {
    const bytes = await read(stories.model);
    const tok = await read(stories.tokenizer);
    const names = { model: 'cut.bin', tokenizer: 'tok512.bin' };
    expectLopperError(() => loadLlama2c(bytes.subarray(0, bytes.length - 10), tok, names), 'truncated', 'cut.bin', '1056540', '1056530');
    const longer = new Uint8Array(bytes.length + 4);
    longer.set(bytes);
    expectLopperError(() => loadLlama2c(longer, tok, names), 'corrupt', 'cut.bin', '1056540', '1056544');
    expectLopperError(() => loadLlama2c(bytes.subarray(0, 20), tok, names), 'truncated', 'cut.bin');
  });

  test('a truncated tokenizer, or one of the wrong size, is refused', async () => {
    const bytes = await read(stories.model);
    const tok = await read(stories.tokenizer);
    const short = tok.subarray(0, tok.length - 3);
    expectLopperError(() => loadLlama2c(bytes, short, { model: 'm.bin', tokenizer: 'short.bin' }), 'truncated', 'short.bin');
    const tok105 = await read('babyllama-tok105/tok105.bin');
    expectLopperError(() => loadLlama2c(bytes, tok105, { model: 'm.bin', tokenizer: 'tok105.bin' }), 'shape-mismatch', 'tok105.bin', '105', '512');
  });

  test('a later llama2.c export version is named, not misread', async () => {
    const bytes = (await read(stories.model)).slice();
    new DataView(bytes.buffer).setUint32(0, 0x616b3432, true);
    new DataView(bytes.buffer).setInt32(4, 2, true);
    const tok = await read(stories.tokenizer);
    expectLopperError(() => loadLlama2c(bytes, tok, { model: 'v2.bin', tokenizer: 't.bin' }), 'unsupported-config', 'version 2');
  });

  test('writeLlama2c refuses what llama2.c cannot express', async () => {
    const { ck } = await load(stories);
    const variants: [Partial<Checkpoint['config']>, string][] = [
      [{ ropeTheta: 500000 }, 'rope_theta 500000'],
      [{ rmsNormEps: 1e-6 }, 'rms_norm_eps'],
      [{ mlpBias: true }, 'MLP biases'],
      [{ qkvBias: true }, 'attention biases'],
      [{ headDim: 16 }, 'head_dim 16'],
      [{ ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } }, 'RoPE scaling'],
      [{ bosTokenId: 128000 }, 'BOS/EOS'],
      [{ architecture: 'Qwen3ForCausalLM', qkNorm: true }, 'q/k RMSNorm (Qwen3'],
    ];
    for (const [change, message] of variants) {
      expectLopperError(() => writeLlama2c({ ...ck, config: { ...ck.config, ...change } }), 'unsupported-config', message);
    }
  });

  test('llama2cChunks: the same bytes as writeLlama2c, made as they are read; llama2cFiles names them', async () => {
    const { ck } = await load(stories);
    const { size, chunks } = llama2cChunks(ck);
    const whole = writeLlama2c(ck);
    expect(size).toBe(whole.length);
    const list = [...chunks];
    expect(list.length).toBe(1 + 1 + 9 * 5 + 1 + 2); // header, embedding, 9 weights × 5 layers, norm, RoPE tables
    expect(firstDifference(new Uint8Array(Buffer.concat(list)), whole)).toBe(-1);
    // an f32 tensor that needs no RoPE permutation is a view of the checkpoint's own memory
    expect(list[1].buffer).toBe(ck.tensors.get('model.embed_tokens.weight')!.data.buffer);
    const files = llama2cFiles(ck);
    expect(files.map((f) => f.name)).toEqual(['model.bin', 'tokenizer.bin']);
    expect([...files[1].chunks][0]).toEqual(ck.tokenizer.files()['tokenizer.bin']);
  });

  test('llama2cProblems: GQA and an untied head are fine, the rest is named', async () => {
    const { ck } = await load(stories);
    expect(llama2cProblems({ ...ck.config, numKvHeads: 2, tieWordEmbeddings: false })).toEqual([]);
    expect(llama2cProblems({ ...ck.config, qkvBias: true, oBias: true, mlpBias: true, ropeTheta: 1e6 })).toEqual([
      'attention biases',
      'MLP biases',
      'rope_theta 1000000 (llama2.c uses 10000)',
    ]);
  });

  test('an untied classifier is written after the RoPE tables with a negative vocab_size', async () => {
    const { ck } = await load(stories);
    const emb = ck.tensors.get('model.embed_tokens.weight')!;
    const lmHead = { ...emb, data: (emb.data as Float32Array).map((v) => -v) };
    const untied: Checkpoint = {
      ...ck,
      config: { ...ck.config, tieWordEmbeddings: false },
      tensors: new Map([...ck.tensors, ['lm_head.weight', lmHead]]),
    };
    const out = writeLlama2c(untied);
    expect(new DataView(out.buffer).getInt32(20, true)).toBe(-512);
    const again = loadLlama2c(out, ck.tokenizer.files()['tokenizer.bin'], { model: 'untied.bin', tokenizer: 't.bin' });
    expect(again.config.tieWordEmbeddings).toBe(false);
    expect(firstDifference(again.tensors.get('lm_head.weight')!.data, lmHead.data)).toBe(-1);
    expect(firstDifference(again.tensors.get('model.embed_tokens.weight')!.data, emb.data)).toBe(-1);
  });
});

describe('loadLlama2cFile', () => {
  test('finds the one tokenizer beside the model', async () => {
    const ck = await loadLlama2cFile(join(MODELS, 'babyllama-tok105/model5000.bin'));
    expect(ck.tokenizer.vocabSize).toBe(105);
    expect(ck.source).toBe(join(MODELS, 'babyllama-tok105/model5000.bin'));
  });

  test('asks for --tokenizer when there is none or several', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lopper-llama2c-'));
    try {
      const model = join(dir, 'model.bin');
      await symlink(join(MODELS, 'stories260K/stories260K.bin'), model);
      await expect(loadLlama2cFile(model)).rejects.toMatchObject({ code: 'not-found', message: expect.stringContaining('--tokenizer') });
      await symlink(join(MODELS, 'stories260K/tok512.bin'), join(dir, 'tok512.bin'));
      await symlink(join(MODELS, 'babyllama-tok105/tok105.bin'), join(dir, 'tokenizer.bin'));
      await expect(loadLlama2cFile(model)).rejects.toMatchObject({
        code: 'bad-option',
        message: expect.stringMatching(/tok512\.bin, tokenizer\.bin.*--tokenizer/),
      });
      const ck = await loadLlama2cFile(model, join(dir, 'tok512.bin'));
      expect(ck.tokenizer.vocabSize).toBe(512);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
