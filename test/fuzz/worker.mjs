// The fuzz worker's entry: TypeScript through tsx (as bin/lopper.mjs does), then worker.ts.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
