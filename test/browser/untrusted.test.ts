/**
 * The app's importer (workers/lib/load.ts loadModel) in real Chromium, on files a person
 * picks: a hostile shard index, NaN weights and an absurd tokenizer id are refused with the
 * same LopperErrors as in Node (test/unit/untrusted.test.ts), naming the file, on one line;
 * the untouched files then load.
 */
import { describe, expect, test } from 'vitest';
import type { ModelSource } from '../../src/app/protocol';
import { LopperError } from '../../src/engine/errors';
import { writeHfFolder } from '../../src/engine/formats/hf';
import { loadModel, loadStages } from '../../workers/lib/load';
import { Tracker } from '../../workers/lib/progress';
import { HOSTILE_PATHS } from '../fuzz/mutate';
import { fetchShared, loadStories260K } from './helpers/shared';

const INDEX = 'model.safetensors.index.json';

const context = () => ({ signal: new AbortController().signal, tracker: new Tracker(loadStages(), () => undefined), backend: 'wasm' as const, force: true, workload: { windows: 8, window: 256 }, memoryBytes: null });

const picked = (files: Map<string, Uint8Array>): ModelSource => ({
  kind: 'hf-files',
  name: 'picked-model',
  files: [...files].map(([path, bytes]) => ({ path, file: new File([bytes as BlobPart], path.split('/').pop()!) })),
});

async function refusal(source: ModelSource): Promise<LopperError> {
  const e = await loadModel(source, context()).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LopperError);
  expect((e as LopperError).message).not.toMatch(/\n/);
  return e as LopperError;
}

const jsonOf = (files: Map<string, Uint8Array>, name: string) => JSON.parse(new TextDecoder().decode(files.get(name)));
const setJson = (files: Map<string, Uint8Array>, name: string, value: unknown) => files.set(name, new TextEncoder().encode(JSON.stringify(value)));

describe('the importer in Chromium refuses hostile model files', () => {
  test('shard paths outside the picked folder, for every hostile spelling; the intact folder loads', async () => {
    const sharded = writeHfFolder(await loadStories260K(), { maxShardSize: 250_000 });
    const index = jsonOf(sharded, INDEX);
    for (const path of HOSTILE_PATHS) {
      const files = new Map(sharded);
      setJson(files, INDEX, { ...index, weight_map: { ...index.weight_map, 'model.norm.weight': path } });
      // what the path names is there too, so following it would find a file
      files.set(path, sharded.get('model-00001-of-00005.safetensors')!);
      const e = await refusal(picked(files));
      expect(e.code, path).toBe('corrupt');
      expect(e.message).toContain(`picked-model/${INDEX}`);
      expect(e.message).toContain("is not a file inside the model's folder");
    }
    const { summary } = await loadModel(picked(sharded), context());
    expect(summary.numLayers).toBe(5);
  });

  test('NaN weights in a picked llama2.c model are named; a tokenizer.json id of 1e9 is refused at once', async () => {
    const model = (await fetchShared('models/stories260K/stories260K.bin')).slice();
    new DataView(model.buffer).setFloat32(28 + 4 * (512 * 64 + 5 * 64), NaN, true);
    const tokenizer = await fetchShared('models/stories260K/tok512.bin');
    const file = (bytes: Uint8Array, name: string) => new File([bytes as BlobPart], name);
    const e = await refusal({ kind: 'llama2c-files', model: file(model, 'stories260K.bin'), tokenizer: file(tokenizer, 'tok512.bin') });
    expect(e.code).toBe('non-finite');
    expect(e.message).toContain('stories260K.bin: tensor "model.layers.0.self_attn.q_proj.weight" has 1 non-finite value');

    const folder = writeHfFolder(await loadStories260K());
    const tok = jsonOf(folder, 'tokenizer.json');
    tok.model.vocab.the = 1e9;
    setJson(folder, 'tokenizer.json', tok);
    const t0 = performance.now();
    const e2 = await refusal(picked(folder));
    expect(e2.message).toContain('picked-model/tokenizer.json: the id of token "the" is 1000000000');
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});
