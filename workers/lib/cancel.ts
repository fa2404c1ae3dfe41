/**
 * Cancellation inside long computations. Each request has an AbortController; the page
 * cancels with a 'cancel' message and, where the page is cross-origin isolated, also by
 * setting a shared flag. The flag matters: onnxruntime-web's WASM runs resolve without
 * yielding to the worker's event loop, so during a calibration or an evaluation the
 * 'cancel' message is only read when the whole computation is over. checkAbort() polls the
 * flag synchronously, so a cancel lands within one window.
 */
import { LopperError } from '../../src/engine/errors';

const flags = new WeakMap<AbortSignal, { flag: Int32Array; controller: AbortController }>();

/** Tie a request's shared cancel flag to its controller. */
export function linkFlag(controller: AbortController, flag: Int32Array | undefined): void {
  if (flag) flags.set(controller.signal, { flag, controller });
}

/** Whether the request is cancelled (polling its shared flag). */
export function isCancelled(signal: AbortSignal): boolean {
  const f = flags.get(signal);
  if (f && !signal.aborted && Atomics.load(f.flag, 0) !== 0) f.controller.abort();
  return signal.aborted;
}

/** Throws LopperError('cancelled') once the request is cancelled. */
export function checkAbort(signal: AbortSignal, what = 'cancelled'): void {
  if (isCancelled(signal)) throw new LopperError('cancelled', what);
}
