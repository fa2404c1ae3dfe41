/**
 * What the engine needs from a tokenizer. Both the llama2.c tokenizer and Hugging Face
 * tokenizer.json (through transformers.js) provide it.
 */
export interface Tokenizer {
  readonly kind: 'llama2c' | 'hf';
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of `text`, with no BOS/EOS added (callers put BOS first). */
  encode(text: string): number[];
  /** Text of a sequence of ids; special tokens (BOS/EOS) are dropped. */
  decode(ids: readonly number[]): string;
  /** Files that reproduce this tokenizer for other tools, by file name (tokenizer.json, tok512.bin, …). */
  files(): Record<string, Uint8Array>;
}
