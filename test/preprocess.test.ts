// CLIP preprocessing against the reference (PIL + torchvision) goldens.
//
// The resampler is Pillow's fixed-point arithmetic redone, and sharp's
// libjpeg-turbo decodes JPEGs as PIL's does, so every fixture matches to 0.
//
// What cmyk.jpg gets: PIL decodes the Adobe CMYK JPEG to its ink values,
// resizes the four ink channels, and `.convert("RGB")` applies Pillow's
// cmyk2rgb, R = (255 - C)(255 - K) / 255 in integers (not the older
// 255 - min(255, C + K); the two agree here, as PIL's RGB → CMYK leaves K = 0,
// but only the product matched Pillow 9.4 on a CMYK JPEG with K > 0).
// decodeImage asks sharp for the raw inks, skipping its ICC conversion to
// sRGB, which would be off by a mean 0.18 (max 0.61) on this image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { fixture } from './shared.js';
import { CLIP_PREPROCESS } from '../src/clip/weights.js';
import { decodeImage, preprocessImage } from '../src/clip/decode.js';
import { cropOrigin, preprocessPixels, shortestEdgeSize } from '../src/clip/preprocess.js';

const config = CLIP_PREPROCESS(224);

/** The F32 tensors of a safetensors file, by name. */
function readF32Tensors(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLength;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__' || entry.dtype !== 'F32') continue;
    const [start, end] = entry.data_offsets;
    // Copy: the data need not be 4-byte aligned within the file.
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + base + start, bytes.byteOffset + base + end));
    tensors.set(name, { shape: entry.shape, data });
  }
  return tensors;
}

const goldens = readF32Tensors(fixture('images', 'preprocess-goldens.safetensors'));

test('goldens cover every fixture image', () => {
  assert.deepEqual([...goldens.keys()].sort(), ['china.jpg', 'cmyk.jpg', 'exact-224.png', 'flower.jpg', 'gray.png', 'tall-rgba.png']);
});

for (const [name, golden] of goldens) {
  test(`preprocess ${name} matches PIL + torchvision`, async () => {
    assert.deepEqual(golden.shape, [3, 224, 224]);
    const actual = await preprocessImage(fixture('images', name), config);
    assert.equal(actual.length, golden.data.length);
    let sum = 0;
    let max = 0;
    let differing = 0;
    for (let i = 0; i < actual.length; i++) {
      const d = Math.abs(actual[i] - golden.data[i]);
      sum += d;
      if (d > max) max = d;
      if (d > 1e-6) differing++;
    }
    const mean = sum / actual.length;
    console.log(
      `preprocess ${name}: mean |diff| = ${mean.toExponential(3)}, max = ${max.toExponential(3)}, ` +
        `values off by > 1e-6: ${differing} of ${actual.length}`,
    );
    assert.ok(mean <= 0.02, `${name}: mean |diff| ${mean} over 0.02`);
    // Lossless inputs leave nothing to chance: Pillow's arithmetic exactly.
    if (name.endsWith('.png')) assert.equal(max, 0, `${name}: PNG pixels differ from the reference`);
    else assert.ok(mean <= 0.005, `${name}: mean |diff| ${mean} over 0.005 (JPEG decoders disagree?)`);
  });
}

test('torchvision geometry: truncated long side, half-to-even crop origin, padding', () => {
  assert.deepEqual(shortestEdgeSize(640, 427, 224), [335, 224]);
  assert.deepEqual(shortestEdgeSize(37, 300, 224), [224, 1816]);
  assert.equal(cropOrigin(335, 224), 56); // 55.5 → 56
  assert.equal(cropOrigin(333, 224), 54); // 54.5 → 54
  assert.equal(cropOrigin(224, 224), 0);
  assert.equal(cropOrigin(200, 224), -12);
  assert.equal(cropOrigin(201, 224), -11);
});

test('preprocessPixels: grey, its RGB replica and a padded crop agree', () => {
  const width = 50;
  const height = 40;
  const grey = new Uint8Array(width * height).map((_, i) => (i * 37) % 256);
  const rgb = new Uint8Array(width * height * 3).map((_, i) => grey[Math.floor(i / 3)]);
  const small = { resizeShortestEdge: 20, cropSize: 24, mean: config.mean, std: config.std } as const;
  const a = preprocessPixels({ width, height, channels: 1, data: grey }, small);
  const b = preprocessPixels({ width, height, channels: 3, data: rgb }, small);
  assert.deepEqual(a, b);
  // 25×20 resized, cropped to 24: two zero-padded rows above, two below.
  const zero = Math.fround(Math.fround(0 - Math.fround(config.mean[0])) / Math.fround(config.std[0]));
  assert.equal(a[0], zero);
  assert.equal(a[24 * 2 - 1], zero);
  assert.notEqual(a[24 * 2], zero);
});

test('preprocessPixels: grey + alpha is resized like RGBA with equal colours (premultiplied)', () => {
  const width = 30;
  const height = 70;
  const la = new Uint8Array(width * height * 2).map((_, i) => (i % 2 ? (i * 11) % 256 : (i * 29) % 256));
  const rgba = new Uint8Array(width * height * 4).map((_, i) => la[Math.floor(i / 4) * 2 + (i % 4 === 3 ? 1 : 0)]);
  const a = preprocessPixels({ width, height, channels: 2, data: la }, config);
  const b = preprocessPixels({ width, height, channels: 4, data: rgba }, config);
  assert.deepEqual(a, b);
  // Alpha matters: the same colours with alpha dropped before resizing differ.
  const grey = new Uint8Array(width * height).map((_, i) => la[i * 2]);
  assert.notDeepEqual(preprocessPixels({ width, height, channels: 1, data: grey }, config), a);
});

test('decodeImage keeps the image’s own channels', async () => {
  const grey = await decodeImage(fixture('images', 'gray.png'));
  assert.deepEqual([grey.width, grey.height, grey.channels, grey.mode], [200, 150, 1, 'L']);
  const rgba = await decodeImage(fixture('images', 'tall-rgba.png'));
  assert.deepEqual([rgba.width, rgba.height, rgba.channels, rgba.mode], [37, 300, 4, 'RGBA']);
  assert.deepEqual([rgba.data[3], rgba.data[37 * 4 + 3]], [128, 255]);
  const cmyk = await decodeImage(fixture('images', 'cmyk.jpg'));
  assert.deepEqual([cmyk.width, cmyk.height, cmyk.channels, cmyk.mode], [320, 200, 4, 'CMYK']);
});

test('a missing file gives an error naming it', async () => {
  const missing = path.join(tmpdir(), 'pfedprompt-no-such-image.jpg');
  await assert.rejects(preprocessImage(missing, config), (err: Error) => {
    assert.match(err.message, /pfedprompt-no-such-image\.jpg/);
    return true;
  });
});

test('a corrupt file gives an error naming it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-preprocess-'));
  try {
    const file = path.join(dir, 'x.jpg');
    writeFileSync(file, Buffer.from('this is not a JPEG at all, only garbage bytes \x00\x01\x02'));
    await assert.rejects(preprocessImage(file, config), (err: Error) => {
      assert.ok(err.message.includes(file), err.message);
      return true;
    });
    // A JPEG cut short is refused too, as PIL refuses it.
    const jpeg = readFileSync(fixture('images', 'china.jpg'));
    const truncated = path.join(dir, 'truncated.jpg');
    writeFileSync(truncated, jpeg.subarray(0, jpeg.length >> 1));
    await assert.rejects(preprocessImage(truncated, config), (err: Error) => {
      assert.ok(err.message.includes(truncated), err.message);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
