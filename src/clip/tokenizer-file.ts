// CLIP's tokenizer from files on disk (Node): finds the vocabulary in one of
// its three forms, reads it, and hands the text to ClipTokenizer.

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { ClipTokenizer, blamingFile } from './tokenizer.js';

const gunzipAsync = promisify(gunzip);

/** The files `loadTokenizer` looks for, in order of preference. */
const TOKENIZER_JSON = 'tokenizer.json';
const HF_VOCAB = 'vocab.json';
const HF_MERGES = 'merges.txt';
const OPENAI_BPE = 'bpe_simple_vocab_16e6.txt.gz';

/**
 * Loads the vocabulary from the first form found in `dir`: `tokenizer.json`,
 * then `vocab.json` + `merges.txt`, then `bpe_simple_vocab_16e6.txt.gz`.
 */
export async function loadTokenizer(dir: string): Promise<ClipTokenizer> {
  const at = (name: string): string => path.join(dir, name);
  if (await isFile(at(TOKENIZER_JSON))) return tokenizerFromTokenizerJson(at(TOKENIZER_JSON));
  const [hasVocab, hasMerges] = await Promise.all([isFile(at(HF_VOCAB)), isFile(at(HF_MERGES))]);
  if (hasVocab && hasMerges) return tokenizerFromVocabJsonAndMergesTxt(at(HF_VOCAB), at(HF_MERGES));
  if (await isFile(at(OPENAI_BPE))) return tokenizerFromOpenAiBpe(at(OPENAI_BPE));
  const why = !(await isDirectory(dir))
    ? ' (no such directory)'
    : hasVocab !== hasMerges
      ? ` (found ${hasVocab ? HF_VOCAB : HF_MERGES} without ${hasVocab ? HF_MERGES : HF_VOCAB})`
      : '';
  throw new Error(
    `No CLIP tokenizer files in ${dir}${why}: looked for ${TOKENIZER_JSON}, ` +
      `${HF_VOCAB} + ${HF_MERGES}, or ${OPENAI_BPE}`,
  );
}

/** Hugging Face tokenizers `tokenizer.json`. */
export async function tokenizerFromTokenizerJson(file: string): Promise<ClipTokenizer> {
  return ClipTokenizer.fromTokenizerJsonText((await readTokenizerFile(file)).toString('utf8'), file);
}

/** Hugging Face slow-tokenizer files. Errors name whichever file is at fault. */
export async function tokenizerFromVocabJsonAndMergesTxt(vocabFile: string, mergesFile: string): Promise<ClipTokenizer> {
  const vocab = (await readTokenizerFile(vocabFile)).toString('utf8');
  const merges = (await readTokenizerFile(mergesFile)).toString('utf8');
  return ClipTokenizer.fromVocabJsonAndMergesText(vocab, merges, vocabFile, mergesFile);
}

/** OpenAI's gzipped `bpe_simple_vocab_16e6.txt.gz`. */
export async function tokenizerFromOpenAiBpe(file: string): Promise<ClipTokenizer> {
  const contents = await readTokenizerFile(file);
  let text: string;
  try {
    text = (await gunzipAsync(contents)).toString('utf8');
  } catch (error) {
    return blamingFile(file, () => {
      throw new Error(`not a gzip file (${(error as Error).message})`);
    });
  }
  return ClipTokenizer.fromOpenAiBpeText(text, file);
}

/** A file's bytes, naming the file in any error. */
async function readTokenizerFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new Error(`Cannot read CLIP tokenizer file ${file}: ${(error as Error).message}`, { cause: error });
  }
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() ?? false;
}

async function isDirectory(dir: string): Promise<boolean> {
  return (await stat(dir).catch(() => undefined))?.isDirectory() ?? false;
}
