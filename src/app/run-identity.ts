/**
 * What identifies a run: every field of RunSettings (src/app/protocol.ts), each text reduced
 * to its identity (a built-in text's id; a person's own text by name and a hash of its
 * content). This one function feeds the result cache's key (worker), the settings kept in
 * the stored result, and the page's "is the shown result the current settings'?" check, so
 * a setting added to RunSettings is part of all three without another line.
 */
import type { CompChoice } from '../engine/prune/options';
import type { RunSettings, TextSource } from './protocol';

/** RunSettings with texts as identities; fields left undefined are absent. */
export type RunIdentity = Omit<RunSettings, 'calib' | 'eval'> & { calib: string; eval: string };

/** A text's identity: `id` for a built-in text, `custom:<name>:<64-bit hash of the text>` for the person's own. */
export function textIdentity(t: TextSource): string {
  return t.kind === 'builtin' ? t.id : `custom:${t.name}:${hash64(t.text)}`;
}

/** The name a person reads for a text identity (the file name of their own text, the id of a built-in one). */
export function textLabel(identity: string): string {
  return identity.startsWith('custom:') ? identity.slice('custom:'.length, identity.lastIndexOf(':')) : identity;
}

export function runIdentity(s: RunSettings): RunIdentity {
  const id: Record<string, unknown> = { ...s, calib: textIdentity(s.calib), eval: textIdentity(s.eval) };
  // The defaults are absent, as in results stored before these settings existed (so those stay
  // found and current): compensation 'scalar', and α unless a linear/diag fit reads it.
  if (s.comp === 'scalar') delete id.comp;
  if (s.alpha === 0 || (s.comp !== 'linear' && s.comp !== 'diag')) delete id.alpha;
  for (const k of Object.keys(id)) if (id[k] === undefined) delete id[k];
  return id as RunIdentity;
}

/** A stored identity's compensation: absent is 'scalar' (the default, and all there was before the choice). */
export const identityComp = (id: Pick<RunIdentity, 'comp'>): CompChoice => id.comp ?? 'scalar';

/** Whether two identities are the same run (a field absent in one must be absent in the other). */
export function sameRun(a: RunIdentity, b: RunIdentity): boolean {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const k of keys) if ((x[k] ?? null) !== (y[k] ?? null)) return false;
  return true;
}

/** The parts of a run's cache key (store/cache.ts resultKey): the model and the run's identity. */
export function runKeyParts(modelKey: string, id: RunIdentity): Record<string, unknown> {
  return { kind: 'run-v2', model: modelKey, ...id };
}

/**
 * A 64-bit hash of a string's UTF-16 code units as 16 hex digits: two independent 32-bit
 * multiply-xorshift lanes (cyrb53's construction, widened), fast enough to run on every
 * check of a megabyte text. Identifies a text in a cache key; not a cryptographic hash.
 */
export function hash64(text: string): string {
  let h1 = 0xdeadbeef ^ text.length;
  let h2 = 0x41c6ce57 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(16).padStart(8, '0') + (h1 >>> 0).toString(16).padStart(8, '0');
}

/** What a link to the app carries of a run: its settings, the model to open, and the page-only memory override. */
export type LinkSettings = Omit<RunIdentity, 'backend'> & {
  /** catalog id or URL the app opens (absent: a local model, which a link cannot name) */
  model?: string;
  /** tokenizer URL of a llama2.c model given by URL */
  tokenizer?: string;
  /** absent: the app picks the backend */
  backend?: string;
  /** GiB the device check plans for (?memory=) */
  memoryGiB?: number;
};

/**
 * The app's URL parameters for `s`: one order, and the defaults left out as they are left out
 * of the run's identity (comp scalar, α 0, a seed only for the random metric). The page's
 * settings store writes its URL with them; a results report links back with them.
 */
export function runParams(s: LinkSettings): Record<string, string> {
  const p: Record<string, string> = {};
  if (s.model) p.model = s.model;
  if (s.model && s.tokenizer) p.tokenizer = s.tokenizer;
  if (s.backend) p.backend = s.backend;
  Object.assign(p, {
    metric: s.metric,
    layers: String(s.layers),
    mode: s.mode,
    fold: s.fold,
    windows: String(s.windows),
    window: String(s.window),
    calib: s.calib,
    eval: s.eval,
  });
  if (s.skipFirst !== undefined) p.skipFirst = String(s.skipFirst);
  if (s.skipLast !== undefined) p.skipLast = String(s.skipLast);
  if (s.metric === 'random') p.seed = String(s.seed ?? 0);
  const comp = identityComp(s);
  if (comp !== 'scalar') p.comp = comp;
  if ((comp === 'linear' || comp === 'diag') && s.alpha !== undefined && s.alpha !== 0) p.alpha = String(s.alpha);
  if (s.memoryGiB !== undefined) p.memory = String(s.memoryGiB);
  return p;
}
