import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { LopperError, reason, shown } from '../errors';
import type { Tokenizer } from '../model/tokenizer';

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';

/** A JSON file that must hold an object; anything else is a 'corrupt' error naming the file. */
export function parseJsonObject(bytes: Uint8Array, file: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new LopperError('corrupt', `not valid JSON (${reason(e)})`, file);
  }
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) return json as Record<string, unknown>;
  throw new LopperError('corrupt', `not a JSON object (it holds ${shown(json)})`, file);
}

/**
 * The token ids a tokenizer.json's model and added tokens claim, checked before
 * transformers.js sees the file (it sizes arrays by the largest id): every id a whole number
 * below the model's vocab_size, so the tokenizer never makes an id the embedding lacks.
 */
function checkIds(json: Record<string, unknown>, vocabSize: number, file: string, configName: string): void {
  const bad = (what: string, v: unknown) =>
    new LopperError('shape-mismatch', `${what} is ${shown(v)}, not a token id below vocab_size ${vocabSize} (${configName})`, file);
  const isId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocabSize;
  const model = json.model;
  if (typeof model !== 'object' || model === null || Array.isArray(model)) {
    throw new LopperError('corrupt', `"model" is ${shown(model)}, not an object`, file);
  }
  const vocab = (model as Record<string, unknown>).vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [piece, score] pairs, the id is the position
    if (vocab.length > vocabSize) throw new LopperError('shape-mismatch', `the vocabulary has ${vocab.length} tokens but vocab_size is ${vocabSize} (${configName})`, file);
  } else if (typeof vocab === 'object' && vocab !== null) {
    for (const [piece, id] of Object.entries(vocab)) if (!isId(id)) throw bad(`the id of token ${shown(piece)}`, id);
  } else if (vocab !== undefined) {
    throw new LopperError('corrupt', `"model.vocab" is ${shown(vocab)}, not an object or a list`, file);
  }
  const added = json.added_tokens;
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) throw new LopperError('corrupt', `"added_tokens" is ${shown(added)}, not a list`, file);
  for (const t of added) {
    const id = typeof t === 'object' && t !== null ? (t as Record<string, unknown>).id : t;
    if (!isId(id)) throw bad('an added token\'s id', id);
  }
}

/**
 * A Hugging Face tokenizer.json (+ tokenizer_config.json) run by transformers.js, built
 * from the files' bytes: nothing is fetched. transformers.js's Llama-family tokenizer
 * classes (LlamaTokenizer, Qwen2Tokenizer, …) add nothing to encode/decode, so the base
 * class serves them all. Whatever transformers.js throws (building it, the first encode, any
 * later call) becomes a LopperError naming tokenizer.json. transformers.js is imported when
 * the first one is made (HfTokenizer.create), so what never reads a tokenizer.json (a llama2.c
 * model, --help) does not wait for it.
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf';
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;

  /**
   * @param sourceFiles tokenizer.json and, when the model has them, tokenizer_config.json and
   *   special_tokens_map.json (kept for files(); only the first two are read)
   * @param model the model's BOS and EOS ids and its vocab_size (no token id may reach it)
   * @param where the folder or URL they came from, for messages
   * @param configName where vocab_size comes from, for messages (config.json, a llama2.c model)
   */
  static async create(
    sourceFiles: Record<string, Uint8Array>,
    model: { bosTokenId: number; eosTokenId: number; vocabSize: number },
    where: string,
    configName = "the model's config",
  ): Promise<HfTokenizer> {
    const file = `${where}/${TOKENIZER_JSON}`;
    const json = sourceFiles[TOKENIZER_JSON];
    if (!json) throw new LopperError('not-found', `no ${TOKENIZER_JSON}`, where);
    const config = sourceFiles[TOKENIZER_CONFIG_JSON];
    const tokenizerJson = parseJsonObject(json, file);
    const tokenizerConfig = config ? parseJsonObject(config, `${where}/${TOKENIZER_CONFIG_JSON}`) : {};
    checkIds(tokenizerJson, model.vocabSize, file, configName);
    const { PreTrainedTokenizer } = await import('@huggingface/transformers');
    const tokenizer = guard(file, 'cannot be read', () => {
      const t = new PreTrainedTokenizer(tokenizerJson, tokenizerConfig);
      t.decode(t.encode('Hello, world! 123', { add_special_tokens: false }));
      return t;
    });
    return new HfTokenizer(sourceFiles, model, file, tokenizer);
  }

  private constructor(
    private readonly sourceFiles: Record<string, Uint8Array>,
    model: { bosTokenId: number; eosTokenId: number },
    private readonly file: string,
    private readonly tokenizer: PreTrainedTokenizer,
  ) {
    this.bosId = model.bosTokenId;
    this.eosId = model.eosTokenId;
    let maxId = -1;
    for (const id of tokenizer.get_vocab().values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  encode(text: string): number[] {
    return guard(this.file, 'cannot encode with', () => this.tokenizer.encode(text, { add_special_tokens: false }));
  }

  decode(ids: readonly number[]): string {
    const kept = ids.filter((id) => id !== this.bosId && id !== this.eosId);
    return kept.length ? guard(this.file, 'cannot decode with', () => this.tokenizer.decode(kept, { skip_special_tokens: true })) : '';
  }

  files(): Record<string, Uint8Array> {
    return { ...this.sourceFiles };
  }
}

/** `fn`'s result, or a LopperError naming `file` for whatever transformers.js throws. */
function guard<T>(file: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LopperError) throw e;
    throw new LopperError('corrupt', `transformers.js ${what} it: ${reason(e)}`, file);
  }
}
