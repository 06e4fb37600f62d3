// The feature cache and its extraction: cached features equal fresh ones, a
// second run computes nothing, augmented views are deterministic and follow
// torchvision's RandomResizedCrop, corrupt shards are never read back, a run
// killed with SIGKILL resumes losing at most the batch in flight, and two
// processes can fill one cache at once.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { type ClipModel } from '../src/clip/model.js';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { CLIP_PREPROCESS } from '../src/clip/weights.js';
import { decodeImage, preprocessImage } from '../src/clip/decode.js';
import { preprocessCrop, preprocessPixels } from '../src/clip/preprocess.js';
import type { ImageItem } from '../src/data/dataset.js';
import { augmentParams, augmentPixels, augmentView, randomResizedCropBox, roundHalfEven, viewRandom } from '../src/features/augment.js';
import { FeatureCache, featureKey, imageKey, modelFingerprint } from '../src/features/cache.js';
import { float32ToHalfBits } from '../src/io/safetensors.js';
import { extractFeatures } from '../src/features/extract.js';
import { loadDataset } from '../src/data/load-dataset.js';
import { makePartition } from '../src/data/partition.js';
import { writePartition } from '../src/data/partition-file.js';
import { halfBitsToFloat32 } from '../src/io/safetensors.js';
import { PROJECT_ROOT, fixture } from './shared.js';

const MODEL = fixture('clip', 'tiny-vit-hf');
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'feature-cache-child.js');
const CLI = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');

const work = mkdtempSync(path.join(tmpdir(), 'pfedprompt-features-'));
let model: ClipModel;
let items: ImageItem[];
let cacheCount = 0;
/** A fresh, empty cache root. */
const newCacheRoot = (): string => path.join(work, `cache-${cacheCount++}`);
/** Warnings collected instead of printed. */
const quiet = (into: string[] = []) => (message: string): void => void into.push(message);

/** Photo-like pixels: gradients plus seeded noise, so crops and flips change them. */
function syntheticPixels(width: number, height: number, channels: number, seed: number): Buffer {
  const out = Buffer.alloc(width * height * channels);
  let state = seed * 2654435761;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        const gradient = (x * (c + 1) * 255) / width + (y * (3 - c) * 255) / height;
        out[(y * width + x) * channels + c] = (gradient * 0.4 + (state >>> 24) * 0.6) & 255;
      }
    }
  }
  return out;
}

/** Writes `count` images of assorted sizes and kinds (RGB PNG, JPEG, grey PNG) into `dir`. */
async function writeImages(dir: string, count: number): Promise<ImageItem[]> {
  const made: ImageItem[] = [];
  for (let i = 0; i < count; i++) {
    const width = 24 + ((i * 17) % 60);
    const height = 20 + ((i * 29) % 70);
    const grey = i % 5 === 4;
    const channels = grey ? 1 : 3;
    const name = `img-${String(i).padStart(3, '0')}.${i % 3 === 1 ? 'jpg' : 'png'}`;
    const image = sharp(syntheticPixels(width, height, channels, i + 1), { raw: { width, height, channels } });
    await (name.endsWith('.jpg') ? image.jpeg({ quality: 90 }) : image.png()).toFile(path.join(dir, name));
    made.push({ path: path.join(dir, name), relativePath: name, label: i % 4 });
  }
  return made;
}

before(async () => {
  model = await loadClipModel(MODEL);
  const dir = path.join(work, 'images');
  mkdirSync(dir);
  items = await writeImages(dir, 12);
});

after(async () => {
  await model.release();
  rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------- augmentation

describe('augmentation', () => {
  test("Python's round: halves to even", () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, 7].map(roundHalfEven), [0, 2, 2, 4, 2, 3, 7]);
  });

  /** A random() that replays `values`, then repeats the last. */
  const scripted = (...values: number[]) => {
    let i = 0;
    return () => values[Math.min(i++, values.length - 1)];
  };

  test('RandomResizedCrop parameters: fixed cases of get_params', () => {
    // First try fits: area 500·375·(0.08 + 0.92·0.5), log-ratio midpoint (ratio 1): 318×318,
    // top randint(0, 58) from 0.25 → 14, left randint(0, 183) from 0.75 → 137.
    assert.deepEqual(randomResizedCropBox(500, 375, scripted(0.5, 0.5, 0.25, 0.75)), { left: 137, top: 14, width: 318, height: 318 });
    // Smallest scale, widest ratio: sqrt(15000·4/3) = 141.42 → 141, sqrt(15000·3/4) = 106.07 → 106.
    assert.deepEqual(randomResizedCropBox(500, 375, scripted(0, 1, 0, 0)), { left: 0, top: 0, width: 141, height: 106 });
    // Nothing fits in ten tries → centre crop with the ratio clamped: too wide, too tall, within range.
    assert.deepEqual(randomResizedCropBox(100, 10, scripted(0.999999)), { left: 43, top: 0, width: 13, height: 10 });
    assert.deepEqual(randomResizedCropBox(10, 100, scripted(0.999999)), { left: 0, top: 43, width: 10, height: 13 });
    assert.deepEqual(randomResizedCropBox(100, 100, scripted(0.999999)), { left: 0, top: 0, width: 100, height: 100 });
    // A try that fails (too wide for a thin image) is followed by one that fits: 4 draws per fitting try, 2 per failed one.
    assert.deepEqual(randomResizedCropBox(40, 400, scripted(1, 1, 0, 0.5, 0, 0)), { left: 0, top: 0, width: 36, height: 36 });
  });

  test("RandomResizedCrop parameters: torchvision's get_params given the same random draws", () => {
    // torchvision 0.14 RandomResizedCrop.get_params(img, (0.08, 1), (3/4, 4/3)) after torch.manual_seed(s),
    // with the uniforms (u ∈ [0, 1)) its draws amount to, recovered by replaying them: first tries that fit,
    // tries that fail before one fits, and ten failures falling back to the clamped centre crop.
    const cases: [number, number, number[], [number, number, number, number]][] = [
      [500, 375, [0.496256592, 0.768221843, 0.213414634, 0.509493671], [80, 17, 343, 294]],
      [500, 375, [0.757631641, 0.279310898, 0.403069266, 0.734684504, 0.6875, 0.807894737], [153, 71, 311, 272]],
      [400, 40, [0.757631641, 0.279310898, 0.403069266, 0.734684504, 0.029281557, 0.799858661, 0.833333333, 0.161516854], [57, 2, 45, 38]],
      [33, 90, [0.496256592, 0.768221843, 0.088477424, 0.132030482, 0.768656716, 0.678571429], [9, 51, 20, 24]],
      [40, 400, [0.757631641, 0.279310898, 0.403069266, 0.734684504, 0.029281557, 0.799858661, 0.39713734, 0.754371991, 0.569508498, 0.438777947, 0.638680466, 0.52466592, 0.682614078, 0.305149511, 0.463545628, 0.454986357, 0.572472015, 0.498002614, 0.93708341, 0.655595102], [0, 173, 40, 53]],
      [1000, 120, [0.496256592, 0.768221843, 0.088477424, 0.132030482, 0.307422826, 0.634078717, 0.490093407, 0.896444782, 0.455627993, 0.632306316, 0.34889347, 0.401717328, 0.022325752, 0.168858945, 0.293888457, 0.518521813, 0.697667619, 0.800011437, 0.161029461, 0.282268602], [420, 0, 160, 120]],
      [33, 90, [0.614695103, 0.381012872, 0.637114354, 0.474461103, 0.713593851, 0.619036413, 0.442532659, 0.09576863, 0.614157236, 0.057327666, 0.565714015, 0.53322896, 0.390050834, 0.908848505, 0.533368388, 0.707339263, 0.711597419, 0.205034218, 0.307782786, 0.980859078], [0, 23, 33, 44]],
    ];
    for (const [width, height, draws, [left, top, w, h]] of cases) {
      let next = 0;
      const box = randomResizedCropBox(width, height, () => draws[next++]);
      assert.deepEqual(box, { left, top, width: w, height: h }, `${width}×${height}`);
      assert.equal(next, draws.length, `${width}×${height}: number of draws`);
    }
  });

  test('RandomResizedCrop parameters: invariants over many views', () => {
    const areas: number[] = [];
    let flips = 0;
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const width = 20 + ((i * 37) % 600);
      const height = 20 + ((i * 53) % 450);
      const p = augmentParams(width, height, { seed: 7, imageId: `image-${i}`, view: 1 + (i % 5) });
      assert.ok(p.left >= 0 && p.top >= 0 && p.width >= 1 && p.height >= 1, JSON.stringify(p));
      assert.ok(p.left + p.width <= width && p.top + p.height <= height, `${JSON.stringify(p)} outside ${width}×${height}`);
      const ratio = p.width / p.height;
      // Within the ratio range up to the rounding of w and h (and the fallback clamps into it too).
      const withinRatio = ratio >= (3 / 4) * (1 - 2 / p.height) && ratio <= (4 / 3) * (1 + 2 / p.height);
      assert.ok(withinRatio || p.width === width || p.height === height,
        `ratio ${ratio} of ${JSON.stringify(p)} in ${width}×${height}`);
      areas.push((p.width * p.height) / (width * height));
      if (p.flip) flips++;
    }
    assert.ok(Math.min(...areas) < 0.1 && Math.max(...areas) > 0.95, 'area fractions should span [0.08, 1]');
    assert.ok(Math.abs(flips / n - 0.5) < 0.04, `flip rate ${flips / n}`);
  });

  test("crop + resize is Pillow's img.crop(box).resize((32, 32), BICUBIC).convert('RGB'), byte for byte", async () => {
    // SHA-256 of the RGB bytes Pillow 9.4 gives for the shared fixture images, from
    //   Image.open(f).crop((l, t, r, b)).resize((32, 32), Image.BICUBIC).convert('RGB').tobytes()
    // (downscaling RGB, grey, RGBA, and upscaling).
    const cases: [string, [number, number, number, number], string][] = [
      ['china.jpg', [100, 50, 400, 300], 'f10a16d7b6c4d871e164a18a95cb3733c6bb8246291dba6c24e0b9bdb50a4531'],
      ['gray.png', [3, 7, 60, 41], 'a5608c4e050c102343906ca497ee2b57c47f8ec61a799ee35e17d21d74bcabd1'],
      ['tall-rgba.png', [5, 20, 35, 90], '04d1a8f92a3b54bb72d86617681c80c56d0cd420502147aae838113604004c57'],
      ['flower.jpg', [10, 10, 30, 26], 'df2e67fdfafa534837faa22e332a896384ce03af9747990d03fdecd23583b0fa'],
    ];
    const config = CLIP_PREPROCESS(224);
    for (const [name, [left, top, right, bottom], expected] of cases) {
      const normalised = preprocessCrop(await decodeImage(fixture('images', name)), { left, top, width: right - left, height: bottom - top }, 32, config);
      // Back to the bytes ToTensor + Normalize started from.
      const plane = 32 * 32;
      const bytes = Buffer.alloc(3 * plane);
      for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) bytes[i * 3 + c] = Math.round((normalised[c * plane + i] * config.std[c] + config.mean[c]) * 255);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), expected, name);
    }
  });

  test('views are deterministic per (seed, image, view) and differ otherwise', async () => {
    const pixels = await decodeImage(items[0].path);
    const config = model.preprocess;
    const at = (seed: number, imageId: string, view: number): Float32Array => augmentView(pixels, { seed, imageId, view }, config);
    assert.deepEqual(at(0, 'a.png', 1), at(0, 'a.png', 1));
    assert.notDeepEqual(at(0, 'a.png', 1), at(0, 'a.png', 2));
    assert.notDeepEqual(at(0, 'a.png', 1), at(1, 'a.png', 1));
    assert.notDeepEqual(at(0, 'a.png', 1), at(0, 'b.png', 1));
    const r1 = viewRandom({ seed: 3, imageId: 'x', view: 4 });
    const r2 = viewRandom({ seed: 3, imageId: 'x', view: 4 });
    assert.deepEqual([r1(), r1(), r1()], [r2(), r2(), r2()]);
  });

  test('crop + resize reuses the test-time resampler; a flip mirrors the rows', async () => {
    const pixels = await decodeImage(items[0].path);
    const size = model.preprocess.cropSize;
    // The whole of a square image resized to the crop size is exactly the test-time preprocessing of it.
    const side = Math.min(pixels.width, pixels.height);
    const square = preprocessCrop(pixels, { left: 0, top: 0, width: side, height: side }, size, model.preprocess);
    const squarePixels = { width: side, height: side, channels: pixels.channels, data: cropBytes(pixels, side) };
    assert.deepEqual(square, preprocessPixels(squarePixels, model.preprocess));
    const box = { left: 3, top: 2, width: 15, height: 11 };
    const plain = augmentPixels(pixels, { ...box, flip: false }, size, model.preprocess);
    const mirrored = augmentPixels(pixels, { ...box, flip: true }, size, model.preprocess);
    for (let row = 0; row < 3 * size; row++) {
      assert.deepEqual(mirrored.subarray(row * size, (row + 1) * size), plain.subarray(row * size, (row + 1) * size).reverse());
    }
    assert.throws(() => preprocessCrop(pixels, { left: 1, top: 0, width: pixels.width, height: 4 }, size, model.preprocess), /not inside/);
  });
});

/** The top-left side × side bytes of decoded pixels. */
function cropBytes(p: { width: number; channels: number; data: Uint8Array }, side: number): Uint8Array {
  const out = new Uint8Array(side * side * p.channels);
  for (let y = 0; y < side; y++) out.set(p.data.subarray(y * p.width * p.channels, (y * p.width + side) * p.channels), y * side * p.channels);
  return out;
}

// ---------------------------------------------------------------- half precision

test('float32 → float16 rounds to nearest even, like numpy', () => {
  // Every finite half survives the round trip.
  const all = new Uint16Array(65536).map((_, i) => i);
  const values = halfBitsToFloat32(all);
  const back = float32ToHalfBits(values);
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(values[h])) assert.ok(Number.isNaN(halfBitsToFloat32(back.subarray(h, h + 1))[0]));
    else assert.equal(back[h], h, `half 0x${h.toString(16)}`);
  }
  const cases: [number, number][] = [
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway, odd below: up
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway: up
    [65520, 0x7c00], // rounds past the largest half: infinity
    [65519, 0x7bff],
    [2 ** -25, 0x0000], // half the smallest subnormal: to even (0)
    [2 ** -25 + 2 ** -35, 0x0001],
    [-(2 ** -14), 0x8400],
    [1e-10, 0x0000],
  ];
  for (const [x, bits] of cases) assert.equal(float32ToHalfBits(Float32Array.of(x))[0], bits, `${x}`);
});

// ---------------------------------------------------------------- cache and extraction

describe('feature cache', () => {
  test('keys: path, size and mtime of the image; views named by seed; fingerprint stable', async () => {
    const key = await imageKey(items[0]);
    const { size } = statSync(items[0].path);
    assert.match(key, new RegExp(`^${items[0].relativePath}\\|${size}\\|\\d+$`));
    assert.notEqual(featureKey(key, 0, 0), featureKey(key, 1, 0));
    assert.notEqual(featureKey(key, 1, 0), featureKey(key, 1, 1));
    assert.equal(featureKey(key, 0, 0), featureKey(key, 0, 5), 'view 0 does not depend on the augmentation seed');
    assert.equal(modelFingerprint(model.weights), modelFingerprint((await loadClipModel(MODEL)).weights));
    assert.notEqual(modelFingerprint(model.weights), modelFingerprint((await loadClipModel(fixture('clip', 'tiny-vit-openai'))).weights));
  });

  test('cached features equal fresh ones; a second run computes nothing', async () => {
    const root = newCacheRoot();
    const cache = await FeatureCache.open(model.weights, { root });
    const first = await extractFeatures(model, items, { views: 2, batchSize: 5, cache, workers: 2 });
    assert.equal(first.requested, items.length * 3);
    assert.equal(first.computed, items.length * 3);
    assert.equal(first.fromCache, 0);

    // A new process would open the cache afresh.
    const reopened = await FeatureCache.open(model.weights, { root });
    assert.equal(reopened.size, items.length * 3);
    const second = await extractFeatures(model, items, { views: 2, batchSize: 5, cache: reopened });
    assert.equal(second.computed, 0);
    assert.equal(second.fromCache, items.length * 3);
    assert.equal(second.features.length, first.features.length);
    first.features.forEach((f, i) => {
      const g = second.features[i];
      assert.equal(g.key, f.key);
      assert.deepEqual(g.embed, f.embed, `${f.key}: embeddings differ`);
      assert.deepEqual(g.spatial, f.spatial, `${f.key}: spatial features differ`);
    });
    const embedsOnly = await extractFeatures(model, items, { views: 2, cache: reopened, output: 'embeds' });
    assert.equal(embedsOnly.features[5].spatial, undefined);
    assert.deepEqual(embedsOnly.features[5].embed, first.features[5].embed);
  });

  test('features equal the encoder run directly: embeddings bitwise, spatial rounded to F16', async () => {
    const cache = await FeatureCache.open(model.weights, { root: newCacheRoot() });
    // One batch holding every image, so the encoder sees exactly what the direct call sees.
    await extractFeatures(model, items, { batchSize: items.length, cache, output: 'none' });
    const { features } = await extractFeatures(model, items, { cache });
    const R = model.config.vision.imageSize;
    const pixels = new Float32Array(items.length * 3 * R * R);
    for (const [i, item] of items.entries()) pixels.set(await preprocessImage(item.path, model.preprocess), i * 3 * R * R);
    const direct = await model.encodeImages(pixels, items.length);
    const E = direct.embeds.shape[1];
    const perItem = direct.spatial.data.length / items.length;
    assert.deepEqual(features[0].spatialShape, direct.spatial.shape.slice(1));
    features.forEach((f, i) => {
      assert.deepEqual(f.embed, direct.embeds.data.slice(i * E, (i + 1) * E));
      const rounded = halfBitsToFloat32(float32ToHalfBits(direct.spatial.data.slice(i * perItem, (i + 1) * perItem)));
      assert.deepEqual(f.spatial, rounded);
    });

    // An augmented view: the encoder on augmentView's pixels.
    const view3 = await extractFeatures(model, [items[1]], { views: [3], augmentSeed: 11, cache: await FeatureCache.open(model.weights, { root: newCacheRoot(), spatialDtype: 'F32' }) });
    const viewPixels = augmentView(await decodeImage(items[1].path), { seed: 11, imageId: items[1].relativePath, view: 3 }, model.preprocess);
    const viewDirect = await model.encodeImages(viewPixels, 1);
    assert.deepEqual(view3.features[0].embed, viewDirect.embeds.data);
    assert.deepEqual(view3.features[0].spatial, viewDirect.spatial.data, 'F32 storage keeps spatial features exactly');
  });

  test('a truncated shard, a flipped data byte and a flipped header byte are ignored and recomputed', async () => {
    const root = newCacheRoot();
    const cache = await FeatureCache.open(model.weights, { root });
    const reference = await extractFeatures(model, items, { batchSize: 4, cache });
    const shards = readdirSync(cache.dir).filter((n) => n.endsWith('.safetensors')).sort().map((n) => path.join(cache.dir, n));
    assert.equal(shards.length, 3);
    truncateSync(shards[0], statSync(shards[0]).size - 100);
    flipByte(shards[1], statSync(shards[1]).size - 7); // inside the spatial features
    flipByte(shards[2], 8 + 20); // inside the header's JSON

    const warnings: string[] = [];
    const reopened = await FeatureCache.open(model.weights, { root, onWarning: quiet(warnings) });
    const again = await extractFeatures(model, items, { batchSize: 4, cache: reopened });
    // Each shard reported once, whether found at indexing (header) or on reading (data).
    assert.equal(warnings.length, 3, warnings.join('\n'));
    for (const w of warnings) assert.match(w, /corrupt/);
    assert.equal(again.computed, items.length);
    assert.equal(again.fromCache, 0);
    again.features.forEach((f, i) => assert.deepEqual(f.embed, reference.features[i].embed));
    const names = readdirSync(cache.dir);
    assert.equal(names.filter((n) => n.endsWith('.corrupt')).length, 3, 'corrupt shards are set aside');

    // The recomputed features are what the next run reads, with nothing more to report.
    const third = await extractFeatures(model, items, { cache: await FeatureCache.open(model.weights, { root, onWarning: quiet(warnings) }) });
    assert.equal(third.fromCache, items.length);
    assert.equal(warnings.length, 3);
  });

  test('bad images: an error naming the file, or skipped with a warning and counted', async () => {
    const dir = path.join(work, 'bad');
    mkdirSync(dir);
    const broken = path.join(dir, 'broken.jpg');
    writeFileSync(broken, readFileSync(items[1].path).subarray(0, 40));
    const missing = path.join(dir, 'missing.png');
    const bad: ImageItem[] = [
      { path: broken, relativePath: 'broken.jpg', label: 0 },
      { path: missing, relativePath: 'missing.png', label: 0 },
    ];
    const cache = await FeatureCache.open(model.weights, { root: newCacheRoot() });
    await assert.rejects(extractFeatures(model, [items[0], bad[0]], { cache }), (err: Error) => err.message.includes(broken));
    await assert.rejects(extractFeatures(model, [bad[1], items[0]], { cache }), (err: Error) => err.message.includes(missing));
    const warnings: string[] = [];
    const result = await extractFeatures(model, [items[0], ...bad, items[2]], { views: 1, cache, skipBad: true, onWarning: quiet(warnings) });
    assert.deepEqual(result.skipped.map((s) => s.item.path), [broken, missing]);
    assert.equal(warnings.length, 2);
    assert.deepEqual(result.features.map((f) => [f.item.path, f.view]), [[items[0].path, 0], [items[0].path, 1], [items[2].path, 0], [items[2].path, 1]]);
  });

  test('kill -9 mid-run: the rerun resumes, losing at most the batch in flight', async () => {
    const dir = path.join(work, 'kill-images');
    mkdirSync(dir);
    const many = await writeImages(dir, 40);
    const root = newCacheRoot();
    const views = 2;
    const total = many.length * (views + 1);
    const batchSize = 2;

    const child = spawn(process.execPath, [CHILD, MODEL, dir, root, String(batchSize), String(views)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let reported = 0;
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
        const last = lines.length ? JSON.parse(lines.at(-1)!) : undefined;
        if (last?.computed !== undefined) reported = last.computed;
        if (reported >= total / 3) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
    });
    assert.equal(await exited, 'SIGKILL', `the child finished before it was killed:\n${stdout}\n${stderr}`);
    // Everything the child printed was written before it died: its last report is a lower bound.
    const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    reported = Math.max(...lines.map((l) => l.computed ?? 0));
    assert.ok(reported < total, 'killed mid-run');

    const warnings: string[] = [];
    const cache = await FeatureCache.open(model.weights, { root, onWarning: quiet(warnings) });
    const onDisk = cache.size;
    // Every batch reported done is on disk; at most one more finished between the report and the kill.
    assert.ok(onDisk >= reported && onDisk <= reported + batchSize, `on disk ${onDisk}, reported ${reported}`);
    assert.equal(onDisk % batchSize, 0, 'whole batches only');
    const leftovers = readdirSync(cache.dir).filter((n) => n.endsWith('.tmp'));
    assert.ok(leftovers.length <= 1, `temporaries: ${leftovers.join(', ')}`);

    const rerun = await extractFeatures(model, many, { views, batchSize, cache });
    console.log(`kill -9: child reported ${reported} of ${total} features stored, ${onDisk} on disk, rerun computed ${rerun.computed}`);
    assert.deepEqual(warnings, [], 'nothing corrupt was left');
    assert.equal(rerun.fromCache, onDisk);
    assert.equal(rerun.computed, total - onDisk);
    // Complete and correct: everything equals a run without any cache.
    const fresh = await extractFeatures(model, many, { views, batchSize });
    assert.equal(rerun.features.length, total);
    rerun.features.forEach((f, i) => {
      assert.equal(f.key, fresh.features[i].key);
      assertClose(f.embed, fresh.features[i].embed, 1e-5, f.key);
    });
  });

  test('two processes filling one cache at once leave it consistent', async () => {
    const dir = path.join(work, 'two-images');
    mkdirSync(dir);
    const images = await writeImages(dir, 16);
    const root = newCacheRoot();
    const views = 1;
    const total = images.length * (views + 1);
    const run = (): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [CHILD, MODEL, dir, root, '3', String(views)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const [a, b] = await Promise.all([run(), run()]);
    for (const r of [a, b]) {
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /warning/);
    }
    const done = [a, b].map((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!));
    for (const d of done) assert.equal(d.computed + d.fromCache, total);

    const warnings: string[] = [];
    const cache = await FeatureCache.open(model.weights, { root, onWarning: quiet(warnings) });
    assert.equal(cache.size, total);
    const read = await extractFeatures(model, images, { views, cache });
    assert.equal(read.computed, 0);
    assert.deepEqual(warnings, []);
    const fresh = await extractFeatures(model, images, { views, batchSize: 3 });
    read.features.forEach((f, i) => {
      assertClose(f.embed, fresh.features[i].embed, 1e-5, f.key);
      assertClose(f.spatial!, fresh.features[i].spatial!, 2e-3, f.key); // F16 storage
    });
  });

  test('pfedprompt features: the second run reads every feature from the cache; a partition reads its clients\' images', async () => {
    const dir = path.join(work, 'folder-dataset');
    for (const [c, name] of ['cat', 'dog'].entries()) {
      mkdirSync(path.join(dir, name), { recursive: true });
      for (const item of items.slice(c * 5, c * 5 + 5)) copyFileSync(item.path, path.join(dir, name, item.relativePath));
    }
    const cacheRoot = newCacheRoot();
    const runCli = (...extra: string[]): string => {
      const args = [CLI, 'features', '--model', MODEL, '--dataset', dir, '--views', '2', '--batch-size', '3', '--cache', cacheRoot, ...extra];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    const first = runCli();
    // Per class 2 train, 1 val, 2 test images: 4 train × 3 views + 2 val + 4 test.
    assert.match(first, /total: 18 features, 18 computed, 0 read from cache/);
    const second = runCli();
    assert.match(second, /total: 18 features, 0 computed, 18 read from cache/);

    // One client holding class 0: its 2 training images × 3 views and its 2 test images.
    const dataset = await loadDataset(dir);
    const ofClass = (split: readonly ImageItem[]): number[] => split.flatMap((item, i) => (item.label === 0 ? [i] : []));
    const scheme = { name: 'iid', clients: 1, seed: 0, shots: null, valShots: 0, test: 'classes' } as const;
    const partitionFile = path.join(work, 'partition.json');
    await writePartition(partitionFile, makePartition(dataset, scheme, [{ classes: [0], train: ofClass(dataset.train), test: ofClass(dataset.test) }]));
    assert.match(runCli('--partition', partitionFile), /total: 8 features, 0 computed, 8 read from cache/);
  });
});

function flipByte(file: string, offset: number): void {
  const bytes = readFileSync(file);
  bytes[offset] ^= 0x20;
  writeFileSync(file, bytes);
}

function assertClose(actual: Float32Array, expected: Float32Array, relative: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  assert.ok(worst <= relative * scale, `${what}: max |diff| ${worst} over ${relative} × ${scale}`);
}
