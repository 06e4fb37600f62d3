// Label skew by Dirichlet proportions, the procedure of NIID-Bench / FedML
// ("noniid-labeldir"): for each class, shuffle its training images, draw
// proportions p ~ Dir(β, …, β) over the N clients, zero the share of clients
// that already hold N_total/N images (keeps sizes balanced), renormalise and
// cut the shuffled images at floor(cumsum(p) · n_c). Redraw everything until
// every client ends with at least `minSize` training images. Small β gives
// each client few classes; large β approaches IID.
// Then, with `shots`, each client keeps K images per class it holds.
// Draws come from the Python `random` port (Marsaglia–Tsang gamma variates),
// so a seed gives the same partition everywhere; numpy's draws differ, so the
// partitions are not those of NIID-Bench's code, only of its procedure.

import type { Dataset } from '../dataset.js';
import { groupByLabel } from '../few-shot.js';
import { type ClientSplit, type DirichletScheme, type Partition, type TestRule, makePartition } from '../partition.js';
import { PythonRandom } from '../python-random.js';
import { classesOf, takeShots, testSets, valSets } from './client-sets.js';

/** A standard normal variate (Box–Muller, cosine branch; two uniforms per variate). */
export function sampleNormal(rng: PythonRandom): number {
  const u1 = 1 - rng.random(); // (0, 1]: log stays finite
  const u2 = rng.random();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/**
 * log of a Gamma(shape, 1) variate, by Marsaglia and Tsang (2000); for
 * shape < 1, Gamma(shape + 1) · U^(1/shape), kept in logs because for small
 * shapes the variate itself underflows to 0.
 */
export function sampleLogGamma(shape: number, rng: PythonRandom): number {
  if (!(shape > 0) || !Number.isFinite(shape)) throw new RangeError(`gamma shape must be a positive number, got ${shape}`);
  if (shape < 1) return sampleLogGamma(shape + 1, rng) + Math.log(1 - rng.random()) / shape;
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = sampleNormal(rng);
    let v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const u = 1 - rng.random();
    if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return Math.log(d * v);
  }
}

/** A draw from the symmetric Dirichlet(α, …, α) over `n` parts (normalised gamma variates). */
export function sampleDirichlet(alpha: number, n: number, rng: PythonRandom): number[] {
  const logs = Array.from({ length: n }, () => sampleLogGamma(alpha, rng));
  const max = Math.max(...logs);
  const weights = logs.map((l) => Math.exp(l - max));
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / sum);
}

export interface DirichletOptions {
  readonly clients: number;
  /** Concentration β (> 0); 0.3 and 0.5 are common. */
  readonly beta: number;
  /** Fewest training images a client may end with (after shot selection), default 10. */
  readonly minSize?: number;
  /** Default 2023. */
  readonly seed?: number;
  /** Training images per class per client (default: every image allocated). */
  readonly shots?: number | null;
  /** Default 'proportional': the client's test mix follows its label distribution. */
  readonly test?: TestRule;
  /** Validation images per class (default min(shots, 4)); null = the val split divided by the test rule (the default without shots); 0 = none. */
  readonly valShots?: number | null;
  /** Redraws before giving up on minSize (default 1000). */
  readonly maxAttempts?: number;
}

export const DIRICHLET_DEFAULTS = { minSize: 10, seed: 2023, test: 'proportional' as TestRule, maxAttempts: 1000 } as const;

/** Each client's training images (indices into `trainLabels`) before shot selection. */
export function dirichletAllocation(
  trainLabels: readonly number[],
  options: { clients: number; beta: number; minSize: number; shots: number | null; maxAttempts: number },
  rng: PythonRandom,
): number[][] {
  const { clients, beta, minSize, shots, maxAttempts } = options;
  const total = trainLabels.length;
  const byClass = groupByLabel(trainLabels);
  const labels = [...byClass.keys()].sort((a, b) => a - b);
  // A size the shots cap makes unreachable would loop until maxAttempts: say so at once.
  const reachable = shots === null ? total : labels.reduce((sum, l) => sum + Math.min(shots, byClass.get(l)!.length), 0);
  if (clients * minSize > total || (shots !== null && minSize > reachable)) {
    throw new Error(`cannot give each of ${clients} clients at least ${minSize} training images from ${total}${shots === null ? '' : ` (${shots} per class)`}; lower --min-size or --clients`);
  }

  const cap = total / clients;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const batches: number[][] = Array.from({ length: clients }, () => []);
    const perClass: Map<number, number>[] = Array.from({ length: clients }, () => new Map());
    for (const label of labels) {
      const items = rng.shuffle(byClass.get(label)!.slice());
      let p = sampleDirichlet(beta, clients, rng).map((x, j) => (batches[j].length < cap ? x : 0));
      let sum = p.reduce((a, b) => a + b, 0);
      if (sum === 0) {
        // Only when every weight of a client under the cap underflowed: share among those clients equally.
        p = batches.map((b) => (b.length < cap ? 1 : 0));
        sum = p.reduce((a, b) => a + b, 0);
      }
      let cumulative = 0;
      let start = 0;
      p.forEach((x, j) => {
        cumulative += x / sum;
        const end = j === clients - 1 ? items.length : Math.min(items.length, Math.trunc(cumulative * items.length));
        const slice = items.slice(start, end);
        batches[j].push(...slice);
        if (slice.length) perClass[j].set(label, slice.length);
        start = Math.max(start, end);
      });
    }
    const sizes = perClass.map((counts, j) => (shots === null ? batches[j].length : [...counts.values()].reduce((s, n) => s + Math.min(shots, n), 0)));
    if (Math.min(...sizes) >= minSize) return batches;
  }
  throw new Error(`no Dirichlet(β=${beta}) draw in ${maxAttempts} gave every one of ${clients} clients at least ${minSize} training images; raise --beta or lower --min-size`);
}

export function dirichletPartition(dataset: Dataset, options: DirichletOptions): Partition {
  const seed = options.seed ?? DIRICHLET_DEFAULTS.seed;
  const shots = options.shots ?? null;
  const minSize = options.minSize ?? DIRICHLET_DEFAULTS.minSize;
  const test = options.test ?? DIRICHLET_DEFAULTS.test;
  const valShots = options.valShots === undefined ? (shots === null ? null : Math.min(shots, 4)) : options.valShots;
  if (!(options.beta > 0) || !Number.isFinite(options.beta)) throw new RangeError(`beta must be a positive number, got ${options.beta}`);
  if (!Number.isInteger(options.clients) || options.clients < 1) throw new RangeError(`clients must be a positive integer, got ${options.clients}`);

  const rng = new PythonRandom(seed);
  const labels = (split: 'train' | 'val' | 'test'): number[] => dataset[split].map((item) => item.label);
  const trainLabels = labels('train');
  const allocation = dirichletAllocation(
    trainLabels,
    { clients: options.clients, beta: options.beta, minSize, shots, maxAttempts: options.maxAttempts ?? DIRICHLET_DEFAULTS.maxAttempts },
    rng,
  );
  const train = takeShots(trainLabels, allocation, shots, rng);
  const classes = classesOf(trainLabels, train);
  const tests = testSets(test, labels('test'), trainLabels, allocation, classes, rng);
  const val = valSets(valShots, test, labels('val'), trainLabels, allocation, classes, rng);

  const scheme: DirichletScheme = { name: 'dirichlet', clients: options.clients, seed, shots, valShots, test, beta: options.beta, minSize };
  const clients: ClientSplit[] = classes.map((held, i) => ({ classes: held, train: train[i], test: tests[i], ...(val ? { val: val[i] } : {}) }));
  return makePartition(dataset, scheme, clients);
}
