// What `--dataset NAME|DIR [--root DIR]` means: a CoOp dataset by name under a
// data root (or the root is already its folder), a CoOp dataset folder given
// directly (recognised by its split file), or else a plain image folder.

import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { COOP_DATASETS, type CoopDatasetInfo, detectCoopDataset, expectedLayout, findCoopDataset, isDatasetFolder, loadCoopDataset } from './coop-datasets.js';
import { type ImageFolderOptions, readImageFolder } from './image-folder.js';
import type { LoadedDataset } from './labelled-entries.js';

export interface LoadDatasetOptions extends ImageFolderOptions {
  /** Data root holding CoOp's dataset folders (caltech-101/, oxford_pets/, …). */
  readonly root?: string;
}

export async function loadDataset(spec: string, options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  const known = findCoopDataset(spec);
  if (known && (options.root !== undefined || !isDirectory(spec))) return loadCoopDataset(known, locateCoopFolder(known, spec, options.root), options);

  const dir = options.root !== undefined && !path.isAbsolute(spec) && !isDirectory(spec) ? path.join(options.root, spec) : spec;
  if (!isDirectory(dir)) {
    throw new Error(`--dataset ${spec}: neither a known dataset (${COOP_DATASETS.map((d) => d.name).join(', ')}) nor a folder`);
  }
  const detected = detectCoopDataset(dir);
  if (detected) return loadCoopDataset(detected, dir, options);

  // A CoOp folder without its split file would otherwise read as an image folder with nonsense classes.
  const lookalike = COOP_DATASETS.find((d) => d.folder === path.basename(path.resolve(dir)));
  if (lookalike) throw new Error(`${dir} looks like CoOp's ${lookalike.name} folder but lacks its list files; expected ${expectedLayout(lookalike)}`);
  return readImageFolder(dir, options);
}

/** The dataset folder of `info`: <root>/<folder>, or the root itself when it is that folder. */
function locateCoopFolder(info: CoopDatasetInfo, spec: string, root: string | undefined): string {
  if (root === undefined) throw new Error(`--dataset ${spec} names CoOp's ${info.name}: give --root, the folder that holds ${info.folder}/ (or pass that folder as --dataset)`);
  const candidates = [path.join(root, info.folder), root];
  const found = candidates.find((dir) => isDatasetFolder(info, dir));
  if (!found) throw new Error(`--dataset ${spec}: no ${info.name} in ${candidates.join(' or ')}; expected ${expectedLayout(info)}`);
  return found;
}

function isDirectory(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}
