// Image decoding in a browser (page or Worker): the browser's own decoder,
// asked for the file's pixels as stored (no colour management, alpha not
// premultiplied), into DecodedPixels; the arithmetic after it is
// preprocess.ts's, the same as in Node. PNG pixels match sharp's exactly;
// JPEG decoders may differ by rounding. A canvas keeps pixels premultiplied,
// so colours under partial transparency come back rounded (opaque pixels
// are exact).

import type { DecodedPixels } from '../clip/preprocess.js';

/** What this module needs of the browser, typed here so the project compiles without the DOM library. */
interface BrowserImaging {
  createImageBitmap(image: Blob, options: { colorSpaceConversion: 'none'; premultiplyAlpha: 'none' }): Promise<{ width: number; height: number; close(): void }>;
  OffscreenCanvas: new (width: number, height: number) => {
    getContext(kind: '2d', options?: { willReadFrequently?: boolean }): {
      drawImage(image: unknown, x: number, y: number): void;
      getImageData(x: number, y: number, width: number, height: number): { data: Uint8ClampedArray };
    } | null;
  };
}

/** Decodes an image file's bytes (or a Blob, e.g. a picked file) to 8-bit pixels. `name` labels it in errors. */
export async function decodeImageInBrowser(input: Blob | Uint8Array, name = '<image>'): Promise<DecodedPixels> {
  const imaging = globalThis as unknown as BrowserImaging;
  try {
    const blob = input instanceof Blob ? input : new Blob([input as Uint8Array<ArrayBuffer>]);
    const bitmap = await imaging.createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const { width, height } = bitmap;
    try {
      const context = new imaging.OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
      if (!context) throw new Error('no 2d canvas context');
      context.drawImage(bitmap, 0, 0);
      return pixelsFromRgba(context.getImageData(0, 0, width, height).data, width, height);
    } finally {
      bitmap.close();
    }
  } catch (err) {
    throw new Error(`cannot decode image ${name}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * A canvas's RGBA bytes as PIL would hold the image: 'RGB' when every pixel
 * is opaque (a canvas adds alpha to any image; PIL resizes RGBA through
 * premultiplied alpha, which differs in rounding), 'RGBA' otherwise.
 */
export function pixelsFromRgba(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): DecodedPixels {
  if (rgba.length !== width * height * 4) throw new Error(`pixelsFromRgba: ${rgba.length} bytes do not make a ${width}×${height} RGBA image`);
  let opaque = true;
  for (let p = 3; p < rgba.length; p += 4) {
    if (rgba[p] !== 255) {
      opaque = false;
      break;
    }
  }
  const bytes = new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.length);
  if (!opaque) return { width, height, channels: 4, data: bytes.slice(), mode: 'RGBA' };
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0, o = 0; p < bytes.length; p += 4) {
    rgb[o++] = bytes[p];
    rgb[o++] = bytes[p + 1];
    rgb[o++] = bytes[p + 2];
  }
  return { width, height, channels: 3, data: rgb, mode: 'RGB' };
}
