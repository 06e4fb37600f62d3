// The pathological few-shot split of the published pFedPrompt / FedOTP runs,
// ported step for step from their Python (see ../shared/reference/
// make_protocol_goldens.py) so that the same split file gives the same
// clients, shots and test images:
//   C = max(train label) + 1;  k = int(round(C / N))       (round: halves to even)
//   classes = list(range(C)); random.seed(2023); random.shuffle(classes)
//   client i < N−1 owns classes[i·k:(i+1)·k]; the last client owns classes[(N−1)·k:]
//   train items grouped by label, labels in order of first appearance;
//   for each client, for each label (that order) it owns:
//       random.sample(items, K) if len(items) ≥ K else every item
//   (one generator stream: no re-seeding between the shuffle and the samples)
//   a client's test set is every test image of its classes.
// Python's slices clamp, so with k·(N−1) > C the later clients own no class;
// that is reproduced, not "fixed".

import type { Dataset } from '../dataset.js';
import { groupByLabel } from '../few-shot.js';
import { type ClientSplit, type Partition, type PathologicalScheme, makePartition } from '../partition.js';
import { PythonRandom, pythonRound } from '../python-random.js';
import { testOfClasses, valSets } from './client-sets.js';

/** The seed of the published runs. */
export const PATHOLOGICAL_SEED = 2023;

export interface PathologicalSplit {
  /** Each client's classes, in the shuffled order. */
  readonly classes: number[][];
  /** Each client's few-shot train indices, in draw order. */
  readonly train: number[][];
  /** Each client's test indices, ascending. */
  readonly test: number[][];
}

/**
 * The Python procedure on label lists. `rng` must be freshly seeded (the
 * published runs: 2023); it is left where Python's stream would be.
 */
export function pathologicalSplit(trainLabels: readonly number[], testLabels: readonly number[], clients: number, shots: number, rng: PythonRandom): PathologicalSplit {
  if (!Number.isInteger(clients) || clients < 1) throw new RangeError(`clients must be a positive integer, got ${clients}`);
  if (!Number.isInteger(shots) || shots < 1) throw new RangeError(`shots must be a positive integer, got ${shots}`);
  if (trainLabels.length === 0) throw new RangeError('the train split is empty');

  const numClasses = trainLabels.reduce((a, b) => Math.max(a, b), 0) + 1;
  const perClient = pythonRound(numClasses / clients);
  const order = rng.shuffle(Array.from({ length: numClasses }, (_, c) => c));
  const classes = Array.from({ length: clients }, (_, i) => (i < clients - 1 ? order.slice(i * perClient, (i + 1) * perClient) : order.slice(i * perClient)));

  const tracker = groupByLabel(trainLabels);
  const train = classes.map((owned) => {
    const mine = new Set(owned);
    const picked: number[] = [];
    for (const [label, items] of tracker) {
      if (!mine.has(label)) continue;
      picked.push(...(items.length >= shots ? rng.sample(items, shots) : items));
    }
    return picked;
  });

  const test = classes.map((owned) => testOfClasses(testLabels, owned));
  return { classes, train, test };
}

export interface PathologicalOptions {
  readonly clients: number;
  readonly shots: number;
  /** Default 2023, the published runs' seed. */
  readonly seed?: number;
  /** Validation images per class per client (default min(shots, 4), CoOp's rule; 0 = none; null = every val image of its classes). Drawn after every train draw, so they never change the train shots. */
  readonly valShots?: number | null;
}

export function pathologicalPartition(dataset: Dataset, options: PathologicalOptions): Partition {
  const seed = options.seed ?? PATHOLOGICAL_SEED;
  const valShots = options.valShots === undefined ? Math.min(options.shots, 4) : options.valShots;
  const rng = new PythonRandom(seed);
  const labels = (split: 'train' | 'val' | 'test'): number[] => dataset[split].map((item) => item.label);

  const trainLabels = labels('train');
  const split = pathologicalSplit(trainLabels, labels('test'), options.clients, options.shots, rng);
  const val = valSets(valShots, 'classes', labels('val'), trainLabels, split.train, split.classes, rng);
  const scheme: PathologicalScheme = { name: 'pathological', clients: options.clients, seed, shots: options.shots, valShots, test: 'classes' };
  const clients: ClientSplit[] = split.classes.map((classes, i) => ({ classes, train: split.train[i], test: split.test[i], ...(val ? { val: val[i] } : {}) }));
  return makePartition(dataset, scheme, clients);
}
