import type { LoadRequest } from './model-client';

/**
 * Decide what a set of chosen files is: a Hugging Face folder (has config.json) or a
 * llama2.c model + tokenizer pair (.bin files; the tokenizer is named tok*.bin or is the
 * smaller one). Returns a load request or a message saying what is missing.
 */
export function classifyFiles(files: File[]): LoadRequest | { error: string } {
  if (files.length === 0) return { error: 'no files chosen' };
  const withPaths = files.map((file) => ({ file, path: relativePath(file) }));
  const config = withPaths.find((f) => f.path === 'config.json' || f.file.name === 'config.json');
  if (config) {
    const top = (file: File) => (file.webkitRelativePath ? file.webkitRelativePath.split('/')[0] : '');
    return { kind: 'hf-files', name: top(config.file) || 'chosen files', files: withPaths };
  }
  const bins = files.filter((f) => f.name.endsWith('.bin'));
  if (bins.length !== 2) {
    return {
      error:
        'choose a llama2.c model .bin and its tokenizer .bin (e.g. stories260K.bin + tok512.bin), ' +
        'or a Hugging Face folder with config.json, model.safetensors and tokenizer.json',
    };
  }
  const named = bins.find((f) => /^tok/i.test(f.name));
  const tokenizer = named ?? (bins[0].size <= bins[1].size ? bins[0] : bins[1]);
  const model = bins[0] === tokenizer ? bins[1] : bins[0];
  return { kind: 'llama2c-files', model, tokenizer };
}

/** Path inside the chosen folder (drops the folder's own name), or the bare file name. */
function relativePath(f: File): string {
  const p = f.webkitRelativePath;
  return p ? p.split('/').slice(1).join('/') : f.name;
}

/** A URL is read as a Hugging Face folder unless it names a llama2.c .bin file. */
export function urlRequest(model: string, tokenizer: string): LoadRequest {
  const path = model.split(/[?#]/)[0];
  if (path.endsWith('.bin')) return { kind: 'llama2c-urls', model, tokenizer };
  return { kind: 'hf-url', base: model };
}
