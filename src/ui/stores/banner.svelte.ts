/**
 * The banner above the stages: one error with its ways forward (errors.ts), or a short
 * notice that is not an error ("cancelled", "saved"). Every stage reports through it.
 */
import { cancelNotice, errorInfo, uiError, type UiError } from '../errors';

/** What the banner's words depend on, read when it is set. */
export interface BannerContext {
  /** whether runs use WebGPU now (then 'Switch to WASM' is a way forward) */
  onWebGpu(): boolean;
  /** the loaded model's name, or null */
  modelName(): string | null;
  /** whether results are shown */
  hasResult(): boolean;
}

export class Banner {
  error = $state<UiError | null>(null);
  /** a short message that is not an error (e.g. "cancelled") */
  notice = $state<string | null>(null);
  /** what 'Try again' does for the error shown */
  retry: (() => void) | null = null;

  constructor(private readonly context: BannerContext) {}

  clear(): void {
    this.error = null;
    this.notice = null;
  }

  /** Turn a failure into the banner (or, for a cancel, a notice); nothing else changes. */
  fail(e: unknown, retry: (() => void) | null, what: string): void {
    const { code, message } = errorInfo(e);
    if (code === 'cancelled') {
      this.notice = cancelNotice(what, this.context.modelName(), this.context.hasResult());
      return;
    }
    this.setError(code, message, retry);
  }

  setError(code: string, message: string, retry: (() => void) | null): void {
    this.retry = retry;
    this.error = uiError(code, message, retry !== null, this.context.onWebGpu());
  }
}
