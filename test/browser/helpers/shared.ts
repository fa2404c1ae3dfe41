import { expect } from 'vitest';
import { loadLlama2c } from '../../../src/engine/formats/llama2c';
import type { Checkpoint } from '../../../src/engine/model/checkpoint';

/** A file of ../shared (models/…, data/…), served to the browser tests at __LOPPER_SHARED_FS__. */
export async function fetchShared(path: string): Promise<Uint8Array> {
  const r = await fetch(`${__LOPPER_SHARED_FS__}/${path}`);
  expect(r.ok).toBe(true);
  return new Uint8Array(await r.arrayBuffer());
}

/** stories260K (llama2.c) with its tokenizer. */
export async function loadStories260K(): Promise<Checkpoint> {
  return loadLlama2c(await fetchShared('models/stories260K/stories260K.bin'), await fetchShared('models/stories260K/tok512.bin'), {
    model: 'stories260K.bin',
    tokenizer: 'tok512.bin',
  });
}
