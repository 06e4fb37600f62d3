// A partition file on disk (partition.ts: the format, its checks, made in memory).
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { Dataset } from './dataset.js';
import { checkPartitionMatches, formatPartition, validatePartition, type Partition } from './partition.js';

/** Writes the partition atomically (creating the folder if needed). */
export async function writePartition(file: string, partition: Partition): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, formatPartition(partition));
}

/**
 * Reads and validates a partition file. With `dataset`, also checks that the
 * partition was made from it (fingerprint, classes, split sizes) and that
 * every image a client gets is of a class it holds.
 */
export async function readPartition(file: string, dataset?: Dataset): Promise<Partition> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${file}: cannot read the partition (${err.code ?? err.message})`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const partition = validatePartition(json, file);
  if (dataset) checkPartitionMatches(partition, dataset, file);
  return partition;
}

