// The ten few-shot datasets of CoOp and the federated papers after it, in
// the layout CoOp's DATASETS.md has users prepare: one folder per dataset
// under a data root, holding the images and CoOp's fixed split file.
// Folder, image-folder and split-file names are CoOp's (datasets/*.py).

import { existsSync } from 'node:fs';
import path from 'node:path';
import type { LoadOptions } from './bad-entries.js';
import { readCoopSplit } from './coop-split.js';
import { readFgvcAircraft } from './fgvc-aircraft.js';
import type { LoadedDataset } from './labelled-entries.js';

export interface CoopDatasetInfo {
  /** CoOp's name for it, e.g. "Caltech101". */
  readonly name: string;
  /** Folder under the data root. */
  readonly folder: string;
  /** Image folder inside the dataset folder that split paths are relative to ('' = the dataset folder itself). */
  readonly imageDir: string;
  /** CoOp's split file in the dataset folder; FGVCAircraft has none (it keeps the dataset's own lists). */
  readonly splitFile?: string;
  readonly classCount: number;
  /** Other names accepted for --dataset (compared lower-case, without "-", "_" or spaces). */
  readonly aliases: readonly string[];
}

export const COOP_DATASETS: readonly CoopDatasetInfo[] = [
  { name: 'Caltech101', folder: 'caltech-101', imageDir: '101_ObjectCategories', splitFile: 'split_zhou_Caltech101.json', classCount: 100, aliases: [] },
  { name: 'OxfordPets', folder: 'oxford_pets', imageDir: 'images', splitFile: 'split_zhou_OxfordPets.json', classCount: 37, aliases: ['pets'] },
  { name: 'OxfordFlowers', folder: 'oxford_flowers', imageDir: 'jpg', splitFile: 'split_zhou_OxfordFlowers.json', classCount: 102, aliases: ['flowers102', 'flowers'] },
  { name: 'Food101', folder: 'food-101', imageDir: 'images', splitFile: 'split_zhou_Food101.json', classCount: 101, aliases: [] },
  { name: 'DescribableTextures', folder: 'dtd', imageDir: 'images', splitFile: 'split_zhou_DescribableTextures.json', classCount: 47, aliases: [] },
  { name: 'UCF101', folder: 'ucf101', imageDir: 'UCF-101-midframes', splitFile: 'split_zhou_UCF101.json', classCount: 101, aliases: [] },
  { name: 'EuroSAT', folder: 'eurosat', imageDir: '2750', splitFile: 'split_zhou_EuroSAT.json', classCount: 10, aliases: [] },
  // Split paths are "cars_train/…" and "cars_test/…", relative to the dataset folder.
  { name: 'StanfordCars', folder: 'stanford_cars', imageDir: '', splitFile: 'split_zhou_StanfordCars.json', classCount: 196, aliases: ['cars'] },
  { name: 'FGVCAircraft', folder: 'fgvc_aircraft', imageDir: 'images', classCount: 100, aliases: ['aircraft'] },
  { name: 'SUN397', folder: 'sun397', imageDir: 'SUN397', splitFile: 'split_zhou_SUN397.json', classCount: 397, aliases: [] },
];

const normalize = (name: string): string => name.toLowerCase().replace(/[-_\s]/g, '');

/** The dataset a --dataset name means: CoOp's name, its folder name, or an alias, in any case. */
export function findCoopDataset(name: string): CoopDatasetInfo | undefined {
  const key = normalize(name);
  return COOP_DATASETS.find((d) => [d.name, d.folder, ...d.aliases].some((n) => normalize(n) === key));
}

/** The CoOp dataset whose folder `dir` is, judged by the files in it (the split file, or FGVCAircraft's lists). */
export function detectCoopDataset(dir: string): CoopDatasetInfo | undefined {
  return COOP_DATASETS.find((d) => isDatasetFolder(d, dir));
}

/** Whether `dir` holds `info`'s split file (or, for FGVCAircraft, its list files). */
export function isDatasetFolder(info: CoopDatasetInfo, dir: string): boolean {
  if (info.splitFile) return existsSync(path.join(dir, info.splitFile));
  return existsSync(path.join(dir, 'variants.txt')) || existsSync(path.join(dir, 'data', 'variants.txt'));
}

/** What a dataset folder must contain, for error messages. */
export function expectedLayout(info: CoopDatasetInfo): string {
  if (!info.splitFile) return `${info.folder}/ with images/, variants.txt and images_variant_{train,val,test}.txt (fgvc-aircraft-2013b's data/ folder, renamed)`;
  const images = info.imageDir ? `${info.imageDir}/` : 'the images';
  return `${info.folder}/ with ${images} and ${info.splitFile}`;
}

/** Loads a CoOp dataset from its dataset folder (not the data root). */
export function loadCoopDataset(info: CoopDatasetInfo, folder: string, options: LoadOptions = {}): Promise<LoadedDataset> {
  const root = path.resolve(folder);
  if (!info.splitFile) return readFgvcAircraft(root, options);
  return readCoopSplit(
    { name: info.name, root, splitFile: path.join(root, info.splitFile), imageDir: path.join(root, info.imageDir), classCount: info.classCount },
    options,
  );
}
