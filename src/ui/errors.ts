/**
 * The error catalog: what the banner says for each ErrorCode (a title, the way forward in
 * words) and which ways forward it offers as buttons. The banner's state lives in
 * stores/banner.svelte.ts; this module is plain data and functions.
 */
import { WorkerError } from './client';

/** What the error banner offers as the way forward. */
export type Action = 'load-anyway' | 'use-wasm' | 'retry' | 'open-storage' | 'token' | 'custom-text' | 'use-hub' | 'reload';

export interface UiError {
  code: string;
  title: string;
  message: string;
  /** the way forward, in words */
  hint: string;
  actions: Action[];
}

const TITLES: Record<string, string> = {
  'too-large': 'This model will not fit this device',
  'gpu-lost': 'The GPU device was lost',
  quota: 'Browser storage is full',
  corrupt: 'Stored data was damaged',
  auth: 'Access refused',
  network: 'Download failed',
  'not-found': 'Not found',
  text: 'Text not available',
  'task-data': 'Task data not available',
  save: 'Could not save the file',
  'no-model': 'No model yet',
  'bad-input': 'Cannot do that',
  'bad-option': 'Cannot do that',
  truncated: 'The file is incomplete',
  'shape-mismatch': 'The files do not match',
  'missing-tensor': 'The model is incomplete',
  'unsupported-architecture': 'Unsupported model',
  'unsupported-config': 'Unsupported model',
  'unknown-dtype': 'Unsupported model',
  internal: 'Something went wrong',
};

const HINTS: Record<string, { hint: string; actions: Action[] }> = {
  'too-large': { hint: 'Choose a smaller model, or load it anyway if you know this device has the room.', actions: ['load-anyway'] },
  'gpu-lost': { hint: 'Switch to the WASM backend and run again; the model and results are kept.', actions: ['use-wasm', 'retry'] },
  quota: { hint: 'Delete stored models or results in the storage panel, then try again.', actions: ['open-storage', 'retry'] },
  corrupt: { hint: 'The damaged copy was deleted: try again to fetch or compute it afresh.', actions: ['retry'] },
  auth: { hint: 'Accept the model’s license on huggingface.co and give a Hugging Face token.', actions: ['token', 'retry'] },
  network: { hint: 'Check the connection or the download source, then try again; what was downloaded is kept.', actions: ['retry', 'use-hub'] },
  'not-found': { hint: 'Check the download source (base URL) or the file names.', actions: ['use-hub', 'retry'] },
  text: { hint: 'Paste or upload a text of your own, or serve the data mirror.', actions: ['custom-text'] },
  'task-data': { hint: 'Choose the other source of task data in the evaluation panel (the data mirror or the Hugging Face datasets server), then evaluate again.', actions: ['retry'] },
  save: { hint: 'Choose another place to save it, or free disk space, and export again.', actions: ['retry'] },
  'no-model': { hint: 'Choose a model first.', actions: [] },
  internal: { hint: 'Try again; if it repeats, reload the page (stored models and results are kept).', actions: ['retry', 'reload'] },
};

/**
 * The banner for `code`: its title, hint and the ways forward that apply here ('retry' only
 * when there is something to retry, 'use-wasm' only while runs use WebGPU).
 */
export function uiError(code: string, message: string, canRetry: boolean, onWebGpu: boolean): UiError {
  const h = HINTS[code] ?? { hint: 'Change the settings and try again.', actions: [] };
  const actions = h.actions.filter((a) => (a === 'retry' ? canRetry : a === 'use-wasm' ? onWebGpu : true));
  return { code, title: TITLES[code] ?? 'Error', message, hint: h.hint, actions };
}

/** A failure's ErrorCode ('internal' for anything not from the worker) and message. */
export function errorInfo(e: unknown): { code: string; message: string } {
  return { code: e instanceof WorkerError ? e.code : 'internal', message: e instanceof Error ? e.message : String(e) };
}

/** Whether `e` is the end of a request the person cancelled. */
export const isCancel = (e: unknown): boolean => e instanceof WorkerError && e.code === 'cancelled';

/** What a cancel leaves: "The run was cancelled. stories260K is still loaded and the results shown are kept." */
export function cancelNotice(what: string, modelName: string | null, hasResult: boolean): string {
  return `${what} was cancelled. ${modelName ? `${modelName} is still loaded` : 'Nothing was lost'}${hasResult ? ' and the results shown are kept' : ''}.`;
}
