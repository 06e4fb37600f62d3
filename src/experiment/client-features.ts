// From a dataset and a partition to each client's features: every image the
// clients hold is encoded once (through the feature cache, so a second run,
// another method or another seed reads them back), and kept as its embedding
// and its pooled spatial features (and, when a method of the run reads them,
// its spatial tokens, computed from the cached map). Items are processed in slices so memory
// never holds more than a few hundred full spatial maps.

import type { ClipModel } from '../clip/model.js';
import type { Dataset, ImageItem } from '../data/dataset.js';
import type { Partition } from '../data/partition.js';
import type { FeatureCache } from '../features/cache.js';
import { extractFeatures } from '../features/extract.js';
import { FeatureSetBuilder, pooledWidth, spatialPooler, spatialTokenizer, type ClientData, type FeatureSet } from '../federation/client-data.js';

export interface ClientFeatureOptions {
  /** Augmented views per training image (besides the plain one). */
  readonly views: number;
  readonly augmentSeed: number;
  readonly cache?: FeatureCache;
  readonly batchSize?: number;
  /** Problems worth a line (a corrupt cache shard set aside and recomputed). */
  readonly onWarning?: (message: string) => void;
  /** Called with (features done, features in all) as slices finish. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Only these clients (by index): a Flower node loads its own client and no other's images. Default: every client. */
  readonly only?: readonly number[];
  /** Keep each image's spatial tokens in the joint space too (FeatureSet.tokens), for methods that read them. Default false. */
  readonly tokens?: boolean;
}

/** Full spatial maps held at once while pooling. */
const FEATURES_PER_SLICE = 256;

interface Pooled {
  readonly embed: Float32Array;
  readonly pooled: Float32Array;
  readonly tokens?: Float32Array;
}

export async function loadClientData(model: ClipModel, dataset: Dataset, partition: Partition, options: ClientFeatureOptions): Promise<ClientData[]> {
  const pool = spatialPooler(model.weights);
  const tokenizer = options.tokens ? spatialTokenizer(model.weights) : undefined;
  const E = model.config.embedDim;
  const ids = options.only ?? partition.clients.map((_, id) => id);
  for (const id of ids) if (!partition.clients[id]) throw new Error(`no client ${id}: the partition has ${partition.clients.length} clients (0 … ${partition.clients.length - 1})`);
  const chosen = ids.map((id) => partition.clients[id]);
  const trainItems = uniqueItems(chosen.flatMap((c) => c.train.map((i) => dataset.train[i])));
  const evalItems = uniqueItems(chosen.flatMap((c) => [...(c.val ?? []).map((i) => dataset.val[i]), ...c.test.map((i) => dataset.test[i])]));
  const total = trainItems.length * (options.views + 1) + evalItems.length;
  let done = 0;
  const D = pooledWidth(model.config.vision);
  const features = new Map<string, Pooled>(); // `${path}#${view}`

  const encode = async (items: readonly ImageItem[], views: number): Promise<void> => {
    const perSlice = Math.max(1, Math.floor(FEATURES_PER_SLICE / (views + 1)));
    for (let start = 0; start < items.length; start += perSlice) {
      const slice = items.slice(start, start + perSlice);
      const result = await extractFeatures(model, slice, {
        views, augmentSeed: options.augmentSeed, cache: options.cache, batchSize: options.batchSize, onWarning: options.onWarning,
      });
      for (const f of result.features) {
        const pooled = pool(f.spatial!, f.spatialShape);
        features.set(`${f.item.path}#${f.view}`, { embed: f.embed, pooled, tokens: tokenizer?.tokens(f.spatial!, f.spatialShape) });
      }
      done += result.requested;
      options.onProgress?.(done, total);
    }
  };
  await encode(trainItems, options.views);
  await encode(evalItems, 0);

  const set = (items: readonly ImageItem[], view: number): FeatureSet => {
    const builder = new FeatureSetBuilder(E, D, tokenizer?.tokenCount);
    for (const item of items) {
      const f = features.get(`${item.path}#${view}`);
      if (!f) throw new Error(`no features for ${item.relativePath} (view ${view})`);
      builder.add(f.embed, f.pooled, item.label, f.tokens);
    }
    return builder.build();
  };
  return ids.map((id) => {
    const c = partition.clients[id];
    const train = c.train.map((i) => dataset.train[i]);
    return {
      id,
      classes: c.classes,
      train: Array.from({ length: options.views + 1 }, (_, v) => set(train, v)),
      val: set((c.val ?? []).map((i) => dataset.val[i]), 0),
      test: set(c.test.map((i) => dataset.test[i]), 0),
    };
  });
}

function uniqueItems(items: readonly ImageItem[]): ImageItem[] {
  const seen = new Set<string>();
  return items.filter((item) => !seen.has(item.path) && Boolean(seen.add(item.path)));
}
