/**
 * Seeded mutations of model files, as an attacker (or a bad disk) would make them: byte-level
 * (bit flips, truncation, byte insert/delete, splices), length fields set to telling values,
 * non-finite weights, and JSON-structural edits (deep nesting, wrong types, huge, negative and
 * fractional numbers, removed and added keys, path traversal). Each returns the new bytes, a
 * short label (what a failure report shows) and whether a correct loader must reject it.
 */
import { mulberry32 } from '../../src/engine/runtime/sampler';

/** Seeded choices (the engine's mulberry32): the same seed gives the same cases on every machine. */
export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** A whole number in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** The seed of case `index` of a run with `seed` (each case replays alone). */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ index, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface Mutation {
  bytes: Uint8Array;
  label: string;
  /** A correct loader must reject these bytes (the mutation made the file inconsistent for sure). */
  mustReject: boolean;
}

/** Values that break length fields and sizes: edges of int32/uint64, off-by-one, absurdly large. */
const TELLING_INTS = [0, 1, 2, 3, -1, -2, 7, 8, 255, 256, 1000, 65535, 65536, 1e6, 2 ** 24, 2 ** 31 - 1, -(2 ** 31), 2 ** 30];

// ---------------------------------------------------------------- bytes

export function bitFlips(bytes: Uint8Array, rng: Rng, region = bytes.length): Mutation {
  const out = bytes.slice();
  const n = 1 + rng.int(8);
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = rng.int(Math.min(region, out.length));
    out[p] ^= 1 << rng.int(8);
    at.push(p);
  }
  return { bytes: out, label: `bitflip×${n}@${at[0]}`, mustReject: false };
}

export function truncate(bytes: Uint8Array, rng: Rng): Mutation {
  const len = rng.chance(0.5) ? rng.int(bytes.length) : Math.max(0, bytes.length - 1 - rng.int(16));
  return { bytes: bytes.slice(0, len), label: `truncate→${len}`, mustReject: true };
}

export function insertBytes(bytes: Uint8Array, rng: Rng, region = bytes.length): Mutation {
  const at = rng.int(Math.min(region, bytes.length) + 1);
  const n = 1 + rng.int(rng.chance(0.8) ? 8 : 4096);
  const ins = new Uint8Array(n);
  for (let i = 0; i < n; i++) ins[i] = rng.int(256);
  const out = new Uint8Array(bytes.length + n);
  out.set(bytes.subarray(0, at));
  out.set(ins, at);
  out.set(bytes.subarray(at), at + n);
  return { bytes: out, label: `insert ${n}@${at}`, mustReject: true };
}

export function deleteBytes(bytes: Uint8Array, rng: Rng, region = bytes.length): Mutation {
  const at = rng.int(Math.min(region, bytes.length));
  const n = Math.min(1 + rng.int(rng.chance(0.8) ? 8 : 4096), bytes.length - at);
  const out = new Uint8Array(bytes.length - n);
  out.set(bytes.subarray(0, at));
  out.set(bytes.subarray(at + n), at);
  return { bytes: out, label: `delete ${n}@${at}`, mustReject: true };
}

/** A run of the file copied over another place (same length: only contents change). */
export function splice(bytes: Uint8Array, rng: Rng): Mutation {
  const out = bytes.slice();
  const n = 1 + rng.int(256);
  const from = rng.int(Math.max(1, bytes.length - n));
  const to = rng.int(Math.max(1, bytes.length - n));
  out.copyWithin(to, from, from + n);
  return { bytes: out, label: `splice ${n} ${from}→${to}`, mustReject: false };
}

export function setInt32(bytes: Uint8Array, offset: number, rng: Rng, name: string): Mutation {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const old = view.getInt32(offset, true);
  const choices = [...TELLING_INTS, old + 1, old - 1, old * 2, -old];
  let v = rng.pick(choices);
  if (v === old) v = old + 1;
  view.setInt32(offset, v | 0, true);
  return { bytes: out, label: `${name} ${old}→${v | 0}`, mustReject: true };
}

/** float32 values at 4-aligned offsets from `start` set to NaN, ±Infinity: a loader must say so. */
export function nonFinite(bytes: Uint8Array, rng: Rng, start: number, end = bytes.length, width: 2 | 4 = 4): Mutation {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const n = 1 + rng.int(4);
  const count = Math.floor((end - start) / width);
  let first = -1;
  for (let i = 0; i < n; i++) {
    const at = start + width * rng.int(count);
    if (first < 0) first = at;
    const which = rng.int(3);
    if (width === 4) view.setFloat32(at, [NaN, Infinity, -Infinity][which], true);
    else view.setUint16(at, [0x7e00, 0x7c00, 0xfc00][which], true); // f16 NaN, +Inf, −Inf
  }
  return { bytes: out, label: `non-finite×${n}@${first}`, mustReject: true };
}

/** float32 weights scaled far up (finite): loads, and any NaN it causes later must be an error. */
export function hugeWeights(bytes: Uint8Array, rng: Rng, start: number, end = bytes.length): Mutation {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const n = 1 + rng.int(64);
  const count = Math.floor((end - start) / 4);
  const at0 = start + 4 * rng.int(count);
  for (let i = 0; i < n; i++) {
    const at = start + 4 * rng.int(count);
    view.setFloat32(at, rng.pick([3e38, -3e38, 1e30, 1e20]), true);
  }
  return { bytes: out, label: `huge×${n}@${at0}`, mustReject: false };
}

// ---------------------------------------------------------------- JSON

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A place in a JSON tree: the container and the key (or index) of a value. */
interface Slot {
  parent: Json[] | { [k: string]: Json };
  key: string | number;
  path: string;
}

/** Every slot of the tree (breadth-first, at most `max`), so edits can land anywhere. */
function slots(root: Json, max = 20000): Slot[] {
  const out: Slot[] = [];
  const queue: [Json, string][] = [[root, '']];
  while (queue.length && out.length < max) {
    const [v, path] = queue.shift()!;
    if (Array.isArray(v)) {
      v.forEach((c, i) => {
        out.push({ parent: v, key: i, path: `${path}[${i}]` });
        queue.push([c, `${path}[${i}]`]);
      });
    } else if (v && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        out.push({ parent: v, key: k, path: `${path}.${k}` });
        queue.push([v[k], `${path}.${k}`]);
      }
    }
  }
  return out;
}

/** Stands for a deeply nested value in the tree until the text is written (JSON.stringify would recurse). */
const DEEP = '\u0000deep\u0000';

/** A replacement value for a slot: other types, telling numbers, deep nesting, huge strings. */
function oddValue(rng: Rng, old: Json): { value: Json; what: string } {
  const num = typeof old === 'number' ? old : 1;
  const options: (() => { value: Json; what: string })[] = [
    () => ({ value: rng.pick([0, -1, -num, num + 0.5, 2.5, num * 1e6, 2 ** 31 - 1, 2 ** 53, 1e308, -1e308, 1e-300]), what: 'number' }),
    () => ({ value: rng.pick(['', 'x', String(num), '../x', 'silu ']), what: 'string' }),
    () => ({ value: null, what: 'null' }),
    () => ({ value: rng.chance(0.5), what: 'bool' }),
    () => ({ value: rng.pick<Json>([[], [num], [null], [1, 2, 3]]), what: 'list' }),
    () => ({ value: rng.pick<Json>([{}, { type: 'x' }, { a: [] }]), what: 'object' }),
    () => ({ value: DEEP, what: 'deep' }),
    () => ({ value: 'A'.repeat(rng.pick([1000, 200_000])), what: 'long string' }),
  ];
  return rng.pick(options)();
}

/** JSON text of `tree`, the DEEP placeholder written out as `depth` nested lists or objects. */
export function writeJson(tree: Json, rng: Rng): Uint8Array {
  let text = JSON.stringify(tree);
  const marker = JSON.stringify(DEEP);
  if (text.includes(marker)) {
    const depth = rng.pick([1000, 10_000, 200_000]);
    const deep = rng.chance(0.5) ? '['.repeat(depth) + '1' + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    text = text.split(marker).join(deep);
  }
  return new TextEncoder().encode(text);
}

export interface JsonEdit {
  tree: Json;
  label: string;
  mustReject: boolean;
}

/** One structural edit of a parsed JSON tree (a deep copy is edited). `focus` picks slots whose path matches. */
export function editJson(original: Json, rng: Rng, focus?: RegExp): JsonEdit {
  const tree = structuredClone(original);
  const all = slots(tree);
  const focused = focus ? all.filter((s) => focus.test(s.path)) : all;
  const pool = focused.length && rng.chance(0.8) ? focused : all;
  if (!pool.length) return { tree: DEEP, label: 'root→deep', mustReject: true };
  const slot = rng.pick(pool);
  const { parent, key } = slot;
  const get = () => (parent as Record<string, Json>)[key as string];
  const put = (v: Json) => ((parent as Record<string, Json>)[key as string] = v);
  const r = rng.int(10);
  if (r < 6) {
    const { value, what } = oddValue(rng, get());
    put(value);
    return { tree, label: `${slot.path}→${what}${typeof value === 'number' ? ` ${value}` : ''}`, mustReject: false };
  }
  if (r < 8) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
    return { tree, label: `${slot.path} removed`, mustReject: false };
  }
  if (r < 9) {
    // duplicate a sibling, or add an unknown key
    if (Array.isArray(parent)) parent.splice(key as number, 0, structuredClone(get()));
    else parent[`${key}_x`] = structuredClone(get());
    return { tree, label: `${slot.path} duplicated`, mustReject: false };
  }
  // the whole value's container replaced by a deep nest
  put(DEEP);
  return { tree, label: `${slot.path}→deep`, mustReject: false };
}

/** Text-level damage to a JSON file: bit flips, truncation, an inserted byte (JSON.parse must be wrapped). */
export function damageText(bytes: Uint8Array, rng: Rng): Mutation {
  const r = rng.int(3);
  if (r === 0) return bitFlips(bytes, rng);
  if (r === 1) return { ...truncate(bytes, rng), mustReject: false };
  return { ...insertBytes(bytes, rng), mustReject: false };
}

/** Shard paths that leave the model folder, or spell one file two ways. */
export const HOSTILE_PATHS = [
  '../elsewhere/model.safetensors',
  '../../../../../../etc/passwd',
  '/etc/passwd',
  'file:///etc/passwd',
  'http://example.com/model.safetensors',
  'C:\\Windows\\win.ini',
  '%2e%2e/model.safetensors',
  'sub/../../model.safetensors',
  '',
  'model.safetensors\u0000.txt',
];

export type { Json };
