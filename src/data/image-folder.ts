// A user's own data as a plain image folder: one sub-folder per class
// (sorted names give the labels; the class name is the folder name with
// underscores as spaces), images recognised by extension. A `split.json` in
// CoOp's format fixes the splits; without one, each class is split at random
// as CoOp's `read_and_split_data` does: shuffle, round(n · 0.5) train,
// round(n · 0.2) val, the rest test (Python's round, halves to even).

import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { LoadOptions } from './bad-entries.js';
import { readCoopSplit } from './coop-split.js';
import type { SplitName } from './dataset.js';
import { type ListedEntry, type LoadedDataset, assembleDataset, sha256Hex } from './labelled-entries.js';
import { PythonRandom, pythonRound } from './python-random.js';

export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif'];

export const DEFAULT_FOLDER_SPLIT = { seed: 1, trainFraction: 0.5, valFraction: 0.2 } as const;

export interface ImageFolderOptions extends LoadOptions {
  /** Split file in CoOp's format; default `<folder>/split.json` when it exists. */
  readonly splitFile?: string;
  /** Seed of the per-class shuffle when there is no split file (default 1). */
  readonly seed?: number;
  /** Fraction of each class for training (default 0.5). */
  readonly trainFraction?: number;
  /** Fraction of each class for validation (default 0.2); the rest is test. */
  readonly valFraction?: number;
}

export async function readImageFolder(folder: string, options: ImageFolderOptions = {}): Promise<LoadedDataset> {
  const root = path.resolve(folder);
  const name = path.basename(root);
  const splitFile = options.splitFile ?? path.join(root, 'split.json');
  if (options.splitFile !== undefined || existsSync(splitFile)) {
    return readCoopSplit({ name, root, splitFile: path.resolve(splitFile), imageDir: root }, options);
  }

  const seed = options.seed ?? DEFAULT_FOLDER_SPLIT.seed;
  const trainFraction = options.trainFraction ?? DEFAULT_FOLDER_SPLIT.trainFraction;
  const valFraction = options.valFraction ?? DEFAULT_FOLDER_SPLIT.valFraction;
  if (!(trainFraction > 0 && valFraction >= 0 && trainFraction + valFraction < 1)) {
    throw new Error(`train fraction ${trainFraction} and val fraction ${valFraction} must leave a test part (train > 0, val ≥ 0, train + val < 1)`);
  }

  const classes = await listClassFolders(root);
  const rng = new PythonRandom(seed);
  const entries: ListedEntry[] = [];
  const counters: Record<SplitName, number> = { train: 0, val: 0, test: 0 };
  const hashed: string[] = ['image-folder v1', JSON.stringify({ seed, trainFraction, valFraction })];

  for (const [label, classFolder] of classes.entries()) {
    const images = await listImages(path.join(root, classFolder));
    hashed.push(classFolder, images.join('\n'));
    rng.shuffle(images);
    const total = images.length;
    const nTrain = pythonRound(total * trainFraction);
    const nVal = pythonRound(total * valFraction);
    const nTest = total - nTrain - nVal;
    if (nTrain < 1 || nTest < 1 || (valFraction > 0 && nVal < 1)) {
      const percent = (x: number): string => `${Math.round(100 * x)}%`;
      throw new Error(
        `${path.join(root, classFolder)}: ${total} image${total === 1 ? '' : 's'} cannot be split ${percent(trainFraction)} train / ${percent(valFraction)} val / rest test with an image in every part (got ${nTrain}/${nVal}/${nTest}); add images or give a split.json`,
      );
    }
    const classname = classFolder.replaceAll('_', ' ');
    images.forEach((image, i) => {
      const split: SplitName = i < nTrain ? 'train' : i < nTrain + nVal ? 'val' : 'test';
      const index = counters[split]++;
      entries.push({ file: root, split, index, where: `${split}[${index}]`, relativePath: `${classFolder}/${image}`, label, classname });
    });
  }

  return assembleDataset({ name, root, imageDir: root, source: root, entries, malformed: [], fingerprint: sha256Hex(...hashed) }, options);
}

async function listClassFolders(root: string): Promise<string[]> {
  const names = await readdir(root).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${root}: cannot list the image folder (${err.code ?? err.message})`);
  });
  const folders: string[] = [];
  for (const entry of names) {
    if (entry.startsWith('.')) continue;
    const info = await stat(path.join(root, entry)).catch(() => undefined); // follows links
    if (info?.isDirectory()) folders.push(entry);
  }
  if (folders.length === 0) throw new Error(`${root}: no class sub-folders (expected one folder of images per class, or a split.json)`);
  return folders.sort(byCodePoint);
}

/** Image files directly inside a class folder, sorted, so that the seeded split does not depend on the file system's listing order. */
async function listImages(dir: string): Promise<string[]> {
  const images: string[] = [];
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('.') || !IMAGE_EXTENSIONS.includes(path.extname(entry).toLowerCase())) continue;
    const info = await stat(path.join(dir, entry)).catch(() => undefined);
    if (info?.isFile()) images.push(entry);
  }
  if (images.length === 0) throw new Error(`${dir}: class folder without images (extensions ${IMAGE_EXTENSIONS.join(' ')})`);
  return images.sort(byCodePoint);
}

/** Python's string order (by code point), which differs from JS's UTF-16 order above U+FFFF. */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
