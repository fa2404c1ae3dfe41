/**
 * Files of any size (issue 11, item 3): safetensors are read by ranges — the length, the
 * header (validated before anything is allocated), then each tensor's own bytes — never one
 * read of a whole weight file, so a single model.safetensors over 2 GiB loads.
 *
 * The big case is Llama-3.2-1B exactly as the hub lays it out: its published config.json,
 * the real Llama 3 tokenizer, and one bf16 model.safetensors of 2.47 GB with the real
 * tensor names, shapes and order. Its data is a sparse hole (zeros: no disk used, finite
 * values); what is checked is the reading, not the numbers.
 */
import { closeSync, copyFileSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadHfFolder } from '../../src/engine/formats/hf';
import { DirSource } from '../../src/engine/formats/node-source';
import { parseSafetensors, readSafetensors, writeSafetensors } from '../../src/engine/formats/safetensors';
import { MemorySource } from '../../src/engine/formats/source';
import { expectedTensors, parameterCount } from '../../src/engine/model/checkpoint';
import { fromHfConfig } from '../../src/engine/model/config';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { lopper } from '../helpers/cli';
import { SHARED } from '../helpers/paths';
import { randomCheckpoint } from '../helpers/random-checkpoint';

const reader = (bytes: Uint8Array) => {
  const src = new MemorySource('mem', new Map([['f.safetensors', bytes]]));
  return { size: bytes.length, read: (o: number, n: number) => src.readRange('f.safetensors', o, n) };
};
const outcome = async <T>(f: () => Promise<T> | T) => {
  try {
    return { ok: await f() };
  } catch (e) {
    return { error: `${(e as { code?: string }).code}: ${(e as Error).message}` };
  }
};

describe('safetensors by ranges', () => {
  test('readSafetensors gives what parseSafetensors gives, tensors and errors alike', async () => {
    const ck = randomCheckpoint({ dtype: 'bf16', numLayers: 2, seed: 3 });
    const good = writeSafetensors(ck.tensors);
    const variants: Uint8Array[] = [good, good.subarray(0, 5), good.subarray(0, good.length - 2), new Uint8Array([...good, 0, 0])];
    const lying = good.slice();
    new DataView(lying.buffer).setBigUint64(0, BigInt(good.length), true); // header length past the end
    variants.push(lying);
    const short = good.slice();
    new DataView(short.buffer).setBigUint64(0, new DataView(good.buffer).getBigUint64(0, true) - 8n, true); // a header 8 bytes short
    variants.push(short);
    for (const [i, bytes] of variants.entries()) {
      const a = await outcome(() => parseSafetensors(bytes, 'f.safetensors'));
      const b = await outcome(() => readSafetensors(reader(bytes), 'f.safetensors'));
      expect(b, `variant ${i}`).toEqual(a);
      if (i > 0) expect('error' in b, `variant ${i} is refused`).toBe(true);
    }
  });

  test('a file source refuses a range outside the file', async () => {
    const src = new MemorySource('mem', new Map([['a', new Uint8Array(10)]]));
    await expect(src.readRange('a', 8, 4)).rejects.toMatchObject({ code: 'truncated' });
  });
});

describe('a Llama-3.2-1B folder with one 2.47 GB model.safetensors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-llama32-1b-'));
  let fileBytes = 0;

  beforeAll(() => {
    copyFileSync(join(SHARED, 'configs/meta-llama__Llama-3.2-1B.json'), join(dir, 'config.json'));
    copyFileSync(join(SHARED, 'tokenizers/llama3/tokenizer.json'), join(dir, 'tokenizer.json'));
    const config = fromHfConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), 'config.json');
    // The hub's file: tensors by name, bf16, back to back after the header.
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const [name, shape] of [...expectedTensors(config)].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const bytes = shape.reduce((a, b) => a * b, 1) * 2;
      header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    const json = Buffer.from(JSON.stringify(header));
    const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(padded.length));
    const fd = openSync(join(dir, 'model.safetensors'), 'w');
    writeSync(fd, len);
    writeSync(fd, padded);
    ftruncateSync(fd, 8 + padded.length + offset); // the data: a hole of zeros
    closeSync(fd);
    fileBytes = statSync(join(dir, 'model.safetensors')).size;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('loads in-process: every tensor read by its own range, as views (no second copy of the file)', async () => {
    expect(fileBytes).toBeGreaterThan(2 ** 31); // over what one fs.readFile can hold
    expect(fileBytes).toBeGreaterThan(2.47e9);
    const rss0 = process.memoryUsage().rss;
    const ck = await loadHfFolder(new DirSource(dir));
    const grew = process.memoryUsage().rss - rss0;
    console.log(`Llama-3.2-1B shape: ${(fileBytes / 1e9).toFixed(2)} GB file, resident memory +${(grew / 1e9).toFixed(2)} GB after loading`);
    expect(ck.config.numLayers).toBe(16);
    expect(parameterCount(ck)).toBe(1_235_814_400);
    expect(new Set([...ck.tensors.values()].map((t) => t.dtype))).toEqual(new Set(['bf16']));
    // Each tensor owns exactly its own bytes: nothing holds the whole file.
    for (const [name, t] of ck.tensors) expect(t.data.buffer.byteLength, name).toBe(t.data.byteLength);
    expect(grew).toBeLessThan(1.5 * fileBytes);

    // Its passes stream layer by layer (the whole graph would need ~10 GB of fp32): a zero model
    // predicts the uniform distribution, so its perplexity is the vocabulary size.
    const engine = new Engine(ck, nodeRuntime());
    expect(engine.execution).toBe('streamed');
    const rss1 = process.memoryUsage().rss;
    const r = await engine.perplexity(Array.from({ length: 16 }, (_, i) => 128000 + i), 16);
    console.log(`Llama-3.2-1B shape, streamed perplexity of one 16-token window: ${r.ppl.toFixed(1)}; resident memory +${((process.memoryUsage().rss - rss1) / 1e9).toFixed(2)} GB after it`);
    expect(Math.abs(r.ppl / 128256 - 1)).toBeLessThan(1e-4);
    await engine.dispose();
  }, 240_000);

  test('lopper info reads it (one line of facts, exit 0)', async () => {
    const r = await lopper('info', '--model', dir, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect([info.config.architecture, info.config.numLayers, info.config.hiddenSize, info.parameters, info.dtypes, info.execution]).toEqual(['LlamaForCausalLM', 16, 2048, 1_235_814_400, ['bf16'], 'streamed']);
  }, 180_000);
});
