// Image files decoded with sharp (Node), as PIL's Image.open sees them; the
// arithmetic that follows is preprocess.ts's, shared with the browser.

import sharp from 'sharp';
import { MODE_OF_CHANNELS, preprocessPixels, type DecodedPixels } from './preprocess.js';
import type { PreprocessConfig } from './weights.js';

/**
 * Decodes an image file (or its bytes) to 8-bit pixels the way PIL's
 * Image.open sees them: no EXIF rotation, embedded ICC profiles ignored,
 * grey kept as one channel, alpha kept, CMYK kept as ink values (not
 * colour-managed), palettes expanded (and flagged `indexed`), 16-bit samples
 * reduced to their high byte. That last is PIL's reading of 16-bit colour
 * PNGs; a 16-bit grey PNG PIL opens as 32-bit integers, which
 * `.convert("RGB")` saturates at 255 — a quirk not reproduced here.
 * `name` labels a Buffer in error messages.
 */
export async function decodeImage(input: string | Buffer, name?: string): Promise<DecodedPixels> {
  const label = typeof input === 'string' ? input : name ?? '<image buffer>';
  try {
    // failOn 'error': refuse truncated or broken data as PIL does, but accept
    // the benign libjpeg warnings PIL accepts too.
    const image = sharp(input, { ignoreIcc: true, failOn: 'error' });
    const meta = await image.metadata();
    const grey = meta.space === 'b-w' || meta.space === 'grey16';
    if (meta.space === 'cmyk') {
      // Without this, sharp converts CMYK through an ICC profile; PIL's
      // `.convert("RGB")` uses its own formula on the raw inks instead.
      image.pipelineColourspace('cmyk').toColourspace('cmyk');
    } else if (grey && !meta.hasAlpha) {
      image.toColourspace('b-w');
    }
    // Grey + alpha cannot leave sharp as two bands (b-w output drops alpha):
    // it comes as RGBA with R = G = B and is packed back to LA below.
    const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    const indexed = meta.isPalette || meta.bitsPerSample === 1;
    const { width, height } = info;
    if (grey && meta.hasAlpha && info.channels === 4) {
      return { width, height, channels: 2, data: keepChannels(bytes, 4, [0, 3]), mode: 'LA', indexed };
    }
    const channels = info.channels as 1 | 2 | 3 | 4;
    const mode = meta.space === 'cmyk' && channels === 4 ? 'CMYK' : MODE_OF_CHANNELS[channels];
    return { width, height, channels, data: bytes, mode, indexed };
  } catch (err) {
    throw new Error(`cannot decode image ${label}: ${(err as Error).message}`, { cause: err });
  }
}

/** The listed channels of interleaved pixels, interleaved in that order. */
function keepChannels(data: Uint8Array, channels: number, keep: readonly number[]): Uint8Array {
  const out = new Uint8Array((data.length / channels) * keep.length);
  for (let p = 0, o = 0; p < data.length; p += channels) for (const ch of keep) out[o++] = data[p + ch];
  return out;
}

/** Decodes and preprocesses an image: CHW float32 [3, cropSize, cropSize], normalised. */
export async function preprocessImage(input: string | Buffer, config: PreprocessConfig): Promise<Float32Array> {
  return preprocessPixels(await decodeImage(input), config);
}

