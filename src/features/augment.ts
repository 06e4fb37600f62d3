// CoOp's training augmentation (Dassl's transforms "random_resized_crop",
// "random_flip", "normalize"): torchvision's
//   RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3/4, 4/3), BICUBIC)
//   RandomHorizontalFlip(0.5), ToTensor, Normalize(CLIP's mean and std).
// The crop follows torchvision's get_params; its random draws come from a
// small generator seeded by (augmentation seed, image, view), so view v of an
// image is the same crop in every run, process and worker thread. That is
// what lets the feature cache keep augmented views.
//
// Dassl converts an image to RGB when it loads it; here a non-RGB image is
// resized in its own mode and converted afterwards, as the test-time
// preprocessing does (src/clip/preprocess.ts). The two differ only by rounding,
// and only for images with alpha, a palette or CMYK inks.

import { SeededRandom } from '../clip/random.js';
import { preprocessCrop, preprocessPixels, type DecodedPixels, type PixelBox } from '../clip/preprocess.js';
import { sha256 } from '../io/sha256.js';
import type { PreprocessConfig } from '../clip/weights.js';

/** RandomResizedCrop's defaults, which CoOp keeps. */
export const CROP_SCALE: readonly [number, number] = [0.08, 1.0];
export const CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];
const FLIP_PROBABILITY = 0.5;

/**
 * Names the augmentation recipe (parameters, draw order, generator) in cache
 * keys: change it whenever anything here changes what a view looks like, so
 * old cached views are not read back as new ones.
 */
export const AUGMENTATION_ID = 'rrc-0.08-1-0.75-1.33-hflip-v1';

/** One augmented view: the crop box in the source image, and whether the result is mirrored. */
export interface AugmentParams extends PixelBox {
  readonly flip: boolean;
}

/** Which augmented view of which image: the same triple always gives the same view. */
export interface ViewSeed {
  /** Augmentation seed of the run (the cache keys views by it). */
  readonly seed: number;
  /** Stable name of the image, e.g. its path relative to the dataset root. */
  readonly imageId: string;
  /** View index, 1 … V (view 0 is the un-augmented test-time image). */
  readonly view: number;
}

/**
 * The augmentation seed of the views a run with seed `runSeed` trains on: each
 * seed of an experiment draws crops of its own, as CoOp draws fresh crops
 * under each run's seed; `base` (the config's data.augmentSeed) names another
 * family of views for the same seeds. The crop of a (seed, image, view) never
 * changes, so cache keys stay exact.
 */
export function runAugmentSeed(base: number, runSeed: number): number {
  if (!Number.isInteger(base) || base < 0 || !Number.isInteger(runSeed) || runSeed < 0) {
    throw new Error(`augmentation seed and run seed must be non-negative integers, got ${base} and ${runSeed}`);
  }
  return SeededRandom.forName(base, `augmented views of run seed ${runSeed}`).nextUint32();
}

// ---------------------------------------------------------------- random numbers

/**
 * Uniform numbers in [0, 1) from mulberry32, seeded by a hash of the view's
 * identity: small, fast, and the same on every platform (unlike
 * Math.random, which cannot be seeded).
 */
export function viewRandom({ seed, imageId, view }: ViewSeed): () => number {
  const digest = sha256(`${seed}\n${view}\n${imageId}`);
  let state = new DataView(digest.buffer).getInt32(0, true);
  return () => {
    let t = (state = (state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- torchvision's parameters

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * RandomResizedCrop.get_params: up to ten tries of an area fraction drawn
 * uniformly from `scale` and an aspect ratio drawn log-uniformly from
 * `ratio`, keeping the first box that fits, placed uniformly; otherwise the
 * centre crop of the whole image with its ratio clamped into `ratio`.
 * (torchvision draws in float32; this draws in doubles, which only moves
 * where the boundaries between outcomes fall.)
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  random: () => number,
  scale: readonly [number, number] = CROP_SCALE,
  ratio: readonly [number, number] = CROP_RATIO,
): PixelBox {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  const uniform = (low: number, high: number): number => low + (high - low) * random();
  const randint = (high: number): number => Math.min(high - 1, Math.floor(random() * high)); // torch.randint(0, high)
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * uniform(scale[0], scale[1]);
    const aspectRatio = Math.exp(uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspectRatio));
    const h = roundHalfEven(Math.sqrt(targetArea / aspectRatio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = randint(height - h + 1);
      const left = randint(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  // Fallback to a centre crop.
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(...ratio)) {
    w = width;
    h = roundHalfEven(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    h = height;
    w = roundHalfEven(h * Math.max(...ratio));
  } else {
    w = width;
    h = height;
  }
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** The crop and flip of one view, drawn in torchvision's order: crop, then flip. */
export function augmentParams(width: number, height: number, view: ViewSeed): AugmentParams {
  const random = viewRandom(view);
  const box = randomResizedCropBox(width, height, random);
  return { ...box, flip: random() < FLIP_PROBABILITY };
}

// ---------------------------------------------------------------- pixels

/** The view as the encoder takes it: CHW float32 [3, size, size], normalised. */
export function augmentPixels(pixels: DecodedPixels, params: AugmentParams, size: number, config: PreprocessConfig): Float32Array {
  const out = preprocessCrop(pixels, params, size, config);
  if (params.flip) mirrorRows(out, size);
  return out;
}

/** Seeded view of decoded pixels: augmentParams, then augmentPixels. */
export function augmentView(pixels: DecodedPixels, view: ViewSeed, config: PreprocessConfig): Float32Array {
  return augmentPixels(pixels, augmentParams(pixels.width, pixels.height, view), config.cropSize, config);
}

/** Horizontal flip of CHW planes in place (flip commutes with the per-pixel normalisation). */
function mirrorRows(chw: Float32Array, size: number): void {
  for (let row = 0; row < chw.length; row += size) chw.subarray(row, row + size).reverse();
}

/**
 * The pixels of each asked view of one decoded image: view 0 the test-time
 * preprocessing, views ≥ 1 its seeded augmentations. What a Node node's
 * preprocessing workers and a browser node compute alike.
 */
export function imageViews(pixels: DecodedPixels, imageId: string, views: readonly number[], augmentSeed: number, config: PreprocessConfig): Float32Array[] {
  return views.map((view) => (view === 0 ? preprocessPixels(pixels, config) : augmentView(pixels, { seed: augmentSeed, imageId, view }, config)));
}
