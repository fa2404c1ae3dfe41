/**
 * The direction of imports is the architecture (README "Architecture", STYLE.md): model/ at
 * the bottom, formats/ and graph/ above it, runtime/, prune/, eval/, export/ above those,
 * src/app/ (the application layer), then ui/, workers/, cli/. Read from the source files
 * themselves (every static and dynamic import), so a new import that points up fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const PRODUCTION = ['src', 'workers'];

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...filesUnder(rel));
    else if (/\.(ts|svelte)$/.test(name)) out.push(rel);
  }
  return out;
}

interface Import {
  /** repository-relative path of the imported file (or the package name) */
  target: string;
  /** `import type …` (erased at build time) */
  typeOnly: boolean;
}

/** Every import of a file: `import … from '…'`, `export … from '…'`, `import('…')`, resolved to a repository path. */
function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const found: Import[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith('.')) return found.push({ target: spec, typeOnly });
    const base = resolve(ROOT, dirname(file), spec);
    const candidates = [base, `${base}.ts`, `${base}.svelte.ts`, join(base, 'index.ts')];
    const hit = candidates.find((c) => {
      try {
        return statSync(c).isFile();
      } catch {
        return false;
      }
    });
    found.push({ target: relative(ROOT, hit ?? base), typeOnly });
  };
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/gm)) {
    // `import { type A, type B } from` is type-only too
    const names = m[3];
    const allTypes = !!m[2] || (/^\{[^}]*\}$/.test(names.trim()) && names.replace(/[{}\s]/g, '').split(',').filter(Boolean).every((n) => n.startsWith('type')));
    add(m[4], allTypes);
  }
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) add(m[1], false);
  return found;
}

const files = PRODUCTION.flatMap(filesUnder);
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const edges = (pred: (from: string, to: string) => boolean) =>
  [...graph].flatMap(([from, imps]) => imps.filter((i) => pred(from, i.target)).map((i) => `${from} → ${i.target}`));

describe('imports point down', () => {
  test('the parser sees the imports (sanity: the worker imports the application layer)', () => {
    expect(graph.get('workers/lopper.worker.ts')!.map((i) => i.target)).toContain('src/app/run.ts');
    expect(files.length).toBeGreaterThan(80);
  });

  test('nothing under workers/, src/engine/, src/app/ or src/cli/ imports src/ui/', () => {
    expect(edges((from, to) => /^(workers|src\/engine|src\/app|src\/cli)\//.test(from) && to.startsWith('src/ui/'))).toEqual([]);
  });

  test('src/engine/ never imports src/app/, src/cli/ or workers/', () => {
    expect(edges((from, to) => from.startsWith('src/engine/') && /^(src\/app|src\/cli|workers)\//.test(to))).toEqual([]);
  });

  test('formats/ does not import export/ (export/ builds on formats/)', () => {
    expect(edges((from, to) => from.startsWith('src/engine/formats/') && to.startsWith('src/engine/export/'))).toEqual([]);
  });

  test('no production file imports the Float64 reference', () => {
    expect(edges((from, to) => !from.startsWith('src/engine/reference/') && to.startsWith('src/engine/reference/'))).toEqual([]);
  });

  test('model/ imports nothing but itself and errors.ts', () => {
    expect(edges((from, to) => from.startsWith('src/engine/model/') && to.startsWith('src/') && !to.startsWith('src/engine/model/') && to !== 'src/engine/errors.ts')).toEqual([]);
  });

  test('prune/ takes layer weight names from model/, not from graph/backward.ts', () => {
    expect(edges((from, to) => from === 'src/engine/prune/metrics.ts' && to.startsWith('src/engine/graph/'))).toEqual([]);
  });

  test('the page does not load the engine or onnxruntime (they live in the worker)', () => {
    // Everything the page's entry reaches through value imports (type imports are erased).
    const seen = new Set<string>();
    const stack = ['src/main.ts'];
    while (stack.length) {
      const f = stack.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const i of graph.get(f) ?? []) if (!i.typeOnly && graph.has(i.target)) stack.push(i.target);
      for (const i of graph.get(f) ?? []) if (!i.typeOnly && !graph.has(i.target)) seen.add(i.target);
    }
    const heavy = [...seen].filter((f) => /^src\/engine\/(runtime|graph|prune\/(plan|calibration|metrics|taylor)|reference)\b/.test(f) || /^onnxruntime|^@huggingface\/transformers/.test(f));
    expect(['src/ui/App.svelte', 'src/engine/store/catalog.ts', 'src/engine/prune/options.ts'].filter((f) => !seen.has(f))).toEqual([]);
    expect(heavy).toEqual([]);
  });
});

describe('small units', () => {
  test('no UI store file is over 250 lines', () => {
    const long = filesUnder('src/ui/stores')
      .map((f) => [f, readFileSync(join(ROOT, f), 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > 250);
    expect(long).toEqual([]);
  });
});
