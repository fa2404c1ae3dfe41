/**
 * lopper's command line: the same engine as the app, on onnxruntime-node (or, with
 * --runtime wasm, onnxruntime-web's WASM build).
 *
 *   lopper info     --model MODEL [--json]
 *   lopper ppl      --model MODEL --text FILE [--window W] [--max-windows K] [--json]
 *   lopper generate --model MODEL [--prompt TEXT] [--max-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]
 *   lopper convert  --model MODEL --to hf --out DIR
 *
 * MODEL is a llama2.c .bin (tokenizer beside it, or --tokenizer FILE) or a Hugging Face folder.
 */
import { readFile } from 'node:fs/promises';
import { LopperError } from '../engine/errors';
import { writeHfFolder } from '../engine/formats/hf';
import { writeFolder } from '../engine/formats/hf-node';
import { loadModelPath } from '../engine/formats/load-node';
import { parameterCount, type Checkpoint } from '../engine/model/checkpoint';
import { describeConfig } from '../engine/model/config';
import { Engine } from '../engine/runtime/engine';
import { nodeRuntime } from '../engine/runtime/node';
import type { Runtime } from '../engine/runtime/ort';
import { float, int, parse, required } from './args';

const USAGE = `usage: lopper <command> [options]

commands:
  info      --model MODEL [--json]
  ppl       --model MODEL --text FILE [--window W=256] [--max-windows K] [--json]
  generate  --model MODEL [--prompt TEXT] [--max-tokens N=256] [--temperature T=0] [--top-k K] [--seed S] [--json]
  convert   --model MODEL --to hf --out DIR

common options:
  --tokenizer FILE   llama2.c tokenizer .bin, when it is not beside the model
  --runtime node|wasm  onnxruntime-node (default) or onnxruntime-web's WASM build
  --threads N        CPU threads (default: all)

MODEL is a llama2.c .bin checkpoint or a Hugging Face model folder.`;

const common = {
  model: { type: 'string' },
  tokenizer: { type: 'string' },
  runtime: { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
} as const;

async function runtimeFor(values: Record<string, unknown>): Promise<Runtime> {
  const threads = int(values, 'threads', 0, 0);
  switch (values.runtime ?? 'node') {
    case 'node':
      return nodeRuntime(threads);
    case 'wasm':
      return (await import('../engine/runtime/web-node')).webWasmRuntime(threads);
    default:
      throw new LopperError('bad-option', `--runtime must be node or wasm (got "${String(values.runtime)}")`);
  }
}

async function openModel(values: Record<string, unknown>): Promise<Checkpoint> {
  return loadModelPath(required(values, 'model'), values.tokenizer as string | undefined);
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new LopperError('not-found', 'cannot read the text file', path);
  }
}

const out = (s: string) => process.stdout.write(s);

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  async info(argv) {
    const v = parse(argv, common);
    const ck = await openModel(v);
    const dtypes = [...new Set([...ck.tensors.values()].map((t) => t.dtype))];
    const info = { source: ck.source, format: ck.format, config: ck.config, parameters: parameterCount(ck), dtypes, tokenizer: ck.tokenizer.kind };
    if (v.json) out(JSON.stringify(info, null, 2) + '\n');
    else {
      out(`${ck.source} (${ck.format})\n${describeConfig(ck.config)}\n`);
      out(`parameters: ${info.parameters.toLocaleString('en')}  dtype: ${dtypes.join(',')}  tied: ${ck.config.tieWordEmbeddings}  tokenizer: ${ck.tokenizer.kind}\n`);
    }
  },

  async ppl(argv) {
    const v = parse(argv, { ...common, text: { type: 'string' }, window: { type: 'string' }, 'max-windows': { type: 'string' } });
    const window = int(v, 'window', 256, 2)!;
    const maxWindows = int(v, 'max-windows');
    const text = await readText(required(v, 'text'));
    const ck = await openModel(v);
    const ids = [ck.config.bosTokenId, ...ck.tokenizer.encode(text)];
    const engine = new Engine(ck, await runtimeFor(v));
    try {
      const r = await engine.perplexity(ids, window, { maxWindows });
      const result = { ppl: r.ppl, tokens: r.tokens, windows: r.windows };
      out(v.json ? JSON.stringify(result) + '\n' : `perplexity ${r.ppl.toFixed(4)} over ${r.tokens} tokens in ${r.windows} windows of ${window}\n`);
    } finally {
      await engine.dispose();
    }
  },

  async generate(argv) {
    const v = parse(argv, {
      ...common,
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      seed: { type: 'string' },
    });
    const ck = await openModel(v);
    const prompt = (v.prompt as string | undefined) ?? '';
    const ids = [ck.config.bosTokenId, ...ck.tokenizer.encode(prompt)];
    const engine = new Engine(ck, await runtimeFor(v));
    const opts = {
      maxTokens: int(v, 'max-tokens', 256)!,
      temperature: float(v, 'temperature', 0),
      topK: int(v, 'top-k', 0, 0),
      seed: int(v, 'seed', 0, 0),
    };
    const generated: number[] = [];
    let printed = '';
    const t0 = performance.now();
    try {
      for await (const id of engine.generate(ids, opts)) {
        generated.push(id);
        if (!v.json) {
          // Decode the whole continuation each time: multi-byte characters may span tokens.
          const text = ck.tokenizer.decode([...ids, ...generated]);
          if (text.startsWith(printed) && !text.endsWith('\uFFFD')) {
            out(text.slice(printed.length));
            printed = text;
          }
        }
      }
    } finally {
      await engine.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const text = ck.tokenizer.decode([...ids, ...generated]);
    if (v.json) out(JSON.stringify({ text, prompt_ids: ids, ids: generated, tokens_per_second: generated.length / seconds }) + '\n');
    else out(text.slice(printed.length) + '\n');
  },

  async convert(argv) {
    const v = parse(argv, { ...common, to: { type: 'string' }, out: { type: 'string' } });
    if (required(v, 'to') !== 'hf') throw new LopperError('bad-option', `--to must be hf (got "${String(v.to)}")`);
    const dir = required(v, 'out');
    const ck = await openModel(v);
    await writeFolder(dir, writeHfFolder(ck));
    out(v.json ? JSON.stringify({ out: dir }) + '\n' : `wrote a Hugging Face folder to ${dir}\n`);
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(USAGE + '\n');
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`lopper: unknown command "${name}"\n\n${USAGE}\n`);
    return 2;
  }
  try {
    await command(rest);
    return 0;
  } catch (e) {
    if (e instanceof LopperError) {
      process.stderr.write(`lopper ${name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
