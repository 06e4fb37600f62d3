// The steps every partitioner shares once it knows which training images
// each client holds: few-shot selection per class, the client's test set by
// the chosen rule, and its validation shots.

import { groupByLabel } from '../few-shot.js';
import type { TestRule } from '../partition.js';
import type { PythonRandom } from '../python-random.js';

/** For each client, `shots` of its images per class (classes ascending; a class with fewer keeps them all), or all its images ascending when shots is null. */
export function takeShots(trainLabels: readonly number[], allocation: readonly (readonly number[])[], shots: number | null, rng: PythonRandom): number[][] {
  return allocation.map((items) => {
    if (shots === null) return [...items].sort((a, b) => a - b);
    const byClass = groupByLabel(items.map((i) => trainLabels[i]));
    const picked: number[] = [];
    for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
      const mine = byClass.get(label)!.map((k) => items[k]);
      picked.push(...(mine.length >= shots ? rng.sample(mine, shots) : mine));
    }
    return picked;
  });
}

/** The labels present among each client's images, ascending. */
export function classesOf(labels: readonly number[], clientItems: readonly (readonly number[])[]): number[][] {
  return clientItems.map((items) => [...new Set(items.map((i) => labels[i]))].sort((a, b) => a - b));
}

/** Test images of each client by `rule` (see TestRule); `allocation` gives each client's training images before few-shot selection. */
export function testSets(
  rule: TestRule,
  testLabels: readonly number[],
  trainLabels: readonly number[],
  allocation: readonly (readonly number[])[],
  classes: readonly (readonly number[])[],
  rng: PythonRandom,
): number[][] {
  if (rule === 'classes') return classes.map((held) => testOfClasses(testLabels, held));

  const clients = allocation.length;
  const sets: number[][] = Array.from({ length: clients }, () => []);
  const share = allocation.map((items) => countLabels(items.map((i) => trainLabels[i])));
  const testByClass = groupByLabel(testLabels);
  for (const label of [...testByClass.keys()].sort((a, b) => a - b)) {
    const weights = share.map((counts) => counts.get(label) ?? 0);
    const total = weights.reduce((a, b) => a + b, 0);
    if (total === 0) continue; // no client holds the class: its test images belong to nobody
    const items = rng.shuffle(testByClass.get(label)!.slice());
    let cumulative = 0;
    let start = 0;
    weights.forEach((w, j) => {
      cumulative += w;
      const end = j === clients - 1 ? items.length : Math.floor((cumulative / total) * items.length);
      sets[j].push(...items.slice(start, end));
      start = end;
    });
  }
  return sets.map((s) => s.sort((a, b) => a - b));
}

/** Every test image whose label is in `held`, ascending. */
export function testOfClasses(testLabels: readonly number[], held: readonly number[]): number[] {
  const set = new Set(held);
  const out: number[] = [];
  testLabels.forEach((label, j) => {
    if (set.has(label)) out.push(j);
  });
  return out;
}

/**
 * Validation images of each client: with a count, per class it holds
 * (classes in order of first appearance in the val split) `valShots` drawn
 * without repetition, or every one when there are no more; with null, the
 * val split divided as the test split is (by `rule`). Undefined when
 * valShots is 0 (no validation sets).
 */
export function valSets(
  valShots: number | null,
  rule: TestRule,
  valLabels: readonly number[],
  trainLabels: readonly number[],
  allocation: readonly (readonly number[])[],
  classes: readonly (readonly number[])[],
  rng: PythonRandom,
): number[][] | undefined {
  if (valShots === 0) return undefined;
  if (valShots === null) return testSets(rule, valLabels, trainLabels, allocation, classes, rng);
  const byClass = groupByLabel(valLabels);
  return classes.map((held) => {
    const set = new Set(held);
    const picked: number[] = [];
    for (const [label, items] of byClass) {
      if (!set.has(label)) continue;
      picked.push(...(items.length > valShots ? rng.sample(items, valShots) : items));
    }
    return picked;
  });
}

function countLabels(labels: readonly number[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const label of labels) counts.set(label, (counts.get(label) ?? 0) + 1);
  return counts;
}
