#!/usr/bin/env node
/**
 * Draws the PWA icons (public/icon-192.png, icon-512.png, icon-maskable-512.png) from the
 * favicon's design — a stack of four layers with the second one pruned (dashed, faint) —
 * with nothing but node:zlib. Run once after changing the design: `node scripts/icons.mjs`.
 * The PNGs are committed; the build does not run this.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const publicDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../public');

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
const PAPER = hex('#f6f7f9');
const LAYER = hex('#7aa2f7');
const ACCENT = hex('#2f6feb');

/** The favicon's 32×32 design as shapes: rounded rects with a fill, an opacity, and an optional dashed outline. */
const shapes = [
  { x: 4, y: 3, w: 24, h: 5, r: 1.5, color: LAYER, alpha: 1 },
  { x: 4, y: 10, w: 24, h: 5, r: 1.5, color: LAYER, alpha: 0.35, dashed: true },
  { x: 4, y: 17, w: 24, h: 5, r: 1.5, color: LAYER, alpha: 1 },
  { x: 4, y: 24, w: 24, h: 5, r: 1.5, color: ACCENT, alpha: 1 },
];

/** Signed distance from (px, py) to a rounded rectangle (negative inside). */
function roundedRectDistance(px, py, s) {
  const cx = s.x + s.w / 2;
  const cy = s.y + s.h / 2;
  const qx = Math.abs(px - cx) - (s.w / 2 - s.r);
  const qy = Math.abs(py - cy) - (s.h / 2 - s.r);
  const outside = Math.hypot(Math.max(qx, 0), Math.max(qy, 0));
  return outside + Math.min(Math.max(qx, qy), 0) - s.r;
}

/**
 * Colour at a point of the 32×32 design. `inset` > 1 shrinks the design toward the centre
 * (maskable icons keep their content inside the central 80% circle: the corners of the
 * stack sit 17.7 units from the centre, the safe circle's radius is 12.8 → 1.4).
 */
function shade(x, y, inset) {
  const u = 16 + (x - 16) * inset;
  const v = 16 + (y - 16) * inset;
  let c = PAPER.slice();
  for (const s of shapes) {
    const d = roundedRectDistance(u, v, s);
    let a = 0;
    if (d <= 0) a = s.alpha;
    if (s.dashed && Math.abs(d) <= 0.5) {
      // a 2-on 2-off dash along the outline, measured along the longer side
      const along = Math.abs(v - s.y) < 0.8 || Math.abs(v - s.y - s.h) < 0.8 ? u - s.x : v - s.y + s.w;
      if (Math.floor(along / 2) % 2 === 0) a = 1;
    }
    c = c.map((ch, i) => ch * (1 - a) + s.color[i] * a);
  }
  return c;
}

/** Render at `size`×`size` with 4×4 supersampling. */
function render(size, inset) {
  const rgba = Buffer.alloc(size * size * 4);
  const n = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const acc = [0, 0, 0];
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const c = shade(((px + (sx + 0.5) / n) * 32) / size, ((py + (sy + 0.5) / n) * 32) / size, inset);
          for (let i = 0; i < 3; i++) acc[i] += c[i];
        }
      }
      const o = (py * size + px) * 4;
      for (let i = 0; i < 3; i++) rgba[o + i] = Math.round(acc[i] / (n * n));
      rgba[o + 3] = 255;
    }
  }
  return rgba;
}

// ---- PNG ----------------------------------------------------------------------------

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
function png(size, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

for (const [name, size, inset] of [
  ['icon-192.png', 192, 1],
  ['icon-512.png', 512, 1],
  ['icon-maskable-512.png', 512, 1.4],
  ['apple-touch-icon.png', 180, 1.15],
]) {
  writeFileSync(path.join(publicDir, name), png(size, render(size, inset)));
  console.log(`public/${name} (${size}×${size})`);
}
