/**
 * What this device offers and whether a model fits it, in plain numbers. Checked before a
 * download (from the catalog's parameter count, and for Hugging Face models the config's
 * largest tensor) and again after parsing (from the real tensors).
 */
import { expectedTensors } from '../../src/engine/model/checkpoint';
import type { LlamaConfig } from '../../src/engine/model/config';
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
          }
        : null,
      deviceMemoryBytes: typeof memory === 'number' && memory > 0 ? memory * GiB : null,
      crossOriginIsolated: globalThis.crossOriginIsolated === true,
      threads: globalThis.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 8) : 1,
    };
  })();
  return cached;
}

/** The largest tensor a config implies, in fp32 bytes (what the engine's graphs hold). */
export function largestTensor(config: LlamaConfig): { name: string; bytes: number } {
  let best = { name: '', bytes: 0 };
  for (const [name, shape] of expectedTensors(config)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    if (bytes > best.bytes) best = { name, bytes };
  }
  return best;
}

/** WebAssembly (32-bit) memory; onnxruntime holds the graph bytes and its own copy of the weights in it. */
const WASM_MEMORY = 4 * GiB;
/** The engine builds one ONNX protobuf with the weights inside: protobuf caps a message at 2 GiB. */
const PROTOBUF_LIMIT = 2 * GiB;

/**
 * Whether a model of `parameters` (stored as fp32 in the engine) with `largest` as its
 * largest tensor fits this device on `backend`. Each problem names the numbers.
 */
export function checkDevice(parameters: number, largest: { name: string; bytes: number } | null, backend: Backend, info: DeviceInfo): DeviceCheck {
  const weights = parameters * 4;
  const estimatedBytes = weights * 3;
  const problems: string[] = [];
  if (info.deviceMemoryBytes !== null && estimatedBytes > info.deviceMemoryBytes) {
    problems.push(
      `it needs about ${formatBytes(estimatedBytes)} of memory (fp32 weights ${formatBytes(weights)} × 3) and this device reports ${formatBytes(info.deviceMemoryBytes)}`,
    );
  }
  if (weights > PROTOBUF_LIMIT) {
    problems.push(`its fp32 weights (${formatBytes(weights)}) exceed the 2 GiB an ONNX graph with inline weights can hold`);
  }
  if (backend === 'wasm' && weights * 2 > WASM_MEMORY) {
    problems.push(`WebAssembly has 4 GiB of memory and the WASM backend needs about ${formatBytes(weights * 2)} (the graph and onnxruntime's copy of the weights)`);
  }
  if (backend === 'webgpu') {
    if (!info.gpu) problems.push('this browser has no WebGPU adapter: use the WASM backend');
    else if (largest) {
      const limit = Math.min(info.gpu.maxBufferSize, info.gpu.maxStorageBufferBindingSize);
      if (largest.bytes > limit) {
        problems.push(
          `its largest tensor, ${largest.name} (${formatBytes(largest.bytes)} as fp32), is larger than this GPU's buffer limits (maxBufferSize ${formatBytes(info.gpu.maxBufferSize)}, maxStorageBufferBindingSize ${formatBytes(info.gpu.maxStorageBufferBindingSize)}): use the WASM backend`,
        );
      }
    }
  }
  return { fits: problems.length === 0, estimatedBytes, deviceMemoryBytes: info.deviceMemoryBytes, largestTensor: largest, gpu: info.gpu, backend, problems };
}
