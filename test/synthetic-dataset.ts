// A small labelled image folder for tests: six classes of 32×32 images, each
// class its own colour and stripe width, with noise.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { SeededRandom } from '../src/clip/random.js';

export const CLASSNAMES = ['red circle', 'green square', 'blue triangle', 'yellow star', 'purple cross', 'orange moon'];

/** Writes `perClass` PNGs per class in the image-folder layout (class folders with underscores for spaces). */
export async function writeShapesDataset(root: string, perClass = 12): Promise<void> {
  const random = new SeededRandom(11);
  for (let c = 0; c < CLASSNAMES.length; c++) {
    const dir = path.join(root, CLASSNAMES[c].replace(' ', '_'));
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const pixels = Buffer.alloc(32 * 32 * 3);
      for (let p = 0; p < 32 * 32; p++) {
        const stripe = ((p % 32) >> (c % 3 + 1)) & 1;
        for (let k = 0; k < 3; k++) pixels[p * 3 + k] = Math.max(0, Math.min(255, ((c * 53 + k * 97) % 256) * (0.6 + 0.4 * stripe) + 40 * random.normal()));
      }
      await sharp(pixels, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(dir, `${i}.png`));
    }
  }
}
