// `pfedprompt world-dataset` (a few-shot classification dataset drawn from
// the procedural world) and `pfedprompt pretrain-world` (the bundled CLIP's
// reproducible pre-training).

import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PRETRAIN, pretrainWorldClip } from '../pretrain/train.js';
import { writeWorldDataset } from '../world/datasets.js';
import { ATTRIBUTE_VALUES, type Attribute } from '../world/scene.js';
import { STYLE_PRESETS } from '../world/style.js';
import { list, positiveInt, positiveNumber } from './options.js';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  return n;
}

function attributes(value: string): Attribute[] {
  const items = list(value);
  for (const a of items) if (!(a in ATTRIBUTE_VALUES)) throw new InvalidArgumentError(`unknown attribute "${a}" (known: ${Object.keys(ATTRIBUTE_VALUES).join(', ')})`);
  return items as Attribute[];
}

function domains(value: string): string[] {
  const items = list(value);
  for (const d of items) if (d !== 'random' && !(d in STYLE_PRESETS)) throw new InvalidArgumentError(`unknown style "${d}" (presets: ${Object.keys(STYLE_PRESETS).join(', ')}, or random)`);
  return items;
}

export function registerWorld(program: Command): void {
  program
    .command('world-dataset')
    .description('write a few-shot classification dataset drawn from the procedural world (image folders + split.json + world.json)')
    .requiredOption('--out <dir>', 'folder to write (created if needed)')
    .option('--seed <s>', 'seed of every image', integer, 1)
    .option('--attributes <list>', `attributes that define a class (${Object.keys(ATTRIBUTE_VALUES).join(', ')})`, attributes, ['colour', 'shape'] as Attribute[])
    .addOption(new Option('--classes <which>', 'all classes, only seen colour–shape pairs, or only pairs held out of pre-training').choices(['all', 'seen', 'held-out']).default('all'))
    .option('--train <n>', 'training images per class', positiveInt, 16)
    .option('--val <n>', 'validation images per class', nonNegativeInt, 4)
    .option('--test <n>', 'test images per class', positiveInt, 20)
    .option('--domains <list>', `visual styles, one domain each: ${Object.keys(STYLE_PRESETS).join(', ')}, or random (a new style per image)`, domains, ['random'])
    .action(async (opts: { out: string; seed: number; attributes: Attribute[]; classes: 'all' | 'seen' | 'held-out'; train: number; val: number; test: number; domains: string[] }) => {
      const summary = await writeWorldDataset(opts.out, {
        seed: opts.seed,
        classAttributes: opts.attributes,
        classes: opts.classes,
        perClass: { train: opts.train, val: opts.val, test: opts.test },
        domains: opts.domains.map((d) => (d === 'random' ? { name: 'random', style: 'random' as const } : d)),
      });
      console.log(`${summary.dir}: ${summary.classnames.length} classes (${summary.heldOutClasses.length} held out of pre-training), ${summary.counts.train} train / ${summary.counts.val} val / ${summary.counts.test} test images`);
    });

  const d = DEFAULT_PRETRAIN;
  program
    .command('pretrain-world')
    .description('pre-train the small world CLIP from scratch (seeded) and write it as a Hugging Face CLIPModel folder with its tokenizer')
    .requiredOption('--out <dir>', 'checkpoint folder to write')
    .option('--seed <s>', 'seed of the vocabulary, the initial weights and every batch', integer, d.seed)
    .option('--steps <n>', 'optimiser steps', positiveInt, d.steps)
    .option('--batch <n>', 'images (and captions) per step', positiveInt, d.batchSize)
    .option('--lr <x>', 'peak learning rate (AdamW, warm-up then cosine)', positiveNumber, d.learningRate)
    .option('--warmup <n>', 'warm-up steps', nonNegativeInt, d.warmupSteps)
    .option('--threads <n>', 'onnxruntime threads', positiveInt, d.threads)
    .option('--eval-every <n>', 'quick zero-shot check every n steps (0: never)', nonNegativeInt, d.evalEvery)
    .addOption(new Option('--dtype <type>', 'tensor type of the written weights').choices(['F32', 'F16']).default(d.dtype))
    .action(async (opts: { out: string; seed: number; steps: number; batch: number; lr: number; warmup: number; threads: number; evalEvery: number; dtype: 'F32' | 'F16' }) => {
      await pretrainWorldClip({
        ...d,
        out: opts.out,
        seed: opts.seed,
        steps: opts.steps,
        batchSize: opts.batch,
        learningRate: opts.lr,
        warmupSteps: opts.warmup,
        threads: opts.threads,
        evalEvery: opts.evalEvery,
        dtype: opts.dtype,
        log: (line) => console.log(line),
      });
    });
}
