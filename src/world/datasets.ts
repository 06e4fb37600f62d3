// Few-shot classification datasets drawn from the world, written in the
// image-folder layout the dataset readers accept (src/data/image-folder.ts
// with a CoOp split file), so every command that takes `--dataset DIR` reads
// them as it reads a user's own folder.
//
// API
//   worldClasses({ classAttributes, classes })       → WorldClass[]  (name + fixed attributes)
//   worldExamples(options)                           → WorldExample[] (scenes and pixels, in memory)
//   writeWorldDataset(dir, options)                  → Promise<WorldDatasetSummary>
//   readWorldDomains(dir)                            → Promise<Map<relativePath, domain>>
//
// Options (WorldDatasetOptions): `seed`; `classAttributes` (default
// ['colour', 'shape']: a class is a colour–shape pair such as "red circle");
// `classes` ('all', 'seen' or 'held-out': held-out classes are the (colour,
// shape) pairs pre-training never saw, see scene.ts); `perClass` images per
// class per split (default 16 train, 4 val, 20 test); `imageSize` (default
// WORLD_IMAGE_SIZE, the shipped model's); `domains`: named styles, each a
// STYLE_PRESETS name, a Style, or 'random' (a fresh random style per image).
// Within each class and split, image k belongs to domain k mod D, so every
// domain has every class: label skew comes from partitioning, feature shift
// from giving clients different domains.
//
// Layout on disk:
//   DIR/split.json     CoOp format: {"train": [["red_circle/train_0000_studio.png", 0, "red circle"], ...], "val": [...], "test": [...]}
//   DIR/world.json     how it was made: seed, image size, class names and attributes, held-out classes,
//                      domains with their styles, and per image its domain and scene
//   DIR/<class_folder>/<split>_<index>_<domain>.png   (class folder: the class name with spaces as underscores)
//
// The same options and seed give byte-identical files: each image draws
// from its own stream, seeded by (seed, class, split, index).

import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { SplitName } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { WORLD_IMAGE_SIZE, folderOf, resolveDomains, worldClasses, worldExamples, type WorldDatasetOptions } from './examples.js';
import type { Scene } from './scene.js';

export { WORLD_IMAGE_SIZE, worldClasses, worldExamples, type WorldClass, type WorldDatasetOptions, type WorldDomain, type WorldExample } from './examples.js';

export interface WorldDatasetSummary {
  readonly dir: string;
  readonly classnames: readonly string[];
  readonly heldOutClasses: readonly string[];
  readonly counts: Readonly<Record<SplitName, number>>;
}

/** Rendered bytes as a PNG file's contents. */
export async function encodePng(rgb: Uint8Array, size: number): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
}


/** Writes the dataset to `dir` (created if needed; files there are overwritten). */
export async function writeWorldDataset(dir: string, options: WorldDatasetOptions): Promise<WorldDatasetSummary> {
  const size = options.imageSize ?? WORLD_IMAGE_SIZE;
  const classes = worldClasses(options);
  const domains = resolveDomains(options.domains);
  const examples = worldExamples(options);
  const split: Record<SplitName, [string, number, string][]> = { train: [], val: [], test: [] };
  const images: Record<string, { domain: string; scene: Scene }> = {};
  for (const cls of classes) await mkdir(path.join(dir, folderOf(cls.name)), { recursive: true });
  for (const e of examples) {
    await writeFileAtomic(path.join(dir, e.relativePath), await encodePng(e.rgb, size));
    split[e.split].push([e.relativePath, e.label, classes[e.label].name]);
    images[e.relativePath] = { domain: e.domain, scene: e.scene };
  }
  const classnames = classes.map((c) => c.name);
  const heldOutClasses = classes.filter((c) => c.heldOut).map((c) => c.name);
  await writeFileAtomic(path.join(dir, 'split.json'), JSON.stringify(split));
  const world = {
    format: 'pfedprompt-world-dataset v1',
    seed: options.seed,
    imageSize: size,
    classAttributes: options.classAttributes ?? ['colour', 'shape'],
    classnames,
    heldOutClasses,
    domains: Object.fromEntries(domains.map((d) => [d.name, d.style])),
    images,
  };
  await writeFileAtomic(path.join(dir, 'world.json'), JSON.stringify(world, null, 1));
  return { dir, classnames, heldOutClasses, counts: { train: split.train.length, val: split.val.length, test: split.test.length } };
}

/** Each image's domain, from a world dataset's world.json (relative path → domain name). */
export async function readWorldDomains(dir: string): Promise<Map<string, string>> {
  const file = path.join(dir, 'world.json');
  let json: { images?: Record<string, { domain?: unknown }> };
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read a world dataset's description (${(err as Error).message})`);
  }
  if (typeof json.images !== 'object' || json.images === null) throw new Error(`${file}: no "images" object`);
  const domains = new Map<string, string>();
  for (const [image, info] of Object.entries(json.images)) {
    if (typeof info?.domain !== 'string') throw new Error(`${file}: image ${image} has no domain`);
    domains.set(image, info.domain);
  }
  return domains;
}
