/**
 * A sample of the fuzz corpus through the CLI as a person runs it: 100 mutated models (the
 * first 100 cases of a seed, all six file kinds) written to disk, each through `lopper info`
 * or `lopper ppl` in a child process. Each must exit 0 (and then print a finite perplexity) or
 * exit 1 with exactly one line on stderr, naming the command, with no stack trace; each in
 * under 10 s, or, on a machine so loaded that two `lopper --help` at once take over 1.7 s
 * (1.3 s on an idle 2-core machine), under 6× what they take there; a case still running after
 * 60 s is killed and fails. A hostile shard index finds a real safetensors file outside the model folder
 * (and /etc/passwd), so following its paths would load rather than fail.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { buildCorpus, makeCase } from '../fuzz/cases';
import { DATA } from '../helpers/paths';

const CASES = 100;
const SEED = 7;
const CASE_MS = 10_000;
const EVAL = join(DATA, 'tinystories/eval.txt');

const root = mkdtempSync(join(tmpdir(), 'lopper-fuzz-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Case `index` written under root: its model path (a llama2.c .bin with its tokenizer beside it, or a folder). */
function writeCase(corpus: ReturnType<typeof buildCorpus>, index: number): { model: string; label: string; kind: string } {
  const { kind, target, mutation } = makeCase(corpus, SEED, index);
  const dir = join(root, 'models', `case-${index}`);
  mkdirSync(dir, { recursive: true });
  if (target.format === 'llama2c') {
    writeFileSync(join(dir, basename(target.names.model)), target.model);
    writeFileSync(join(dir, basename(target.names.tokenizer)), target.tokenizer);
    return { model: join(dir, basename(target.names.model)), label: mutation.label, kind };
  }
  for (const [name, bytes] of target.files) writeFileSync(join(dir, name), bytes);
  return { model: dir, label: mutation.label, kind };
}

function lopper(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/lopper.mjs', ...args], { timeout: 60_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

test(`${CASES} mutated models through lopper info and lopper ppl: exit 0 or one clear line and exit 1`, { timeout: 900_000 }, async () => {
  const corpus = buildCorpus();
  // What a hostile index points at: a valid safetensors file just outside the model folders.
  mkdirSync(join(root, 'models', 'elsewhere'), { recursive: true });
  writeFileSync(join(root, 'models', 'elsewhere', 'model.safetensors'), corpus.hf.get('model.safetensors')!);

  const cases = Array.from({ length: CASES }, (_, i) => ({ i, ...writeCase(corpus, i) }));
  const idle = Math.max(...(await Promise.all([lopper(['--help']), lopper(['--help'])])).map((r) => r.ms));
  const limit = Math.max(CASE_MS, 6 * idle);
  const problems: string[] = [];
  const counts = { ok: 0, rejected: 0 };
  const run = async ({ i, model, label, kind }: (typeof cases)[number]) => {
    const command = i % 2 === 0 ? 'info' : 'ppl';
    const args = command === 'info' ? ['info', '--model', model] : ['ppl', '--model', model, '--text', EVAL, '--window', '64', '--max-windows', '2'];
    const r = await lopper(args);
    const what = `case ${i} [${kind}] ${label}: lopper ${command} exit ${r.code} in ${r.ms.toFixed(0)} ms`;
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    if (r.ms > limit) problems.push(`${what}: slower than ${limit.toFixed(0)} ms`);
    if (r.code === 0) {
      counts.ok++;
      if (command === 'ppl' && !/^perplexity \d+\.\d+ over/.test(r.stdout)) problems.push(`${what}: printed ${JSON.stringify(r.stdout.slice(0, 100))}`);
    } else if (r.code === 1) {
      counts.rejected++;
      if (lines.length !== 1 || !lines[0].startsWith(`lopper ${command}: `) || /\n\s+at /.test(r.stderr)) {
        problems.push(`${what}: stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
      }
    } else problems.push(`${what}: stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
  };
  // Two at a time (CI machines have 2 cores).
  const queue = [...cases];
  await Promise.all([0, 1].map(async () => {
    for (let c = queue.shift(); c; c = queue.shift()) await run(c);
  }));
  console.log(`lopper CLI on ${CASES} mutated models (seed ${SEED}): ${counts.ok} ran, ${counts.rejected} rejected with one line (two lopper --help at once: ${idle.toFixed(0)} ms; limit per case ${limit.toFixed(0)} ms)`);
  expect(problems).toEqual([]);
  expect(counts.ok).toBeGreaterThan(0);
  expect(counts.rejected).toBeGreaterThan(CASES / 2);
});
