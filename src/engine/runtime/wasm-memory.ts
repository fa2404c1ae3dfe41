/**
 * How large onnxruntime-web's WebAssembly memory grew: its threaded build creates the Memory
 * from JavaScript when the first WASM session opens, so a constructor that keeps every Memory
 * created from now on can tell. Install it before that (a bench before importing onnxruntime-web,
 * the worker when it starts). WebAssembly memory never shrinks: its size now is its peak.
 */
export function watchWasmMemory(): () => number {
  const memories: WebAssembly.Memory[] = [];
  const NativeMemory = WebAssembly.Memory;
  (WebAssembly as { Memory: unknown }).Memory = new Proxy(NativeMemory, {
    construct(target, args: [WebAssembly.MemoryDescriptor]) {
      const m = new target(...args);
      memories.push(m);
      return m;
    },
  });
  return () => Math.max(0, ...memories.map((m) => m.buffer.byteLength));
}
