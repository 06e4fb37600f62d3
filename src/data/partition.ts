// A federated partition: which classes, training shots, validation and test
// images each client gets. It is a file, written once and shared, so that
// runs of every method use the same clients and can be compared and
// reproduced. Indices point into the dataset's splits in their file order;
// the dataset's fingerprint guards against pointing them at another dataset.
//
// File format (JSON, version 1):
//   format   "pfedprompt-partition"
//   version  1
//   dataset  { name, fingerprint, numClasses, classnames, sizes: {train, val, test}, skipped }
//   scheme   { name: "pathological" | "dirichlet" | "iid", clients, seed, shots, valShots, test, …scheme's own parameters }
//   clients  [{ classes, train, test, val? }]  — one per client, indices into dataset.train / .test / .val
//
// Reading and writing the file: partition-file.ts (this module runs in a browser too).

import type { Dataset, ImageItem } from './dataset.js';

export const PARTITION_FORMAT = 'pfedprompt-partition';
export const PARTITION_VERSION = 1;

/**
 * A client's test images: 'classes' = every test image of the classes it
 * holds (the published pathological protocol); 'proportional' = each class's
 * test images divided at random among the clients holding it, in proportion
 * to their share of its training images as allocated before shot selection
 * (disjoint; the test mix follows the client's own label distribution).
 */
export type TestRule = 'classes' | 'proportional';
export const TEST_RULES: readonly TestRule[] = ['classes', 'proportional'];

interface SchemeCommon {
  readonly clients: number;
  readonly seed: number;
  /** Training images per class per client (null: every image allocated). */
  readonly shots: number | null;
  /** Validation images per class per client; null = the val split divided as the test split is (by `test`); 0 = no validation set. */
  readonly valShots: number | null;
  readonly test: TestRule;
}

/** Shuffled classes in consecutive blocks of round(C/N), K shots each: the published runs' split. */
export interface PathologicalScheme extends SchemeCommon {
  readonly name: 'pathological';
  readonly shots: number;
  readonly test: 'classes';
}

/** Label skew: each class spread over clients by Dirichlet(β) proportions. */
export interface DirichletScheme extends SchemeCommon {
  readonly name: 'dirichlet';
  readonly beta: number;
  /** Every client ends with at least this many training images. */
  readonly minSize: number;
}

/** Every class to every client, training images dealt evenly at random. */
export interface IidScheme extends SchemeCommon {
  readonly name: 'iid';
}

export type PartitionScheme = PathologicalScheme | DirichletScheme | IidScheme;
export const SCHEME_NAMES: readonly PartitionScheme['name'][] = ['pathological', 'dirichlet', 'iid'];

export interface ClientSplit {
  /** Labels the client holds (pathological: in the shuffled order Python gives them; otherwise ascending). */
  readonly classes: readonly number[];
  /** Indices into dataset.train. */
  readonly train: readonly number[];
  /** Indices into dataset.test. */
  readonly test: readonly number[];
  /** Indices into dataset.val; absent when the scheme has valShots 0. */
  readonly val?: readonly number[];
}

export interface PartitionDataset {
  readonly name: string;
  readonly fingerprint: string;
  readonly numClasses: number;
  readonly classnames: readonly string[];
  readonly sizes: { readonly train: number; readonly val: number; readonly test: number };
  /** Entries dropped as bad when the dataset was loaded (they are also folded into the fingerprint). */
  readonly skipped: number;
}

export interface Partition {
  readonly format: typeof PARTITION_FORMAT;
  readonly version: typeof PARTITION_VERSION;
  readonly dataset: PartitionDataset;
  readonly scheme: PartitionScheme;
  readonly clients: readonly ClientSplit[];
}

/** What a partition records about the dataset it was made from. */
export function describeDataset(dataset: Dataset & { readonly skipped?: readonly unknown[] }): PartitionDataset {
  return {
    name: dataset.name,
    fingerprint: dataset.fingerprint,
    numClasses: dataset.classnames.length,
    classnames: [...dataset.classnames],
    sizes: { train: dataset.train.length, val: dataset.val.length, test: dataset.test.length },
    skipped: dataset.skipped?.length ?? 0,
  };
}

export function makePartition(dataset: Dataset & { readonly skipped?: readonly unknown[] }, scheme: PartitionScheme, clients: readonly ClientSplit[]): Partition {
  return { format: PARTITION_FORMAT, version: PARTITION_VERSION, dataset: describeDataset(dataset), scheme, clients };
}

/** The partition as JSON text: readable header, one line per client. */
export function formatPartition(partition: Partition): string {
  const { clients, ...head } = partition;
  const headText = JSON.stringify(head, null, 2);
  const clientLines = clients.map((c) => `    ${JSON.stringify({ classes: c.classes, train: c.train, test: c.test, ...(c.val ? { val: c.val } : {}) })}`);
  return `${headText.slice(0, headText.lastIndexOf('}')).trimEnd()},\n  "clients": [\n${clientLines.join(',\n')}\n  ]\n}\n`;
}

/** Checks the structure and ranges of a parsed partition; errors name `source` and the field. */
export function validatePartition(json: unknown, source: string): Partition {
  const fail = (field: string, message: string): never => {
    throw new Error(`${source}: ${field}: ${message}`);
  };
  const object = (value: unknown, field: string): Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : fail(field, 'expected an object');
  const integer = (value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
      ? value
      : fail(field, `expected an integer in ${min}…${max === Number.MAX_SAFE_INTEGER ? '' : max}, got ${JSON.stringify(value)}`);
  const nullable = <T>(value: unknown, read: (v: unknown) => T): T | null => (value === null ? null : read(value));
  const indices = (value: unknown, field: string, size: number, what: string): number[] => {
    if (!Array.isArray(value)) return fail(field, 'expected a list of indices');
    value.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v >= size) {
        fail(`${field}[${i}]`, `${JSON.stringify(v)} is not an index into ${what}`);
      }
    });
    return value as number[];
  };

  const top = object(json, 'top level');
  if (top.format !== PARTITION_FORMAT) fail('format', `expected "${PARTITION_FORMAT}", got ${JSON.stringify(top.format)}; not a partition file`);
  if (top.version !== PARTITION_VERSION) fail('version', `version ${JSON.stringify(top.version)} is not supported (this pfedprompt reads version ${PARTITION_VERSION})`);

  const d = object(top.dataset, 'dataset');
  if (typeof d.name !== 'string') fail('dataset.name', 'expected a string');
  if (typeof d.fingerprint !== 'string' || d.fingerprint.length === 0) fail('dataset.fingerprint', 'expected a non-empty string');
  const numClasses = integer(d.numClasses, 'dataset.numClasses', 1);
  if (!Array.isArray(d.classnames) || d.classnames.length !== numClasses || d.classnames.some((c) => typeof c !== 'string')) {
    fail('dataset.classnames', `expected ${numClasses} class names (dataset.numClasses)`);
  }
  const s = object(d.sizes, 'dataset.sizes');
  const sizes = { train: integer(s.train, 'dataset.sizes.train', 0), val: integer(s.val, 'dataset.sizes.val', 0), test: integer(s.test, 'dataset.sizes.test', 0) };
  const skipped = integer(d.skipped, 'dataset.skipped', 0);

  const sc = object(top.scheme, 'scheme');
  if (!SCHEME_NAMES.includes(sc.name as PartitionScheme['name'])) fail('scheme.name', `expected one of ${SCHEME_NAMES.join(', ')}, got ${JSON.stringify(sc.name)}`);
  const name = sc.name as PartitionScheme['name'];
  const clientCount = integer(sc.clients, 'scheme.clients', 1);
  const common = {
    clients: clientCount,
    seed: integer(sc.seed, 'scheme.seed', Number.MIN_SAFE_INTEGER),
    shots: nullable(sc.shots, (v) => integer(v, 'scheme.shots', 1)),
    valShots: nullable(sc.valShots, (v) => integer(v, 'scheme.valShots', 0)),
    test: TEST_RULES.includes(sc.test as TestRule) ? (sc.test as TestRule) : fail('scheme.test', `expected one of ${TEST_RULES.join(', ')}, got ${JSON.stringify(sc.test)}`),
  };
  let scheme: PartitionScheme;
  if (name === 'pathological') {
    if (common.shots === null) fail('scheme.shots', 'the pathological scheme needs a shot count');
    if (common.test !== 'classes') fail('scheme.test', 'the pathological scheme tests on every image of the client\'s classes ("classes")');
    scheme = { name, ...common, shots: common.shots!, test: 'classes' };
  } else if (name === 'dirichlet') {
    const beta = typeof sc.beta === 'number' && sc.beta > 0 && Number.isFinite(sc.beta) ? sc.beta : fail('scheme.beta', `expected a positive number, got ${JSON.stringify(sc.beta)}`);
    scheme = { name, ...common, beta, minSize: integer(sc.minSize, 'scheme.minSize', 0) };
  } else {
    scheme = { name, ...common };
  }

  if (!Array.isArray(top.clients)) fail('clients', 'expected a list of clients');
  const rawClients = top.clients as unknown[];
  if (rawClients.length !== clientCount) fail('clients', `${rawClients.length} clients, but scheme.clients is ${clientCount}`);
  const clients: ClientSplit[] = rawClients.map((raw, i) => {
    const c = object(raw, `clients[${i}]`);
    const classes = indices(c.classes, `clients[${i}].classes`, numClasses, `the ${numClasses} classes`);
    if (new Set(classes).size !== classes.length) fail(`clients[${i}].classes`, 'a class is listed twice');
    const split: ClientSplit = {
      classes,
      train: indices(c.train, `clients[${i}].train`, sizes.train, `the train split (${sizes.train} images)`),
      test: indices(c.test, `clients[${i}].test`, sizes.test, `the test split (${sizes.test} images)`),
      ...(c.val === undefined ? {} : { val: indices(c.val, `clients[${i}].val`, sizes.val, `the val split (${sizes.val} images)`) }),
    };
    return split;
  });

  return {
    format: PARTITION_FORMAT,
    version: PARTITION_VERSION,
    dataset: { name: d.name as string, fingerprint: d.fingerprint as string, numClasses, classnames: d.classnames as string[], sizes, skipped },
    scheme,
    clients,
  };
}

/** Throws unless `partition` was made from `dataset`; every client image must be of one of the client's classes. */
export function checkPartitionMatches(partition: Partition, dataset: Dataset, source = 'partition'): void {
  const fail = (field: string, message: string): never => {
    throw new Error(`${source}: ${field}: ${message}`);
  };
  const d = partition.dataset;
  if (d.fingerprint !== dataset.fingerprint) {
    fail(
      'dataset.fingerprint',
      `made from ${d.name} ${short(d.fingerprint)}${d.skipped ? ` with ${d.skipped} bad entries skipped` : ''}, but ${dataset.name} here is ${short(dataset.fingerprint)} (another split file, or other entries skipped)`,
    );
  }
  if (d.numClasses !== dataset.classnames.length) fail('dataset.numClasses', `${d.numClasses}, but ${dataset.name} has ${dataset.classnames.length} classes`);
  const differing = d.classnames.findIndex((c, i) => c !== dataset.classnames[i]);
  if (differing >= 0) fail(`dataset.classnames[${differing}]`, `"${d.classnames[differing]}", but ${dataset.name} calls class ${differing} "${dataset.classnames[differing]}"`);
  for (const split of ['train', 'val', 'test'] as const) {
    if (d.sizes[split] !== dataset[split].length) fail(`dataset.sizes.${split}`, `${d.sizes[split]}, but ${dataset.name}'s ${split} split has ${dataset[split].length} images`);
  }
  partition.clients.forEach((client, i) => {
    const held = new Set(client.classes);
    for (const split of ['train', 'val', 'test'] as const) {
      client[split]?.forEach((index, j) => {
        const label = dataset[split][index].label;
        if (!held.has(label)) fail(`clients[${i}].${split}[${j}]`, `image ${index} has label ${label}, which is not among the client's classes`);
      });
    }
  });
}

function short(fingerprint: string): string {
  return fingerprint.length > 12 ? `${fingerprint.slice(0, 12)}…` : fingerprint;
}

export interface ClientSummary {
  readonly client: number;
  readonly classes: number;
  readonly classnames: readonly string[];
  readonly train: number;
  readonly val: number | undefined;
  readonly test: number;
}

/** One row per client, for the table `pfedprompt partition` prints. */
export function partitionSummary(partition: Partition): ClientSummary[] {
  return partition.clients.map((c, client) => ({
    client,
    classes: c.classes.length,
    classnames: c.classes.map((label) => partition.dataset.classnames[label]),
    train: c.train.length,
    val: c.val?.length,
    test: c.test.length,
  }));
}

export interface ClientImages {
  readonly classes: readonly number[];
  readonly train: readonly ImageItem[];
  readonly val: readonly ImageItem[];
  readonly test: readonly ImageItem[];
}

/** A client's images, looked up in the dataset the partition was checked against. */
export function clientImages(partition: Partition, dataset: Dataset, client: number): ClientImages {
  const c = partition.clients[client];
  if (!c) throw new RangeError(`client ${client} out of range (the partition has ${partition.clients.length})`);
  return {
    classes: c.classes,
    train: c.train.map((i) => dataset.train[i]),
    val: (c.val ?? []).map((i) => dataset.val[i]),
    test: c.test.map((i) => dataset.test[i]),
  };
}
