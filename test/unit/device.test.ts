/**
 * Which WebGPU adapters count as software (workers/lib/device.ts): the browser's own word
 * (GPUAdapterInfo.isFallbackAdapter, or the adapter's older isFallbackAdapter) or a software
 * rasterizer's name; a hardware adapter is not one. The page then defaults to WASM
 * (stores/model.svelte.ts); test/e2e/backend.test.ts checks that in Chromium's SwiftShader.
 */
import { describe, expect, it } from 'vitest';
import { isSoftwareAdapter } from '../../workers/lib/device';

const limits = { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 27 };

describe('isSoftwareAdapter', () => {
  it('takes the browser’s word, on GPUAdapterInfo or on the adapter (older Chromium)', () => {
    expect(isSoftwareAdapter({ limits, info: { vendor: 'acme', architecture: 'x', isFallbackAdapter: true } })).toBe(true);
    expect(isSoftwareAdapter({ limits, info: { vendor: 'acme' }, isFallbackAdapter: true })).toBe(true);
  });

  it('knows software rasterizers by name: SwiftShader (what Chromium reports here), llvmpipe, lavapipe, WARP', () => {
    expect(isSoftwareAdapter({ limits, info: { vendor: 'google', architecture: 'swiftshader', description: '', device: '' } })).toBe(true);
    expect(isSoftwareAdapter({ limits, info: { vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' } })).toBe(true);
    expect(isSoftwareAdapter({ limits, info: { description: 'lavapipe' } })).toBe(true);
    expect(isSoftwareAdapter({ limits, info: { description: 'Microsoft Basic Render Driver' } })).toBe(true);
  });

  it('does not call a hardware adapter software, nor one that says nothing', () => {
    expect(isSoftwareAdapter({ limits, info: { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H200', isFallbackAdapter: false } })).toBe(false);
    expect(isSoftwareAdapter({ limits, info: { vendor: 'apple', architecture: 'metal-3' } })).toBe(false);
    expect(isSoftwareAdapter({ limits })).toBe(false);
  });
});
