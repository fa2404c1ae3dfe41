/**
 * How long a run will take on this device, before it starts: the floating-point operations
 * its passes take (runtime/memory.ts flopsPerToken) over the speed this device showed on an
 * earlier run with the same backend and execution (RunResult.timings.flopsPerSecond, kept in
 * this browser). The passes: every calibration window through the dense model for the
 * baseline's scores, once more per removal step of a compensated mode, once for the magnitude
 * curve of the baseline model; and every evaluation window through each model with its head.
 */
import type { LlamaShape } from '../engine/model/config';
import type { Mode } from '../engine/prune/options';
import { flopsPerToken } from '../engine/model/cost';

export interface RunPlanSize {
  windows: number;
  window: number;
  layers: number;
  mode: Mode;
  /** tokens of the evaluation text (an estimate where it is not read yet) */
  evalTokens: number;
}

/** The floating-point operations of a run of `run` on a model of `shape`. */
export function runFlops(shape: LlamaShape, run: RunPlanSize): number {
  const compared = run.mode !== 'baseline';
  const calibrationPasses = 1 + (compared ? run.layers : 0) + 1;
  const evalWindows = Math.floor(Math.max(0, run.evalTokens - 1) / Math.max(1, run.window - 1)) || 1;
  const models = compared ? 3 : 2;
  return (
    calibrationPasses * run.windows * run.window * flopsPerToken(shape, run.window, false) +
    models * evalWindows * run.window * flopsPerToken(shape, run.window, true)
  );
}

/** Seconds a run will take at `flopsPerSecond` (a speed this device showed). */
export function estimateRunSeconds(shape: LlamaShape, run: RunPlanSize, flopsPerSecond: number): number {
  return runFlops(shape, run) / flopsPerSecond;
}
