import { stat } from 'node:fs/promises';
import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { loadHfFolder } from './hf';
import { loadLlama2cFile } from './llama2c-node';
import { DirSource } from './node-source';

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
    return loadHfFolder(new DirSource(path));
  }
  return loadLlama2cFile(path, tokenizerPath);
}
