import { totalmem } from 'node:os';
import { stat } from 'node:fs/promises';
import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { loadHfFolder } from './hf';
import { loadLlama2cFile } from './llama2c-node';
import { DirSource } from './node-source';

/**
 * Weight files above this many bytes stay on disk, read layer by layer as passes need them
 * (loadHfFolder's lazyAbove): a quarter of this machine's memory, at most 4 GiB — so every
 * catalog model (SmolLM2-1.7B's bf16 file is 3.4 GB) is read into memory once and an 8B
 * model's 16 GB are not. LOPPER_LAZY_ABOVE (bytes) sets another figure.
 */
export function lazyWeightsAbove(): number {
  const set = process.env.LOPPER_LAZY_ABOVE;
  if (set !== undefined && set !== '') {
    const n = Number(set);
    if (!(n >= 0)) throw new LopperError('bad-option', `LOPPER_LAZY_ABOVE must be a number of bytes ≥ 0 (got "${set.slice(0, 40)}")`);
    return n;
  }
  return Math.min(4 * 2 ** 30, totalmem() / 4);
}

/**
 * Open a model from disk (Node): a folder is a Hugging Face model; a file is a llama2.c
 * checkpoint, with its tokenizer beside it or given explicitly.
 */
export async function loadModelPath(path: string, tokenizerPath?: string): Promise<Checkpoint> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new LopperError('not-found', 'no such file or folder', path);
  }
  if (isDir) {
    if (tokenizerPath) throw new LopperError('bad-option', '--tokenizer applies to llama2.c models only; a Hugging Face folder brings its own tokenizer.json');
    return loadHfFolder(new DirSource(path), { lazyAbove: lazyWeightsAbove() });
  }
  return loadLlama2cFile(path, tokenizerPath);
}
