// Image features of a list of images: each (image, view) encoded once and kept
// in the feature cache, only the missing ones computed. Decoding and
// preprocessing run in worker threads a bounded number of batches ahead of
// the encoder, so the encoder (onnxruntime, on every core) is the bottleneck
// and memory holds at most (1 + prefetch) batches of pixels.
//
// This module is also the workers' entry point: a worker thread started on
// this file with the role below serves preprocessing requests.

import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { ClipModel, ImageFeatures } from '../clip/model.js';
import { decodeImage } from '../clip/decode.js';
import type { PreprocessConfig } from '../clip/weights.js';
import { mapLimited } from '../io/map-limited.js';
import type { ImageItem } from '../data/dataset.js';
import { imageViews } from './augment.js';
import { featureKey, imageKey, type CachedFeatures, type FeatureCache } from './cache.js';

export interface ExtractOptions {
  /** Views per image: V means 0 … V (0 un-augmented, 1 … V seeded augmentations), or a list of view indices. Default 0. */
  readonly views?: number | readonly number[];
  /** Seed of the augmented views. Default 0. */
  readonly augmentSeed?: number;
  /** Images per encoder call, and per cache shard. Default 32. */
  readonly batchSize?: number;
  /** Where features are looked up first and stored after; without one, everything is computed. */
  readonly cache?: FeatureCache;
  /**
   * What to return: every feature ('all', default), embeddings only
   * ('embeds'), or nothing ('none': just fill the cache, still reading and
   * checking what it holds).
   */
  readonly output?: 'all' | 'embeds' | 'none';
  /** Skip images that cannot be read or decoded (warning, listed in the result) instead of failing. */
  readonly skipBad?: boolean;
  /** Preprocessing worker threads. Default: a quarter of the cores, 1 to 4. */
  readonly workers?: number;
  /** Batches prepared ahead of the encoder. Default 2. */
  readonly prefetchBatches?: number;
  readonly onProgress?: (progress: ExtractProgress) => void;
  /** Skipped images are reported here; default console.warn. */
  readonly onWarning?: (message: string) => void;
}

export interface ExtractProgress {
  /** Distinct (image, view) features requested. */
  readonly total: number;
  readonly fromCache: number;
  /** Features to compute: known once the cache has been read. */
  readonly toCompute: number;
  readonly computed: number;
  /** Features not computed because their image was skipped. */
  readonly failed: number;
  /** Milliseconds since computing began (0 before). */
  readonly computeMs: number;
}

export interface ExtractedFeature extends CachedFeatures {
  readonly item: ImageItem;
  readonly view: number;
  readonly key: string;
}

export interface SkippedImage {
  readonly item: ImageItem;
  readonly error: string;
}

export interface ExtractResult {
  /** One entry per distinct (image, view), in request order (item-major), skipped images left out; empty for output 'none'. */
  readonly features: readonly ExtractedFeature[];
  readonly requested: number;
  readonly computed: number;
  readonly fromCache: number;
  readonly skipped: readonly SkippedImage[];
}

/** Features of `items` under `model`, computing only what `options.cache` lacks. */
export async function extractFeatures(model: ClipModel, items: readonly ImageItem[], options: ExtractOptions = {}): Promise<ExtractResult> {
  const views = viewList(options.views ?? 0);
  const augmentSeed = options.augmentSeed ?? 0;
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const output = options.output ?? 'all';
  const cache = options.cache;
  const warn = options.onWarning ?? ((message: string) => console.warn(message));
  if (model.preprocess.cropSize !== model.config.vision.imageSize) {
    throw new Error(`preprocessing crops ${model.preprocess.cropSize} px but the image encoder takes ${model.config.vision.imageSize} px`);
  }

  const skipped = new Map<ImageItem, string>();
  const skip = (item: ImageItem, message: string): void => {
    if (!options.skipBad) throw new Error(message);
    if (skipped.has(item)) return;
    skipped.set(item, message);
    warn(`skipping an image: ${message}`);
  };

  const requests = await keyRequests(items, views, augmentSeed, skip);
  const found = new Map<string, CachedFeatures>();
  const { fromCache, missing } = cache ? await readCached(cache, requests, output, found) : { fromCache: 0, missing: requests };

  const progress = { total: requests.length, fromCache, toCompute: missing.length, computed: 0, failed: 0, computeMs: 0 };
  options.onProgress?.({ ...progress });
  if (missing.length > 0) {
    const started = performance.now();
    const pool = new PreprocessPool(options.workers ?? defaultWorkers());
    const context = { augmentSeed, config: model.preprocess, imageSize: model.config.vision.imageSize };
    try {
      const prepare = (batch: readonly Request[]): Promise<PreparedBatch> => prepareBatch(pool, batch, context, skip);
      for await (const prepared of runAhead(chunk(missing, batchSize), options.prefetchBatches ?? 2, prepare)) {
        if (prepared.requests.length > 0) {
          const encoded = await model.encodeImages(prepared.pixels, prepared.requests.length);
          const stored = cache ? await cache.put(prepared.requests.map((r) => r.key), encoded) : encoded;
          if (output !== 'none') keepRows(prepared.requests, stored, output === 'all', found);
        }
        progress.computed += prepared.requests.length;
        progress.failed += prepared.failed;
        progress.computeMs = performance.now() - started;
        options.onProgress?.({ ...progress });
      }
    } finally {
      await pool.close();
    }
  }

  const features: ExtractedFeature[] = [];
  for (const r of requests) {
    const f = found.get(r.key);
    if (f) features.push({ item: r.item, view: r.view, key: r.key, ...f });
  }
  return {
    features,
    requested: requests.length,
    computed: progress.computed,
    fromCache,
    skipped: items.filter((item) => skipped.has(item)).map((item) => ({ item, error: skipped.get(item)! })),
  };
}

/** The distinct (image, view) keys of `items`, one stat per image; images that cannot be stat'ed go to `skip`. */
async function keyRequests(
  items: readonly ImageItem[],
  views: readonly number[],
  augmentSeed: number,
  skip: (item: ImageItem, message: string) => void,
): Promise<Request[]> {
  const imageKeys = await mapLimited(items, 32, async (item) => {
    try {
      return await imageKey(item);
    } catch (err) {
      skip(item, `cannot read image ${item.path}: ${(err as Error).message}`);
      return undefined;
    }
  });
  const requests: Request[] = [];
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const image = imageKeys[i];
    if (image === undefined) return;
    for (const view of views) {
      const key = featureKey(image, view, augmentSeed);
      if (!seen.has(key)) requests.push({ item, view, key, order: requests.length });
      seen.add(key);
    }
  });
  return requests;
}

/**
 * Reads what the cache holds of `requests` (and so checks it), in slices to
 * bound memory, keeping the features `output` asks for in `found`. Returns
 * the rest, in request order: never stored, or in a shard that failed its
 * checks.
 */
async function readCached(
  cache: FeatureCache,
  requests: readonly Request[],
  output: NonNullable<ExtractOptions['output']>,
  found: Map<string, CachedFeatures>,
): Promise<{ fromCache: number; missing: Request[] }> {
  await cache.refresh();
  const cached = requests.filter((r) => cache.has(r.key));
  const missing = requests.filter((r) => !cache.has(r.key));
  let fromCache = 0;
  for (let start = 0; start < cached.length; start += READ_SLICE) {
    const slice = cached.slice(start, start + READ_SLICE);
    const got = await cache.get(slice.map((r) => r.key), { spatial: output !== 'embeds' });
    slice.forEach((r, i) => {
      const features = got[i];
      if (!features) return void missing.push(r);
      fromCache++;
      if (output !== 'none') found.set(r.key, output === 'embeds' ? withoutSpatial(features) : features);
    });
  }
  return { fromCache, missing: missing.sort((a, b) => a.order - b.order) };
}

/** Cached features read per cache.get call. */
const READ_SLICE = 512;

interface Request {
  readonly item: ImageItem;
  readonly view: number;
  readonly key: string;
  /** Position among the requests. */
  readonly order: number;
}

function viewList(views: number | readonly number[]): number[] {
  const list = typeof views === 'number' ? Array.from({ length: views + 1 }, (_, v) => v) : [...views];
  if (list.length === 0 || !list.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`views must be a non-negative integer V (views 0 … V) or a list of them, got ${JSON.stringify(views)}`);
  }
  return [...new Set(list)];
}

function defaultWorkers(): number {
  return Math.max(1, Math.min(4, Math.floor(os.availableParallelism() / 4)));
}

const withoutSpatial = ({ embed, spatialShape }: CachedFeatures): CachedFeatures => ({ embed, spatialShape });

/** Row-wise copies of an encoded batch (so the batch's buffers can go). */
function keepRows(requests: readonly Request[], { embeds, spatial }: ImageFeatures, withSpatial: boolean, into: Map<string, CachedFeatures>): void {
  const E = embeds.shape[1];
  const spatialShape = spatial.shape.slice(1);
  const perItem = spatialShape.reduce((a, b) => a * b, 1);
  requests.forEach((r, i) => {
    const embed = embeds.data.slice(i * E, (i + 1) * E);
    into.set(r.key, withSpatial ? { embed, spatial: spatial.data.slice(i * perItem, (i + 1) * perItem), spatialShape } : { embed, spatialShape });
  });
}

// ---------------------------------------------------------------- batches

interface PreparedBatch {
  /** The batch's requests whose image could be prepared, in order. */
  readonly requests: readonly Request[];
  /** Their pixels, [n, 3, R, R]. */
  readonly pixels: Float32Array;
  /** Requests dropped because their image was skipped. */
  readonly failed: number;
}

interface PrepareContext {
  readonly augmentSeed: number;
  readonly config: PreprocessConfig;
  readonly imageSize: number;
}

/**
 * Pixels of a batch: one worker task per image (consecutive requests of one
 * image share a decode), in parallel over the pool.
 */
async function prepareBatch(
  pool: PreprocessPool,
  batch: readonly Request[],
  context: PrepareContext,
  skip: (item: ImageItem, message: string) => void,
): Promise<PreparedBatch> {
  const units: Request[][] = [];
  for (const r of batch) {
    const last = units.at(-1);
    if (last && last[0].item === r.item) last.push(r);
    else units.push([r]);
  }
  const replies = await Promise.all(
    units.map((unit) =>
      pool.run({
        path: unit[0].item.path,
        imageId: unit[0].item.relativePath,
        views: unit.map((r) => r.view),
        augmentSeed: context.augmentSeed,
        config: context.config,
      }),
    ),
  );
  const kept: Request[] = [];
  const planes: Float32Array[] = [];
  replies.forEach((reply, u) => {
    if (reply.error !== undefined) return skip(units[u][0].item, reply.error);
    kept.push(...units[u]);
    planes.push(...reply.pixels!);
  });
  const imageValues = 3 * context.imageSize * context.imageSize;
  const pixels = new Float32Array(kept.length * imageValues);
  planes.forEach((p, i) => pixels.set(p, i * imageValues));
  return { requests: kept, pixels, failed: batch.length - kept.length };
}

/**
 * Yields start(input) for each input in order, keeping up to `depth` started
 * ahead of the consumer, so preparation overlaps the consumer's work.
 */
async function* runAhead<T, R>(inputs: readonly T[], depth: number, start: (input: T) => Promise<R>): AsyncGenerator<R> {
  const inFlight: Promise<R>[] = [];
  let next = 0;
  const fill = (): void => {
    while (next < inputs.length && inFlight.length < Math.max(1, depth)) {
      const started = start(inputs[next++]);
      started.catch(() => undefined); // awaited later; not an unhandled rejection meanwhile
      inFlight.push(started);
    }
  };
  fill();
  while (inFlight.length > 0) {
    const result = await inFlight.shift()!;
    fill();
    yield result;
  }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// ---------------------------------------------------------------- worker threads

const WORKER_ROLE = 'pfedprompt-preprocess';

interface PreprocessTask {
  readonly path: string;
  /** Names the image in the seeds of its augmented views. */
  readonly imageId: string;
  readonly views: readonly number[];
  readonly augmentSeed: number;
  readonly config: PreprocessConfig;
}

interface PreprocessReply {
  /** One CHW image per requested view. */
  readonly pixels?: Float32Array[];
  /** Why the image could not be prepared, naming the file. */
  readonly error?: string;
}

/** Decodes an image once and prepares each asked view of it. */
async function preprocessViews(task: PreprocessTask): Promise<PreprocessReply> {
  try {
    const decoded = await decodeImage(task.path);
    return { pixels: imageViews(decoded, task.imageId, task.views, task.augmentSeed, task.config) };
  } catch (err) {
    const message = (err as Error).message;
    return { error: message.includes(task.path) ? message : `${task.path}: ${message}` };
  }
}

interface Job {
  readonly resolve: (reply: PreprocessReply) => void;
  readonly reject: (error: Error) => void;
}

/**
 * Worker threads running preprocessViews. A task is posted as soon as it is
 * asked for, to the worker with the fewest pending, rather than when a worker
 * comes free: onnxruntime's run holds the main thread, which could not hand
 * out work meanwhile, so the next batches must already sit in the workers'
 * queues to be prepared while the encoder runs.
 */
class PreprocessPool {
  /** Each worker answers its tasks in order, so its replies match `pending` from the front. */
  private readonly workers: { readonly thread: Worker; readonly pending: Job[] }[] = [];
  private failure: Error | undefined;
  private closing = false;

  constructor(size: number) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = { thread: new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } }), pending: [] as Job[] };
      worker.thread.on('message', (reply: PreprocessReply) => worker.pending.shift()?.resolve(reply));
      worker.thread.on('error', (err) => this.fail(err));
      worker.thread.on('exit', (code) => {
        if (!this.closing) this.fail(new Error(`a preprocessing worker exited (code ${code})`));
      });
      this.workers.push(worker);
    }
  }

  run(task: PreprocessTask): Promise<PreprocessReply> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = this.workers.reduce((a, b) => (b.pending.length < a.pending.length ? b : a));
    return new Promise((resolve, reject) => {
      worker.pending.push({ resolve, reject });
      worker.thread.postMessage(task);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.fail(new Error('preprocessing pool closed'));
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
  }

  /** A worker died (or the pool closed): nothing pending can finish. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const worker of this.workers) for (const job of worker.pending.splice(0)) job.reject(this.failure);
  }
}

function servePreprocessing(): void {
  const port = parentPort!;
  // One task at a time, in arrival order: replies then come back in order, and memory holds one image.
  let previous = Promise.resolve();
  port.on('message', (task: PreprocessTask) => {
    previous = previous.then(async () => {
      const reply = await preprocessViews(task);
      // Hand the pixel buffers over instead of copying them.
      port.postMessage(reply, reply.pixels?.map((p) => p.buffer as ArrayBuffer) ?? []);
    });
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) servePreprocessing();
