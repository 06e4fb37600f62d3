// CoOp's learnable prompt (Zhou et al., IJCV 2022): M context vectors in the
// text tower's token-embedding space, placed around each class name,
//
//   end:    [SOS] [V]_1 … [V]_M  classname .  [EOS]
//   middle: [SOS] [V]_1 … [V]_M/2  classname  [V]_M/2+1 … [V]_M . [EOS]
//   front:  [SOS] classname  [V]_1 … [V]_M .  [EOS]
//
// one context shared by every class ("unified") or one per class
// ("class-specific"). This module lays the prompts out for the text tower
// and maps the tower's input gradients back onto the context.
//
// With a unified context at the end, [SOS] + context is a prefix every class
// shares: the tower computes its hidden states once and every class attends
// to them, so the gradients of all classes meet in that one prefix. Every
// other layout puts the context in each class's own suffix.

import type { ClipModel, TextBatch } from '../clip/model.js';
import { SeededRandom } from '../clip/random.js';
import type { ClipTokenizer } from '../clip/tokenizer.js';

export type ClassTokenPosition = 'end' | 'middle' | 'front';
export const CLASS_TOKEN_POSITIONS: readonly ClassTokenPosition[] = ['end', 'middle', 'front'];

export interface PromptOptions {
  /** Context vectors M (ignored when `initWords` is given: M is then their token count). CoOp: 16. */
  readonly contextLength: number;
  /** Initialise the context from these words' token embeddings (CoOp's "a photo of a"); absent: N(0, 0.02²). */
  readonly initWords?: string;
  readonly position: ClassTokenPosition;
  /** One context per class (CoOp's CSC) instead of one shared by all classes. */
  readonly classSpecific: boolean;
}

export const DEFAULT_PROMPT: PromptOptions = { contextLength: 16, position: 'end', classSpecific: false };

/** CoOp's random initialisation: N(0, 0.02²). */
const INIT_STD = 0.02;

/** One token of a class's prompt after [SOS]: a context row or a fixed vocabulary token. */
type Slot = { readonly context: number } | { readonly token: number };

export class CoopPrompt {
  /** Context rows M (per class when class-specific). */
  readonly contextTokens: number;
  /** Rows of the learnable context matrix: M, or C·M when class-specific. */
  readonly rows: number;
  readonly width: number;
  /** Whether [SOS] + context is one prefix shared by every class. */
  readonly sharedPrefix: boolean;
  private readonly slots: readonly (readonly Slot[])[];
  private readonly fixedEmbeddings: Float32Array;
  private readonly wordInit?: Float32Array;

  constructor(
    model: ClipModel,
    tokenizer: ClipTokenizer,
    readonly classnames: readonly string[],
    readonly options: PromptOptions = DEFAULT_PROMPT,
  ) {
    if (classnames.length === 0) throw new Error('a prompt needs at least one class name');
    this.width = model.config.text.width;
    const words = options.initWords?.trim();
    const wordIds = words ? tokenizer.encode(words) : undefined;
    if (wordIds && wordIds.length === 0) throw new Error(`prompt initialisation "${options.initWords}" has no tokens`);
    const M = wordIds ? wordIds.length : options.contextLength;
    if (!Number.isInteger(M) || M < 1) throw new Error(`context length must be a positive integer, got ${options.contextLength}`);
    this.contextTokens = M;
    this.rows = options.classSpecific ? classnames.length * M : M;
    this.sharedPrefix = options.position === 'end' && !options.classSpecific;
    if (wordIds) {
      const once = model.embedTokens(wordIds);
      const copies = this.rows / M;
      this.wordInit = new Float32Array(this.rows * this.width);
      for (let k = 0; k < copies; k++) this.wordInit.set(once, k * once.length);
    }

    const limit = model.config.text.contextLength;
    const eot = tokenizer.endToken;
    this.slots = classnames.map((name, c) => {
      // CoOp tokenizes "… name." and takes the name's own tokens, then what follows.
      const nameTokens = tokenizer.encode(name).length;
      const withPeriod = tokenizer.encode(`${name}.`);
      const nameIds = withPeriod.slice(0, nameTokens).map((token) => ({ token }));
      const tail = [...withPeriod.slice(nameTokens), eot].map((token) => ({ token }));
      const ctx = (from: number, to: number): Slot[] =>
        Array.from({ length: to - from }, (_, i) => ({ context: (options.classSpecific ? c * M : 0) + from + i }));
      const half = Math.floor(M / 2);
      const layout: Slot[] =
        options.position === 'end' ? [...ctx(0, M), ...nameIds, ...tail]
          : options.position === 'middle' ? [...ctx(0, half), ...nameIds, ...ctx(half, M), ...tail]
            : [...nameIds, ...ctx(0, M), ...tail];
      if (1 + layout.length > limit) {
        throw new Error(`class "${name}": its prompt needs ${1 + layout.length} tokens with ${M} context vectors, more than the text tower's ${limit}`);
      }
      return layout;
    });
    const fixed = this.slots.flatMap((layout) => layout.flatMap((s) => ('token' in s ? [s.token] : [])));
    this.fixedEmbeddings = model.embedTokens([tokenizer.startToken, ...fixed]);
  }

  /** A fresh context [rows, W]: the initialisation words' embeddings, or N(0, 0.02²) drawn from `seed`. */
  initialContext(seed: number): Float32Array {
    if (this.wordInit) return this.wordInit.slice();
    return new SeededRandom(seed).normals(this.rows * this.width, INIT_STD);
  }

  /** The prompts of every class with `context` spliced in, ready for the text tower. */
  textBatch(context: Float32Array): TextBatch {
    const W = this.width;
    if (context.length !== this.rows * W) throw new Error(`prompt context must be ${this.rows}×${W} values, got ${context.length}`);
    const C = this.classnames.length;
    const skip = this.sharedPrefix ? this.contextTokens : 0;
    const S = Math.max(...this.slots.map((layout) => layout.length - skip));
    const prefix = new Float32Array((1 + skip) * W);
    prefix.set(this.fixedEmbeddings.subarray(0, W));
    if (skip) prefix.set(context, W);
    const suffix = new Float32Array(C * S * W); // padding stays zero: after end-of-text, nothing is read
    const eotIndex = new Int32Array(C);
    let fixedRow = 1; // fixed tokens' embeddings follow [SOS] in slot order, class after class
    this.slots.forEach((layout, c) => {
      const own = layout.slice(skip);
      own.forEach((slot, t) => {
        const row = 'context' in slot ? slot.context : fixedRow++;
        const source = 'context' in slot ? context : this.fixedEmbeddings;
        suffix.set(source.subarray(row * W, (row + 1) * W), (c * S + t) * W);
      });
      eotIndex[c] = own.length - 1;
    });
    return { prefix: { shape: [1 + skip, W], data: prefix }, suffix: { shape: [C, S, W], data: suffix }, eotIndex };
  }

  /** ∂loss/∂context [rows, W] from the tower's gradients with respect to the batch's prefix and suffix. */
  contextGradient(prefixGrad: Float32Array, suffixGrad: Float32Array): Float32Array {
    const W = this.width;
    const grad = new Float32Array(this.rows * W);
    const skip = this.sharedPrefix ? this.contextTokens : 0;
    if (skip) grad.set(prefixGrad.subarray(W, (1 + skip) * W));
    const S = suffixGrad.length / (this.classnames.length * W);
    this.slots.forEach((layout, c) => {
      layout.slice(skip).forEach((slot, t) => {
        if (!('context' in slot)) return;
        const from = (c * S + t) * W;
        const to = slot.context * W;
        for (let k = 0; k < W; k++) grad[to + k] += suffixGrad[from + k];
      });
    });
    return grad;
  }
}
