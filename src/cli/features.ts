import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { loadClipModel } from '../clip/node-runtime.js';
import type { ImageItem } from '../data/dataset.js';
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/load-dataset.js';
import { readPartition } from '../data/partition-file.js';
import type { Partition } from '../data/partition.js';
import { runAugmentSeed } from '../features/augment.js';
import { FeatureCache, type SpatialDtype } from '../features/cache.js';
import { extractFeatures, type ExtractProgress, type ExtractResult } from '../features/extract.js';
import { executionProviders, positiveInt } from './options.js';

interface FeaturesOptions {
  model: string;
  dataset: string;
  root?: string;
  partition?: string;
  views: number;
  augSeed: number;
  seeds?: number[];
  batchSize: number;
  cache?: string;
  skipBad?: boolean;
  workers?: number;
  spatialDtype: SpatialDtype;
  ep: string[];
}

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description('fill the feature cache for a dataset (or a partition of it): every image once (view 0), training images also in V augmented views; prints what was computed and what was already cached')
    .requiredOption('--model <path>', 'Hugging Face CLIPModel folder, or OpenAI / open_clip state dict (.safetensors)')
    .requiredOption('--dataset <name|dir>', 'a CoOp dataset name (with --root) or folder, or an image folder (one sub-folder per class)')
    .option('--root <dir>', 'data root holding the CoOp dataset folders')
    .option('--partition <file>', "only the images of this federated partition's clients (from `pfedprompt partition`)")
    .option('--views <V>', 'augmented views per training image (random resized crop + flip), besides the plain one', nonNegativeInt, 0)
    .option('--aug-seed <S>', 'seed of the augmented views (data.augmentSeed)', nonNegativeInt, 0)
    .option('--seeds <list>', "the views of these run seeds, as `pfedprompt run` draws them (each seed its own views); default: --aug-seed's own views", seedList)
    .option('--batch-size <B>', 'images per encoder call and per cache shard', positiveInt, 32)
    .option('--cache <dir>', 'cache root (default $PFEDPROMPT_CACHE, else ~/.cache/pfedprompt/features)')
    .option('--skip-bad', 'skip unreadable images with a warning instead of failing')
    .option('--workers <n>', 'decoding / preprocessing threads (default: a quarter of the cores, 1 to 4)', positiveInt)
    .option('--spatial-dtype <f16|f32>', 'how spatial features are stored', spatialDtype, 'F16' as SpatialDtype)
    .option('--ep <list>', 'execution providers, e.g. cuda,cpu', executionProviders, ['cpu'])
    .action(async (opts: FeaturesOptions) => {
      const dataset = await loadDataset(opts.dataset, { root: opts.root, skipBad: opts.skipBad });
      const partition = opts.partition ? await readPartition(opts.partition, dataset) : undefined;
      const images = partition ? partitionImages(partition, dataset) : dataset;
      const model = await loadClipModel(opts.model, { executionProviders: opts.ep });
      try {
        const cache = await FeatureCache.open(model.weights, { root: opts.cache, spatialDtype: opts.spatialDtype });
        const scope = partition ? ` (the ${partition.clients.length} clients of ${opts.partition})` : '';
        console.log(`${dataset.name}${scope}: ${images.train.length} train, ${images.val.length} val, ${images.test.length} test images; cache ${cache.dir}`);
        const trainGroups = opts.seeds
          ? opts.seeds.map((seed) => ({ name: `train (seed ${seed})`, items: images.train, views: opts.views, augmentSeed: runAugmentSeed(opts.augSeed, seed) }))
          : [{ name: 'train', items: images.train, views: opts.views, augmentSeed: opts.augSeed }];
        const groups: { name: string; items: readonly ImageItem[]; views: number; augmentSeed: number }[] = [
          ...trainGroups,
          { name: 'val+test', items: [...images.val, ...images.test], views: 0, augmentSeed: opts.augSeed },
        ];
        const totals = { requested: 0, computed: 0, fromCache: 0, skipped: 0 };
        for (const group of groups) {
          const result = await withProgressBar(group.name, (onProgress) =>
            extractFeatures(model, group.items, {
              views: group.views,
              augmentSeed: group.augmentSeed,
              batchSize: opts.batchSize,
              cache,
              output: 'none',
              skipBad: opts.skipBad,
              workers: opts.workers,
              onProgress,
            }),
          );
          const views = group.views > 0 ? ` × ${group.views + 1} views` : '';
          console.log(`${group.name}: ${group.items.length} images${views}: ${result.computed} computed, ${result.fromCache} read from cache${result.skipped.length ? `, ${result.skipped.length} images skipped` : ''}`);
          totals.requested += result.requested;
          totals.computed += result.computed;
          totals.fromCache += result.fromCache;
          totals.skipped += result.skipped.length;
        }
        console.log(`total: ${totals.requested} features, ${totals.computed} computed, ${totals.fromCache} read from cache${totals.skipped ? `, ${totals.skipped} images skipped` : ''}`);
      } finally {
        await model.release();
      }
    });
}

/** The images any client of the partition holds, each once, in dataset order. */
function partitionImages(partition: Partition, dataset: Dataset): Pick<Dataset, 'train' | 'val' | 'test'> {
  const used = (split: 'train' | 'val' | 'test'): ImageItem[] => {
    const indices = new Set(partition.clients.flatMap((c) => c[split] ?? []));
    return [...indices].sort((a, b) => a - b).map((i) => dataset[split][i]);
  };
  return { train: used('train'), val: used('val'), test: used('test') };
}

/** Runs `work` with a progress bar (rate in images/s, ETA) over the features it has to compute. */
async function withProgressBar(label: string, work: (onProgress: (p: ExtractProgress) => void) => Promise<ExtractResult>): Promise<ExtractResult> {
  let bar: cliProgress.SingleBar | undefined;
  const onProgress = (p: ExtractProgress): void => {
    if (p.toCompute === 0) return;
    if (!bar) {
      bar = new cliProgress.SingleBar(
        { format: `${label} |{bar}| {value}/{total} features | {rate} img/s | ETA {eta_formatted}`, etaBuffer: 50, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(p.toCompute, 0, { rate: '-' });
    }
    if (p.computed + p.failed === 0) return; // no rate or ETA before the first batch
    bar.update(p.computed + p.failed, { rate: (p.computed / (p.computeMs / 1000)).toFixed(1) });
  };
  try {
    return await work(onProgress);
  } finally {
    bar?.stop();
  }
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  return n;
}

function spatialDtype(value: string): SpatialDtype {
  const upper = value.toUpperCase();
  if (upper !== 'F16' && upper !== 'F32') throw new InvalidArgumentError(`expected f16 or f32, got "${value}"`);
  return upper;
}

function seedList(value: string): number[] {
  return value.split(',').map((s) => nonNegativeInt(s.trim()));
}
