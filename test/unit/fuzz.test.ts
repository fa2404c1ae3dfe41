/**
 * The fuzzer in CI: 3,000 seeded mutations of the shared models' files (500 per file kind:
 * llama2.c model and tokenizer, safetensors, config.json, the shard index, tokenizer.json)
 * through lopper's loaders, in a worker thread of this process (test/fuzz/). Every case must
 * hold: rejected with a LopperError that names the mutated file on one bounded line, or
 * accepted and working; no other exception, no read outside the model, no inconsistent file
 * accepted, no case over 10 s or 1 GiB of memory above its start. The seed is fixed (FUZZ_SEED
 * picks another); `npm run fuzz -- --cases N --seed S` runs longer campaigns.
 */
import { expect, test } from 'vitest';
import { KINDS } from '../fuzz/cases';
import { failuresOf, formatReport, LIMITS, runFuzz } from '../fuzz/harness';

const CASES = 3000;
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);

test(`${CASES} mutated model files: each rejected with a clear error or accepted and working`, { timeout: 600_000 }, async () => {
  const report = await runFuzz({ cases: CASES, seed: SEED });
  console.log(formatReport(report));
  expect(report.results).toHaveLength(CASES);
  expect(failuresOf(report).map((f) => `case ${f.index} [${f.kind}] ${f.label}: ${f.outcome}: ${f.detail}`)).toEqual([]);
  // The campaign reaches both sides of every loader: some mutations of each kind load, most do not.
  for (const kind of KINDS) {
    const rs = report.results.filter((r) => r.kind === kind);
    expect(rs.filter((r) => r.outcome === 'rejected').length, kind).toBeGreaterThan(rs.length / 2);
    expect(rs.filter((r) => r.outcome === 'accepted').length, kind).toBeGreaterThan(0);
  }
  expect(Math.max(...report.results.map((r) => r.ms))).toBeLessThan(LIMITS.caseMs);
});
