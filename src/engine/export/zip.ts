/**
 * A streaming .zip writer (APPNOTE 6.3): entries are stored (no compression: model weights
 * barely compress), each entry's bytes pass through once, CRC-32 is computed on the way, and
 * sizes and CRC follow the data in a data descriptor, so nothing is buffered: a 1 GB model
 * is written with the memory of its largest chunk. ZIP64 records are used where a size or
 * offset reaches 0xFFFFFFFF (or there are 65535+ entries), or everywhere with `zip64: true`.
 *
 * Layout, per entry then once at the end (all integers little-endian):
 *   local file header   30 B + name + extra    CRC and sizes 0 (bit 3: see the descriptor)
 *                                              extra: ZIP64 {0x0001, 16, usize 0, csize 0} when
 *                                              the size may reach 4 GiB (or is not declared)
 *   data                size bytes, stored
 *   data descriptor     0x08074b50, crc, csize, usize (8-byte sizes after a ZIP64 local header)
 *   central directory   46 B + name + extra per entry; sizes/offset 0xFFFFFFFF and a ZIP64
 *                                              extra {usize?, csize?, offset?} where they overflow
 *   ZIP64 end record + locator                 when counts, sizes or offsets overflow
 *   end of central directory                   22 B
 */
import { LopperError } from '../errors';
import { chunksOf, type ByteChunks } from '../formats/chunks';


export interface ZipEntry {
  /** Path inside the archive ("/"-separated, relative, UTF-8). */
  name: string;
  /**
   * The entry's size in bytes, when known up front (it is for a Uint8Array). An entry whose
   * size is not given gets ZIP64 sizes, since it might reach 4 GiB. A declared size that
   * the chunks do not match is an error.
   */
  size?: number;
  chunks: ByteChunks;
}

export interface ZipOptions {
  /** Write ZIP64 records for every entry and the end of the archive, whatever the sizes. */
  zip64?: boolean;
  /** Modification time stored for every entry (default: now). */
  modified?: Date;
}

const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
const VERSION = 20; // 2.0: stored entries, data descriptors
const VERSION_ZIP64 = 45; // 4.5: ZIP64
const MADE_BY_UNIX = 3 << 8;
const FLAGS = (1 << 3) | (1 << 11); // data descriptor; UTF-8 names
const UNIX_FILE_0644 = (0o100644 << 16) >>> 0;

const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_ZIP64_END = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_END = 0x06054b50;

// ---------------------------------------------------------------- CRC-32

/** CRC-32 (IEEE 802.3, reflected 0xEDB88320) tables for slicing by 8. */
const CRC_TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n] >>> 8) ^ t[t[(k - 1) * 256 + n] & 0xff];
  }
  return t;
})();

/** CRC-32 of `data`, continuing from `crc` (the CRC of the bytes before it; 0 to start). */
export function crc32(data: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    c =
      t[1792 + (c & 0xff)] ^
      t[1536 + ((c >>> 8) & 0xff)] ^
      t[1280 + ((c >>> 16) & 0xff)] ^
      t[1024 + (c >>> 24)] ^
      t[768 + data[i + 4]] ^
      t[512 + data[i + 5]] ^
      t[256 + data[i + 6]] ^
      t[data[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------- records

/** A little-endian record writer over a fresh buffer. */
class Record {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private at = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  u16(v: number): this {
    this.view.setUint16(this.at, v, true);
    this.at += 2;
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.at, v, true);
    this.at += 4;
    return this;
  }
  u64(v: number): this {
    this.view.setBigUint64(this.at, BigInt(v), true);
    this.at += 8;
    return this;
  }
  raw(b: Uint8Array): this {
    this.bytes.set(b, this.at);
    this.at += b.length;
    return this;
  }
  done(): Uint8Array {
    if (this.at !== this.bytes.length) throw new Error(`zip record: wrote ${this.at} of ${this.bytes.length} bytes`);
    return this.bytes;
  }
}

/** MS-DOS time and date fields (2-second resolution, years 1980–2107), in local time. */
function dosDateTime(d: Date): { time: number; date: number } {
  const year = Math.min(Math.max(d.getFullYear(), 1980), 2107);
  if (year !== d.getFullYear()) return { time: 0, date: ((year - 1980) << 9) | (1 << 5) | 1 };
  return {
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1),
    date: ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

interface Written {
  name: Uint8Array;
  crc: number;
  size: number;
  offset: number;
  /** the local header carried a ZIP64 extra, so the descriptor has 8-byte sizes */
  zip64Local: boolean;
}

function localHeader(name: Uint8Array, zip64: boolean, dos: { time: number; date: number }): Uint8Array {
  const extra = zip64 ? 20 : 0;
  const r = new Record(30 + name.length + extra)
    .u32(SIG_LOCAL)
    .u16(zip64 ? VERSION_ZIP64 : VERSION)
    .u16(FLAGS)
    .u16(0) // stored
    .u16(dos.time)
    .u16(dos.date)
    .u32(0) // CRC: in the descriptor
    .u32(0) // compressed size: in the descriptor
    .u32(0) // size: in the descriptor
    .u16(name.length)
    .u16(extra)
    .raw(name);
  if (zip64) r.u16(0x0001).u16(16).u64(0).u64(0);
  return r.done();
}

function dataDescriptor(e: Written): Uint8Array {
  if (e.zip64Local) return new Record(24).u32(SIG_DESCRIPTOR).u32(e.crc).u64(e.size).u64(e.size).done();
  return new Record(16).u32(SIG_DESCRIPTOR).u32(e.crc).u32(e.size).u32(e.size).done();
}

function centralHeader(e: Written, force: boolean, dos: { time: number; date: number }): Uint8Array {
  const bigSize = force || e.size >= MAX32;
  const bigOffset = force || e.offset >= MAX32;
  const fields = (bigSize ? 2 : 0) + (bigOffset ? 1 : 0);
  const extra = fields ? 4 + 8 * fields : 0;
  const version = fields || e.zip64Local ? VERSION_ZIP64 : VERSION;
  const r = new Record(46 + e.name.length + extra)
    .u32(SIG_CENTRAL)
    .u16(MADE_BY_UNIX | version)
    .u16(version)
    .u16(FLAGS)
    .u16(0)
    .u16(dos.time)
    .u16(dos.date)
    .u32(e.crc)
    .u32(bigSize ? MAX32 : e.size) // compressed
    .u32(bigSize ? MAX32 : e.size) // uncompressed
    .u16(e.name.length)
    .u16(extra)
    .u16(0) // comment
    .u16(0) // disk
    .u16(0) // internal attributes
    .u32(UNIX_FILE_0644)
    .u32(bigOffset ? MAX32 : e.offset)
    .raw(e.name);
  if (fields) {
    r.u16(0x0001).u16(8 * fields);
    if (bigSize) r.u64(e.size).u64(e.size); // uncompressed, then compressed
    if (bigOffset) r.u64(e.offset);
  }
  return r.done();
}

function endRecords(count: number, cdOffset: number, cdSize: number, force: boolean): Uint8Array {
  const zip64 = force || count >= MAX16 || cdOffset >= MAX32 || cdSize >= MAX32;
  const end = (r: Record) =>
    r
      .u32(SIG_END)
      .u16(0)
      .u16(0)
      .u16(zip64 ? MAX16 : count)
      .u16(zip64 ? MAX16 : count)
      .u32(zip64 ? MAX32 : cdSize)
      .u32(zip64 ? MAX32 : cdOffset)
      .u16(0) // comment
      .done();
  if (!zip64) return end(new Record(22));
  const zip64EndOffset = cdOffset + cdSize;
  return end(
    new Record(56 + 20 + 22)
      .u32(SIG_ZIP64_END)
      .u64(44) // size of the rest of this record
      .u16(MADE_BY_UNIX | VERSION_ZIP64)
      .u16(VERSION_ZIP64)
      .u32(0) // this disk
      .u32(0) // disk with the central directory
      .u64(count)
      .u64(count)
      .u64(cdSize)
      .u64(cdOffset)
      .u32(SIG_ZIP64_LOCATOR)
      .u32(0) // disk with the ZIP64 end record
      .u64(zip64EndOffset)
      .u32(1), // disks
  );
}

// ---------------------------------------------------------------- writer

function checkName(name: string, seen: Set<string>): Uint8Array {
  const bad =
    name === '' ||
    name.startsWith('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    name.split('/').some((part) => part === '..' || part === '.' || part === '');
  if (bad) throw new LopperError('bad-input', `zip entry name ${JSON.stringify(name)} is not a relative "/"-separated path`);
  if (seen.has(name)) throw new LopperError('bad-input', `zip entry "${name}" is listed twice`);
  seen.add(name);
  const bytes = new TextEncoder().encode(name);
  if (bytes.length > MAX16) throw new LopperError('bad-input', `zip entry name is ${bytes.length} bytes long (at most ${MAX16})`);
  return bytes;
}

/**
 * The archive of `entries` as a sequence of chunks: each entry's own chunks pass through
 * unchanged (no copies), framed by small header records. Entries are read in order, one at
 * a time.
 */
export async function* zipChunks(
  entries: Iterable<ZipEntry> | AsyncIterable<ZipEntry>,
  opts: ZipOptions = {},
): AsyncGenerator<Uint8Array> {
  const force = opts.zip64 === true;
  const dos = dosDateTime(opts.modified ?? new Date());
  const written: Written[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for await (const entry of entries) {
    const name = checkName(entry.name, seen);
    const declared = entry.size ?? (entry.chunks instanceof Uint8Array ? entry.chunks.length : undefined);
    if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) {
      throw new LopperError('bad-input', `zip entry "${entry.name}": size ${declared} is not a byte count`);
    }
    const zip64Local = force || declared === undefined || declared >= MAX32;
    const header = localHeader(name, zip64Local, dos);
    const start = offset;
    yield header;
    offset += header.length;
    let crc = 0;
    let size = 0;
    for await (const chunk of chunksOf(entry.chunks)) {
      if (chunk.length === 0) continue;
      crc = crc32(chunk, crc);
      size += chunk.length;
      if (declared !== undefined && size > declared) break;
      yield chunk;
      offset += chunk.length;
    }
    if (declared !== undefined && size !== declared) {
      throw new LopperError('bad-input', `zip entry "${entry.name}" declared ${declared} bytes but its data ${size > declared ? 'runs longer' : `has ${size}`}`);
    }
    const e: Written = { name, crc, size, offset: start, zip64Local };
    const descriptor = dataDescriptor(e);
    yield descriptor;
    offset += descriptor.length;
    written.push(e);
  }
  const cdOffset = offset;
  const central = written.map((e) => centralHeader(e, force, dos));
  const cdSize = central.reduce((n, c) => n + c.length, 0);
  const end = endRecords(written.length, cdOffset, cdSize, force);
  const tail = new Uint8Array(cdSize + end.length);
  let at = 0;
  for (const c of central) {
    tail.set(c, at);
    at += c.length;
  }
  tail.set(end, at);
  yield tail;
}

/** zipChunks as a ReadableStream (for a download, a Response, a file writer's pipeTo). */
export function zipStream(entries: Iterable<ZipEntry> | AsyncIterable<ZipEntry>, opts: ZipOptions = {}): ReadableStream<Uint8Array> {
  const it = zipChunks(entries, opts);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return(undefined);
    },
  });
}

/** The archive's size, when every entry declares its size (or is a Uint8Array), before writing it. */
export function zipSize(entries: readonly ZipEntry[], opts: ZipOptions = {}): number {
  const force = opts.zip64 === true;
  const encoder = new TextEncoder();
  let offset = 0;
  let cdSize = 0;
  for (const entry of entries) {
    const size = entry.size ?? (entry.chunks instanceof Uint8Array ? entry.chunks.length : undefined);
    if (size === undefined) throw new LopperError('bad-input', `zip entry "${entry.name}" has no declared size`);
    const nameLength = encoder.encode(entry.name).length;
    const zip64Local = force || size >= MAX32;
    const bigSize = force || size >= MAX32;
    const bigOffset = force || offset >= MAX32;
    cdSize += 46 + nameLength + ((bigSize ? 2 : 0) + (bigOffset ? 1 : 0) ? 4 + 8 * ((bigSize ? 2 : 0) + (bigOffset ? 1 : 0)) : 0);
    offset += 30 + nameLength + (zip64Local ? 20 : 0) + size + (zip64Local ? 24 : 16);
  }
  const zip64End = force || entries.length >= MAX16 || offset >= MAX32 || cdSize >= MAX32;
  return offset + cdSize + (zip64End ? 56 + 20 : 0) + 22;
}
