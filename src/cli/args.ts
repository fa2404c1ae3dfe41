import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LopperError } from '../engine/errors';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with lopper's errors: unknown or malformed options are a LopperError. */
export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new LopperError('bad-option', (e as Error).message);
  }
}

export function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new LopperError('bad-option', `--${name} is required`);
  return v;
}

export function int(values: Record<string, unknown>, name: string, fallback?: number, min = 1): number | undefined {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new LopperError('bad-option', `--${name} must be a whole number ≥ ${min} (got "${String(v)}")`);
  return n;
}

export function float(values: Record<string, unknown>, name: string, fallback: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new LopperError('bad-option', `--${name} must be a number (got "${String(v)}")`);
  return n;
}
