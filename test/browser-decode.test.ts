// The browser's decode path (canvas RGBA → DecodedPixels → preprocess.ts's
// arithmetic) against Node's (sharp → DecodedPixels → the same arithmetic):
// given the RGBA bytes a canvas returns for a PNG, the preprocessed pixels
// are bit-identical. The browser's own decoder runs in the page helper's
// Playwright test; here the canvas's bytes are sharp's, with alpha added.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { pixelsFromRgba } from '../src/browser/decode.js';
import { decodeImage } from '../src/clip/decode.js';
import { preprocessPixels } from '../src/clip/preprocess.js';
import { SeededRandom } from '../src/clip/random.js';
import { CLIP_PREPROCESS } from '../src/clip/weights.js';

const CONFIG = CLIP_PREPROCESS(32);

function noise(width: number, height: number, channels: 3 | 4, seed: number, alpha: (i: number) => number = () => 255): Uint8Array {
  const random = new SeededRandom(seed);
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = channels === 4 && i % 4 === 3 ? alpha(i >> 2) : Math.floor(random.uniform() * 256);
  return data;
}

async function canvasRgba(png: Buffer): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

for (const [name, channels, alpha] of [
  ['an opaque RGB PNG', 3, undefined],
  ['an RGBA PNG with partial alpha', 4, (i: number) => (i * 37) % 256],
  ['an RGBA PNG, every pixel opaque', 4, () => 255],
] as const) {
  test(`browser decode path: ${name} preprocesses bit-identically to sharp's`, async () => {
    const [width, height] = [83, 47];
    const png = await sharp(Buffer.from(noise(width, height, channels, 7, alpha)), { raw: { width, height, channels } }).png().toBuffer();
    const node = preprocessPixels(await decodeImage(png), CONFIG);
    const rgba = await canvasRgba(png);
    const pixels = pixelsFromRgba(rgba.data, rgba.width, rgba.height);
    assert.equal(pixels.mode, channels === 4 && alpha(1) !== 255 ? 'RGBA' : 'RGB');
    const browser = preprocessPixels(pixels, CONFIG);
    assert.equal(browser.length, node.length);
    assert.ok(browser.every((v, i) => Object.is(v, node[i])), 'preprocessed pixels differ');
  });
}

test('pixelsFromRgba: a byte count that is not width × height × 4 is an error naming both', () => {
  assert.throws(() => pixelsFromRgba(new Uint8Array(10), 2, 2), /10 bytes do not make a 2×2 RGBA image/);
});
