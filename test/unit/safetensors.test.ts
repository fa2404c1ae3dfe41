import { describe, expect, test } from 'vitest';
import { LopperError, type ErrorCode } from '../../src/engine/errors';
import { concatChunks } from '../../src/engine/formats/chunks';
import { parseSafetensors, safetensorsChunks, writeSafetensors } from '../../src/engine/formats/safetensors';
import { fromFloat32, type DType, type Tensor } from '../../src/engine/model/tensor';
import { mulberry32 } from '../helpers/random-checkpoint';

const FILE = 'some/dir/model.safetensors';

/** A .safetensors file spelled out by hand: header JSON, then raw data bytes. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array()): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function randomTensor(shape: number[], dtype: DType, seed: number): Tensor {
  const u = mulberry32(seed);
  const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => u() * 8 - 4);
  return fromFloat32(values, shape, dtype);
}

function expectError(fn: () => unknown, code: ErrorCode, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(LopperError);
  const err = caught as LopperError;
  expect(err.code).toBe(code);
  expect(err.file).toBe(FILE);
  for (const f of [FILE, ...fragments]) expect(err.message).toContain(f);
}

describe('safetensors round trip', () => {
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    test(`${dtype} tensors come back bit for bit`, () => {
      const tensors = new Map([
        ['b.weight', randomTensor([3, 5], dtype, 1)],
        ['a.bias', randomTensor([7], dtype, 2)],
        ['scalar', randomTensor([], dtype, 3)],
        ['empty', randomTensor([0, 4], dtype, 4)],
      ]);
      const parsed = parseSafetensors(writeSafetensors(tensors, { format: 'pt' }), FILE);
      expect(parsed).toEqual(tensors);
      for (const t of parsed.values()) expect(t.data).toBeInstanceOf(dtype === 'f32' ? Float32Array : Uint16Array);
    });
  }

  test('mixed dtypes stay aligned: 4-byte tensors first, then by name', () => {
    const tensors = new Map([
      ['z16', randomTensor([3], 'f16', 1)],
      ['b32', randomTensor([2], 'f32', 2)],
      ['a16', randomTensor([1], 'bf16', 3)],
      ['c32', randomTensor([2], 'f32', 4)],
    ]);
    const bytes = writeSafetensors(tensors);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(Object.keys(header)).toEqual(['b32', 'c32', 'a16', 'z16']);
    expect(header.b32.data_offsets).toEqual([0, 8]);
    expect(header.a16.data_offsets).toEqual([16, 18]);
    expect(parseSafetensors(bytes, FILE)).toEqual(tensors);
  });

  test('safetensorsChunks: the header, then views of each tensor\'s own memory, in file order', () => {
    const tensors = new Map([
      ['h', randomTensor([3], 'f16', 1)],
      ['w', randomTensor([2, 3], 'f32', 2)],
    ]);
    const { size, chunks } = safetensorsChunks(tensors, { format: 'pt' });
    const list = [...chunks];
    expect(list).toHaveLength(3);
    const headerLength = Number(new DataView(list[0].buffer).getBigUint64(0, true));
    expect(list[0].length).toBe(8 + headerLength);
    for (const [chunk, name] of [[list[1], 'w'], [list[2], 'h']] as const) {
      const t = tensors.get(name)!;
      expect(chunk.buffer, name).toBe(t.data.buffer); // a view, not a copy
      expect(chunk.byteLength).toBe(t.data.byteLength);
    }
    expect(size).toBe(list.reduce((n, c) => n + c.length, 0));
    expect(concatChunks({ size, chunks: list })).toEqual(writeSafetensors(tensors, { format: 'pt' }));
  });

  test('the header is padded with spaces to a multiple of 8 and carries the metadata', () => {
    const bytes = writeSafetensors(new Map([['x', randomTensor([1], 'f32', 1)]]), { format: 'pt' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(text).toMatch(/^\{"__metadata__":\{"format":"pt"\},"x":.*\} *$/);
    expect(bytes.length).toBe(8 + headerLength + 4);
  });

  test('reads a file written by hand, ignoring __metadata__, from an unaligned view', () => {
    const data = new Uint8Array(new Float32Array([1.5, -2]).buffer.slice(0));
    const bf16 = new Uint8Array([0x80, 0x3f]); // 1.0 in bf16, little-endian
    const file = rawFile(
      {
        __metadata__: { format: 'pt' },
        w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        h: { dtype: 'BF16', shape: [1, 1], data_offsets: [8, 10] },
      },
      new Uint8Array([...data, ...bf16]),
    );
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const parsed = parseSafetensors(shifted.subarray(1), FILE);
    expect([...parsed.keys()]).toEqual(['w', 'h']);
    expect(parsed.get('w')).toEqual({ dtype: 'f32', shape: [2], data: new Float32Array([1.5, -2]) });
    expect(parsed.get('h')).toEqual({ dtype: 'bf16', shape: [1, 1], data: new Uint16Array([0x3f80]) });
  });
});

describe('safetensors errors name the file', () => {
  test('shorter than the 8-byte length', () => {
    expectError(() => parseSafetensors(new Uint8Array(5), FILE), 'truncated', '5 bytes');
  });

  test('header length past the end of the file', () => {
    const bytes = writeSafetensors(new Map([['x', randomTensor([4], 'f32', 1)]]));
    new DataView(bytes.buffer).setBigUint64(0, 100000n, true);
    expectError(() => parseSafetensors(bytes, FILE), 'truncated', '100000', `${bytes.length} bytes`);
  });

  test('a file cut inside its header', () => {
    const bytes = writeSafetensors(new Map([['x', randomTensor([4], 'f32', 1)]]));
    expectError(() => parseSafetensors(bytes.subarray(0, 20), FILE), 'truncated', '20 bytes');
  });

  test('a file cut inside its data', () => {
    const bytes = writeSafetensors(new Map([['x', randomTensor([4], 'f32', 1)]]));
    expectError(() => parseSafetensors(bytes.subarray(0, bytes.length - 3), FILE), 'truncated', '"x"', '13 data bytes');
  });

  test('a header that is not JSON', () => {
    const bytes = rawFile({ x: 1 });
    bytes[8] = 0x7e; // '~'
    expectError(() => parseSafetensors(bytes, FILE), 'corrupt', 'JSON');
  });

  test('a header that is JSON but not an object', () => {
    expectError(() => parseSafetensors(rawFile([1, 2]), FILE), 'corrupt', 'object');
  });

  test('data_offsets that disagree with shape × dtype', () => {
    const file = rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(12));
    expectError(() => parseSafetensors(file, FILE), 'corrupt', '"w"', 'needs 12');
  });

  test('a malformed tensor entry', () => {
    const file = rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4));
    expectError(() => parseSafetensors(file, FILE), 'corrupt', '"w"');
  });

  for (const dtype of ['I8', 'F64']) {
    test(`unknown dtype ${dtype}`, () => {
      const file = rawFile({ 'model.norm.weight': { dtype, shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
      expectError(() => parseSafetensors(file, FILE), 'unknown-dtype', '"model.norm.weight"', `"${dtype}"`);
    });
  }
});
