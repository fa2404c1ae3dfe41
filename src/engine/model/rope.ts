/**
 * Rotary position embedding tables, Hugging Face layout (rotate-half).
 *
 * Shared by the engine and the Float64 reference (which casts the tables to float32), so
 * both rotate by exactly the same angles. Everything here is computed in Float64.
 *
 *   inv_freq[i] = 1 / theta^(2i / hd)                      i = 0 .. hd/2 - 1
 *   (llama3 rope_scaling then rescales inv_freq, see below)
 *   cos[p, j] = cos(p · inv_freq[j mod hd/2])             j = 0 .. hd - 1  (emb = cat(freqs, freqs))
 *   sin[p, j] = sin(p · inv_freq[j mod hd/2])
 *
 * Applied as  q' = q · cos + rotate_half(q) · sin,  rotate_half(q) = cat(-q[hd/2:], q[:hd/2]).
 */
import type { LlamaConfig } from './config';

type RopeConfig = Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>;

/** inv_freq, length headDim/2, with llama3 rope scaling applied as HF `_compute_llama3_parameters` does. */
export function ropeInvFreq(config: RopeConfig): Float64Array {
  const hd = config.headDim;
  const half = hd / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / hd);

  const s = config.ropeScaling;
  if (s === null) return invFreq;

  // llama3: keep high frequencies, divide low frequencies by `factor`, interpolate between.
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = invFreq[i];
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowFreqWavelen) {
      invFreq[i] = f / s.factor; // low frequency
    } else if (wavelen >= highFreqWavelen) {
      // medium frequency (HF: neither wavelen < high nor wavelen > low)
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      invFreq[i] = ((1 - smooth) * f) / s.factor + smooth * f;
    } // else high frequency: unchanged
  }
  return invFreq;
}

/** cos/sin tables, each [T, headDim] row-major, for the given positions (a list or a contiguous range). */
export function ropeTables(
  config: RopeConfig,
  positions: readonly number[] | { start: number; length: number },
): { cos: Float64Array; sin: Float64Array } {
  const pos: readonly number[] =
    'start' in positions ? Array.from({ length: positions.length }, (_, t) => positions.start + t) : positions;
  const hd = config.headDim;
  const half = hd / 2;
  const invFreq = ropeInvFreq(config);
  const cos = new Float64Array(pos.length * hd);
  const sin = new Float64Array(pos.length * hd);
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = pos[t] * invFreq[i];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * hd + i] = cos[t * hd + half + i] = c;
      sin[t * hd + i] = sin[t * hd + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * Reorder the rows of a q/k weight between RoPE layouts, per head of `headDim` rows:
 * llama2.c and llama.cpp's `llama` architecture (GGUF) rotate pairs (2i, 2i+1), Hugging Face
 * rotates halves (i, i + headDim/2). toHalves is HF's convert_llama_weights_to_hf.py permute():
 *   w.view(heads, headDim/2, 2, cols).transpose(1, 2).reshape(heads*headDim, cols)
 */
export function permuteRope(w: Float32Array, heads: number, headDim: number, toHalves: boolean): Float32Array {
  const cols = w.length / (heads * headDim);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const pairRow = h * headDim + 2 * i + s;
        const halvesRow = h * headDim + s * half + i;
        const [from, to] = toHalves ? [pairRow, halvesRow] : [halvesRow, pairRow];
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}
