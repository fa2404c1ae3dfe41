import { LopperError } from '../errors';
import type { Tokenizer } from '../model/tokenizer';
import type { McItem } from './tasks';

/**
 * lm-eval-harness's loglikelihood requests, on token ids.
 *
 * A choice (context, continuation) is encoded as lm-eval's _encode_pair does: trailing
 * spaces of the context move to the continuation; whole = encode(context + continuation),
 * context ids = encode(context), continuation ids = whole[len(context ids):]. The model
 * sees BOS + context, and is scored on the continuation: Σ_j log p(cont_j | BOS, ctx, cont_<j).
 * Too long for the model: the oldest tokens are dropped (lm-eval keeps the last
 * max_length + 1); a continuation that alone exceeds the positions is scored on its last
 * max_length tokens (its first ones become the context).
 */
export interface Request {
  /** ids the continuation is conditioned on (BOS first, unless truncation dropped it) */
  context: number[];
  continuation: number[];
}

/** Continuation scorer: Σ log p(continuation | context) for each of several continuations of one context. */
export interface ContinuationScorer {
  continuationLogprobs(context: readonly number[], continuations: readonly (readonly number[])[]): Promise<number[]>;
}

export function encodeRequest(tokenizer: Tokenizer, bos: number, maxPositions: number, context: string, continuation: string): Request {
  const spaces = context.length - context.trimEnd().length;
  if (spaces > 0) {
    continuation = context.slice(-spaces) + continuation;
    context = context.slice(0, -spaces);
  }
  const contextIds = tokenizer.encode(context);
  const whole = tokenizer.encode(context + continuation);
  const cont = whole.slice(contextIds.length);
  if (cont.length === 0) throw new LopperError('bad-input', `the continuation "${continuation}" encodes to no tokens`);
  let ids = [bos, ...contextIds, ...cont];
  // The model sees ids[0..n−2]; positions are limited to maxPositions.
  if (ids.length > maxPositions + 1) ids = ids.slice(ids.length - (maxPositions + 1));
  // A continuation longer than the model's positions: its first tokens become context.
  const scored = Math.min(cont.length, ids.length - 1);
  return { context: ids.slice(0, ids.length - scored), continuation: ids.slice(ids.length - scored) };
}

/** An item's requests and, once scored, its choices' summed log-likelihoods and predictions. */
export interface ScoredItem {
  gold: number;
  requests: Request[];
  logprobs: number[];
  /** argmax of logprobs (first on ties, as numpy) */
  pred: number;
  /** argmax of logprob / characters of the choice's text (lm-eval's acc_norm) */
  predNorm: number;
}

const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);
/** Characters as Python's len() counts them (code points). */
const chars = (s: string) => [...s].length;

/**
 * Score one item: choices that share a context (all but WinoGrande's) go to the scorer
 * together, so the context runs once for all of them.
 */
export async function scoreItem(scorer: ContinuationScorer, item: McItem, encode: (context: string, continuation: string) => Request): Promise<ScoredItem> {
  const requests = item.choices.map((c) => encode(c.context, c.continuation));
  const logprobs = new Array<number>(requests.length);
  const groups = new Map<string, number[]>(); // context ids → choice indices
  requests.forEach((r, j) => {
    const key = r.context.join(',');
    groups.set(key, [...(groups.get(key) ?? []), j]);
  });
  for (const js of groups.values()) {
    const lps = await scorer.continuationLogprobs(
      requests[js[0]].context,
      js.map((j) => requests[j].continuation),
    );
    js.forEach((j, n) => (logprobs[j] = lps[n]));
  }
  const normed = logprobs.map((lp, j) => lp / chars(item.choices[j].text));
  return { gold: item.gold, requests, logprobs, pred: argmax(logprobs), predNorm: argmax(normed) };
}
