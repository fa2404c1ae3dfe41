/**
 * npm run bench:export — what a streamed export costs in memory: a seeded random model of
 * about 1 GB (float32, 264M parameters) written as a zip in each format, each in a process
 * of its own, so the peak resident memory (the OS's high-water mark) is the export's alone.
 *
 * Prints, per format: the model's bytes, resident memory before the export, the peak during
 * it, their difference as a share of the model, the zip's size and the time.
 * HF and llama2.c stream views of the tensors; the transformers.js bundle (fp32, and fp16 as
 * onnx-fp16) makes its graph weights (fused, transposed, narrowed) tensor by tensor as they are
 * written — inline under 2 GB, so its model.onnx is one protobuf message, still streamed.
 * The target for every format: a small fraction of the model extra.
 *
 *   npm run bench:export [-- --layers 18]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeExportZip } from '../src/cli/export';
import { EXPORT_FORMATS, exportFiles, type ExportFormat } from '../src/engine/export';
import { randomCheckpoint } from '../test/helpers/random-checkpoint';

const { values } = parseArgs({ options: { child: { type: 'string' }, layers: { type: 'string' } } });
const layers = Number(values.layers ?? 18);
const MB = 2 ** 20;

interface Measured {
  /** an export format, or onnx-fp16 (the transformers.js bundle with fp16 weights) */
  format: string;
  modelBytes: number;
  rssBefore: number;
  /** the high-water mark before the export (building the model): a peak below it is hidden */
  peakBefore: number;
  peakRss: number;
  zipBytes: number;
  seconds: number;
}

if (values.child) {
  // One format, in this process.
  const format = values.child === 'onnx-fp16' ? 'onnx' : (values.child as ExportFormat);
  const ck = randomCheckpoint({ hiddenSize: 1024, intermediateSize: 2816, numLayers: layers, numHeads: 16, numKvHeads: 16, vocabSize: 32000, maxPositions: 2048, tie: true, seed: 5 });
  const modelBytes = [...ck.tensors.values()].reduce((s, t) => s + t.data.byteLength, 0);
  const rssBefore = process.memoryUsage().rss;
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'lopper-bench-export-'));
  const zip = join(dir, `model-${values.child}.zip`);
  const t0 = performance.now();
  await writeExportZip(zip, await exportFiles(ck, format, values.child === 'onnx-fp16' ? { dtypes: ['fp16'] } : {}));
  const seconds = (performance.now() - t0) / 1000;
  const peakRss = process.resourceUsage().maxRSS * 1024;
  const measured: Measured = { format: values.child, modelBytes, rssBefore, peakBefore, peakRss, zipBytes: statSync(zip).size, seconds };
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(measured) + '\n');
} else {
  console.error(`bench:export: a random model of ${layers} layers (about 1 GB in float32), one process per format…`);
  const rows: Measured[] = [];
  for (const format of [...EXPORT_FORMATS, 'onnx-fp16']) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/export.ts', '--child', format, '--layers', String(layers)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const m: Measured = JSON.parse(out.trim().split('\n').at(-1)!);
    rows.push(m);
    const extra = Math.max(0, m.peakRss - m.rssBefore);
    console.log(
      `${format.padEnd(9)} model ${(m.modelBytes / MB).toFixed(0)} MiB  rss before ${(m.rssBefore / MB).toFixed(0)} MiB  peak ${(m.peakRss / MB).toFixed(0)} MiB  ` +
        `extra ${(extra / MB).toFixed(0)} MiB (${(extra / m.modelBytes).toFixed(2)}× the model; peak before ${(m.peakBefore / MB).toFixed(0)} MiB)  zip ${(m.zipBytes / MB).toFixed(0)} MiB  ${m.seconds.toFixed(1)} s`,
    );
  }
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/export.json', JSON.stringify({ date: new Date().toISOString(), layers, rows }, null, 2));
}
