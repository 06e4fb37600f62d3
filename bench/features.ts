// `npm run bench:features`: how fast images become cached features, and how
// fast the cache gives them back.
//
//  - end to end (decode, preprocess, encode) with extractFeatures on
//    generated 500×375 JPEGs and a ViT-B/16-size random CLIP, without a cache
//    and into a fresh cache (adds F16 conversion and the fsync'ed shard writes);
//  - encode only, the same images already preprocessed, in the same batches:
//    end-to-end / encode-only near 1 means decoding and preprocessing are
//    hidden behind the encoder;
//  - decode + preprocess alone on one thread, for scale;
//  - warm cache reads: the benchmark's images through extractFeatures, and a
//    larger store of ViT-B/16-shaped features read with FeatureCache.get
//    (features/s and MB/s of shard bytes), with and without spatial features.
//
// Each figure is the median of --runs runs after one untimed warm-up. The
// encode-only and end-to-end runs take turns within each round, so a machine
// shared with other work loads them alike; their ratio is taken per round.

import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command } from 'commander';
import sharp from 'sharp';
import { ClipModel } from '../src/clip/model.js';
import { nodeRuntime } from '../src/clip/node-runtime.js';
import { decodeImage } from '../src/clip/decode.js';
import { preprocessPixels } from '../src/clip/preprocess.js';
import { CLIP_VIT_B16, SeededRandom, randomClipWeights } from '../src/clip/random.js';
import type { ImageItem } from '../src/data/dataset.js';
import { FeatureCache, modelFingerprint } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';
import { mb, median } from './measure.js';
import { positiveInt } from '../src/cli/options.js';

interface Options {
  readonly images: number;
  readonly runs: number;
  readonly batchSize: number;
  readonly threads: number;
  readonly workers?: number;
  readonly readFeatures: number;
  readonly keep: boolean;
}

const log = (line: string): void => console.error(line);

interface Timing {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Seconds of each timed run. */
  readonly seconds: readonly number[];
}

const timing = (seconds: readonly number[]): Timing => ({ median: median(seconds), min: Math.min(...seconds), max: Math.max(...seconds), seconds });

/** Seconds of `runs` timed calls after one untimed warm-up; `prepare` runs untimed before each. */
async function timeRuns(runs: number, work: () => Promise<unknown>, prepare?: () => Promise<unknown> | void): Promise<Timing> {
  return (await timeInTurns(runs, [{ work, prepare }]))[0];
}

interface Task {
  readonly work: () => Promise<unknown>;
  readonly prepare?: () => Promise<unknown> | void;
}

/**
 * Times tasks taking turns: one untimed round, then `runs` timed rounds, each
 * running every task once. Tasks that are compared then share whatever else
 * loads the machine at the time, and their per-round ratios can be taken.
 */
async function timeInTurns(runs: number, tasks: readonly Task[]): Promise<Timing[]> {
  const seconds = tasks.map((): number[] => []);
  for (let round = 0; round <= runs; round++) {
    for (const [t, task] of tasks.entries()) {
      await task.prepare?.();
      const start = performance.now();
      await task.work();
      if (round > 0) seconds[t].push((performance.now() - start) / 1000);
    }
  }
  return seconds.map(timing);
}

// ---------------------------------------------------------------- inputs

/** Photo-like JPEGs: smooth colour fields, a few blobs, fine noise; 500×375 like a typical dataset photo. */
async function makeJpegs(dir: string, count: number): Promise<ImageItem[]> {
  const width = 500;
  const height = 375;
  const items: ImageItem[] = [];
  for (let i = 0; i < count; i++) {
    const random = new SeededRandom(1000 + i);
    const base = [0, 1, 2].map(() => random.uniforms(3, 0, 255));
    const blobs = Array.from({ length: 4 }, () => ({ x: random.uniform() * width, y: random.uniform() * height, r: 20 + random.uniform() * 90, c: random.uniforms(3, 0, 255) }));
    const noise = random.normals(width * height, 12);
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        const inBlob = blobs.find((b) => (x - b.x) ** 2 + (y - b.y) ** 2 < b.r ** 2);
        for (let c = 0; c < 3; c++) {
          const field = base[c][0] + ((base[c][1] - base[c][0]) * x) / width + ((base[c][2] - base[c][0]) * y) / height / 2;
          const value = (inBlob ? inBlob.c[c] : field) + noise[p];
          pixels[p * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
        }
      }
    }
    const file = path.join(dir, `photo-${String(i).padStart(3, '0')}.jpg`);
    await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toFile(file);
    items.push({ path: file, relativePath: path.basename(file), label: i % 10 });
  }
  return items;
}

// ---------------------------------------------------------------- measurements

async function main(): Promise<void> {
  const options = new Command()
    .name('bench:features')
    .description('Times feature extraction end to end against encoding alone, and the feature cache warm reads, with a ViT-B/16-size random CLIP')
    .option('--images <n>', 'generated 500×375 JPEGs', positiveInt, 64)
    .option('--runs <n>', 'timed runs per figure, after one warm-up', positiveInt, 3)
    .option('--batch-size <n>', 'images per encoder call', positiveInt, 32)
    .option('--threads <n>', 'onnxruntime threads per operator (default: every core)', positiveInt, os.availableParallelism())
    .option('--workers <n>', 'preprocessing worker threads (default: extractFeatures\'s)', positiveInt)
    .option('--read-features <n>', 'size of the synthetic store for the read benchmark', positiveInt, 1024)
    .option('--keep', 'keep the temporary folder (images and caches)')
    .parse()
    .opts<Options>();

  const work = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-bench-features-'));
  log(`working in ${work}`);
  try {
    const imageDir = path.join(work, 'images');
    mkdirSync(imageDir);
    const items = await makeJpegs(imageDir, options.images);
    const jpegBytes = items.reduce((sum, item) => sum + statSync(item.path).size, 0);
    log(`${items.length} JPEGs of 500×375, ${(jpegBytes / items.length / 1024).toFixed(0)} KB each on average`);

    let start = performance.now();
    const weights = randomClipWeights(CLIP_VIT_B16, 16);
    const weightsSeconds = (performance.now() - start) / 1000;
    start = performance.now();
    const fingerprint = modelFingerprint(weights);
    const fingerprintSeconds = (performance.now() - start) / 1000;
    log(`ViT-B/16 random weights in ${weightsSeconds.toFixed(1)} s; fingerprint ${fingerprint} in ${fingerprintSeconds.toFixed(2)} s`);
    const model = new ClipModel(weights, nodeRuntime({ threads: options.threads }));
    const R = model.config.vision.imageSize;
    const n = items.length;
    const batches = Math.ceil(n / options.batchSize);

    // Decode + preprocess on this thread alone: the work the workers take off the encoder's path.
    log('decode + preprocess, one thread');
    const pixels = new Float32Array(n * 3 * R * R);
    const prep = await timeRuns(options.runs, async () => {
      for (const [i, item] of items.entries()) pixels.set(preprocessPixels(await decodeImage(item.path), model.preprocess), i * 3 * R * R);
    });

    log(`in turns: encode only (${n} preprocessed images in ${batches} batches of ≤ ${options.batchSize}), end to end without a cache, end to end into a fresh cache`);
    let cacheRuns = 0;
    let cache: FeatureCache | undefined;
    const cacheRoot = (): string => path.join(work, `cache-${cacheRuns}`);
    const [encodeOnly, endToEnd, intoCache] = await timeInTurns(options.runs, [
      {
        work: async () => {
          for (let b = 0; b < n; b += options.batchSize) {
            const count = Math.min(options.batchSize, n - b);
            await model.encodeImages(pixels.subarray(b * 3 * R * R, (b + count) * 3 * R * R), count);
          }
        },
      },
      { work: () => extractFeatures(model, items, { batchSize: options.batchSize, workers: options.workers, output: 'none' }) },
      {
        prepare: async () => {
          rmSync(cacheRoot(), { recursive: true, force: true });
          cacheRuns++;
          cache = await FeatureCache.open(weights, { root: cacheRoot() });
        },
        work: () => extractFeatures(model, items, { batchSize: options.batchSize, workers: options.workers, cache, output: 'none' }),
      },
    ]);
    const ratios = (t: Timing): number[] => t.seconds.map((s, i) => encodeOnly.seconds[i] / s);

    log('warm cache: the same images through extractFeatures');
    const warmRoot = cacheRoot();
    let spatialShape: readonly number[] = [];
    const warmExtract = await timeRuns(options.runs, async () => {
      const warm = await FeatureCache.open(weights, { root: warmRoot });
      const result = await extractFeatures(model, items, { cache: warm });
      if (result.computed !== 0) throw new Error('the warm cache computed features');
      spatialShape = result.features[0].spatialShape;
    });
    await model.release();

    // A larger store for read throughput: ViT-B/16-shaped random features, stored as a run stores them.
    log(`warm cache: ${options.readFeatures} synthetic ViT-B/16 features in shards of ${options.batchSize}`);
    const readRoot = path.join(work, 'read');
    const store = await FeatureCache.open(weights, { root: readRoot });
    const random = new SeededRandom(5);
    const E = model.config.embedDim;
    const keys: string[] = [];
    for (let i = 0; i < options.readFeatures; i += options.batchSize) {
      const count = Math.min(options.batchSize, options.readFeatures - i);
      const batchKeys = Array.from({ length: count }, (_, j) => `synthetic/${i + j}.jpg|0|0#test`);
      await store.put(batchKeys, {
        embeds: { shape: [count, E], data: random.normals(count * E) },
        spatial: { shape: [count, ...spatialShape], data: random.normals(count * spatialShape.reduce((a, b) => a * b, 1)) },
      });
      keys.push(...batchKeys);
    }
    const shardBytes = readdirSync(store.dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(path.join(store.dir, f)).size, 0);
    let indexSeconds: number[] = [];
    const readAll = (spatial: boolean) => async (): Promise<void> => {
      const t = performance.now();
      const reader = await FeatureCache.open(weights, { root: readRoot });
      indexSeconds.push((performance.now() - t) / 1000);
      // Slices, as a run holding one client's features at a time would read them.
      for (let i = 0; i < keys.length; i += 256) {
        const got = await reader.get(keys.slice(i, i + 256), { spatial });
        if (got.some((f) => !f)) throw new Error('a stored feature was not read back');
      }
    };
    const readFull = await timeRuns(options.runs, readAll(true));
    const indexFull = median(indexSeconds);
    indexSeconds = [];
    const readEmbeds = await timeRuns(options.runs, readAll(false));

    // ---------------------------------------------------------------- report
    const rate = (count: number, seconds: number): string => `${(count / seconds).toFixed(1)}`;
    const spread = (t: { min: number; max: number }): string => `${t.min.toFixed(2)}–${t.max.toFixed(2)} s`;
    const rows: [string, string, string, string][] = [
      ['decode + preprocess, 1 thread', `${rate(n, prep.median)} img/s`, `${prep.median.toFixed(2)} s`, spread(prep)],
      ['encode only (preprocessed)', `${rate(n, encodeOnly.median)} img/s`, `${encodeOnly.median.toFixed(2)} s`, spread(encodeOnly)],
      ['end to end, no cache', `${rate(n, endToEnd.median)} img/s`, `${endToEnd.median.toFixed(2)} s`, spread(endToEnd)],
      ['end to end into a fresh cache', `${rate(n, intoCache.median)} img/s`, `${intoCache.median.toFixed(2)} s`, spread(intoCache)],
      [`warm cache, extractFeatures (${n} img)`, `${rate(n, warmExtract.median)} feat/s`, `${warmExtract.median.toFixed(3)} s`, spread(warmExtract)],
      [`warm cache get, ${options.readFeatures} × (embed + spatial F16)`, `${rate(options.readFeatures, readFull.median)} feat/s, ${rate(shardBytes / 2 ** 20, readFull.median)} MB/s`, `${readFull.median.toFixed(3)} s`, spread(readFull)],
      [`warm cache get, ${options.readFeatures} × embed only`, `${rate(options.readFeatures, readEmbeds.median)} feat/s`, `${readEmbeds.median.toFixed(3)} s`, spread(readEmbeds)],
    ];
    console.log();
    console.log(`Feature extraction benchmark: ViT-B/16-size random CLIP, ${n} JPEGs of 500×375, batches of ${options.batchSize}, ` +
      `${options.threads} onnxruntime threads on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}); median of ${options.runs} runs after 1 warm-up.`);
    console.log();
    const header: [string, string, string, string] = ['measure', 'throughput (median)', 'time (median)', 'min–max'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: readonly string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    console.log(line(header));
    console.log(widths.map((w) => '─'.repeat(w)).join('  '));
    for (const r of rows) console.log(line(r));
    console.log();
    const listed = (xs: readonly number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
    console.log(`end-to-end speed / encode-only speed, median of the per-round ratios: ${median(ratios(endToEnd)).toFixed(2)} without a cache (rounds: ${listed(ratios(endToEnd))}), ` +
      `${median(ratios(intoCache)).toFixed(2)} into a cache (${listed(ratios(intoCache))}); 1.00 = decoding and preprocessing fully hidden`);
    console.log(`store: ${options.readFeatures} features in ${mb(shardBytes)} of shards (${(shardBytes / options.readFeatures / 1024).toFixed(0)} KB each); opening (indexing) it took ${(indexFull * 1000).toFixed(0)} ms`);
    console.log(`one-time: random weights ${weightsSeconds.toFixed(1)} s, model fingerprint (SHA-256 of ${mb(4 * [...weights.tensors.values()].reduce((s, t) => s + t.data.length, 0))}) ${fingerprintSeconds.toFixed(2)} s`);
    console.log(`peak memory (maxRSS): ${mb(process.resourceUsage().maxRSS * 1024)}`);
  } finally {
    if (options.keep) log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

await main();
