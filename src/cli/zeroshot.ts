import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadClipModel } from '../clip/node-runtime.js';
import { preprocessImage } from '../clip/decode.js';
import { cosineLogits, softmaxRows } from '../clip/similarity.js';
import { loadTokenizer } from '../clip/tokenizer-file.js';
import { executionProviders, list, positiveInt } from './options.js';

interface ZeroshotOptions {
  model: string;
  classes: string[];
  tokenizer?: string;
  template: string;
  top: number;
  ep: string[];
}

export function registerZeroshot(program: Command): void {
  program
    .command('zeroshot')
    .description('classify images among class names with a frozen CLIP; one line per image with the top classes')
    .requiredOption('--model <path>', 'Hugging Face CLIPModel folder, or OpenAI / open_clip state dict (.safetensors)')
    .requiredOption('--classes <list>', 'comma-separated class names, e.g. "dog,cat,tabby cat"', list)
    .option('--tokenizer <dir>', 'tokenizer folder (default: the model folder)')
    .option('--template <text>', 'prompt template; {} is replaced by the class name', 'a photo of a {}.')
    .option('--top <k>', 'how many classes to print per image', positiveInt, 5)
    .option('--ep <list>', 'execution providers, e.g. cuda,cpu', executionProviders, ['cpu'])
    .argument('<image...>', 'image files')
    .action(async (images: string[], opts: ZeroshotOptions) => {
      if (!opts.template.includes('{}')) throw new Error(`--template "${opts.template}" has no {} for the class name`);
      const modelDir = existsSync(opts.model) && statSync(opts.model).isDirectory() ? opts.model : path.dirname(opts.model);
      const tokenizer = await loadTokenizer(opts.tokenizer ?? modelDir);
      const model = await loadClipModel(opts.model, { executionProviders: opts.ep });

      const prompts = opts.classes.map((c) => opts.template.replaceAll('{}', c));
      const tokens = tokenizer.tokenizeBatch(prompts, model.config.text.contextLength);
      const texts = await model.encodeTokens(tokens.ids, tokens.count);

      const nameWidth = Math.max(...images.map((f) => f.length));
      for (const file of images) {
        // One image at a time: a folder of photos should not need them all in memory.
        const pixels = await preprocessImage(file, model.preprocess);
        const { embeds } = await model.encodeImages(pixels, 1);
        const probs = softmaxRows(cosineLogits(embeds, texts, model.logitScale));
        const ranked = [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, opts.top);
        console.log(`${file.padEnd(nameWidth)}  ${ranked.map((c) => `${opts.classes[c]} ${(100 * probs[c]).toFixed(1)}%`).join(', ')}`);
      }
      await model.release();
    });
}
