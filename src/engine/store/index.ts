/**
 * lopper's browser storage: the model catalog, resumable downloads into IndexedDB, and the
 * cache of results (what the storage panel shows; pruned models are rebuilt from their plans). See each module.
 */
export * from './catalog';
export {
  DEFAULT_CHUNK_BYTES,
  fetchEntry,
  fetchToStore,
  fileKey,
  fileLabel,
  getHfToken,
  getStoredFile,
  labelFor,
  setHfToken,
  tokenAllowedFor,
  type DownloadOptions,
  type DownloadProgress,
  type EntryProgress,
} from './download';
export {
  deleteAllStored,
  deleteStored,
  getResult,
  listStored,
  persistStorage,
  putResult,
  resultKey,
  storageEstimate,
  type StoredItem,
} from './cache';
export { formatBytes } from './db';
