/**
 * npm run bench:ppl-check — issue #2's check, whole text: `lopper ppl --window 256` on
 * tinystories/eval.txt for every llama2.c model in ../shared/models, against the perplexity
 * of the plain Float64 reference forward (an independent implementation of the protocol).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLlama2cFile } from '../src/engine/formats/llama2c-node';
import { ReferenceModel, referencePerplexity } from '../src/engine/reference/forward';
import { DATA, LLAMA2C_MODELS } from '../test/helpers/paths';

const text = join(DATA, 'tinystories/eval.txt');
console.log('| model | lopper ppl | Float64 reference ppl | relative difference | tokens | windows |');
console.log('|---|---|---|---|---|---|');
for (const [name, path] of LLAMA2C_MODELS) {
  const cli = JSON.parse(execFileSync(process.execPath, ['bin/lopper.mjs', 'ppl', '--model', path, '--text', text, '--window', '256', '--json'], { encoding: 'utf8' }));
  const ck = await loadLlama2cFile(path);
  const ids = [ck.config.bosTokenId, ...ck.tokenizer.encode(readFileSync(text, 'utf8'))];
  const ref = referencePerplexity(new ReferenceModel(ck), ids, 256);
  console.log(`| ${name} | ${cli.ppl.toFixed(6)} | ${ref.ppl.toFixed(6)} | ${Math.abs(cli.ppl / ref.ppl - 1).toExponential(2)} | ${cli.tokens} | ${cli.windows} |`);
}
