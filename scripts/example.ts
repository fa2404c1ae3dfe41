/**
 * npm run example — the precomputed result the app shows on a first visit, before anything is
 * downloaded (src/ui/example/stories260K.json, bundled with the app).
 *
 * A real run: the catalog's stories260K from ../shared/models (its bytes are the catalog's),
 * the app's default settings (src/ui/stores/settings.svelte.ts DEFAULTS, the default texts of
 * src/app/texts.ts from ../shared/data), through the code the app's worker runs (compareRun,
 * runResult) on onnxruntime-web's WASM build — the app's WASM backend, which the example's
 * settings name. test/unit/example.test.ts computes it again and fails when the shipped copy
 * is stale.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareRun, runResult, textWindows, tokenizeText } from '../src/app/run';
import { runIdentity, runKeyParts } from '../src/app/run-identity';
import type { RunResult, RunSettings, TextSource } from '../src/app/protocol';
import { loadModelPath } from '../src/engine/formats/load-node';
import { webWasmRuntime } from '../src/engine/runtime/web-node';
import { catalogEntry } from '../src/engine/store/catalog';
import { resultKey } from '../src/engine/store/cache';
import { DEFAULTS } from '../src/ui/stores/settings.svelte';
import { DEFAULT_CALIB, DEFAULT_EVAL, textById } from '../src/app/texts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** ../shared beside the repository */
const shared = resolve(root, '../shared');
/** where the app imports it from */
export const EXAMPLE_FILE = join(root, 'src/ui/example/stories260K.json');
const MODEL_ID = 'stories260K';

/** The example's run: stories260K with the app's default settings on the WASM backend. */
export async function computeExample(): Promise<RunResult> {
  const t0 = performance.now();
  const entry = catalogEntry(MODEL_ID);
  if (!entry) throw new Error(`no ${MODEL_ID} in the catalog`);
  const file = (role: string) => {
    const f = entry.files.find((x) => x.role === role);
    if (!f) throw new Error(`the catalog's ${MODEL_ID} has no ${role} file`);
    const p = join(shared, 'models', f.path);
    // the shared copy must be the catalog's file, or the example would be another model's
    if (f.bytes !== undefined && statSync(p).size !== f.bytes) throw new Error(`${p}: ${statSync(p).size} bytes, the catalog's ${f.path} has ${f.bytes}`);
    return p;
  };
  const ck = await loadModelPath(file('model'), file('tokenizer'));

  const text = (id: string): { source: TextSource; file: string; text: string } => {
    const t = textById(id);
    if (!t) throw new Error(`no built-in text "${id}"`);
    const file = join(shared, 'data', t.path);
    return { source: { kind: 'builtin', id, url: `/data/${t.path}` }, file, text: readFileSync(file, 'utf8') };
  };
  const calib = text(DEFAULT_CALIB);
  const evalText = text(DEFAULT_EVAL);
  const settings: RunSettings = { backend: 'wasm', ...DEFAULTS, calib: calib.source, eval: evalText.source };
  const identity = runIdentity(settings);

  // As the worker's run handler does (workers/lopper.worker.ts).
  const calibIds = tokenizeText(ck, calib.text);
  const evalIds = tokenizeText(ck, evalText.text);
  const windows = textWindows(calibIds, settings.window, settings.windows, 'the calibration text', calib.file);
  const evalWindows = textWindows(evalIds, settings.window, undefined, 'the evaluation text', evalText.file).length;
  const out = await compareRun(ck, webWasmRuntime(), windows, {
    metric: settings.metric,
    layers: settings.layers,
    mode: settings.mode,
    fold: settings.fold,
    barriers: { skipFirst: settings.skipFirst, skipLast: settings.skipLast },
    seed: settings.seed,
    curves: true,
    evaluation: { ids: evalIds, window: settings.window },
  });
  const modelKey = `catalog:${entry.id}@${entry.revision}`; // as workers/lib/load.ts names a catalog model
  return runResult(out, {
    key: resultKey(runKeyParts(modelKey, identity)),
    model: { key: modelKey, name: entry.name, numLayers: ck.config.numLayers },
    settings: identity,
    calibration: { windows: windows.length, window: settings.window, tokens: calibIds.length },
    evaluation: { windows: evalWindows, window: settings.window, tokens: evalIds.length },
    computedAt: Date.now(),
    millis: performance.now() - t0,
    // no speed: it is the generating machine's, not the visitor's device
  });
}

async function main(): Promise<void> {
  const r = await computeExample();
  const json = JSON.stringify(r, null, 2) + '\n';
  writeFileSync(EXAMPLE_FILE, json);
  const p = r.ppl;
  console.log(
    `${EXAMPLE_FILE}: ${(json.length / 1024).toFixed(1)} KB · ${r.model.name}, ${r.settings.metric}, ${r.settings.layers} layers, ${r.settings.windows} × ${r.settings.window}: ` +
      `perplexity dense ${p.dense.ppl.toFixed(4)}, baseline ${p.baseline.ppl.toFixed(4)}, Prune&Comp ${p.prunecomp?.ppl.toFixed(4)} · ${(r.millis / 1000).toFixed(1)} s`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
