#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), so `npx lopper …` needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/run.ts');
