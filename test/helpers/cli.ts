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
