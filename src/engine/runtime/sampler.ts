/** Next-token choice: greedy, or temperature + top-k sampling from a seeded generator. */
export interface SamplerOptions {
  /** 0 (default) is greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  seed?: number;
}

/** mulberry32: small, fast, seeded; good enough for sampling and tests. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export function makeSampler(opts: SamplerOptions = {}): (logits: Float32Array) => number {
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0) return argmax;
  const random = mulberry32(opts.seed ?? 0);
  return (logits) => {
    let idx = Array.from(logits.keys());
    if (opts.topK && opts.topK < logits.length) {
      idx.sort((a, b) => logits[b] - logits[a]);
      idx = idx.slice(0, opts.topK);
    }
    let max = -Infinity;
    for (const i of idx) max = Math.max(max, logits[i]);
    const p = idx.map((i) => Math.exp((logits[i] - max) / temperature));
    let r = random() * p.reduce((a, b) => a + b, 0);
    for (let j = 0; j < idx.length; j++) {
      r -= p[j];
      if (r <= 0) return idx[j];
    }
    return idx[idx.length - 1];
  };
}
