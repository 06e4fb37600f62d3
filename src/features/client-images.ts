// A client's features from its images already decoded (a browser node's
// photos): the same views (augment.ts), the same encoder calls in the same
// batches, the same pooling and tokens as a Node node computes through
// extract.ts, cache.ts and client-features.ts, so both give the same
// ClientData. No cache and no files: everything is in memory.

import type { ClipModel } from '../clip/model.js';
import type { DecodedPixels } from '../clip/preprocess.js';
import { FeatureSetBuilder, pooledWidth, spatialPooler, spatialTokenizer, type ClientData, type FeatureSet } from '../federation/client-data.js';
import { float32ToHalfBits, halfBitsToFloat32 } from '../io/safetensors-format.js';
import { imageViews } from './augment.js';

/** One image of a client, decoded, with its label and a stable name (its augmented views are seeded by it). */
export interface LabelledImage {
  /** Names the image in the seeds of its augmented views: a Node node uses the path relative to the dataset's folder. */
  readonly id: string;
  readonly label: number;
  readonly pixels: DecodedPixels;
}

/** What one client holds, before encoding. */
export interface ClientImages {
  readonly id: number;
  /** Labels this client holds (over the dataset's label space). */
  readonly classes: readonly number[];
  readonly train: readonly LabelledImage[];
  readonly val: readonly LabelledImage[];
  readonly test: readonly LabelledImage[];
}

export interface ImageFeatureOptions {
  /** Augmented views per training image (besides the plain one). */
  readonly views: number;
  readonly augmentSeed: number;
  /** Keep each image's spatial tokens (FeatureSet.tokens), for methods that read them. */
  readonly tokens?: boolean;
  /** Images per encoder call. Default 32, as extract.ts. */
  readonly batchSize?: number;
  /**
   * How a Node node's feature cache stores spatial features before they are
   * pooled (cache.ts): F16 by default there, so F16 here too, or the two
   * nodes' memories would differ by that rounding.
   */
  readonly spatialDtype?: 'F16' | 'F32';
  /** Called with (features done, features in all) after each encoder call. */
  readonly onProgress?: (done: number, total: number) => void;
}

interface Request {
  readonly image: LabelledImage;
  readonly view: number;
  readonly key: string;
}

interface Pooled {
  readonly embed: Float32Array;
  readonly pooled: Float32Array;
  readonly tokens?: Float32Array;
}

export async function clientDataFromImages(model: ClipModel, images: ClientImages, options: ImageFeatureOptions): Promise<ClientData> {
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(options.views) || options.views < 0) throw new Error(`views must be a non-negative integer, got ${options.views}`);
  const R = model.config.vision.imageSize;
  if (model.preprocess.cropSize !== R) throw new Error(`preprocessing crops ${model.preprocess.cropSize} px but the image encoder takes ${R} px`);
  const pool = spatialPooler(model.weights);
  const tokenizer = options.tokens ? spatialTokenizer(model.weights) : undefined;
  const E = model.config.embedDim;
  const D = pooledWidth(model.config.vision);
  const stored = options.spatialDtype === 'F32' ? (x: Float32Array) => x : (x: Float32Array) => halfBitsToFloat32(float32ToHalfBits(x));

  // (image, view) requests, image-major, each once, training images first and then
  // the rest in a pass of their own: what client-features.ts asks extract.ts for.
  const seen = new Set<string>();
  const ask = (list: readonly LabelledImage[], views: number): Request[] => {
    const requests: Request[] = [];
    for (const image of list) {
      for (let view = 0; view <= views; view++) {
        const key = `${image.id}#${view}`;
        if (!seen.has(key)) requests.push({ image, view, key });
        seen.add(key);
      }
    }
    return requests;
  };
  const passes = [ask(images.train, options.views), ask([...images.val, ...images.test], 0)];
  const total = passes[0].length + passes[1].length;
  let done = 0;

  const features = new Map<string, Pooled>();
  const plane = 3 * R * R;
  for (const requests of passes) for (let start = 0; start < requests.length; start += batchSize) {
    const batch = requests.slice(start, start + batchSize);
    const pixels = new Float32Array(batch.length * plane);
    // Consecutive requests of one image share its views' computation, as extract.ts's workers do.
    for (let i = 0; i < batch.length; ) {
      let j = i;
      while (j < batch.length && batch[j].image === batch[i].image) j++;
      const views = imageViews(batch[i].image.pixels, batch[i].image.id, batch.slice(i, j).map((r) => r.view), options.augmentSeed, model.preprocess);
      views.forEach((p, k) => pixels.set(p, (i + k) * plane));
      i = j;
    }
    const { embeds, spatial } = await model.encodeImages(pixels, batch.length);
    const spatialShape = spatial.shape.slice(1);
    const perItem = spatialShape.reduce((a, b) => a * b, 1);
    batch.forEach((r, i) => {
      const map = stored(spatial.data.slice(i * perItem, (i + 1) * perItem));
      features.set(r.key, { embed: embeds.data.slice(i * E, (i + 1) * E), pooled: pool(map, spatialShape), tokens: tokenizer?.tokens(map, spatialShape) });
    });
    done += batch.length;
    options.onProgress?.(done, total);
  }

  const set = (list: readonly LabelledImage[], view: number): FeatureSet => {
    const builder = new FeatureSetBuilder(E, D, tokenizer?.tokenCount);
    for (const image of list) {
      const f = features.get(`${image.id}#${view}`)!;
      builder.add(f.embed, f.pooled, image.label, f.tokens);
    }
    return builder.build();
  };
  return {
    id: images.id,
    classes: images.classes,
    train: Array.from({ length: options.views + 1 }, (_, v) => set(images.train, v)),
    val: set(images.val, 0),
    test: set(images.test, 0),
  };
}
