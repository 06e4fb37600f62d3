import type { Command } from 'commander';
import { loadTokenizer } from '../clip/tokenizer-file.js';
import { positiveInt } from './options.js';

export function registerTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('print the CLIP token ids of each text (start and end tokens included), one JSON array per line')
    .requiredOption('--tokenizer <dir>', 'folder with tokenizer.json, vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz')
    .option('--context-length <n>', 'pad to this many tokens (longer texts keep their first n-2 tokens and the end token)', positiveInt)
    .option('--no-pad', 'print only the tokens, without the zero padding', true)
    .argument('<text...>', 'texts to tokenize')
    .action(async (texts: string[], opts: { tokenizer: string; contextLength?: number; pad: boolean }) => {
      const tokenizer = await loadTokenizer(opts.tokenizer);
      for (const text of texts) {
        const ids = Array.from(tokenizer.tokenize(text, opts.contextLength ?? tokenizer.contextLength));
        const end = ids.indexOf(tokenizer.endToken) + 1;
        console.log(JSON.stringify(opts.pad ? ids : ids.slice(0, end)));
      }
    });
}
