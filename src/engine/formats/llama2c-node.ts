import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LopperError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { loadLlama2c } from './llama2c';
import { DirSource } from './node-source';

/** Tokenizer files llama2.c keeps beside a model: tokenizer.bin, tok512.bin, … */
const TOKENIZER_NAME = /^tok.*\.bin$/;

/**
 * A llama2.c checkpoint from disk (Node). Without `tokenizerPath`, the tokenizer is the one
 * tokenizer.bin or tok*.bin file in the model's folder.
 */
export async function loadLlama2cFile(path: string, tokenizerPath?: string): Promise<Checkpoint> {
  const tokPath = tokenizerPath ?? (await findTokenizer(path));
  const [model, tokenizer] = await Promise.all([readPath(path), readPath(tokPath)]);
  return loadLlama2c(model, tokenizer, { model: path, tokenizer: tokPath });
}

const readPath = (path: string) => new DirSource(dirname(path)).read(basename(path));

async function findTokenizer(modelPath: string): Promise<string> {
  const dir = dirname(modelPath);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    throw new LopperError('not-found', 'no such file', modelPath);
  }
  const found = entries
    .filter((e) => !e.isDirectory() && TOKENIZER_NAME.test(e.name) && e.name !== basename(modelPath))
    .map((e) => e.name)
    .sort();
  if (found.length === 1) return join(dir, found[0]);
  if (found.length === 0) {
    throw new LopperError(
      'not-found',
      `no llama2.c tokenizer (tokenizer.bin or tok*.bin) beside the model in ${dir}; pass --tokenizer <file>`,
      modelPath,
    );
  }
  throw new LopperError(
    'bad-option',
    `several tokenizers beside the model (${found.join(', ')}); pass --tokenizer <file> to choose one`,
    modelPath,
  );
}
