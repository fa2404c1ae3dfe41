/**
 * Files of any size (issue 11, item 3): safetensors are read by ranges — the length, the
 * header (validated before anything is allocated), then each tensor's own bytes — never one
 * read of a whole weight file, so a single model.safetensors over 2 GiB loads (the big case,
 * Llama-3.2-1B as the hub lays it out, is in real-shapes.test.ts).
 */
import { describe, expect, test } from 'vitest';
import { parseSafetensors, readSafetensors, writeSafetensors } from '../../src/engine/formats/safetensors';
import { MemorySource } from '../../src/engine/formats/source';
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

// A Llama-3.2-1B folder with its single 2.47 GB model.safetensors, loaded, run and pruned through
// the CLI: test/unit/real-shapes.test.ts.
