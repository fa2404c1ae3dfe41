/**
 * What this device offers and whether a model fits it, in plain numbers. Checked before a
 * download (from the catalog's parameter count and size, and for Hugging Face models the
 * config, fetched first) and again after parsing (from the real tensors).
 */
import type { LlamaShape } from '../../src/engine/model/config';
import { executionFor } from '../../src/engine/runtime/engine';
import { decodeWeightsFor, fp16DecoderRuntimeBytes, memoryNeeds, q8DecoderRuntimeBytes, WASM_MEMORY_BYTES, type Workload } from '../../src/engine/model/cost';
import { WEB_WHOLE_GRAPH_BUDGET } from '../../src/engine/runtime/ort';
import type { Backend, DeviceCheck, DeviceInfo } from '../../src/app/protocol';

const GiB = 2 ** 30;

export function formatBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

export interface GpuAdapterLike {
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
  features?: { has(name: string): boolean };
  info?: { vendor?: string; architecture?: string; description?: string; device?: string; isFallbackAdapter?: boolean };
  /** where GPUAdapterInfo has no isFallbackAdapter yet (Chromium before 136) */
  isFallbackAdapter?: boolean;
}

/** Software rasterizers that offer WebGPU on the CPU: Chromium's SwiftShader, Mesa's llvmpipe and lavapipe, Windows' WARP. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|microsoft basic render/i;

/**
 * Whether the adapter is a software one (slower than the WASM backend on the same CPU): the
 * browser says so (isFallbackAdapter, on GPUAdapterInfo or, earlier, on the adapter), or its
 * vendor, architecture or description names a software rasterizer.
 */
export function isSoftwareAdapter(adapter: GpuAdapterLike): boolean {
  if (adapter.info?.isFallbackAdapter === true || adapter.isFallbackAdapter === true) return true;
  const i = adapter.info;
  return SOFTWARE_ADAPTER.test([i?.vendor, i?.architecture, i?.description, i?.device].filter(Boolean).join(' '));
}

let cached: Promise<DeviceInfo> | null = null;

export function deviceInfo(): Promise<DeviceInfo> {
  cached ??= (async () => {
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }).gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    const info = adapter?.info;
    const description = [info?.vendor, info?.architecture, info?.description, info?.device].filter(Boolean).join(' ') || 'WebGPU adapter';
    const memory = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
    return {
      webgpu: adapter !== null,
      gpu: adapter
        ? {
            description,
            maxBufferSize: adapter.limits.maxBufferSize,
            maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
            fallback: isSoftwareAdapter(adapter),
            shaderF16: adapter.features?.has('shader-f16') === true,
          }
        : null,
      deviceMemoryBytes: typeof memory === 'number' && memory > 0 ? memory * GiB : null,
      crossOriginIsolated: globalThis.crossOriginIsolated === true,
      threads: globalThis.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 8) : 1,
    };
  })();
  return cached;
}

/** What the device check knows of a model: its shape (the catalog's, a config's or the parsed model's), parameters, and weight bytes as stored. */
export interface ModelFootprint {
  shape: LlamaShape;
  parameters: number;
  /** the weights' bytes in their storage dtype (bf16: 2 per parameter; llama2.c: 4) */
  weightBytes: number;
}


/**
 * Whether a model fits this device on `backend`, running `workload`, with the execution the
 * engine will choose (engine.ts executionFor on onnxruntime-web's budget): the memory it needs
 * (model/cost.ts) against what the device reports (or `memoryBytes` where the person set
 * a figure), the runtime's share against WebAssembly's 4 GiB, and, on WebGPU, the largest
 * buffer one run feeds against the adapter's limits. Each problem names the numbers.
 */
export function checkDevice(model: ModelFootprint, backend: Backend, info: DeviceInfo, workload: Workload, memoryBytes: number | null = null): DeviceCheck {
  const execution = executionFor(model.parameters, WEB_WHOLE_GRAPH_BUDGET);
  const needs = memoryNeeds(model.shape, model.weightBytes, model.parameters, execution, workload);
  const decodeWeights = decodeWeightsFor(model.shape, execution, backend, info.gpu);
  const decodeBytes = { q8: q8DecoderRuntimeBytes, fp16: fp16DecoderRuntimeBytes, fp32: () => null }[decodeWeights];
  const decode = { weights: decodeWeights, runtimeBytes: decodeBytes(model.shape) };
  const available = memoryBytes ?? info.deviceMemoryBytes;
  const how = execution === 'streamed' ? 'layer by layer' : 'as one graph';
  const problems: string[] = [];
  if (available !== null && needs.totalBytes > available) {
    problems.push(
      `it needs about ${formatBytes(needs.totalBytes)} of memory run ${how} (weights ${formatBytes(needs.weightBytes)} as stored, ` +
        `${formatBytes(needs.engineBytes)} of buffers, ${formatBytes(needs.runtimeBytes)} in the runtime) and ` +
        (memoryBytes !== null ? `the memory set for this device is ${formatBytes(available)}` : `this device reports ${formatBytes(available)}`),
    );
  }
  if (backend === 'wasm' && needs.runtimeBytes > WASM_MEMORY_BYTES) {
    problems.push(`WebAssembly has 4 GiB of memory and the WASM backend needs about ${formatBytes(needs.runtimeBytes)} run ${how}`);
  }
  if (backend === 'webgpu') {
    if (!info.gpu) problems.push('this browser has no WebGPU adapter: use the WASM backend');
    else {
      const limit = Math.min(info.gpu.maxBufferSize, info.gpu.maxStorageBufferBindingSize);
      if (needs.largestFeed.bytes > limit) {
        problems.push(
          `its largest buffer, ${needs.largestFeed.name} (${formatBytes(needs.largestFeed.bytes)} as fp32), is larger than this GPU's buffer limits (maxBufferSize ${formatBytes(info.gpu.maxBufferSize)}, maxStorageBufferBindingSize ${formatBytes(info.gpu.maxStorageBufferBindingSize)}): use the WASM backend`,
        );
      }
    }
  }
  return {
    fits: problems.length === 0,
    estimatedBytes: needs.totalBytes,
    needs,
    decode,
    workload,
    deviceMemoryBytes: available,
    memorySetByHand: memoryBytes !== null,
    gpu: info.gpu,
    backend,
    problems,
  };
}
