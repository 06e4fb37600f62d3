// The procedural world: deterministic rendering, captions and class names
// the shipped tokenizer reads, held-out pairs kept out, datasets the readers
// accept, and the shipped CLIP's zero-shot accuracy on held-out combinations.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { decodeImage, preprocessImage } from '../src/clip/decode.js';
import { SeededRandom } from '../src/clip/random.js';
import { loadTokenizer } from '../src/clip/tokenizer-file.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { classify, zeroShotAccuracy } from '../src/pretrain/evaluate.js';
import { readWorldDomains, worldClasses, worldExamples, writeWorldDataset } from '../src/world/datasets.js';
import { renderScene } from '../src/world/render.js';
import { HELD_OUT_PAIRS, caption, describe, isHeldOut, isTrueOf, sampleScene } from '../src/world/scene.js';
import { STYLE_PRESETS, randomStyle } from '../src/world/style.js';
import { PROJECT_ROOT } from './shared.js';

const SHIPPED = path.join(PROJECT_ROOT, 'models', 'world-clip');

const temporary: string[] = [];
after(async () => Promise.all(temporary.map((d) => rm(d, { recursive: true, force: true }))));
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pfedprompt-world-'));
  temporary.push(dir);
  return dir;
}

test('rendering is deterministic per seed and differs between seeds', () => {
  const draw = (seed: number): Uint8Array => {
    const random = new SeededRandom(seed);
    return renderScene(sampleScene(random), randomStyle(random), 48);
  };
  assert.deepEqual(draw(11), draw(11));
  assert.notDeepEqual(draw(11), draw(12));
  const options = { seed: 4, perClass: { train: 1, val: 0, test: 1 }, domains: ['night', 'fog'] };
  const a = worldExamples(options);
  const b = worldExamples(options);
  assert.equal(a.length, 96);
  assert.deepEqual(a.map((e) => e.rgb), b.map((e) => e.rgb));
  assert.notDeepEqual(worldExamples({ ...options, seed: 5 })[0].rgb, a[0].rgb);
});

test('scenes: held-out pairs are excluded or required on request; captions say only what is true', () => {
  const random = new SeededRandom(3);
  for (let i = 0; i < 2000; i++) {
    const scene = sampleScene(random, { heldOut: 'exclude' });
    assert.ok(!isHeldOut(scene.colour, scene.shape));
    const { text, mentions } = describe(scene, random);
    assert.ok(isTrueOf(mentions, scene), text);
    if (mentions.shape) assert.ok(text.includes(scene.shape), text);
    if (mentions.colour) assert.ok(text.includes(scene.colour), text);
  }
  for (let i = 0; i < 200; i++) {
    const scene = sampleScene(random, { heldOut: 'only' });
    assert.ok(isHeldOut(scene.colour, scene.shape));
  }
  assert.equal(new Set(HELD_OUT_PAIRS.map(([c]) => c)).size, 8, 'one held-out pair per colour');
  assert.equal(new Set(HELD_OUT_PAIRS.map(([, s]) => s)).size, 6, 'every shape appears in some held-out pair');
  assert.throws(() => sampleScene(random, { colour: 'red', shape: 'circle', heldOut: 'only' }), /not a held-out pair/);
});

test('the shipped tokenizer reads every caption word and class name as whole tokens', async () => {
  const tokenizer = await loadTokenizer(SHIPPED);
  assert.equal(tokenizer.endToken, tokenizer.vocabularySize - 1, 'end-of-text is the largest id (the text tower finds it by argmax)');
  const random = new SeededRandom(8);
  for (let i = 0; i < 300; i++) {
    const text = caption(sampleScene(random), random);
    const ids = tokenizer.encode(text);
    assert.ok(ids.length + 2 <= 32, `"${text}" fits the 32-token context`);
    assert.equal(tokenizer.decode(ids).replace(/ ([.,])/g, '$1'), text.toLowerCase());
  }
  for (const c of worldClasses({ classAttributes: ['size', 'colour', 'pattern', 'shape', 'position'] }).slice(0, 400)) {
    assert.equal(tokenizer.encode(c.name).length, c.name.split(' ').length, `"${c.name}": one token per word`);
  }
});

test('a world dataset is an image folder with a split file the readers accept, and records each image\'s domain', async () => {
  const dir = await tempDir();
  const summary = await writeWorldDataset(dir, { seed: 2, perClass: { train: 2, val: 1, test: 2 }, domains: ['studio', 'night'], classes: 'held-out' });
  assert.equal(summary.classnames.length, HELD_OUT_PAIRS.length);
  assert.deepEqual(summary.heldOutClasses, summary.classnames);
  const dataset = await readImageFolder(dir);
  assert.deepEqual(dataset.classnames, summary.classnames);
  assert.deepEqual([dataset.train.length, dataset.val.length, dataset.test.length], [16, 8, 16]);
  const domains = await readWorldDomains(dir);
  assert.deepEqual(new Set(domains.values()), new Set(['studio', 'night']));
  // PNGs are lossless: decoding gives back the rendered bytes.
  const first = worldExamples({ seed: 2, perClass: { train: 2, val: 1, test: 2 }, domains: ['studio', 'night'], classes: 'held-out' })[0];
  const decoded = await decodeImage(path.join(dir, first.relativePath));
  assert.deepEqual(new Uint8Array(decoded.data), first.rgb);
  // Same seed, same bytes.
  const again = await tempDir();
  await writeWorldDataset(again, { seed: 2, perClass: { train: 2, val: 1, test: 2 }, domains: ['studio', 'night'], classes: 'held-out' });
  assert.deepEqual(await readFile(path.join(again, 'split.json')), await readFile(path.join(dir, 'split.json')));
  assert.deepEqual(await readFile(path.join(again, first.relativePath)), await readFile(path.join(dir, first.relativePath)));

  assert.throws(() => worldClasses({ classAttributes: ['hue' as never] }), /unknown attribute "hue"/);
  assert.throws(() => worldClasses({ classAttributes: ['pattern'], classes: 'held-out' }), /needs classAttributes with both colour and shape/);
  assert.throws(() => worldExamples({ seed: 1, domains: ['mars'] }), /unknown world style "mars"/);
  assert.throws(() => worldExamples({ seed: 1, perClass: { train: 0 } }), /at least one train/);
  assert.ok(Object.keys(STYLE_PRESETS).length >= 4);
});

test('the shipped world CLIP loads like a user checkpoint and recognises held-out colour–shape pairs zero-shot', async () => {
  const model = await loadClipModel(SHIPPED);
  const tokenizer = await loadTokenizer(SHIPPED);
  const dir = await tempDir();
  // Fresh images (a seed pre-training never used) of all 48 classes, through the files and the reader a user's dataset goes through.
  await writeWorldDataset(dir, { seed: 777, perClass: { train: 1, val: 0, test: 6 } });
  const dataset = await readImageFolder(dir);
  const R = model.config.vision.imageSize;
  const pixels = new Float32Array(dataset.test.length * 3 * R * R);
  for (const [i, item] of dataset.test.entries()) pixels.set(await preprocessImage(item.path, model.preprocess), i * 3 * R * R);
  const predicted = await classify(model, tokenizer, dataset.classnames, pixels, dataset.test.length);
  const heldOut = dataset.classnames.map((name) => worldClasses().find((c) => c.name === name)!.heldOut);
  const report = zeroShotAccuracy(predicted, dataset.test.map((item) => item.label), heldOut);
  console.log(`shipped world CLIP, zero-shot over ${report.classes} classes: seen ${(100 * report.seen).toFixed(1)}%, held-out ${(100 * report.heldOut).toFixed(1)}% (${report.images} images)`);
  await model.release();
  // Chance is 1/48 ≈ 2.1 %. Measured for the shipped checkpoint: 94.1 % seen and
  // 64.0 % held-out on 2,400 images at the end of pre-training (training.json),
  // 91.7 % and 75.0 % on this test's 240 + 48 images. The bounds sit about
  // three binomial standard deviations below the 2,400-image figures (for 48
  // held-out images at p = 0.64 one deviation is ~7 points), so sampling noise
  // and CPU-to-CPU rounding do not trip them, while a checkpoint that lost its
  // compositional zero-shot ability (held-out near chance) fails.
  assert.ok(report.seen >= 0.8, `seen pairs: ${report.seen}`);
  assert.ok(report.heldOut >= 0.45, `held-out pairs: ${report.heldOut}`);
});
