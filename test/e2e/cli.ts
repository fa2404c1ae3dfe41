/**
 * The CLI as the oracle for the app's numbers: `lopper compare … --json` on the same model,
 * texts and settings must give the perplexities the app shows (same engine, Node runtime).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { cleanEnv, repoRoot } from './servers';

export const sharedDir = path.resolve(repoRoot, '../shared');

export interface CompareSettings {
  /** a path under ../shared/models */
  model: string;
  metric: string;
  layers: number;
  /** paths under ../shared/data */
  calib: string;
  eval: string;
  calibWindows: number;
  window: number;
  fold: 'paper' | 'tied';
  /** 'node' (onnxruntime-node) or 'wasm' (onnxruntime-web's WASM build in Node) */
  runtime?: 'node' | 'wasm';
}

export interface CompareResult {
  dense: { ppl: number };
  baseline: { ppl: number; removed: number[]; scales: number[] };
  prunecomp: { ppl: number; removed: number[]; scales: number[] };
  eval: { tokens: number; windows: number };
}

export async function cliCompare(s: CompareSettings): Promise<CompareResult> {
  const args = [
    path.join(repoRoot, 'bin/lopper.mjs'),
    'compare',
    '--model', path.join(sharedDir, 'models', s.model),
    '--metric', s.metric,
    '--layers', String(s.layers),
    '--calib', path.join(sharedDir, 'data', s.calib),
    '--eval', path.join(sharedDir, 'data', s.eval),
    '--calib-windows', String(s.calibWindows),
    '--window', String(s.window),
    '--fold', s.fold,
    '--runtime', s.runtime ?? 'node',
    '--threads', '1',
    '--json',
  ];
  let stdout = '';
  let stderr = '';
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`lopper compare failed (exit ${code}): ${stderr.slice(-2000)}`);
  return JSON.parse(stdout) as CompareResult;
}
