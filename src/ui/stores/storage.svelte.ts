/**
 * The storage stage's signals: stored items may have changed (the storage panel and the
 * catalog's "stored" marks read IndexedDB again), and a request to show the panel.
 */
export class StorageStore {
  /** bumped when stored items may have changed */
  version = $state(0);
  /** asks the storage panel to show itself (a 'quota' way forward) */
  open = $state(false);

  /** Stored items may have changed (a load, a run, an evaluation ended). */
  changed(): void {
    this.version++;
  }
}
