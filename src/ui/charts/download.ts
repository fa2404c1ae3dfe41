/**
 * Every chart downloads as SVG and PNG (ChartDownloads.svelte). The SVG is the chart's own
 * <svg>, made standalone: each element's computed presentation (colours resolved from CSS
 * variables and classes, fonts, dashes) written onto it as attributes and the classes and
 * inline styles dropped, so it renders the same outside the page; xmlns, a width and height
 * from the viewBox, a <title>, and a white background. The PNG draws that SVG on a canvas at
 * 2× (an Image decoding it: no library).
 */
import { download } from '../save-file';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The presentation properties copied from the page's computed style onto each element. */
const PROPS = [
  'fill',
  'fill-opacity',
  'stroke',
  'stroke-width',
  'stroke-dasharray',
  'stroke-opacity',
  'stroke-linecap',
  'stroke-linejoin',
  'opacity',
  'font-family',
  'font-size',
  'font-weight',
  'font-style',
  'text-anchor',
  'dominant-baseline',
] as const;

/** The viewBox's size (the chart's drawing units). */
export function svgSize(svg: SVGSVGElement): { width: number; height: number; x: number; y: number } {
  const vb = svg.viewBox.baseVal;
  if (vb && vb.width > 0 && vb.height > 0) return { x: vb.x, y: vb.y, width: vb.width, height: vb.height };
  const r = svg.getBoundingClientRect();
  return { x: 0, y: 0, width: Math.max(1, Math.round(r.width)), height: Math.max(1, Math.round(r.height)) };
}

/** `svg` (in the page) as a standalone SVG document's text, titled `title`. */
export function standaloneSvg(svg: SVGSVGElement, title: string): string {
  const clone = svg.cloneNode(true) as SVGSVGElement;
  const live = [svg, ...svg.querySelectorAll('*')];
  const copies = [clone, ...clone.querySelectorAll('*')];
  live.forEach((el, i) => {
    const copy = copies[i];
    if (el.namespaceURI !== SVG_NS || el.localName === 'title') return;
    const cs = getComputedStyle(el);
    for (const p of PROPS) {
      const v = cs.getPropertyValue(p).trim();
      if (v && v !== 'normal' && !(p === 'stroke-dasharray' && v === 'none')) copy.setAttribute(p, v);
    }
    copy.removeAttribute('class');
    copy.removeAttribute('style');
  });
  const { x, y, width, height } = svgSize(svg);
  clone.setAttribute('width', String(width));
  clone.setAttribute('height', String(height));
  clone.setAttribute('viewBox', `${x} ${y} ${width} ${height}`);
  const bg = document.createElementNS(SVG_NS, 'rect');
  for (const [k, v] of Object.entries({ x, y, width, height, fill: '#ffffff' })) bg.setAttribute(k, String(v));
  bg.setAttribute('data-background', '');
  const t = document.createElementNS(SVG_NS, 'title');
  t.textContent = title;
  clone.prepend(t, bg);
  // cloned from the page, the root is in the SVG namespace: XMLSerializer writes its xmlns
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(clone);
}

/** A standalone SVG's text rasterized at `scale`× its width and height, as a PNG. */
export async function svgToPng(text: string, width: number, height: number, scale = 2): Promise<Blob> {
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('this browser cannot draw on a canvas: download the SVG instead');
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the PNG could not be made'))), 'image/png'));
}

/** A file name from a chart's name: letters, digits, dots and dashes. */
export function chartFileName(name: string, ext: 'svg' | 'png' | 'csv'): string {
  return `${name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'chart'}.${ext}`;
}

/** Download `svg` as an SVG or PNG file named after `name`. */
export async function downloadChart(svg: SVGSVGElement, name: string, title: string, kind: 'svg' | 'png'): Promise<void> {
  const text = standaloneSvg(svg, title);
  if (kind === 'svg') {
    download(new Blob([text], { type: 'image/svg+xml' }), chartFileName(name, 'svg'));
    return;
  }
  const { width, height } = svgSize(svg);
  download(await svgToPng(text, width, height, 2), chartFileName(name, 'png'));
}
