// K images per class, drawn as CoOp's `generate_fewshot_dataset` draws them
// (Dassl's DatasetBase): classes in order of first appearance in the split,
// `random.sample(items, K)` for each, and `random.choices(items, k=K)` (with
// repetition) for a class with fewer than K items. CoOp then samples the val
// split with min(K, 4) shots from the same generator. The draws depend only on
// the seed and the split, never on the method being trained.

import type { Dataset, ImageItem } from './dataset.js';
import { PythonRandom } from './python-random.js';

/** Indices of each label's items, labels in order of first appearance (as a Python dict fills). */
export function groupByLabel(labels: readonly number[]): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  labels.forEach((label, index) => {
    const group = groups.get(label);
    if (group) group.push(index);
    else groups.set(label, [index]);
  });
  return groups;
}

export interface ShotOptions {
  /**
   * A class with fewer than K items: true draws K with repetition (CoOp's
   * default), false takes every item once. Default true.
   */
  readonly repeat?: boolean;
  /** Only these labels (default: all). */
  readonly labels?: ReadonlySet<number>;
}

/** Indices (into `labels`) of `shots` items per class, drawn from `rng`. */
export function sampleShots(labels: readonly number[], shots: number, rng: PythonRandom, options: ShotOptions = {}): number[] {
  if (!Number.isInteger(shots) || shots < 1) throw new RangeError(`shots must be a positive integer, got ${shots}`);
  const picked: number[] = [];
  for (const [label, items] of groupByLabel(labels)) {
    if (options.labels && !options.labels.has(label)) continue;
    if (items.length >= shots) picked.push(...rng.sample(items, shots));
    else if (options.repeat ?? true) picked.push(...rng.choices(items, shots));
    else picked.push(...items);
  }
  return picked;
}

export interface FewShotOptions {
  readonly shots: number;
  /** Seeds a fresh generator, as CoOp's `set_random_seed(cfg.SEED)` does. */
  readonly seed: number;
  /** Also sample the val split with min(shots, 4) per class (default true), after the train draws. */
  readonly val?: boolean;
  readonly repeat?: boolean;
}

export interface FewShotSelection {
  /** Indices into dataset.train, in draw order (an index repeats when a class was drawn with repetition). */
  readonly train: number[];
  /** Indices into dataset.val (empty when not asked for). */
  readonly val: number[];
}

export function fewShotIndices(dataset: Pick<Dataset, 'train' | 'val'>, options: FewShotOptions): FewShotSelection {
  const rng = new PythonRandom(options.seed);
  const labelsOf = (items: readonly ImageItem[]): number[] => items.map((item) => item.label);
  const train = sampleShots(labelsOf(dataset.train), options.shots, rng, { repeat: options.repeat });
  const val = options.val ?? true ? sampleShots(labelsOf(dataset.val), Math.min(options.shots, 4), rng, { repeat: options.repeat }) : [];
  return { train, val };
}
