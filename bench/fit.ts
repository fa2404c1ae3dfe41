/**
 * npm run bench:fit — what a linear/diag compensation map costs at the catalog's real widths
 * (src/engine/prune/fit.ts, surgery.ts foldMap), on this machine's one JS thread, Float64:
 *
 *   accumulate  MᵀM and MᵀA over calibration tokens: 2·D² multiply-adds per token (MᵀM's upper
 *               triangle and MᵀA), seconds per 1,000 tokens (the app's default 8 × 256 is 2,048)
 *   solve       Cholesky and D right-hand sides: about (1/3 + 2)·D³
 *   fold        down_proj [D, F] ← Tᵀ·down_proj: D²·F multiply-adds
 *
 * Shapes from ../shared/configs (hidden and intermediate sizes). Rows over ~1e11 operations are
 * extrapolated from the measured rate of the row before, and say so.
 *
 *   npm run bench:fit [-- --tokens 256]
 */
import { parseArgs } from 'node:util';
import { GramAccumulator, type CompMap } from '../src/engine/prune/fit';
import { foldMap } from '../src/engine/prune/surgery';
import { layerPrefix } from '../src/engine/model/checkpoint';
import { toFloat32 } from '../src/engine/model/tensor';
import { mulberry32, randomCheckpoint } from '../test/helpers/random-checkpoint';

const { values } = parseArgs({ options: { tokens: { type: 'string' } } });
const TOKENS = Number(values.tokens ?? 256);
const SHAPES = [
  { name: 'SmolLM2-135M', D: 576, F: 1536 },
  { name: 'Qwen2.5-0.5B', D: 896, F: 4864 },
  { name: 'Llama-3.2-1B', D: 2048, F: 8192 },
  { name: 'Llama-3-8B', D: 4096, F: 14336 },
];
const MEASURE_UP_TO = 1e11;

const time = (f: () => void) => {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
};

let rate = { acc: 0, solve: 0, fold: 0 }; // operations per second, from the last measured row
console.log(`linear map cost per cut, one JS thread (Float64); accumulation measured on ${TOKENS} tokens`);
console.log('model           D      F  accumulate s/1k tokens  solve s  fold s');
for (const { name, D, F } of SHAPES) {
  const rand = mulberry32(D);
  const accOps = 2 * D * D * TOKENS;
  const solveOps = (7 / 3) * D ** 3;
  const foldOps = D * D * F;
  const row: string[] = [];
  // accumulate
  if (accOps <= MEASURE_UP_TO) {
    const m = new Float32Array(TOKENS * D).map(() => rand() - 0.5);
    const a = new Float32Array(TOKENS * D).map(() => rand() - 0.5);
    const acc = new GramAccumulator(D);
    const s = time(() => acc.add(m, a));
    rate.acc = accOps / s;
    row.push(((s * 1000) / TOKENS).toFixed(2));
    // solve: needs ≥ D tokens for a well-posed MᵀM; a ridge term keeps this one solvable
    if (solveOps <= MEASURE_UP_TO) {
      const st = time(() => acc.solve('linear', 1, 0, 'bench'));
      rate.solve = solveOps / st;
      row.push(st.toFixed(2));
    } else row.push(`~${(solveOps / rate.solve).toFixed(0)} (extrapolated)`);
  } else {
    row.push(`~${((1000 * 2 * D * D) / rate.acc).toFixed(1)} (extrapolated)`);
    row.push(`~${(solveOps / rate.solve).toFixed(0)} (extrapolated)`);
  }
  // fold
  if (foldOps <= MEASURE_UP_TO) {
    const ck = randomCheckpoint({ numLayers: 1, hiddenSize: D, intermediateSize: F, numHeads: D / 64, numKvHeads: D / 64, vocabSize: 8, seed: 1 });
    const map: CompMap = { kind: 'linear', layer: 0, T: new Float64Array(D * D).map(() => rand() - 0.5), alpha: 0, tokens: 0, residual: 0, residualNone: 0 };
    const folded = foldMap(ck, map);
    const s = time(() => toFloat32(folded.tensors.get(layerPrefix(0) + 'mlp.down_proj.weight')!));
    rate.fold = foldOps / s;
    row.push(s.toFixed(2));
  } else row.push(`~${(foldOps / rate.fold).toFixed(0)} (extrapolated)`);
  console.log(`${name.padEnd(14)} ${String(D).padStart(4)} ${String(F).padStart(6)}  ${row[0].padStart(22)}  ${row[1].padStart(7)}  ${row[2]}`);
}
console.log(`rates: accumulate ${(rate.acc / 1e9).toFixed(2)}, solve ${(rate.solve / 1e9).toFixed(2)}, fold ${(rate.fold / 1e9).toFixed(2)} G multiply-adds/s`);
rate = { acc: 0, solve: 0, fold: 0 };
