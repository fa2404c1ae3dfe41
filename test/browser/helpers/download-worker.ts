/// <reference lib="webworker" />
/**
 * A download in a worker that the test kills (terminate(): no abort, no cleanup, like a
 * closed tab or a reload). The network is slowed (each piece of the real response body is
 * delayed 15 ms) so the kill lands mid-download; progress is posted back.
 */
import { fetchToStore } from '../../../src/engine/store/download';

const realFetch = globalThis.fetch;
globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
  const res = await realFetch(input, init);
  const slow = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, out) {
      for (let i = 0; i < chunk.byteLength; i += 16 * 1024) {
        await new Promise((r) => setTimeout(r, 15));
        out.enqueue(chunk.subarray(i, i + 16 * 1024));
      }
    },
  });
  return new Response(res.body!.pipeThrough(slow), { status: res.status, statusText: res.statusText, headers: res.headers });
};

self.onmessage = async (e: MessageEvent<{ url: string; chunkBytes: number }>) => {
  try {
    await fetchToStore(e.data.url, { chunkBytes: e.data.chunkBytes, onProgress: (p) => postMessage({ type: 'progress', loaded: p.loaded }) });
    postMessage({ type: 'done' });
  } catch (err) {
    postMessage({ type: 'error', message: String(err) });
  }
};
