/**
 * The evaluation and export panels, in real Chromium on the built app: stories260K from the
 * local mirror, pruned by 2 layers (BI, Prune&Comp and the baseline), then
 *
 * - zero-shot accuracy on ARC-e and COPA, 20 items each, from the data mirror: three rows of
 *   numbers and RP; the dense model's accuracies and standard errors equal `lopper eval`'s
 *   on the same model, tasks and items exactly;
 * - a reload shows the stored evaluation (nothing recomputed); cancelling an evaluation
 *   midway leaves the app usable;
 * - the Prune&Comp model exported as a Hugging Face folder (zip) loads with the repo's
 *   loader with 3 layers and the tensors `lopper prune --format hf` writes for the same
 *   settings; the transformers.js ONNX zip holds a graph with one KV pair per remaining layer;
 *   with the File System Access API (its picker answered with a file of the origin's private
 *   file system) the llama2.c zip streams into the chosen file;
 * - the Prune&Comp model downloaded as GGUF (F16 and Q8_0, the .gguf file itself): node-llama-cpp
 *   (a prebuilt llama.cpp) loads it, reads 3 blocks, and greedy-generates what the engine
 *   generates with the CLI's pruned model (F16: 16 tokens; Q8_0, whose products llama.cpp also
 *   rounds to 8 bits: the first 4).
 *
 * Screenshots: test-results/e2e/eval-export/01-evaluation.png, 02-export.png, 03-gguf.png, and the
 * export panel with its GGUF columns alone: 04-export-panel.png.
 * The steps share one browser and depend on each other, in order.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadHfFolder } from '../../src/engine/formats/hf';
import { loadLlama2cFile } from '../../src/engine/formats/llama2c-node';
import { DirSource } from '../../src/engine/formats/node-source';
import type { Checkpoint } from '../../src/engine/model/checkpoint';
import { Engine } from '../../src/engine/runtime/engine';
import { nodeRuntime } from '../../src/engine/runtime/node';
import { lopper } from '../helpers/cli';
import {
  accuracyTable,
  errorText,
  evaluateButton,
  loadFromCatalog,
  runButton,
  setUpEval,
  setUpRun,
  waitForEvaluation,
  waitForResults,
  waitForTestId,
  type EvalSetup,
  STORIES_RUN,
} from './app';
import { openBrowser, screenshotsDir, type Browser } from './browser';
import { sharedDir } from './cli';

const MODEL = path.join(sharedDir, 'models/stories260K/stories260K.bin');

const SETUP = STORIES_RUN;
const EVAL: EvalSetup = { tasks: ['arc_easy', 'copa'], limit: 20, data: 'mirror' };

/** The pruned weights in the browser (onnxruntime-web WASM) against the CLI's (onnxruntime-node): the scales differ by float32 rounding. */
const TENSOR_TOLERANCE = 1e-4;

interface CliEval {
  results: Record<string, { n: number; acc: number; acc_stderr: number; acc_norm: number; acc_norm_stderr: number; reported: 'acc' | 'acc_norm' }>;
  average: number;
}

describe.sequential('evaluation and export', () => {
  let browser: Browser;
  let work: string;
  let cliEval: CliEval;
  let cliPruned: Checkpoint;
  let cliRemoved: number[];
  let shown: Awaited<ReturnType<typeof accuracyTable>>;

  const page = () => browser.page;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'lopper-e2e-eval-export-'));
    // The oracles first, while the machine is otherwise idle.
    const ev = await lopper('eval', '--model', MODEL, '--task', EVAL.tasks.join(','), '--limit', String(EVAL.limit), '--threads', '1', '--json');
    expect(ev.code, ev.stderr).toBe(0);
    cliEval = JSON.parse(ev.stdout) as CliEval;
    const out = path.join(work, 'cli-prunecomp');
    const pr = await lopper(
      'prune', '--model', MODEL, '--metric', SETUP.metric, '--layers', String(SETUP.layers), '--mode', 'prunecomp', '--fold', SETUP.fold,
      '--calib', path.join(sharedDir, 'data/tinystories/calib.txt'), '--calib-windows', String(SETUP.windows), '--window', String(SETUP.window),
      '--threads', '1', '--out', out, '--format', 'hf', '--json',
    );
    expect(pr.code, pr.stderr).toBe(0);
    cliRemoved = (JSON.parse(pr.stdout) as { removed: number[] }).removed;
    cliPruned = await loadHfFolder(new DirSource(out));

    browser = await openBrowser('eval-export');
    // Headless Chromium has no one to answer a save dialog: the panel then downloads (its fallback path).
    await browser.page.addInitScript(() => {
      delete (Window.prototype as unknown as { showSaveFilePicker?: unknown }).showSaveFilePicker;
      delete (window as unknown as { showSaveFilePicker?: unknown }).showSaveFilePicker;
    });
  });

  afterAll(async () => {
    if (browser?.errors.length) console.log(`[e2e] page errors:\n  ${browser.errors.join('\n  ')}`);
    await browser?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('loads stories260K from the local mirror and prunes 2 layers (BI)', async () => {
    const p = page();
    await p.goto(inject('baseUrl'));
    await waitForTestId(p, 'catalog', 30_000);
    await loadFromCatalog(p, 'stories260K');
    await waitForTestId(p, 'model-summary', 60_000);
    await setUpRun(p, SETUP);
    await runButton(p).click();
    await waitForResults(p, 240_000);
    const removed = await p.locator('[data-testid^="removed-prunecomp-"]').allInnerTexts();
    expect(removed.map(Number)).toEqual(cliRemoved);
  });

  it('evaluates ARC-e and COPA (20 items): three rows and RP; the dense model’s numbers equal lopper eval’s exactly', async () => {
    const p = page();
    await waitForTestId(p, 'evaluation', 10_000);
    await setUpEval(p, EVAL);
    await evaluateButton(p).click();
    await waitForEvaluation(p, 240_000);
    expect(await p.getByTestId('eval-source').getAttribute('data-from-cache')).toBe('false');
    await browser.shot('evaluation');

    shown = await accuracyTable(p);
    console.log(`[e2e] evaluation ${JSON.stringify(shown)}; CLI (dense) ${JSON.stringify(cliEval)}`);
    expect(Object.keys(shown)).toEqual(['dense', 'baseline', 'prunecomp']);
    for (const [key, row] of Object.entries(shown)) {
      expect(Object.keys(row.tasks), key).toEqual(EVAL.tasks);
      for (const a of Object.values(row.tasks)) {
        expect(a.value, key).toBeGreaterThanOrEqual(0);
        expect(a.value, key).toBeLessThanOrEqual(1);
        expect(Number.isFinite(a.stderr), key).toBe(true);
      }
      expect(row.avg).toBeCloseTo(EVAL.tasks.reduce((s, t) => s + row.tasks[t].value, 0) / EVAL.tasks.length, 12);
    }
    expect(shown.dense.rp).toBeNull();
    for (const key of ['baseline', 'prunecomp']) expect(shown[key].rp).toBeCloseTo((100 * shown[key].avg) / shown.dense.avg, 9);

    // Same items, same scoring: the dense model's accuracies equal the CLI's (onnxruntime-node) exactly.
    for (const task of EVAL.tasks) {
      const cli = cliEval.results[task];
      const kind = cli.reported;
      expect(cli.n).toBe(EVAL.limit);
      expect(shown.dense.tasks[task], task).toEqual({ value: cli[kind], stderr: cli[`${kind}_stderr`] });
    }
    expect(shown.dense.avg).toBe(cliEval.average);
  });

  it('reloads and shows the stored evaluation without recomputing it', async () => {
    const p = page();
    await p.reload();
    await waitForTestId(p, 'model-summary', 60_000);
    await waitForTestId(p, 'eval-table', 30_000);
    expect(await p.getByTestId('eval-source').getAttribute('data-from-cache')).toBe('true');
    expect(await p.getByTestId('eval-progress').count()).toBe(0);
    expect(await accuracyTable(p)).toEqual(shown);
  });

  it('cancels an evaluation midway and stays usable', async () => {
    const p = page();
    await setUpEval(p, { ...EVAL, limit: 400 });
    await evaluateButton(p).click();
    const label = p.getByTestId('eval-progress-label');
    await expect.poll(() => label.innerText().catch(() => ''), { timeout: 60_000, interval: 100 }).toMatch(/[1-9]\d* of \d+ items/);
    await p.getByTestId('eval-progress').getByRole('button', { name: 'Cancel evaluation' }).click();
    await p.getByTestId('eval-progress').waitFor({ state: 'detached', timeout: 30_000 });
    expect(await p.getByTestId('notice').innerText()).toMatch(/evaluation was cancelled/i);
    expect(await errorText(p)).toBeNull();
    expect(await evaluateButton(p).isEnabled()).toBe(true);
    // Back to 20 items: the stored evaluation shows again.
    await setUpEval(p, EVAL);
    await expect.poll(() => p.getByTestId('eval-stale').count(), { timeout: 10_000 }).toBe(0);
    expect(await accuracyTable(p)).toEqual(shown);
  });

  it('exports the Prune&Comp model as a Hugging Face zip (3 layers, the CLI’s tensors) and as a transformers.js ONNX zip', async () => {
    const p = page();
    const hfDir = await exportAndUnzip(p, 'export-prunecomp-hf', path.join(work, 'app-hf'));
    const hfFolder = onlySubfolder(hfDir);
    expect(path.basename(hfFolder)).toBe('stories260K-prunecomp-bi-2-hf');
    const config = JSON.parse(readFileSync(path.join(hfFolder, 'config.json'), 'utf8')) as { num_hidden_layers: number };
    expect(config.num_hidden_layers).toBe(3);
    const app = await loadHfFolder(new DirSource(hfFolder));
    expect(app.config.numLayers).toBe(3);
    expect([...app.tensors.keys()].sort()).toEqual([...cliPruned.tensors.keys()].sort());
    let worst = { name: '', err: 0 };
    for (const [name, t] of cliPruned.tensors) {
      const a = app.tensors.get(name)!;
      expect(a.dtype, name).toBe(t.dtype);
      expect(a.shape, name).toEqual(t.shape);
      const err = maxRelErr(a.data as Float32Array, t.data as Float32Array);
      if (err > worst.err) worst = { name, err };
    }
    console.log(`[e2e] exported HF folder vs lopper prune --format hf: largest relative difference ${worst.err.toExponential(2)} (${worst.name || 'none'})`);
    expect(worst.err).toBeLessThan(TENSOR_TOLERANCE);

    const onnxDir = onlySubfolder(await exportAndUnzip(p, 'export-prunecomp-onnx', path.join(work, 'app-onnx')));
    expect(path.basename(onnxDir)).toBe('stories260K-prunecomp-bi-2-onnx');
    expect(existsSync(path.join(onnxDir, 'onnx/model.onnx'))).toBe(true);
    expect(existsSync(path.join(onnxDir, 'tokenizer.json'))).toBe(true);
    expect((JSON.parse(readFileSync(path.join(onnxDir, 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers).toBe(3);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(path.join(onnxDir, 'onnx/model.onnx'));
    expect(session.inputNames).toContain('past_key_values.2.key');
    expect(session.inputNames).not.toContain('past_key_values.3.key');
    expect(session.outputNames).toContain('present.2.value');
    await session.release();

    // The compensated model's llama.cpp line quantizes its own GGUF download (--prune-layers on the dense GGUF would drop the compensation); the note names the removed layers.
    expect(await p.getByTestId('quantize-prunecomp-line').innerText()).toMatch(/^llama-quantize stories260K-prunecomp-bi-2-gguf-f16\.gguf \S+ Q4_K_M$/);
    expect(await p.getByTestId('quantize-prunecomp').innerText()).toContain(`--prune-layers ${[...cliRemoved].sort((a, b) => a - b).join(',')}`);
    expect(await p.getByTestId('quantize-baseline-line').innerText()).toMatch(/^llama-quantize --prune-layers \d+,\d+ /);
    expect(await errorText(p)).toBeNull();
  });

  it('streams an export straight into the file the person picks (File System Access API): the llama2.c .bin with its tokenizer', async () => {
    const p = page();
    // The picker, answered with a file in the origin's private file system (a real FileSystemFileHandle).
    await p.evaluate(() => {
      (window as unknown as { showSaveFilePicker: unknown }).showSaveFilePicker = async (opts: { suggestedName: string }) =>
        (await navigator.storage.getDirectory()).getFileHandle(opts.suggestedName, { create: true });
    });
    const name = 'stories260K-prunecomp-bi-2-llama2c.zip';
    await p.getByTestId('export-prunecomp-llama2c').click();
    await expect.poll(async () => (await errorText(p)) ?? (await p.getByTestId('notice').innerText().catch(() => '')), { timeout: 60_000 }).toContain(`Saved ${name}`);
    const base64 = await p.evaluate(async (file) => {
      const blob = await (await (await navigator.storage.getDirectory()).getFileHandle(file)).getFile();
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    }, name);
    const zip = path.join(work, 'app-llama2c.zip');
    writeFileSync(zip, Buffer.from(base64, 'base64'));
    const dir = path.join(work, 'app-llama2c');
    execFileSync('unzip', ['-q', zip, '-d', dir]);
    const folder = onlySubfolder(dir);
    expect(readdirSync(folder).sort()).toEqual(['model.bin', 'tokenizer.bin']);
    const ck = await loadLlama2cFile(path.join(folder, 'model.bin'), path.join(folder, 'tokenizer.bin'));
    expect(ck.config.numLayers).toBe(3);
    for (const [tensorName, t] of cliPruned.tensors) expect(maxRelErr(ck.tensors.get(tensorName)!.data as Float32Array, t.data as Float32Array), tensorName).toBeLessThan(TENSOR_TOLERANCE);
    await browser.shot('export');
  });

  it('downloads the Prune&Comp model as GGUF (F16, Q8_0) that llama.cpp loads and generates the pruned model\'s greedy ids with', async () => {
    const p = page();
    await p.evaluate(() => delete (window as unknown as { showSaveFilePicker?: unknown }).showSaveFilePicker); // the step before answered the picker: download again
    const prompt = [1, 403, 407, 261, 378]; // "Once upon a time" with tok512
    const engine = new Engine(cliPruned, nodeRuntime(1));
    const expected: number[] = [];
    for await (const id of engine.generate(prompt, { maxTokens: 16, stopAtEos: false })) expected.push(id);
    await engine.dispose();
    const { getLlama, LlamaLogLevel, readGgufFileInfo } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    try {
      for (const [type, n] of [['f16', 16], ['q8_0', 4]] as const) {
        const [download] = await Promise.all([p.waitForEvent('download', { timeout: 60_000 }), p.getByTestId(`export-prunecomp-gguf-${type}`).click()]);
        expect(download.suggestedFilename()).toBe(`stories260K-prunecomp-bi-2-gguf-${type}.gguf`);
        const file = path.join(work, download.suggestedFilename());
        await download.saveAs(file);
        await p.getByTestId('export-progress').waitFor({ state: 'detached', timeout: 60_000 });
        const info = await readGgufFileInfo(file);
        expect((info.metadata as unknown as { llama: { block_count: number } }).llama.block_count).toBe(3);
        const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
        const ctx = await model.createContext({ contextSize: 64, threads: 1 });
        const ids: number[] = [];
        for await (const t of ctx.getSequence().evaluate(prompt as never[], { temperature: 0, yieldEogToken: true })) {
          ids.push(t as unknown as number);
          if (ids.length >= n) break;
        }
        await ctx.dispose();
        await model.dispose();
        console.log(`[e2e] llama.cpp on the app's ${type} GGUF: ${ids.join(',')} (engine on the CLI's pruned model: ${expected.slice(0, n).join(',')})`);
        expect(ids).toEqual(expected.slice(0, n));
      }
    } finally {
      await llama.dispose();
    }
    await browser.shot('gguf');
    await p.getByTestId('export').screenshot({ path: path.join(screenshotsDir, 'eval-export', '04-export-panel.png') });
    expect(await errorText(p)).toBeNull();
  });

  it('threw no uncaught exception in the page or its workers along the way', () => {
    expect(browser.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});

/** Click an export button, wait for the download, unzip it into `dir`. */
async function exportAndUnzip(p: Page, testid: string, dir: string): Promise<string> {
  const [download] = await Promise.all([p.waitForEvent('download', { timeout: 120_000 }), p.getByTestId(testid).click()]);
  const zip = `${dir}.zip`;
  await download.saveAs(zip);
  await p.getByTestId('export-progress').waitFor({ state: 'detached', timeout: 60_000 });
  expect(await p.getByTestId('notice').innerText()).toMatch(new RegExp(`Saved ${download.suggestedFilename().replace(/[.]/g, '\\.')}`));
  execFileSync('unzip', ['-q', zip, '-d', dir]);
  return dir;
}

function onlySubfolder(dir: string): string {
  const entries = readdirSync(dir);
  expect(entries).toHaveLength(1);
  return path.join(dir, entries[0]);
}

/** max|a − b| / max|b| */
function maxRelErr(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}
