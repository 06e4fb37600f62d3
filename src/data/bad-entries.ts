// Entries of a split that cannot be used as they are: a missing or corrupt
// image, a label out of range, a class name that contradicts the others.
// Each is reported with the file and the entry that name it. By default they
// stop the load (a silently wrong label would poison every number after it);
// with `skipBad` they are dropped, announced, and counted in the result.

import { stat } from 'node:fs/promises';
import type { SplitName } from './dataset.js';

export interface BadEntry {
  /** The file that lists the entry (split file, list file, or the image folder). */
  readonly file: string;
  readonly split: SplitName;
  /** Position of the entry in that split's list (0-based). */
  readonly index: number;
  /** How a reader finds the entry in the file: "test[17]" for JSON lists, "line 18" for text lists. */
  readonly where: string;
  /** The image path as the file gives it. */
  readonly entry: string;
  readonly reason: string;
}

/** How strictly images are checked: only that the file exists, its header decodes, or every pixel decodes. */
export type ImageCheck = 'exists' | 'header' | 'full';

export interface LoadOptions {
  /** Drop bad entries with a warning instead of failing. */
  readonly skipBad?: boolean;
  /** Default 'exists'. 'header' reads each image's header with sharp (finds non-images and most corrupt files); 'full' decodes every pixel (also finds truncated files; slow). */
  readonly checkImages?: ImageCheck;
  /** Where warnings go; default console.warn. */
  readonly warn?: (message: string) => void;
}

export function describeBadEntry(bad: BadEntry): string {
  return `${bad.file}: ${bad.where} "${bad.entry}": ${bad.reason}`;
}

/** Thrown when a split has bad entries and `skipBad` is off; `entries` lists them all. */
export class BadEntriesError extends Error {
  constructor(readonly entries: readonly BadEntry[]) {
    super(summarize(entries));
    this.name = 'BadEntriesError';
  }
}

const SHOWN = 10;

function summarize(entries: readonly BadEntry[]): string {
  const files = [...new Set(entries.map((b) => b.file))];
  const head = `${entries.length} bad ${entries.length === 1 ? 'entry' : 'entries'} in ${files.join(', ')}`;
  // With one file, the heading names it and each line need not repeat it.
  const describe = files.length === 1 ? (b: BadEntry) => `${b.where} "${b.entry}": ${b.reason}` : describeBadEntry;
  const lines = entries.slice(0, SHOWN).map((b) => `  ${describe(b)}`);
  if (entries.length > SHOWN) lines.push(`  … and ${entries.length - SHOWN} more`);
  return [head + ':', ...lines].join('\n');
}

/** Fails on bad entries, or (with skipBad) warns about them; returns those skipped. */
export function settleBadEntries(entries: readonly BadEntry[], options: LoadOptions): readonly BadEntry[] {
  if (entries.length === 0) return [];
  if (!options.skipBad) {
    const error = new BadEntriesError(entries);
    error.message += '\n(--skip-bad, or the skipBad option, drops such entries with a warning)';
    throw error;
  }
  const warn = options.warn ?? ((m: string) => console.warn(m));
  warn(`warning: skipping ${summarize(entries)}`);
  return entries;
}

/** Why the file at `file` cannot serve as an image, or undefined when it can (at the given strictness). */
export async function imageProblem(file: string, check: ImageCheck): Promise<string | undefined> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return `not a file: ${file}`;
  } catch {
    return `image file not found: ${file}`;
  }
  if (check === 'exists') return undefined;
  // Loaded only when asked for: listing a split should not need the image codec.
  const { default: sharp } = await import('sharp');
  try {
    const image = sharp(file, { failOn: 'error' });
    if (check === 'header') await image.metadata();
    else await image.raw().toBuffer();
    return undefined;
  } catch (err) {
    return `not a readable image (${(err as Error).message.trim()}): ${file}`;
  }
}
