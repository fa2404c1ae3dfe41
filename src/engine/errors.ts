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
  | 'cancelled'
  /** Browser storage (IndexedDB) is full: free space in the storage panel. */
  | 'quota'
  /** The server refused access (HTTP 401/403): a gated model needs a Hugging Face token. */
  | 'auth'
  /** The server could not be reached or answered with an HTTP error. */
  | 'network';

export class LopperError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;

  constructor(code: ErrorCode, message: string, file?: string) {
    super(file ? `${file}: ${message}` : message);
    this.name = 'LopperError';
    this.code = code;
    this.file = file;
  }
}
