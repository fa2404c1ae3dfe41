import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Run `lopper …` (bin/lopper.mjs) in a child process, as a person would. */
export async function lopper(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['bin/lopper.mjs', ...args], { maxBuffer: 1 << 26 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** lopper(…) with the child's peak resident memory (test/helpers/peak-rss.mjs); stderr without that line. */
export async function lopperPeak(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; peakRss: number }> {
  let r: { code: number; stdout: string; stderr: string };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['test/helpers/peak-rss.mjs', ...args], { maxBuffer: 1 << 26 });
    r = { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    r = { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
  const m = /peak-rss-bytes (\d+)\n$/.exec(r.stderr);
  return { ...r, stderr: m ? r.stderr.slice(0, m.index) : r.stderr, peakRss: m ? Number(m[1]) : NaN };
}
