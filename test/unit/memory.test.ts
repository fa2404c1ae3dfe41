/**
 * The catalog against the published configs, and what each catalog model takes in the tab
 * (src/engine/model/cost.ts) with the device check built on it (workers/lib/device.ts):
 * - every Hugging Face entry's parameter count is its published config's (../shared/configs),
 *   and its download size that many bf16 weights (within 2%, tokenizer included);
 * - on onnxruntime-web every model above 1 GiB of fp32 weights runs layer by layer, and then
 *   the runtime's memory stays under WebAssembly's 4 GiB for every catalog model (the whole
 *   graph of SmolLM2-360M would not: 3 × its 1.45 GB of fp32 weights);
 * - the estimate is no lower than what bench:scale measured on onnxruntime-web WASM for
 *   Llama-3.2-1B streamed (0.58 GB of WebAssembly memory, 8 windows × 512) and SmolLM2-360M's
 *   whole graph (4.23 GB);
 * - the check refuses, before any download, with the numbers, a model that does not fit the
 *   memory the device reports or the figure set by hand, and accepts it otherwise.
 */
import { describe, expect, it } from 'vitest';
import { expectedTensors } from '../../src/engine/model/checkpoint';
import { numel } from '../../src/engine/model/tensor';
import { executionFor } from '../../src/engine/runtime/engine';
import { decodeWeightsFor, flopsPerToken, fp16DecoderBytes, memoryNeeds, q8DecoderBytes, q8DecoderRuntimeBytes } from '../../src/engine/model/cost';
import { runFlops } from '../../src/app/estimate';
import { WEB_WHOLE_GRAPH_BUDGET } from '../../src/engine/runtime/ort';
import { CATALOG, catalogEntry } from '../../src/engine/store/catalog';
import { checkDevice } from '../../workers/lib/device';
import type { DeviceInfo } from '../../src/app/protocol';
import { shapeConfig, type ShapeName } from '../helpers/real-shapes';

const GiB = 2 ** 30;
/** Catalog id → published config file. */
const CONFIGS: Record<string, ShapeName> = {
  'SmolLM2-135M': 'HuggingFaceTB__SmolLM2-135M',
  'SmolLM2-360M': 'HuggingFaceTB__SmolLM2-360M',
  'Qwen2.5-0.5B': 'Qwen__Qwen2.5-0.5B',
  'Qwen3-0.6B': 'Qwen__Qwen3-0.6B',
  'TinyLlama-1.1B': 'TinyLlama__TinyLlama-1.1B-Chat-v1.0',
  'Llama-3.2-1B': 'meta-llama__Llama-3.2-1B',
  'SmolLM2-1.7B': 'HuggingFaceTB__SmolLM2-1.7B',
};
const params = (id: string) => [...expectedTensors(shapeConfig(CONFIGS[id])).values()].reduce((a, s) => a + numel(s), 0);
const chromium: DeviceInfo = { webgpu: false, gpu: null, deviceMemoryBytes: 8 * GiB, crossOriginIsolated: true, threads: 2 };
const WORKLOAD = { windows: 8, window: 256 };

describe('the catalog and the memory each model takes in the tab', () => {
  it('every Hugging Face entry has its published config’s shape and parameter count and a bf16-sized download; every entry’s shape gives its parameter count', () => {
    const hf = CATALOG.filter((e) => e.format === 'hf').map((e) => e.id);
    expect(hf.sort()).toEqual(Object.keys(CONFIGS).sort());
    for (const id of hf) {
      const e = catalogEntry(id)!;
      const c = shapeConfig(CONFIGS[id]);
      for (const key of Object.keys(e.shape) as (keyof typeof e.shape)[]) expect(e.shape[key], `${id} ${key}`).toBe(c[key]);
      expect(e.params, id).toBe(params(id));
      expect(Math.abs(e.bytes / (2 * e.params) - 1), id).toBeLessThan(0.02);
    }
    for (const e of CATALOG) expect([...expectedTensors(e.shape).values()].reduce((a, s) => a + numel(s), 0), e.id).toBe(e.params);
  });

  it('on onnxruntime-web, models above 1 GiB of fp32 weights stream, and every catalog model stays under 4 GiB of WebAssembly memory', () => {
    const rows: string[] = [];
    for (const id of Object.keys(CONFIGS)) {
      const e = catalogEntry(id)!;
      const execution = executionFor(e.params, WEB_WHOLE_GRAPH_BUDGET);
      expect(execution, id).toBe(e.params * 4 > GiB ? 'streamed' : 'whole');
      const needs = memoryNeeds(e.shape, 2 * e.params, e.params, execution, WORKLOAD);
      expect(needs.runtimeBytes, id).toBeLessThan(4 * GiB);
      expect(needs.totalBytes).toBe(needs.weightBytes + needs.engineBytes + needs.runtimeBytes);
      rows.push(`${id.padEnd(15)} ${execution.padEnd(8)} total ${(needs.totalBytes / GiB).toFixed(2)} GiB, runtime ${(needs.runtimeBytes / GiB).toFixed(2)} GiB, largest feed ${needs.largestFeed.name} ${(needs.largestFeed.bytes / 2 ** 20).toFixed(0)} MiB`);
    }
    console.log(`[memory] catalog on onnxruntime-web WASM, ${WORKLOAD.windows} × ${WORKLOAD.window} tokens:\n  ${rows.join('\n  ')}`);
    expect(executionFor(catalogEntry('SmolLM2-135M')!.params, WEB_WHOLE_GRAPH_BUDGET)).toBe('whole');
    expect(executionFor(catalogEntry('SmolLM2-360M')!.params, WEB_WHOLE_GRAPH_BUDGET)).toBe('streamed');
  });

  it('estimates no less than bench:scale measured on onnxruntime-web WASM', () => {
    const llama = catalogEntry('Llama-3.2-1B')!;
    const streamed = memoryNeeds(llama.shape, 2 * llama.params, llama.params, 'streamed', { windows: 8, window: 512 });
    expect(streamed.runtimeBytes).toBeGreaterThan(0.58e9);
    expect(streamed.runtimeBytes).toBeLessThan(1.5 * GiB); // one layer, one group, one head slice: not the model
    const smol = catalogEntry('SmolLM2-360M')!;
    const whole = memoryNeeds(smol.shape, 2 * smol.params, smol.params, 'whole', { windows: 8, window: 512 });
    expect(whole.runtimeBytes).toBeGreaterThan(4.23e9);
  });

  it('the device check refuses before the download, with the numbers, what does not fit the memory reported or set, and accepts it otherwise', () => {
    const e = catalogEntry('Llama-3.2-1B')!;
    const model = { shape: e.shape, parameters: e.params, weightBytes: 2 * e.params };
    const ok = checkDevice(model, 'wasm', chromium, WORKLOAD);
    expect(ok).toMatchObject({ fits: true, problems: [], memorySetByHand: false, deviceMemoryBytes: 8 * GiB });
    expect(ok.needs.execution).toBe('streamed');
    const small = checkDevice(model, 'wasm', chromium, WORKLOAD, 2 * GiB);
    expect(small.fits).toBe(false);
    expect(small.memorySetByHand).toBe(true);
    expect(small.problems.join('; ')).toMatch(/needs about 3\.\d\d GiB of memory run layer by layer \(weights 2\.30 GiB as stored, .* and the memory set for this device is 2\.00 GiB/);
    const device2 = checkDevice(model, 'wasm', { ...chromium, deviceMemoryBytes: 2 * GiB }, WORKLOAD);
    expect(device2.problems.join('; ')).toMatch(/this device reports 2\.00 GiB/);
    // unknown device memory: nothing to compare against, so no memory problem
    expect(checkDevice(model, 'wasm', { ...chromium, deviceMemoryBytes: null }, WORKLOAD).fits).toBe(true);
    // a llama2.c entry: fp32 as stored, the whole graph
    const s260 = catalogEntry('stories260K')!;
    const tiny = checkDevice({ shape: s260.shape, parameters: s260.params, weightBytes: 4 * s260.params }, 'wasm', chromium, WORKLOAD);
    expect(tiny.fits).toBe(true);
    expect(tiny.needs.execution).toBe('whole');
  });

  it('on WebGPU, the largest buffer one run feeds is checked against the adapter’s limits', () => {
    const e = catalogEntry('Llama-3.2-1B')!;
    const model = { shape: e.shape, parameters: e.params, weightBytes: 2 * e.params };
    const gpu = (limit: number): DeviceInfo => ({ ...chromium, webgpu: true, gpu: { description: 'test', maxBufferSize: limit, maxStorageBufferBindingSize: limit, fallback: false, shaderF16: false } });
    const fits = checkDevice(model, 'webgpu', gpu(GiB), WORKLOAD);
    expect(fits.fits).toBe(true);
    expect(fits.needs.largestFeed.bytes).toBeLessThanOrEqual(256 * 2 ** 20); // a head slice or an MLP weight, not the 1 GB embedding
    const tight = checkDevice(model, 'webgpu', gpu(2 ** 27), WORKLOAD);
    expect(tight.fits).toBe(false);
    expect(tight.problems[0]).toMatch(/largest buffer, .* is larger than this GPU's buffer limits \(maxBufferSize 128\.0 MiB/);
    expect(checkDevice(model, 'webgpu', chromium, WORKLOAD).problems).toContain('this browser has no WebGPU adapter: use the WASM backend');
  });

  it('counts a token’s floating-point operations as 2 per layer weight, plus attention and the head; a run’s from its passes', () => {
    const e = catalogEntry('Llama-3.2-1B')!;
    const embed = e.shape.vocabSize * e.shape.hiddenSize;
    const layers = e.params - embed - e.shape.hiddenSize; // all but the (tied) embedding and the final norm
    const attention = e.shape.numLayers * 2 * e.shape.numHeads * e.shape.headDim * 128;
    expect(flopsPerToken(e.shape, 128, false)).toBe(2 * layers + attention);
    expect(flopsPerToken(e.shape, 128, true)).toBe(2 * layers + attention + 2 * embed);
    const run = { windows: 1, window: 128, layers: 1, mode: 'prunecomp' as const, evalTokens: 255 };
    // calibration: the baseline's pass, one per removal step, the baseline's curve; evaluation: 2 windows × 3 models
    expect(runFlops(e.shape, run)).toBe(3 * 128 * flopsPerToken(e.shape, 128, false) + 3 * 2 * 128 * flopsPerToken(e.shape, 128, true));
    expect(runFlops(e.shape, { ...run, mode: 'baseline' })).toBe(2 * 128 * flopsPerToken(e.shape, 128, false) + 2 * 2 * 128 * flopsPerToken(e.shape, 128, true));
  });

  it('generation decodes 8-bit where that decoder fits WebAssembly memory (estimated no lower than bench:scale measured), else fp32', () => {
    const llama = catalogEntry('Llama-3.2-1B')!.shape;
    expect(q8DecoderBytes(llama) / catalogEntry('Llama-3.2-1B')!.params).toBeCloseTo(1.0, 1);
    expect(q8DecoderRuntimeBytes(llama)).toBeGreaterThan(3.45e9); // measured: 3.45 GB of WebAssembly memory
    expect(decodeWeightsFor(llama, 'streamed', 'wasm')).toBe('q8');
    expect(decodeWeightsFor(llama, 'streamed', 'webgpu')).toBe('fp32');
    expect(decodeWeightsFor(catalogEntry('SmolLM2-135M')!.shape, 'whole', 'wasm')).toBe('fp32');
    expect(decodeWeightsFor(catalogEntry('SmolLM2-1.7B')!.shape, 'streamed', 'wasm')).toBe('fp32'); // 3 × 1.71 GB > 4 GiB
    const rows = Object.keys(CONFIGS).map((id) => `${id} ${decodeWeightsFor(catalogEntry(id)!.shape, executionFor(catalogEntry(id)!.params, WEB_WHOLE_GRAPH_BUDGET), 'wasm')}`);
    console.log(`[memory] generation on WASM: ${rows.join(', ')}`);
  });

  it('on WebGPU, generation decodes fp16 where the adapter has shader-f16, the decoder fits WebAssembly memory while it loads and its V × D matrix a buffer; else fp32', () => {
    const smol = catalogEntry('SmolLM2-360M')!.shape;
    expect(fp16DecoderBytes(smol) / catalogEntry('SmolLM2-360M')!.params).toBeCloseTo(2.0, 1);
    const gpu = (shaderF16: boolean, limit = 2 * GiB) => ({ shaderF16, maxBufferSize: limit, maxStorageBufferBindingSize: limit });
    expect(decodeWeightsFor(smol, 'streamed', 'webgpu', gpu(true))).toBe('fp16');
    expect(decodeWeightsFor(smol, 'streamed', 'webgpu', gpu(false))).toBe('fp32'); // no float16 shaders (SwiftShader here)
    expect(decodeWeightsFor(smol, 'streamed', 'webgpu', null)).toBe('fp32');
    expect(decodeWeightsFor(smol, 'streamed', 'webgpu', gpu(true, 2 ** 26))).toBe('fp32'); // 49152 × 960 × 2 bytes > 64 MiB
    expect(decodeWeightsFor(smol, 'whole', 'webgpu', gpu(true))).toBe('fp32'); // one graph: fp32 with a KV cache already
    expect(decodeWeightsFor(catalogEntry('SmolLM2-1.7B')!.shape, 'streamed', 'webgpu', gpu(true))).toBe('fp32'); // 3.4 GB of fp16 weights
    const rows = Object.keys(CONFIGS).map((id) => `${id} ${decodeWeightsFor(catalogEntry(id)!.shape, executionFor(catalogEntry(id)!.params, WEB_WHOLE_GRAPH_BUDGET), 'webgpu', gpu(true))}`);
    console.log(`[memory] generation on WebGPU with shader-f16 and 2 GiB buffers: ${rows.join(', ')}`);
  });
});
