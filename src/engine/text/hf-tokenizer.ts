import { PreTrainedTokenizer } from '@huggingface/transformers';
import { LopperError } from '../errors';
import type { Tokenizer } from '../model/tokenizer';

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';

/** A JSON file that must hold an object; anything else is a 'corrupt' error naming the file. */
export function parseJsonObject(bytes: Uint8Array, file: string): Record<string, unknown> {
  try {
    const json: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof json === 'object' && json !== null && !Array.isArray(json)) return json as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new LopperError('corrupt', 'not a JSON object', file);
}

/**
 * A Hugging Face tokenizer.json (+ tokenizer_config.json) run by transformers.js, built
 * from the files' bytes: nothing is fetched. transformers.js's Llama-family tokenizer
 * classes (LlamaTokenizer, Qwen2Tokenizer, …) add nothing to encode/decode, so the base
 * class serves them all.
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf';
  readonly vocabSize: number;
  private readonly tokenizer: PreTrainedTokenizer;

  /**
   * @param sourceFiles tokenizer.json and, when the model has them, tokenizer_config.json and
   *   special_tokens_map.json (kept for files(); only the first two are read)
   * @param where the folder or URL they came from, for messages
   */
  constructor(
    private readonly sourceFiles: Record<string, Uint8Array>,
    readonly bosId: number,
    readonly eosId: number,
    where: string,
  ) {
    const json = sourceFiles[TOKENIZER_JSON];
    if (!json) throw new LopperError('not-found', `no ${TOKENIZER_JSON}`, where);
    const config = sourceFiles[TOKENIZER_CONFIG_JSON];
    this.tokenizer = new PreTrainedTokenizer(
      parseJsonObject(json, `${where}/${TOKENIZER_JSON}`),
      config ? parseJsonObject(config, `${where}/${TOKENIZER_CONFIG_JSON}`) : {},
    );
    let maxId = -1;
    for (const id of this.tokenizer.get_vocab().values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false });
  }

  decode(ids: readonly number[]): string {
    const kept = ids.filter((id) => id !== this.bosId && id !== this.eosId);
    return kept.length ? this.tokenizer.decode(kept, { skip_special_tokens: true }) : '';
  }

  files(): Record<string, Uint8Array> {
    return { ...this.sourceFiles };
  }
}
