import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** ../shared beside the repository (read-only in CI). */
export const SHARED = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared');
export const MODELS = join(SHARED, 'models');
export const DATA = join(SHARED, 'data');

/** The llama2.c models in ../shared/models: [name, model file]. */
export const LLAMA2C_MODELS: [string, string][] = [
  ['stories260K', join(MODELS, 'stories260K/stories260K.bin')],
  ['llama2xs-tinystories', join(MODELS, 'llama2xs-tinystories/model.bin')],
  ['babyllama-tok105', join(MODELS, 'babyllama-tok105/model5000.bin')],
];
