/**
 * The streaming zip writer, checked by the tools people unzip with (Info-ZIP `unzip -t`,
 * Python's zipfile) and by reading the records back byte by byte.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { LopperError } from '../../src/engine/errors';
import { crc32, zipChunks, zipSize, zipStream, type ZipEntry, type ZipOptions } from '../../src/engine/export/zip';

const root = mkdtempSync(join(tmpdir(), 'lopper-zip-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function collect(entries: ZipEntry[], opts?: ZipOptions): Promise<{ bytes: Uint8Array; chunks: Uint8Array[] }> {
  const chunks: Uint8Array[] = [];
  for await (const c of zipChunks(entries, opts)) chunks.push(c);
  return { bytes: new Uint8Array(Buffer.concat(chunks)), chunks };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

async function* slowly(bytes: Uint8Array, piece: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += piece) yield bytes.subarray(i, i + piece);
}

/** Every test archive: text, an async-chunked binary in a subfolder, an empty file, a UTF-8 name. */
function sampleEntries(): { entries: ZipEntry[]; contents: Map<string, Uint8Array> } {
  const text = new TextEncoder().encode('{"hello": "zip"}\n');
  const big = randomBytes(300_001, 7);
  const utf8 = randomBytes(77, 3);
  const contents = new Map<string, Uint8Array>([
    ['config.json', text],
    ['onnx/model.onnx_data', big],
    ['empty.txt', new Uint8Array(0)],
    ['café/naïve.bin', utf8],
  ]);
  const entries: ZipEntry[] = [
    { name: 'config.json', chunks: text },
    { name: 'onnx/model.onnx_data', size: big.length, chunks: slowly(big, 65_536) },
    { name: 'empty.txt', chunks: [] },
    { name: 'café/naïve.bin', chunks: [utf8.subarray(0, 10), utf8.subarray(10)] },
  ];
  return { entries, contents };
}

/** Python's zipfile: testzip() and every member's name, size, CRC and bytes (hex). */
function readWithPython(file: string): { bad: string | null; members: { name: string; size: number; crc: number; hex: string }[] } {
  const script = `
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    print(json.dumps({"bad": z.testzip(), "members": [
        {"name": i.filename, "size": i.file_size, "crc": i.CRC, "hex": z.read(i).hex()} for i in z.infolist()]}))
`;
  return JSON.parse(execFileSync('python3', ['-c', script, file], { maxBuffer: 1 << 26 }).toString());
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('crc32', () => {
  test('equals zlib on lengths around the 8-byte stride, and continues across chunks', () => {
    const data = randomBytes(10_000, 11);
    for (const n of [0, 1, 7, 8, 9, 15, 16, 17, 1000, 10_000]) expect(crc32(data.subarray(0, n)), `n=${n}`).toBe(zlibCrc32(data.subarray(0, n)));
    expect(crc32(data.subarray(1)), 'unaligned view').toBe(zlibCrc32(data.subarray(1)));
    expect(crc32(data.subarray(4321), crc32(data.subarray(0, 4321)))).toBe(zlibCrc32(data));
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926); // the standard check value
  });
});

describe.each([false, true])('zip (zip64 forced: %s)', (zip64) => {
  test('unzip -t and python zipfile -t pass; Python reads every entry back byte for byte', async () => {
    const { entries, contents } = sampleEntries();
    const { bytes } = await collect(entries, { zip64 });
    const file = join(root, `sample-${zip64}.zip`);
    writeFileSync(file, bytes);
    expect(execFileSync('unzip', ['-t', file]).toString()).toContain('No errors detected');
    execFileSync('python3', ['-m', 'zipfile', '-t', file]); // throws on a bad archive
    const got = readWithPython(file);
    expect(got.bad).toBeNull();
    expect(got.members.map((m) => m.name)).toEqual([...contents.keys()]);
    for (const m of got.members) {
      const want = contents.get(m.name)!;
      expect(m.size, m.name).toBe(want.length);
      expect(m.crc, m.name).toBe(zlibCrc32(want));
      expect(m.hex === hex(want), m.name).toBe(true);
    }
  });

  test('zipSize, with every size declared, is the archive\'s length', async () => {
    const sized = () => sampleEntries().entries.map((e) => ({ ...e, size: sampleEntries().contents.get(e.name)!.length }));
    expect(zipSize(sized(), { zip64 })).toBe((await collect(sized(), { zip64 })).bytes.length);
  });

  test('extracted with unzip, files are identical', async () => {
    const { entries, contents } = sampleEntries();
    const file = join(root, `extract-${zip64}.zip`);
    writeFileSync(file, (await collect(entries, { zip64 })).bytes);
    const dir = mkdtempSync(join(root, 'x-'));
    execFileSync('unzip', ['-q', file, '-d', dir]);
    for (const [name, want] of contents) expect(hex(new Uint8Array(execFileSync('cat', [join(dir, name)]))) === hex(want), name).toBe(true);
  });
});

describe('records', () => {
  const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
  const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
  const u64 = (b: Uint8Array, at: number) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));

  test('forced ZIP64: local extra, 8-byte descriptor, central extra, ZIP64 end record and locator', async () => {
    const data = randomBytes(1000, 5);
    const { bytes } = await collect([{ name: 'a.bin', chunks: data }], { zip64: true });
    // local header: version 4.5, flags bit 3 + bit 11, stored, CRC/sizes 0, ZIP64 extra {usize 0, csize 0}
    expect(u32(bytes, 0)).toBe(0x04034b50);
    expect(u16(bytes, 4)).toBe(45);
    expect(u16(bytes, 6)).toBe(0x0808);
    expect(u16(bytes, 8)).toBe(0);
    expect([u32(bytes, 14), u32(bytes, 18), u32(bytes, 22)]).toEqual([0, 0, 0]);
    expect([u16(bytes, 26), u16(bytes, 28)]).toEqual([5, 20]);
    expect([u16(bytes, 35), u16(bytes, 37), u64(bytes, 39), u64(bytes, 47)]).toEqual([1, 16, 0, 0]);
    const dataAt = 30 + 5 + 20;
    expect(hex(bytes.subarray(dataAt, dataAt + 1000)) === hex(data)).toBe(true);
    // data descriptor with 8-byte sizes
    const dd = dataAt + 1000;
    expect([u32(bytes, dd), u32(bytes, dd + 4), u64(bytes, dd + 8), u64(bytes, dd + 16)]).toEqual([0x08074b50, zlibCrc32(data), 1000, 1000]);
    // central directory: sizes and offset 0xFFFFFFFF, the real values in its ZIP64 extra
    const cd = dd + 24;
    expect(u32(bytes, cd)).toBe(0x02014b50);
    expect(u16(bytes, cd + 6)).toBe(45);
    expect([u32(bytes, cd + 16), u32(bytes, cd + 20), u32(bytes, cd + 24)]).toEqual([zlibCrc32(data), 0xffffffff, 0xffffffff]);
    expect(u32(bytes, cd + 42)).toBe(0xffffffff);
    expect(u16(bytes, cd + 30)).toBe(28);
    const ex = cd + 46 + 5;
    expect([u16(bytes, ex), u16(bytes, ex + 2), u64(bytes, ex + 4), u64(bytes, ex + 12), u64(bytes, ex + 20)]).toEqual([1, 24, 1000, 1000, 0]);
    // ZIP64 end of central directory, its locator, and the classic end record full of sentinels
    const z64 = ex + 28;
    expect(u32(bytes, z64)).toBe(0x06064b50);
    expect(u64(bytes, z64 + 4)).toBe(44);
    expect([u64(bytes, z64 + 24), u64(bytes, z64 + 32), u64(bytes, z64 + 40), u64(bytes, z64 + 48)]).toEqual([1, 1, 46 + 5 + 28, cd]);
    const loc = z64 + 56;
    expect([u32(bytes, loc), u32(bytes, loc + 4), u64(bytes, loc + 8), u32(bytes, loc + 16)]).toEqual([0x07064b50, 0, z64, 1]);
    const end = loc + 20;
    expect(u32(bytes, end)).toBe(0x06054b50);
    expect([u16(bytes, end + 8), u16(bytes, end + 10), u32(bytes, end + 12), u32(bytes, end + 16)]).toEqual([0xffff, 0xffff, 0xffffffff, 0xffffffff]);
    expect(end + 22).toBe(bytes.length);
  });

  test('small archives use no ZIP64 records at all', async () => {
    const { bytes } = await collect([{ name: 'a', chunks: new Uint8Array(3) }]);
    expect(u16(bytes, 28)).toBe(0); // no local extra
    expect(bytes.length).toBe(30 + 1 + 3 + 16 + 46 + 1 + 22);
    expect(u32(bytes, bytes.length - 22)).toBe(0x06054b50);
  });

  test('a declared size of 4 GiB or more, or no declared size, gets a ZIP64 local header up front', async () => {
    for (const entry of [
      { name: 'big', size: 2 ** 32 + 5, chunks: [new Uint8Array(1)] },
      { name: 'unknown', chunks: slowly(new Uint8Array(4), 2) },
    ]) {
      const it = zipChunks([entry]);
      const header = (await it.next()).value as Uint8Array;
      expect(u16(header, 4), entry.name).toBe(45);
      expect(u16(header, 28), entry.name).toBe(20);
      await it.return(undefined);
    }
    // the arithmetic for a 5 GiB entry: ZIP64 local extra, 24-byte descriptor, central extra, ZIP64 end
    const size = 5 * 2 ** 30;
    expect(zipSize([{ name: 'w', size, chunks: [] }])).toBe(30 + 1 + 20 + size + 24 + (46 + 1 + 20) + 56 + 20 + 22);
  });

  test('data chunks pass through as the same arrays (no copies)', async () => {
    const a = randomBytes(100, 1);
    const b = randomBytes(50, 2);
    const { chunks } = await collect([{ name: 'x', chunks: [a, b] }]);
    expect(chunks[1]).toBe(a);
    expect(chunks[2]).toBe(b);
  });

  test('zipStream gives the same bytes as zipChunks', async () => {
    const { bytes } = await collect(sampleEntries().entries, { modified: new Date(2024, 5, 1, 12, 30, 10) });
    const streamed = new Uint8Array(await new Response(zipStream(sampleEntries().entries, { modified: new Date(2024, 5, 1, 12, 30, 10) })).arrayBuffer());
    expect(hex(streamed) === hex(bytes)).toBe(true);
  });
});

describe('refusals', () => {
  async function refusal(entries: ZipEntry[]): Promise<LopperError> {
    const err = await collect(entries).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(LopperError);
    return err as LopperError;
  }

  test('a declared size the data does not match', async () => {
    expect((await refusal([{ name: 'a', size: 10, chunks: [new Uint8Array(4)] }])).message).toMatch(/"a" declared 10 bytes but its data has 4/);
    expect((await refusal([{ name: 'b', size: 3, chunks: [new Uint8Array(4)] }])).message).toMatch(/"b" declared 3 bytes but its data runs longer/);
  });

  test('names that are not relative paths, and duplicates', async () => {
    for (const name of ['', '/abs', '../up', 'a/../b', 'a\\b', 'a//b', 'dir/']) {
      expect((await refusal([{ name, chunks: new Uint8Array(1) }])).message, name).toMatch(/is not a relative/);
    }
    expect((await refusal([{ name: 'x', chunks: new Uint8Array(1) }, { name: 'x', chunks: new Uint8Array(1) }])).message).toMatch(/"x" is listed twice/);
  });
});
