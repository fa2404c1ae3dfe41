/**
 * A plan → its pruned model: the plan's cuts, in order, each with its fold (applyCut), so
 * a pruned model never has to be stored — the dense model and the plan rebuild it, the
 * same floats the pruning loop produced (test/unit/plan.test.ts checks bit equality for
 * every mode, metric kind and fold).
 */
import type { Checkpoint } from '../model/checkpoint';
import type { Plan } from './plan';
import { applyCut, type Cut } from './surgery';

/**
 * The cuts a plan made, in the numbering of the model each one applies to:
 *   uncompensated modes  one cut of every removed layer (original indices; no fold, so the
 *                        order is immaterial and the result the same as step by step)
 *   cl                   one cut of the block at its first step's index, folded once
 *   otherwise            one cut per step at its current index, folded where the step was
 *                        (its map, when it has one, else its scale)
 */
export function planCuts(plan: Plan): Cut[] {
  if (plan.fold === 'none') return [{ layers: plan.removed, fold: 'none', scale: 1 }];
  if (plan.metric === 'cl') {
    const first = plan.steps[0];
    const n = first.block?.length ?? plan.removed.length;
    return [{ layers: Array.from({ length: n }, (_, b) => first.at + b), fold: first.folded && !first.map ? plan.fold : 'none', scale: first.scale, map: first.map }];
  }
  return plan.steps.map((step) => ({ layers: [step.at], fold: step.folded && !step.map ? plan.fold : 'none', scale: step.scale, map: step.map }));
}

/** The pruned model of `plan` from the model it started from (`ck`, the dense model). */
export function applyPlan(ck: Checkpoint, plan: Plan): Checkpoint {
  return planCuts(plan).reduce(applyCut, ck);
}
