/**
 * The export stage: one model (dense, baseline or the compared mode) in one format as a
 * .zip (a GGUF as its .gguf file) written to disk (save-file.ts), and the plan as JSON.
 */
import { exportBaseName, exportExtension, MODE_LABEL, planLabel, type ExportDtype, type ExportFormat, type ExportResult, type Variant } from '../../app/protocol';
import { WorkerError } from '../client';
import { bytes } from '../../app/format';
import { isCancel } from '../errors';
import { chooseFile, saveStream, saveText } from '../save-file';
import type { AppState } from './app.svelte';
import { Job } from './job.svelte';

export class ExportStore {
  /** the export in flight: which model in which format */
  readonly job: Job<{ variant: Variant; format: ExportFormat; dtype?: ExportDtype }>;
  private cancelled = false;

  constructor(private readonly app: AppState) {
    this.job = new Job(app.client);
  }

  /** The file name an export gets. */
  name(variant: Variant, format: ExportFormat, dtype?: ExportDtype): string {
    return `${exportBaseName(this.app.model.summary?.name ?? 'model', variant, format, this.app.run.result, dtype)}${exportExtension(format)}`;
  }

  /**
   * One model in one format as a .zip (a GGUF: the .gguf file). Where the browser lets the page write files (File
   * System Access API), the person picks the file first and the archive streams to it as
   * the worker writes it, never whole in memory; elsewhere it is gathered into a Blob and
   * downloaded.
   */
  async exportModel(variant: Variant, format: ExportFormat, dtype?: ExportDtype): Promise<void> {
    const { app } = this;
    if (!app.model.summary || this.job.active) return;
    app.banner.clear();
    const name = this.name(variant, format, dtype);
    const file = format === 'gguf' ? await chooseFile(name, 'GGUF model', '.gguf', 'application/octet-stream') : await chooseFile(name, 'ZIP archive', '.zip', 'application/zip');
    if (file === undefined) return; // the person closed the picker
    const result = app.run.result;
    let saving: Promise<void> = Promise.resolve();
    const label = variant === 'dense' ? 'dense' : variant === 'baseline' ? 'baseline' : result?.plans.prunecomp ? planLabel(result.plans.prunecomp) : MODE_LABEL.prunecomp;
    const call = this.job.start(
      'export',
      { model: variant, format, dtype, runKey: variant === 'dense' ? undefined : result?.key },
      `Exporting the ${label} model: ${name}`,
      {
        onStream: (s) => {
          saving = saveStream(s, file);
          saving.catch(() => undefined); // awaited below
        },
      },
      { variant, format, dtype },
    );
    this.cancelled = false;
    let failure: unknown = null;
    let done: ExportResult | null = null;
    try {
      done = await call.promise;
    } catch (e) {
      failure = e;
    }
    try {
      await saving;
    } catch (e) {
      // Writing failed (disk full, the file was removed) and the worker stopped because of it:
      // the write is the cause. A cancel, or the worker's own failure, speaks for itself.
      const workerStopped = failure === null || isCancel(failure);
      if (workerStopped && !this.cancelled) failure = new WorkerError({ code: 'save', message: `${name} could not be written (${(e as Error)?.message ?? e})` });
    }
    if (failure && file) await file.abort().catch(() => undefined); // no half-written file is left
    this.job.end(call.id);
    if (failure) app.banner.fail(failure, () => this.exportModel(variant, format, dtype), 'The export');
    else if (done) app.banner.notice = `Saved ${done.name} (${bytes(done.bytes)}).`;
  }

  cancel(): void {
    if (!this.job.active) return;
    this.cancelled = true;
    this.job.cancel();
  }

  /** Save a small text file (the plan): to a picked file, or as a download; a failed write is the banner's. */
  async saveText(name: string, text: string, mime = 'application/json'): Promise<void> {
    try {
      await saveText(name, text, mime);
    } catch (e) {
      this.app.banner.setError('save', `${name} could not be written (${(e as Error).message})`, () => void this.saveText(name, text, mime));
    }
  }
}
