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
  | 'cancelled';

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
