// Training a CLIP-style byte-level BPE vocabulary on a corpus, and writing it
// as the Hugging Face files ClipTokenizer (and transformers' CLIPTokenizer)
// read: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json.
//
// The vocabulary is laid out as CLIP's: the 256 byte symbols, the same with
// the end-of-word mark "</w>", one token per merge in merge order, then
// <|startoftext|> and <|endoftext|> — the end token is the largest id, which
// is how the text tower finds it.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { byteSymbols, preTokenize, type MergePair } from '../clip/tokenizer.js';
import { writeFileAtomic } from '../io/atomic.js';

const END_OF_WORD = '</w>';

export interface BpeVocabulary {
  readonly vocabulary: ReadonlyMap<string, number>;
  readonly merges: readonly MergePair[];
}

/**
 * Learns up to `maxMerges` merges from `texts`: repeatedly merge the most
 * frequent adjacent symbol pair (ties broken by the pair's text, so the
 * result does not depend on iteration order), stopping early when no pair
 * occurs at least `minCount` times.
 */
export function trainBpe(texts: Iterable<string>, maxMerges: number, minCount = 2): BpeVocabulary {
  if (!Number.isInteger(maxMerges) || maxMerges < 0) throw new Error(`trainBpe: maxMerges must be a non-negative integer, got ${maxMerges}`);
  const wordCounts = new Map<string, number>();
  for (const text of texts) for (const word of preTokenize(text)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  const words = [...wordCounts].map(([word, count]) => {
    const symbols = Array.from(word);
    symbols[symbols.length - 1] += END_OF_WORD;
    return { symbols, count };
  });

  const merges: MergePair[] = [];
  while (merges.length < maxMerges) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined || bestCount < minCount) break;
    const [first, second] = best.split(' ');
    merges.push([first, second]);
    for (const word of words) {
      const out: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (i + 1 < word.symbols.length && word.symbols[i] === first && word.symbols[i + 1] === second) {
          out.push(first + second);
          i++;
        } else {
          out.push(word.symbols[i]);
        }
      }
      word.symbols = out;
    }
  }

  const vocabulary = new Map<string, number>();
  const add = (token: string): void => {
    if (!vocabulary.has(token)) vocabulary.set(token, vocabulary.size);
  };
  for (const s of byteSymbols()) add(s);
  for (const s of byteSymbols()) add(s + END_OF_WORD);
  for (const [a, b] of merges) add(a + b);
  add('<|startoftext|>');
  add('<|endoftext|>');
  return { vocabulary, merges };
}

/** Writes the vocabulary as Hugging Face CLIPTokenizer files into `dir`. */
export async function writeBpeFiles(dir: string, bpe: BpeVocabulary, contextLength: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(bpe.vocabulary)));
  await writeFileAtomic(path.join(dir, 'merges.txt'), `#version: 0.2\n${bpe.merges.map(([a, b]) => `${a} ${b}`).join('\n')}\n`);
  const special = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>' };
  await writeFileAtomic(path.join(dir, 'special_tokens_map.json'), JSON.stringify(special, null, 2));
  await writeFileAtomic(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'CLIPTokenizer', model_max_length: contextLength, do_lower_case: true, errors: 'replace', ...special }, null, 2),
  );
}
