/**
 * The precomputed example the results section shows before the person has a result of their
 * own: a real stories260K run with the app's default settings, made by `npm run example`
 * (scripts/example.ts) and bundled with the app, so a first visit shows it with no download.
 * test/unit/example.test.ts computes it again and fails when this copy is stale, which is what
 * makes the shape below true (JSON imports type their fields as plain strings and numbers).
 */
import type { RunResult } from '../../app/protocol';
import json from './stories260K.json';

export const EXAMPLE: RunResult = json as unknown as RunResult;
