/**
 * npm run bench:compare — `lopper compare` for every metric, 1–3 layers, on the llama2.c models
 * in ../shared/models (calibration: tinystories/calib.txt, evaluation: tinystories/eval.txt,
 * windows of 256, paper fold). Prints markdown tables; writes bench/results/compare.{md,json}.
 * Mag+ and Taylor+ use barriers 1/1 (the paper's 4/2 leave no layer of a 5-layer model).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { METRICS } from '../src/engine/prune/options';
import { DATA, LLAMA2C_MODELS } from '../test/helpers/paths';

const rows: Record<string, unknown>[] = [];
const md: string[] = [];
for (const [name, path] of LLAMA2C_MODELS) {
  md.push(`\n### ${name}\n`, '| metric | n | dense | baseline removed | baseline ppl | Prune&Comp removed | scales | Prune&Comp ppl |', '|---|---|---|---|---|---|---|---|');
  for (const metric of METRICS) {
    for (const n of [1, 2, 3]) {
      const barriers = metric === 'mag' || metric === 'taylor' ? ['--skip-first', '1', '--skip-last', '1'] : [];
      const args = ['bin/lopper.mjs', 'compare', '--model', path, '--metric', metric, '--layers', String(n), '--calib', join(DATA, 'tinystories/calib.txt'), '--eval', join(DATA, 'tinystories/eval.txt'), '--window', '256', '--fold', 'paper', '--json', ...barriers];
      const r = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 }));
      rows.push({ model: name, metric, n, ...r });
      const steps = r.prunecomp.steps as { scale: number; folded: boolean }[];
      const scales = steps.map((s) => (s.folded ? s.scale.toFixed(4) : `(${s.scale.toFixed(4)})`)).join(' ');
      md.push(`| ${metric} | ${n} | ${r.dense.ppl.toFixed(3)} | ${JSON.stringify(r.baseline.removed)} | ${r.baseline.ppl.toFixed(3)} | ${JSON.stringify(r.prunecomp.removed)} | ${scales} | ${r.prunecomp.ppl.toFixed(3)} |`);
      process.stderr.write('.');
    }
  }
}
md.push('\nScales in parentheses were measured but not folded (the last layer: the final RMSNorm cancels any scalar).');
console.log(md.join('\n'));
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/compare.md', md.join('\n') + '\n');
writeFileSync('bench/results/compare.json', JSON.stringify(rows, null, 2));
