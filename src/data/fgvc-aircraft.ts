// FGVCAircraft, which CoOp reads from the dataset's own lists rather than a
// split_zhou file: variants.txt (one class per line, its line order giving
// the labels) and images_variant_{train,val,test}.txt ("<image id> <variant>"
// per line; the image is images/<id>.jpg).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BadEntry, LoadOptions } from './bad-entries.js';
import type { SplitName } from './dataset.js';
import { type ListedEntry, type LoadedDataset, assembleDataset, sha256Hex } from './labelled-entries.js';

const SPLITS: readonly SplitName[] = ['train', 'val', 'test'];
const listFile = (split: SplitName): string => `images_variant_${split}.txt`;

/**
 * Reads FGVCAircraft from `folder`: CoOp's fgvc_aircraft/ (the archive's
 * data/ folder, renamed) or the unrenamed folder that contains data/.
 */
export async function readFgvcAircraft(folder: string, options: LoadOptions = {}): Promise<LoadedDataset> {
  const root = path.resolve(folder);
  const dataDir = existsSync(path.join(root, 'variants.txt')) ? root : path.join(root, 'data');
  const variantsFile = path.join(dataDir, 'variants.txt');
  const variantsBytes = await readList(variantsFile);

  const labels = new Map<string, number>();
  lines(variantsBytes).forEach(({ text, lineNumber }) => {
    if (labels.has(text)) throw new Error(`${variantsFile}: line ${lineNumber}: variant "${text}" is listed twice`);
    labels.set(text, labels.size);
  });

  const entries: ListedEntry[] = [];
  const malformed: BadEntry[] = [];
  const hashed: (string | Uint8Array)[] = ['variants.txt', variantsBytes];
  for (const split of SPLITS) {
    const file = path.join(dataDir, listFile(split));
    const bytes = await readList(file);
    hashed.push(listFile(split), bytes);
    for (const { text, lineNumber } of lines(bytes)) {
      const index = lineNumber - 1;
      const where = `line ${lineNumber}`;
      const space = text.indexOf(' ');
      const id = space < 0 ? text : text.slice(0, space);
      const relativePath = `${id}.jpg`;
      if (space < 0) {
        malformed.push({ file, split, index, where, entry: relativePath, reason: 'expected "<image id> <variant>"' });
        continue;
      }
      const classname = text.slice(space + 1);
      const label = labels.get(classname);
      if (label === undefined) {
        malformed.push({ file, split, index, where, entry: relativePath, reason: `variant "${classname}" is not in ${variantsFile}` });
        continue;
      }
      entries.push({ file, split, index, where, relativePath, label, classname });
    }
  }

  return assembleDataset(
    { name: 'FGVCAircraft', root, imageDir: path.join(dataDir, 'images'), source: variantsFile, entries, malformed, classCount: labels.size, fingerprint: sha256Hex(...hashed) },
    options,
  );
}

async function readList(file: string): Promise<Buffer> {
  return readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${file}: cannot read FGVCAircraft's list (${err.code ?? err.message}); expected fgvc_aircraft/ to be fgvc-aircraft-2013b's data/ folder`);
  });
}

/** Non-blank lines, stripped as Python's str.strip() does, with 1-based line numbers. */
function lines(bytes: Buffer): { text: string; lineNumber: number }[] {
  return bytes
    .toString('utf8')
    .split('\n')
    .map((line, i) => ({ text: line.trim(), lineNumber: i + 1 }))
    .filter((line) => line.text.length > 0);
}
