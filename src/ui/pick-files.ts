import type { ModelSource } from '../app/protocol';

export interface PickedFile {
  file: File;
  /** path inside the chosen folder (without the folder's own name), or the bare file name */
  path: string;
}

/**
 * Decide what a set of chosen files is: a Hugging Face folder (has config.json) or a
 * llama2.c model + tokenizer pair (two .bin files, or a .bin and a tokenizer.json; the
 * tokenizer is named tok*.bin / tokenizer.* or is the smaller one). Returns a model source or
 * a message saying what is missing.
 */
export function classifyFiles(picked: PickedFile[], folderName = ''): ModelSource | { error: string } {
  if (picked.length === 0) return { error: 'no files chosen' };
  const config = picked.find((f) => f.path === 'config.json' || f.file.name === 'config.json');
  if (config) {
    const top = config.file.webkitRelativePath ? config.file.webkitRelativePath.split('/')[0] : '';
    return { kind: 'hf-files', name: folderName || top || 'chosen folder', files: picked };
  }
  const bins = picked.map((f) => f.file).filter((f) => f.name.endsWith('.bin'));
  const json = picked.map((f) => f.file).find((f) => f.name === 'tokenizer.json');
  if (bins.length === 1 && json) return { kind: 'llama2c-files', model: bins[0], tokenizer: json };
  if (bins.length !== 2) {
    return {
      error:
        'choose a llama2.c model .bin and its tokenizer (e.g. stories260K.bin + tok512.bin), ' +
        'or a Hugging Face folder with config.json, model.safetensors and tokenizer.json',
    };
  }
  const named = bins.find((f) => /^tok/i.test(f.name));
  const tokenizer = named ?? (bins[0].size <= bins[1].size ? bins[0] : bins[1]);
  const model = bins[0] === tokenizer ? bins[1] : bins[0];
  return { kind: 'llama2c-files', model, tokenizer };
}

/** Files from an <input type=file> (a folder picker gives webkitRelativePath). */
export function fromInput(files: FileList | File[]): PickedFile[] {
  return [...files].map((file) => {
    const p = file.webkitRelativePath;
    return { file, path: p ? p.split('/').slice(1).join('/') : file.name };
  });
}

/**
 * Files dropped on the page: plain files, or one folder (walked recursively). Returns the
 * files with paths relative to the dropped folder, and the folder's name.
 */
export async function fromDrop(dt: DataTransfer): Promise<{ files: PickedFile[]; folder: string }> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (entries.length === 1 && entries[0].isDirectory) {
    const dir = entries[0] as FileSystemDirectoryEntry;
    return { files: await walk(dir, ''), folder: dir.name };
  }
  if (entries.length > 0) {
    const files: PickedFile[] = [];
    for (const e of entries) {
      if (e.isFile) files.push({ file: await fileOf(e as FileSystemFileEntry), path: e.name });
      else files.push(...(await walk(e as FileSystemDirectoryEntry, e.name + '/')));
    }
    return { files, folder: '' };
  }
  return { files: fromInput([...dt.files]), folder: '' };
}

const fileOf = (e: FileSystemFileEntry) => new Promise<File>((resolve, reject) => e.file(resolve, reject));

async function walk(dir: FileSystemDirectoryEntry, prefix: string): Promise<PickedFile[]> {
  const reader = dir.createReader();
  const out: PickedFile[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const e of batch) {
      if (e.isFile) out.push({ file: await fileOf(e as FileSystemFileEntry), path: prefix + e.name });
      else out.push(...(await walk(e as FileSystemDirectoryEntry, `${prefix}${e.name}/`)));
    }
  }
  return out;
}
