// IID: every client sees every class. Each class's training images are
// shuffled and dealt round-robin, the dealer's starting client moving on from
// class to class, so that clients differ by at most one image overall and per
// class. With `shots`, each client keeps K images per class of its share.

import type { Dataset } from '../dataset.js';
import { groupByLabel } from '../few-shot.js';
import { type ClientSplit, type IidScheme, type Partition, type TestRule, makePartition } from '../partition.js';
import { PythonRandom } from '../python-random.js';
import { classesOf, takeShots, testSets, valSets } from './client-sets.js';

export interface IidOptions {
  readonly clients: number;
  /** Default 2023. */
  readonly seed?: number;
  /** Training images per class per client (default: the client's whole share). */
  readonly shots?: number | null;
  /** Default 'classes': every client is tested on every test image; 'proportional' splits the test images evenly. */
  readonly test?: TestRule;
  /** Validation images per class (default min(shots, 4)); null = the val split divided by the test rule (the default without shots); 0 = none. */
  readonly valShots?: number | null;
}

export const IID_DEFAULTS = { seed: 2023, test: 'classes' as TestRule } as const;

/** Each client's share of the training images (indices into `trainLabels`). */
export function iidAllocation(trainLabels: readonly number[], clients: number, rng: PythonRandom): number[][] {
  if (trainLabels.length < clients) throw new Error(`${trainLabels.length} training images cannot give each of ${clients} clients one`);
  const shares: number[][] = Array.from({ length: clients }, () => []);
  const byClass = groupByLabel(trainLabels);
  let dealer = 0;
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    for (const item of rng.shuffle(byClass.get(label)!.slice())) {
      shares[dealer].push(item);
      dealer = (dealer + 1) % clients;
    }
  }
  return shares;
}

export function iidPartition(dataset: Dataset, options: IidOptions): Partition {
  if (!Number.isInteger(options.clients) || options.clients < 1) throw new RangeError(`clients must be a positive integer, got ${options.clients}`);
  const seed = options.seed ?? IID_DEFAULTS.seed;
  const shots = options.shots ?? null;
  const test = options.test ?? IID_DEFAULTS.test;
  const valShots = options.valShots === undefined ? (shots === null ? null : Math.min(shots, 4)) : options.valShots;

  const rng = new PythonRandom(seed);
  const labels = (split: 'train' | 'val' | 'test'): number[] => dataset[split].map((item) => item.label);
  const trainLabels = labels('train');
  const allocation = iidAllocation(trainLabels, options.clients, rng);
  const train = takeShots(trainLabels, allocation, shots, rng);
  const classes = classesOf(trainLabels, train);
  const tests = testSets(test, labels('test'), trainLabels, allocation, classes, rng);
  const val = valSets(valShots, test, labels('val'), trainLabels, allocation, classes, rng);

  const scheme: IidScheme = { name: 'iid', clients: options.clients, seed, shots, valShots, test };
  const clients: ClientSplit[] = classes.map((held, i) => ({ classes: held, train: train[i], test: tests[i], ...(val ? { val: val[i] } : {}) }));
  return makePartition(dataset, scheme, clients);
}
