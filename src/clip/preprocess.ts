// CLIP's image preprocessing, numerically as the reference computes it:
// PIL opens the file, torchvision's Resize(shortest edge, BICUBIC) calls
// Pillow's resampler on the image in its own mode, CenterCrop cuts the
// middle, `.convert("RGB")` drops alpha / maps CMYK, then ToTensor and
// Normalize. Every step after decoding is Pillow's arithmetic redone here,
// since its fixed-point resampler is what the model was trained and
// evaluated on. Decoding is elsewhere: sharp in Node (decode.ts), the
// browser's own decoder in a page (src/browser/decode.ts).

import type { PreprocessConfig } from './weights.js';

// ---------------------------------------------------------------------------
// Decoded pixels

/**
 * How PIL would hold the pixels, which decides how they are resized and
 * turned into RGB: 'L' grey, 'LA' grey + alpha, 'RGB', 'RGBA', 'CMYK'.
 */
export type PixelMode = 'L' | 'LA' | 'RGB' | 'RGBA' | 'CMYK';

/** 8-bit pixels, interleaved row-major, in the image's own colour model. */
export interface DecodedPixels {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  readonly data: Uint8Array;
  /** Defaults from `channels` (1 'L', 2 'LA', 3 'RGB', 4 'RGBA'); say 'CMYK' for 4 ink channels. */
  readonly mode?: PixelMode;
  /**
   * A palette (or 1-bit) image, already expanded to colours. PIL resizes
   * those modes with nearest neighbour whatever filter is asked for.
   */
  readonly indexed?: boolean;
}

export const MODE_OF_CHANNELS: Record<number, PixelMode> = { 1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA' };
const CHANNELS_OF_MODE: Record<PixelMode, number> = { L: 1, LA: 2, RGB: 3, RGBA: 4, CMYK: 4 };

/**
 * Preprocesses decoded pixels: resize the shorter side to
 * `config.resizeShortestEdge` (Pillow bicubic), centre-crop
 * `config.cropSize` square, convert to RGB, scale to [0, 1] and normalise.
 * Returns CHW float32 [3, cropSize, cropSize].
 */
export function preprocessPixels(pixels: DecodedPixels, config: PreprocessConfig): Float32Array {
  const mode = checkedMode(pixels, 'preprocessPixels');
  const { width, height, channels, data } = pixels;
  const crop = config.cropSize;
  const [outWidth, outHeight] = shortestEdgeSize(width, height, config.resizeShortestEdge);
  const window: CropWindow = {
    left: cropOrigin(outWidth, crop),
    top: cropOrigin(outHeight, crop),
    size: crop,
  };
  const cropped = resizeInMode({ width, height, channels, data }, mode, pixels.indexed, outWidth, outHeight, window);
  return normalizeToCHW(cropped, crop, mode, config);
}

/** A rectangle of an image, in its pixel coordinates: PIL's crop box (left, top, left + width, top + height). */
export interface PixelBox {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/**
 * torchvision's resized_crop on a PIL image, `img.crop(box).resize((size,
 * size), BICUBIC)` — the training augmentation's crop — then converted to RGB
 * and normalised as preprocessPixels does. The box must lie inside the image.
 * Returns CHW float32 [3, size, size].
 */
export function preprocessCrop(pixels: DecodedPixels, box: PixelBox, size: number, config: PreprocessConfig): Float32Array {
  const mode = checkedMode(pixels, 'preprocessCrop');
  const { left, top, width, height } = box;
  const inside = [left, top, width, height].every(Number.isInteger) && left >= 0 && top >= 0 && width >= 1 && height >= 1 &&
    left + width <= pixels.width && top + height <= pixels.height;
  if (!inside) throw new Error(`preprocessCrop: box ${width}×${height} at (${left}, ${top}) is not inside the ${pixels.width}×${pixels.height} image`);
  const region = copyRegion(pixels, { x0: left, x1: left + width, y0: top, y1: top + height });
  const cropped = resizeInMode({ width, height, channels: pixels.channels, data: region }, mode, pixels.indexed, size, size, { left: 0, top: 0, size });
  return normalizeToCHW(cropped, size, mode, config);
}

/** The pixels' mode, after checking that channels, mode and byte count agree. */
function checkedMode(pixels: DecodedPixels, caller: string): PixelMode {
  const { width, height, channels, data } = pixels;
  const mode = pixels.mode ?? MODE_OF_CHANNELS[channels];
  if (!mode || CHANNELS_OF_MODE[mode] !== channels) {
    throw new Error(`${caller}: ${channels} channel(s) cannot hold mode ${mode ?? '?'}`);
  }
  if (!(width >= 1 && height >= 1) || data.length !== width * height * channels) {
    throw new Error(`${caller}: ${data.length} bytes do not make a ${width}×${height}×${channels} image`);
  }
  return mode;
}

// ---------------------------------------------------------------------------
// torchvision's geometry

/** Resize(int) sizing: shorter side → `edge`, longer side int(edge * long / short), truncated. */
export function shortestEdgeSize(width: number, height: number, edge: number): [number, number] {
  if (width <= height) return [edge, Math.trunc((edge * height) / width)];
  return [Math.trunc((edge * width) / height), edge];
}

/**
 * CenterCrop's first index along one axis: int(round((size - crop) / 2))
 * with Python's half-to-even rounding; negative when torchvision would
 * first zero-pad ((crop - size) // 2 before).
 */
export function cropOrigin(size: number, crop: number): number {
  if (crop > size) return -Math.floor((crop - size) / 2);
  const excess = size - crop;
  let origin = excess >> 1;
  if (excess & 1 && origin & 1) origin += 1; // x.5 rounds to the even neighbour
  return origin;
}

/** The square taken out of the resized image; may reach outside it (zero padding). */
interface CropWindow {
  readonly left: number;
  readonly top: number;
  readonly size: number;
}

interface Raster {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Uint8Array;
}

type Resampling = 'identity' | 'nearest' | 'bicubic';

/**
 * The crop window of `image` resized to outWidth × outHeight, same channels.
 * Only the output pixels inside the window are computed: each depends on its
 * own coefficients alone, so this equals resizing all and then cropping.
 */
function resizeCropped(image: Raster, outWidth: number, outHeight: number, window: CropWindow, how: Resampling): Uint8Array {
  const c = image.channels;
  const out = new Uint8Array(window.size * window.size * c); // zeros = torchvision's padding
  const x0 = Math.max(0, window.left);
  const x1 = Math.min(outWidth, window.left + window.size);
  const y0 = Math.max(0, window.top);
  const y1 = Math.min(outHeight, window.top + window.size);
  if (x1 <= x0 || y1 <= y0) return out;
  const region: Region = { x0, x1, y0, y1 };
  const resized =
    how === 'bicubic' ? resampleBicubic(image, outWidth, outHeight, region)
    : how === 'nearest' ? resampleNearest(image, outWidth, outHeight, region)
    : copyRegion(image, region);
  const regionWidth = x1 - x0;
  for (let y = y0; y < y1; y++) {
    const from = (y - y0) * regionWidth * c;
    out.set(resized.subarray(from, from + regionWidth * c), ((y - window.top) * window.size + (x0 - window.left)) * c);
  }
  return out;
}

/**
 * Pillow's Image.resize in the image's own mode, then the crop window: an
 * image of the asked size comes back untouched, palette (and 1-bit) images
 * are resized with nearest neighbour whatever the filter, RGBA (LA) as
 * premultiplied RGBa (La), everything else bicubic.
 */
function resizeInMode(
  source: Raster, mode: PixelMode, indexed: boolean | undefined, outWidth: number, outHeight: number, window: CropWindow,
): Uint8Array {
  if (outWidth === source.width && outHeight === source.height) return resizeCropped(source, outWidth, outHeight, window, 'identity');
  if (indexed) return resizeCropped(source, outWidth, outHeight, window, 'nearest');
  if (mode === 'RGBA' || mode === 'LA') {
    const premultiplied = { ...source, data: premultiplyAlpha(source.data, source.channels) };
    const cropped = resizeCropped(premultiplied, outWidth, outHeight, window, 'bicubic');
    unpremultiplyAlpha(cropped, source.channels);
    return cropped;
  }
  return resizeCropped(source, outWidth, outHeight, window, 'bicubic');
}

/** Output pixels [x0, x1) × [y0, y1) of a resize, in output coordinates. */
interface Region {
  readonly x0: number;
  readonly x1: number;
  readonly y0: number;
  readonly y1: number;
}

function copyRegion(image: Raster, { x0, x1, y0, y1 }: Region): Uint8Array {
  const c = image.channels;
  const rowBytes = (x1 - x0) * c;
  const out = new Uint8Array((y1 - y0) * rowBytes);
  for (let y = y0; y < y1; y++) {
    const from = (y * image.width + x0) * c;
    out.set(image.data.subarray(from, from + rowBytes), (y - y0) * rowBytes);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Pillow's convolution resampler (ImagingResample, 8 bits per channel)

/** Bits of the fixed-point coefficients: 8 for the pixel, 2 for overshoot, within an int32. */
const PRECISION_BITS = 32 - 8 - 2;
const BICUBIC_SUPPORT = 2;

/** Keys' cubic convolution with a = -0.5, as Pillow's bicubic filter. */
function bicubicKernel(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** For each output index: the first input index, the tap count, and integer weights. */
interface FilterTaps {
  readonly first: Int32Array;
  readonly count: Int32Array;
  /** `stride` weights per output index, scaled by 2^PRECISION_BITS. */
  readonly weights: Int32Array;
  readonly stride: number;
}

/**
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box (0, inSize):
 * when shrinking the kernel is stretched by the scale (antialiasing), taps are
 * normalised to sum to one, then rounded half away from zero to fixed point.
 */
function bicubicTaps(inSize: number, outSize: number): FilterTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * stride);
  const taps = new Float64Array(stride);
  const inverseScale = 1 / filterScale;
  const one = 1 << PRECISION_BITS;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // Bounds rounded as C's (int)(v + 0.5): truncation towards zero.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicKernel((x + xmin - center + 0.5) * inverseScale);
      taps[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0 ? taps[x] / total : taps[x];
      weights[xx * stride + x] = w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one);
    }
    first[xx] = xmin;
    count[xx] = Math.max(0, xmax);
  }
  return { first, count, weights, stride };
}

/** Fixed-point sum → byte: Pillow's clip8 (arithmetic shift, then clamp). */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

const ROUNDING = 1 << (PRECISION_BITS - 1);

/**
 * Pillow's two-pass resize restricted to an output region: a horizontal pass
 * over just the input rows the vertical pass reads, rounded and clipped to
 * 8 bits, then the vertical pass. A pass whose size does not change is
 * skipped, as Pillow skips it.
 */
function resampleBicubic(image: Raster, outWidth: number, outHeight: number, region: Region): Uint8Array {
  const { width, height, channels: c } = image;
  const { x0, x1, y0, y1 } = region;

  const vertical = outHeight !== height ? bicubicTaps(height, outHeight) : null;
  const rowFirst = vertical ? vertical.first[y0] : y0;
  const rowEnd = vertical ? vertical.first[y1 - 1] + vertical.count[y1 - 1] : y1;

  const horizontal =
    outWidth !== width
      ? resampleRows(image, bicubicTaps(width, outWidth), rowFirst, rowEnd, x0, x1)
      : copyRegion(image, { x0, x1, y0: rowFirst, y1: rowEnd });
  if (!vertical) return horizontal;
  return resampleColumns(horizontal, (x1 - x0) * c, vertical, y0, y1, rowFirst);
}

/** Horizontal pass: input rows [rowFirst, rowEnd), output columns [x0, x1). */
function resampleRows(image: Raster, taps: FilterTaps, rowFirst: number, rowEnd: number, x0: number, x1: number): Uint8Array {
  const { width, channels: c, data } = image;
  const { first, count, weights, stride } = taps;
  const out = new Uint8Array((rowEnd - rowFirst) * (x1 - x0) * c);
  let o = 0;
  for (let y = rowFirst; y < rowEnd; y++) {
    const rowStart = y * width * c;
    for (let xx = x0; xx < x1; xx++) {
      const n = count[xx];
      const k0 = xx * stride;
      const p0 = rowStart + first[xx] * c;
      if (c === 3) {
        // The common case, with the three sums in one sweep over the taps.
        let r = ROUNDING;
        let g = ROUNDING;
        let b = ROUNDING;
        for (let t = 0, p = p0; t < n; t++, p += 3) {
          const w = weights[k0 + t];
          r += data[p] * w;
          g += data[p + 1] * w;
          b += data[p + 2] * w;
        }
        out[o++] = clip8(r);
        out[o++] = clip8(g);
        out[o++] = clip8(b);
      } else {
        for (let ch = 0; ch < c; ch++) {
          let sum = ROUNDING;
          for (let t = 0, p = p0 + ch; t < n; t++, p += c) sum += data[p] * weights[k0 + t];
          out[o++] = clip8(sum);
        }
      }
    }
  }
  return out;
}

/**
 * Vertical pass, output rows [y0, y1), over `rows`: `rowBytes` wide, the
 * first being input row `rowOffset`. Accumulates whole rows tap by tap, so
 * reads are sequential.
 */
function resampleColumns(rows: Uint8Array, rowBytes: number, taps: FilterTaps, y0: number, y1: number, rowOffset: number): Uint8Array {
  const { first, count, weights, stride } = taps;
  const out = new Uint8Array((y1 - y0) * rowBytes);
  const sums = new Float64Array(rowBytes); // exact: the integer sums stay far below 2^53
  for (let yy = y0, o = 0; yy < y1; yy++) {
    sums.fill(ROUNDING);
    const n = count[yy];
    const k0 = yy * stride;
    for (let t = 0; t < n; t++) {
      const w = weights[k0 + t];
      const p0 = (first[yy] - rowOffset + t) * rowBytes;
      for (let i = 0; i < rowBytes; i++) sums[i] += rows[p0 + i] * w;
    }
    for (let i = 0; i < rowBytes; i++) out[o++] = clip8(sums[i]);
  }
  return out;
}

/**
 * Pillow's resize with NEAREST (ImagingScaleAffine): the source index is the
 * floor of a position that starts at half a step and advances by the scale,
 * accumulated in doubles as Pillow does.
 */
function resampleNearest(image: Raster, outWidth: number, outHeight: number, region: Region): Uint8Array {
  const { width, height, channels: c, data } = image;
  const { x0, x1, y0, y1 } = region;
  const sourceIndices = (inSize: number, outSize: number): Int32Array => {
    const step = inSize / outSize;
    const index = new Int32Array(outSize);
    let position = step * 0.5;
    for (let i = 0; i < outSize; i++, position += step) index[i] = Math.min(inSize - 1, Math.floor(position));
    return index;
  };
  const xs = sourceIndices(width, outWidth);
  const ys = sourceIndices(height, outHeight);
  const out = new Uint8Array((y1 - y0) * (x1 - x0) * c);
  let o = 0;
  for (let y = y0; y < y1; y++) {
    const rowStart = ys[y] * width * c;
    for (let x = x0; x < x1; x++) {
      const p = rowStart + xs[x] * c;
      for (let ch = 0; ch < c; ch++) out[o++] = data[p + ch];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Pillow's mode conversions

/** (a * b) / 255 rounded, in Pillow's integer form (MULDIV255). */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** RGBA → RGBa (LA → La): colour channels scaled by alpha, alpha kept. */
function premultiplyAlpha(data: Uint8Array, channels: number): Uint8Array {
  const out = new Uint8Array(data.length);
  const alphaAt = channels - 1;
  for (let p = 0; p < data.length; p += channels) {
    const alpha = data[p + alphaAt];
    for (let ch = 0; ch < alphaAt; ch++) out[p + ch] = mulDiv255(data[p + ch], alpha);
    out[p + alphaAt] = alpha;
  }
  return out;
}

/** RGBa → RGBA (La → LA) in place: 255 * colour / alpha, truncated and clipped; alpha 0 or 255 untouched. */
function unpremultiplyAlpha(data: Uint8Array, channels: number): void {
  const alphaAt = channels - 1;
  for (let p = 0; p < data.length; p += channels) {
    const alpha = data[p + alphaAt];
    if (alpha === 0 || alpha === 255) continue;
    for (let ch = 0; ch < alphaAt; ch++) data[p + ch] = Math.min(255, Math.trunc((255 * data[p + ch]) / alpha));
  }
}

/**
 * Pillow's cmyk2rgb (Pillow ≥ 9.x): each colour is (255 - ink) · (255 - K) / 255,
 * written as nk - MULDIV255(ink, nk) with nk = 255 - K.
 */
function cmykToRgbChannel(ink: number, black: number): number {
  const nk = 255 - black;
  const v = nk - mulDiv255(ink, nk);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// ---------------------------------------------------------------------------
// ToTensor + Normalize

/**
 * `.convert("RGB")`, then ToTensor (byte / 255 in float32) and Normalize
 * ((x - mean) / std in float32), laid out CHW. Alpha is dropped as Pillow's
 * RGBA → RGB does (no compositing); grey is replicated.
 */
function normalizeToCHW(pixels: Uint8Array, size: number, mode: PixelMode, config: PreprocessConfig): Float32Array {
  // One table per channel: byte value → normalised float32, exactly as torch computes it.
  const tables = [0, 1, 2].map((ch) => {
    const mean = Math.fround(config.mean[ch]);
    const std = Math.fround(config.std[ch]);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v / 255) - mean) / std;
    return table;
  });
  const [red, green, blue] = tables;
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  const c = CHANNELS_OF_MODE[mode];
  for (let i = 0, p = 0; i < plane; i++, p += c) {
    let r: number, g: number, b: number;
    if (mode === 'L' || mode === 'LA') {
      r = g = b = pixels[p];
    } else if (mode === 'CMYK') {
      const k = pixels[p + 3];
      r = cmykToRgbChannel(pixels[p], k);
      g = cmykToRgbChannel(pixels[p + 1], k);
      b = cmykToRgbChannel(pixels[p + 2], k);
    } else {
      r = pixels[p];
      g = pixels[p + 1];
      b = pixels[p + 2];
    }
    out[i] = red[r];
    out[plane + i] = green[g];
    out[2 * plane + i] = blue[b];
  }
  return out;
}
