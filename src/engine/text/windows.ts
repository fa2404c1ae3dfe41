/**
 * The perplexity protocol's windowing, shared by the engine and the Float64 reference.
 *
 * `ids` are a whole text's tokens with BOS first. They are cut into consecutive,
 * non-overlapping windows of W tokens; a shorter tail is dropped; `maxWindows` keeps the
 * first K. Each window then predicts its tokens 2..W from their prefix in the window
 * (W − 1 predictions per window; only the first window starts with BOS).
 */
import { LopperError } from '../errors';

export function cutWindows(ids: readonly number[], W: number, maxWindows?: number): number[][] {
  if (!Number.isInteger(W) || W < 2) {
    throw new LopperError('bad-option', `the window must be a whole number of tokens, at least 2 (got ${W})`);
  }
  if (maxWindows !== undefined && (!Number.isInteger(maxWindows) || maxWindows < 1)) {
    throw new LopperError('bad-option', `the number of windows must be a whole number, at least 1 (got ${maxWindows})`);
  }
  let n = Math.floor(ids.length / W);
  if (n === 0) {
    throw new LopperError(
      'bad-input',
      `the text has ${ids.length} token${ids.length === 1 ? '' : 's'}, fewer than one window of ${W}; use a longer text or a smaller window`,
    );
  }
  if (maxWindows !== undefined) n = Math.min(n, maxWindows);
  const windows: number[][] = [];
  for (let w = 0; w < n; w++) windows.push(ids.slice(w * W, (w + 1) * W));
  return windows;
}
