/**
 * Every failure a person can cause (bad file, unsupported model, bad option) is a
 * LopperError: a message that names the problem and, where there is one, the file.
 * The CLI prints `message` alone; anything else is a bug and keeps its stack.
 */
export type ErrorCode =
  | 'truncated'
  | 'corrupt'
  | 'shape-mismatch'
  | 'missing-tensor'
  | 'unknown-dtype'
  | 'unsupported-architecture'
  | 'unsupported-config'
  | 'not-found'
  | 'bad-option'
  | 'bad-input'
  /** The runtime asked for cannot start here (e.g. no CUDA execution provider). */
  | 'unsupported-runtime'
  /** A computation gave NaN or ±Infinity (weights that overflow float32, or NaN in a file). */
  | 'non-finite'
  | 'cancelled'
  /** Browser storage (IndexedDB) is full: free space in the storage panel. */
  | 'quota'
  /** The server refused access (HTTP 401/403): a gated model needs a Hugging Face token. */
  | 'auth'
  /** The server could not be reached or answered with an HTTP error. */
  | 'network';

/** The longest message a LopperError carries (and the longest file name it shows); longer ones are cut. */
export const MAX_MESSAGE = 400;

export class LopperError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;

  constructor(code: ErrorCode, message: string, file?: string) {
    // One line, bounded, no terminal control characters, whatever a file's names and values hold.
    super(oneLine(file ? `${clip(file, MAX_MESSAGE)}: ${clip(message, MAX_MESSAGE)}` : clip(message, MAX_MESSAGE)));
    this.name = 'LopperError';
    this.code = code;
    this.file = file;
  }
}

const clip = (s: string, max: number) => (s.length > max ? s.slice(0, max - 1) + '…' : s);

const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * An untrusted value (from a file) as a short phrase for a message: a number or a string
 * (quoted, cut at `max` characters), or what kind of thing it is. Never serializes nested
 * values, so a deeply nested or huge JSON value costs nothing to describe.
 */
export function shown(v: unknown, max = 40): string {
  if (typeof v === 'string') return JSON.stringify(clip(v, max));
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return clip(String(v), max);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

/** What a third-party error says, on one line and bounded (for wrapping it in a LopperError). */
export function reason(e: unknown): string {
  const text = e instanceof Error ? `${e.name === 'Error' ? '' : e.name + ': '}${e.message}` : typeof e === 'string' ? e : typeof e;
  return clip(text.replace(/\s+/g, ' ').trim(), 160);
}
