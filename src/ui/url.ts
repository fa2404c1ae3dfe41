/**
 * The page URL as the home of a store's state, so a setup is a link: each store owns some
 * query parameters and writes exactly those, leaving the others (and the #tour hash) alone.
 */

/** Replace the parameters `owned` with `params` in the page URL (replaceState: no history entry per change). */
export function writeUrlParams(owned: readonly string[], params: Record<string, string>): void {
  const url = new URL(location.href);
  for (const k of owned) url.searchParams.delete(k);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  if (url.href !== location.href) history.replaceState(history.state, '', url);
}
