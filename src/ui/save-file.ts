/**
 * Saving files from the page: to a file the person picks (File System Access API,
 * `showSaveFilePicker`: the bytes stream to disk), or else a plain `<a download>` (the bytes
 * gather in a Blob first).
 */
import type { ExportStream } from '../app/protocol';

type SavePicker = (opts: { suggestedName: string; types?: { description: string; accept: Record<string, string[]> }[] }) => Promise<FileSystemFileHandle>;

/**
 * Where a download goes, chosen while the click's user activation lasts: a file the person
 * picks, or null for a plain download. Undefined: the person closed the picker.
 */
export async function chooseFile(name: string, description: string, ext: string, mime: string): Promise<FileSystemWritableFileStream | null | undefined> {
  const picker = (globalThis as unknown as { showSaveFilePicker?: SavePicker }).showSaveFilePicker;
  if (!picker) return null;
  try {
    const handle = await picker({ suggestedName: name, types: [{ description, accept: { [mime]: [ext] } }] });
    return await handle.createWritable();
  } catch (e) {
    if ((e as DOMException)?.name === 'AbortError') return undefined;
    return null; // the picker is refused here (a frame, a policy): download instead
  }
}

/** A plain download of `blob` named `name` (<a download>). */
export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Write an export's archive: piped into the picked `file` as the worker writes it (never
 * whole in memory), or, with no file, gathered into a Blob and downloaded under its name.
 */
export function saveStream(s: ExportStream, file: FileSystemWritableFileStream | null): Promise<void> {
  return file ? s.stream.pipeTo(file) : new Response(s.stream).blob().then((b) => download(new Blob([b], { type: 'application/zip' }), s.name));
}

/**
 * Save a small text file (the plan): to a picked file, or as a download. Resolves false when
 * the person closed the picker; a failed write rejects.
 */
export async function saveText(name: string, text: string, mime = 'application/json'): Promise<boolean> {
  const file = await chooseFile(name, 'JSON', name.slice(name.lastIndexOf('.')), mime);
  if (file === undefined) return false;
  if (file) {
    await file.write(text);
    await file.close();
  } else download(new Blob([text], { type: mime }), name);
  return true;
}
