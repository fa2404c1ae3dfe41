/**
 * What identifies a lab in the app's result store: the model, the run settings it uses (its
 * texts, windows, backend, fold, barriers, seed — not the run's metric, n, mode or
 * compensation, which the lab ranges over itself), its metrics, compensations, N, α and the
 * held-out share. Nothing here loads the engine.
 */
import type { LabRequest } from './protocol';
import type { RunIdentity } from './run-identity';

/** The share of the calibration windows the app's lab holds out (labSplit): the last quarter. */
export const LAB_HELD_OUT = 0.25;

/** The parts of a lab's cache key (store/cache.ts resultKey). */
export function labKeyParts(modelKey: string, id: RunIdentity, req: Omit<LabRequest, 'settings'>): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...id };
  for (const k of ['layers', 'mode', 'metric', 'comp', 'alpha']) delete rest[k];
  return { kind: 'lab-v1', model: modelKey, ...rest, labLayers: req.layers, metrics: [...req.metrics], comps: [...req.comps], labAlpha: req.alpha, heldOutShare: LAB_HELD_OUT };
}
