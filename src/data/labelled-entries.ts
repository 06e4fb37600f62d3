// From a listing of labelled images (whatever file layout it was read from)
// to a checked Dataset. Every reader produces the same listing, so every
// layout gets the same checks: labels in range, one class name per label,
// every image present (and decodable when asked), labels 0 … C−1 contiguous,
// and every class with at least one training image.

import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { type BadEntry, type LoadOptions, imageProblem, settleBadEntries } from './bad-entries.js';
import { mapLimited } from '../io/map-limited.js';
import type { Dataset, ImageItem, SplitName } from './dataset.js';

/** One image of a split as its source file lists it. */
export interface ListedEntry {
  readonly file: string;
  readonly split: SplitName;
  readonly index: number;
  readonly where: string;
  /** Path relative to the image folder, as listed. */
  readonly relativePath: string;
  readonly label: number;
  readonly classname: string;
}

export interface DatasetListing {
  readonly name: string;
  readonly root: string;
  /** Folder the relative paths resolve against. */
  readonly imageDir: string;
  /** Named in dataset-level errors (the split file, or the folder). */
  readonly source: string;
  /** Well-formed entries, in file order within each split. */
  readonly entries: readonly ListedEntry[];
  /** Entries found unusable while parsing (wrong shape, non-integer label, …). */
  readonly malformed: readonly BadEntry[];
  /** The dataset's known class count, when it has one: labels at or above it are out of range. */
  readonly classCount?: number;
  /** Hash of what defines the splits (see Dataset.fingerprint). */
  readonly fingerprint: string;
}

/** A dataset as loaded, with the entries dropped under `skipBad` (empty otherwise). */
export interface LoadedDataset extends Dataset {
  readonly skipped: readonly BadEntry[];
}

export async function assembleDataset(listing: DatasetListing, options: LoadOptions = {}): Promise<LoadedDataset> {
  const bad: BadEntry[] = [...listing.malformed];
  const flag = (e: ListedEntry, reason: string): void => {
    bad.push({ file: e.file, split: e.split, index: e.index, where: e.where, entry: e.relativePath, reason });
  };

  let entries = listing.entries.filter((e) => {
    if (listing.classCount !== undefined && e.label >= listing.classCount) {
      flag(e, `label ${e.label} out of range (${listing.name} has ${listing.classCount} classes, labels 0…${listing.classCount - 1})`);
      return false;
    }
    return true;
  });

  const names = namesByMajority(entries);
  entries = entries.filter((e) => {
    const agreed = names.get(e.label)!;
    if (e.classname === agreed.name) return true;
    flag(e, `label ${e.label} is named "${e.classname}" here but "${agreed.name}" in ${agreed.count} other entr${agreed.count === 1 ? 'y' : 'ies'} (first ${agreed.firstWhere})`);
    return false;
  });

  const check = options.checkImages ?? 'exists';
  const parallel = check === 'exists' ? 64 : Math.max(2, availableParallelism());
  const problems = await mapLimited(entries, parallel, (e) => imageProblem(path.resolve(listing.imageDir, e.relativePath), check));
  entries = entries.filter((e, i) => {
    if (problems[i] === undefined) return true;
    flag(e, problems[i]!);
    return false;
  });

  const skipped = settleBadEntries(sortBad(bad), options);
  const classnames = contiguousClassnames(listing.source, entries, names);

  const items = (split: SplitName): ImageItem[] =>
    entries
      .filter((e) => e.split === split)
      .sort((a, b) => a.index - b.index)
      .map((e) => ({ path: path.resolve(listing.imageDir, e.relativePath), relativePath: e.relativePath, label: e.label }));
  const train = items('train');
  const trained = new Set(train.map((item) => item.label));
  for (let label = 0; label < classnames.length; label++) {
    if (!trained.has(label)) {
      throw new Error(`${listing.source}: class ${label} "${classnames[label]}" has no train images${skipped.length ? ' left after skipping bad entries' : ''}`);
    }
  }

  return {
    name: listing.name,
    root: listing.root,
    classnames,
    train,
    val: items('val'),
    test: items('test'),
    fingerprint: skipped.length ? fingerprintWithSkips(listing.fingerprint, skipped) : listing.fingerprint,
    skipped,
  };
}

/** SHA-256 (hex) of the given byte strings, each preceded by its length so that boundaries count. */
export function sha256Hex(...parts: (string | Uint8Array)[]): string {
  const hash = createHash('sha256');
  if (parts.length === 1) return hash.update(parts[0]).digest('hex');
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    hash.update(`${bytes.byteLength}:`).update(bytes);
  }
  return hash.digest('hex');
}

/**
 * Indices into the splits shift when entries are dropped, so a dataset loaded
 * with skips must not share the fingerprint of the complete one: a partition
 * made from either would select other images in the other.
 */
function fingerprintWithSkips(fingerprint: string, skipped: readonly BadEntry[]): string {
  return sha256Hex(fingerprint, 'skipped', skipped.map((b) => `${b.split}[${b.index}]`).join(','));
}

interface AgreedName {
  readonly name: string;
  readonly count: number;
  readonly firstWhere: string;
}

/** Each label's class name as most of its entries give it (ties: the first seen), so one stray entry is the one reported. */
function namesByMajority(entries: readonly ListedEntry[]): Map<number, AgreedName> {
  const tallies = new Map<number, Map<string, { count: number; firstWhere: string }>>();
  for (const e of entries) {
    let byName = tallies.get(e.label);
    if (!byName) tallies.set(e.label, (byName = new Map()));
    const tally = byName.get(e.classname);
    if (tally) tally.count++;
    else byName.set(e.classname, { count: 1, firstWhere: e.where });
  }
  const agreed = new Map<number, AgreedName>();
  for (const [label, byName] of tallies) {
    let best: AgreedName | undefined;
    for (const [name, t] of byName) if (!best || t.count > best.count) best = { name, count: t.count, firstWhere: t.firstWhere };
    agreed.set(label, best!);
  }
  return agreed;
}

function contiguousClassnames(source: string, entries: readonly ListedEntry[], names: Map<number, AgreedName>): string[] {
  if (entries.length === 0) throw new Error(`${source}: no usable entries`);
  const present = new Set(entries.map((e) => e.label));
  const count = Math.max(...present) + 1;
  const classnames: string[] = [];
  for (let label = 0; label < count; label++) {
    if (!present.has(label)) throw new Error(`${source}: no entry has label ${label}, yet labels run to ${count - 1}; labels must be 0…C−1 without gaps`);
    classnames.push(names.get(label)!.name);
  }
  return classnames;
}

const SPLIT_ORDER: Record<SplitName, number> = { train: 0, val: 1, test: 2 };

function sortBad(bad: BadEntry[]): BadEntry[] {
  return bad.sort((a, b) => a.file.localeCompare(b.file) || SPLIT_ORDER[a.split] - SPLIT_ORDER[b.split] || a.index - b.index);
}
