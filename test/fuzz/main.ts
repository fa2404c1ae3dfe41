/**
 * npm run fuzz -- [--cases N=20000] [--seed S=1] [--case INDEX …]
 * Seeded mutations of the shared models' files through lopper's loaders (test/fuzz/cases.ts);
 * prints a table per file kind and every failure with its seed and index; --case replays
 * single cases and prints what each one did. Exits 1 when any case failed.
 */
import { parseArgs } from 'node:util';
import { formatReport, failuresOf, runFuzz } from './harness';

const { values } = parseArgs({
  options: { cases: { type: 'string', default: '20000' }, seed: { type: 'string', default: '1' }, case: { type: 'string', multiple: true } },
});
const cases = Number(values.cases);
const seed = Number(values.seed);
if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed)) {
  console.error('usage: npm run fuzz -- [--cases N] [--seed S] [--case INDEX …]');
  process.exit(2);
}
const only = values.case?.map(Number);
let done = 0;
const report = await runFuzz({
  cases,
  seed,
  only,
  onResult(r) {
    done++;
    if (only) console.log(`case ${r.index} [${r.kind}] ${r.label}: ${r.outcome} in ${r.ms.toFixed(0)} ms, ${(r.memory / 2 ** 20).toFixed(0)} MiB\n  ${r.detail ?? ''}`);
    else if (done % 1000 === 0) process.stderr.write(`${done}/${cases}\n`);
  },
});
console.log(formatReport(report));
process.exitCode = failuresOf(report).length ? 1 : 0;
