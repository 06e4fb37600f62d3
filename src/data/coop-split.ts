// CoOp's split file (`split_zhou_<Name>.json`): {"train": [...], "val": [...],
// "test": [...]}, each entry `[image path relative to the image folder, label,
// class name]`. The file fixes the splits every paper of this line uses, so
// it is read as it is: its order is the order of the splits (the published
// partitions index into it), its class names are the class names.

import { readFile } from 'node:fs/promises';
import type { BadEntry, LoadOptions } from './bad-entries.js';
import type { SplitName } from './dataset.js';
import { type ListedEntry, type LoadedDataset, assembleDataset, sha256Hex } from './labelled-entries.js';

export interface CoopSplitSource {
  /** Dataset name, e.g. "Caltech101". */
  readonly name: string;
  /** Dataset folder. */
  readonly root: string;
  readonly splitFile: string;
  /** Folder the split's relative paths resolve against. */
  readonly imageDir: string;
  /** Known class count (labels at or above it are out of range). */
  readonly classCount?: number;
}

/**
 * Reads a split file into a Dataset. The fingerprint is the SHA-256 of the
 * file's bytes, so `sha256sum split_zhou_X.json` shows it.
 */
export async function readCoopSplit(source: CoopSplitSource, options: LoadOptions = {}): Promise<LoadedDataset> {
  const bytes = await readFile(source.splitFile).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${source.splitFile}: cannot read the split file (${err.code ?? err.message})`);
  });
  const { entries, malformed } = parseCoopSplit(source.splitFile, bytes.toString('utf8'));
  return assembleDataset(
    { name: source.name, root: source.root, imageDir: source.imageDir, source: source.splitFile, entries, malformed, classCount: source.classCount, fingerprint: sha256Hex(bytes) },
    options,
  );
}

/** The entries of a split file's text; malformed entries come back separately, each with its reason. */
export function parseCoopSplit(file: string, text: string): { entries: ListedEntry[]; malformed: BadEntry[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: expected an object with "train", "val" and "test" lists`);
  const splits = json as Record<string, unknown>;

  const entries: ListedEntry[] = [];
  const malformed: BadEntry[] = [];
  for (const split of ['train', 'val', 'test'] as const satisfies readonly SplitName[]) {
    const list = splits[split];
    // A user's own split may have no validation list; CoOp's always have all three.
    if (list === undefined && split === 'val') continue;
    if (!Array.isArray(list)) throw new Error(`${file}: "${split}" must be a list of [image path, label, class name] entries`);
    list.forEach((raw: unknown, index) => {
      const where = `${split}[${index}]`;
      const entry = parseEntry(raw);
      if (typeof entry === 'string') {
        malformed.push({ file, split, index, where, entry: entryPath(raw), reason: entry });
      } else {
        entries.push({ file, split, index, where, ...entry });
      }
    });
  }
  return { entries, malformed };
}

/** The fields of one entry, or why it is unusable. */
function parseEntry(raw: unknown): { relativePath: string; label: number; classname: string } | string {
  if (!Array.isArray(raw) || raw.length !== 3) return `expected [image path, label, class name], got ${short(raw)}`;
  const [relativePath, label, classname] = raw as unknown[];
  if (typeof relativePath !== 'string' || relativePath.length === 0) return `image path must be a non-empty string, got ${short(relativePath)}`;
  if (typeof label !== 'number' || !Number.isSafeInteger(label)) return `label must be an integer, got ${short(label)}`;
  if (label < 0) return `label ${label} out of range (labels start at 0)`;
  if (typeof classname !== 'string' || classname.length === 0) return `class name must be a non-empty string, got ${short(classname)}`;
  return { relativePath, label, classname };
}

function entryPath(raw: unknown): string {
  return Array.isArray(raw) && typeof raw[0] === 'string' ? raw[0] : '?';
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}
