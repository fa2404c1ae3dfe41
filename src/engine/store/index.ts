/**
 * lopper's browser storage: the model catalog, resumable downloads into IndexedDB, and the
 * cache of results and pruned models (what the storage panel shows). See each module.
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
  getModel,
  getResult,
  listStored,
  persistStorage,
  putModel,
  putResult,
  resultKey,
  storageEstimate,
  type StoredItem,
} from './cache';
export { formatBytes } from './db';
