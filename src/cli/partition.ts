import { type Command, InvalidArgumentError, Option } from 'commander';
import Table from 'cli-table3';
import { loadDataset } from '../data/load-dataset.js';
import { type Partition, type PartitionScheme, SCHEME_NAMES, TEST_RULES, type TestRule, partitionSummary } from '../data/partition.js';
import { writePartition } from '../data/partition-file.js';
import { DIRICHLET_DEFAULTS } from '../data/partitioners/dirichlet.js';
import { type PartitionRequest, createPartition } from '../data/partitioners/index.js';
import { PATHOLOGICAL_SEED } from '../data/partitioners/pathological.js';
import { positiveInt, positiveNumber } from './options.js';

interface PartitionOptions {
  dataset: string;
  root?: string;
  scheme: PartitionScheme['name'];
  clients: number;
  shots?: number;
  beta?: number;
  minSize?: number;
  seed?: number;
  test?: TestRule;
  valShots?: number | null;
  skipBad: boolean;
  checkImages?: 'header' | 'full';
  out: string;
}

export function registerPartition(program: Command): void {
  program
    .command('partition')
    .description('split a dataset among federated clients and write the partition file; prints one row per client')
    .requiredOption('--dataset <name|dir>', 'a CoOp dataset name (caltech101, oxford_pets, dtd, …) under --root, a CoOp dataset folder, or an image folder (one sub-folder per class)')
    .option('--root <dir>', "data root holding CoOp's dataset folders (caltech-101/, oxford_pets/, …)")
    .addOption(new Option('--scheme <name>', 'how clients get classes').choices(SCHEME_NAMES).default('pathological'))
    .option('--clients <n>', 'number of clients', positiveInt, 10)
    .option('--shots <k>', 'training images per class per client (required for pathological; default for the others: all)', positiveInt)
    .option('--beta <b>', `Dirichlet concentration, dirichlet only (default 0.5)`, positiveNumber)
    .option('--min-size <m>', `fewest training images per client, dirichlet only (default ${DIRICHLET_DEFAULTS.minSize})`, nonNegativeInt)
    .option('--seed <s>', `seed of every draw (default ${PATHOLOGICAL_SEED}, the published runs')`, integer)
    .addOption(new Option('--test <rule>', 'test images per client: every image of its classes, or split by its share of each class (default: classes; dirichlet: proportional)').choices(TEST_RULES))
    .option('--val-shots <n|all>', 'validation images per class per client (default min(shots, 4) as CoOp); "all": the val split divided as the test split (default without --shots); 0: none', valShots)
    .option('--skip-bad', 'drop missing or corrupt images and inconsistent entries with a warning instead of failing', false)
    .addOption(new Option('--check-images [mode]', 'also decode image headers ("header", the default) or every pixel ("full") to find corrupt files').choices(['header', 'full']).preset('header'))
    .requiredOption('--out <file>', 'partition file to write (JSON)')
    .action(async (opts: PartitionOptions) => {
      const request = partitionRequest(opts);
      const dataset = await loadDataset(opts.dataset, { root: opts.root, skipBad: opts.skipBad, checkImages: opts.checkImages ?? 'exists' });
      const partition = createPartition(dataset, request);
      await writePartition(opts.out, partition);

      console.log(`${dataset.name} (${dataset.root}): ${dataset.classnames.length} classes; train ${dataset.train.length}, val ${dataset.val.length}, test ${dataset.test.length} images; fingerprint ${dataset.fingerprint.slice(0, 12)}`);
      const skipped = dataset.skipped.length;
      if (skipped) console.log(`skipped ${skipped} bad ${skipped === 1 ? 'entry' : 'entries'} (listed above); the fingerprint records the skips`);
      console.log(describeScheme(partition.scheme));
      console.log(clientTable(partition));
      for (const row of partitionSummary(partition)) {
        if (row.classes === 0 || row.train === 0) console.warn(`warning: client ${row.client} has ${row.classes === 0 ? 'no classes' : 'no training images'}`);
      }
      console.log(`wrote ${opts.out}`);
    });
}

/** The partitioner's options from the flags; a flag that does not apply to the scheme is an error, not silently ignored. */
function partitionRequest(opts: PartitionOptions): PartitionRequest {
  const onlyFor = (flag: string, given: unknown, scheme: PartitionScheme['name']): void => {
    if (given !== undefined && opts.scheme !== scheme) throw new Error(`${flag} applies only to --scheme ${scheme}`);
  };
  onlyFor('--beta', opts.beta, 'dirichlet');
  onlyFor('--min-size', opts.minSize, 'dirichlet');
  const common = { clients: opts.clients, seed: opts.seed, ...(opts.valShots !== undefined ? { valShots: opts.valShots } : {}) };
  switch (opts.scheme) {
    case 'pathological':
      if (opts.shots === undefined) throw new Error('--shots is required for --scheme pathological (the published runs use 2 and 16)');
      if (opts.test !== undefined && opts.test !== 'classes') throw new Error('--test: the pathological scheme tests on every image of the client\'s classes; only "classes" applies');
      return { scheme: 'pathological', ...common, shots: opts.shots };
    case 'dirichlet':
      return { scheme: 'dirichlet', ...common, beta: opts.beta ?? 0.5, minSize: opts.minSize, shots: opts.shots, test: opts.test };
    case 'iid':
      return { scheme: 'iid', ...common, shots: opts.shots, test: opts.test };
  }
}

function describeScheme(scheme: PartitionScheme): string {
  const parts = [`${scheme.clients} clients`];
  parts.push(scheme.shots === null ? 'all training images' : `${scheme.shots} shot${scheme.shots === 1 ? '' : 's'} per class`);
  if (scheme.name === 'dirichlet') parts.push(`β ${scheme.beta}`, `at least ${scheme.minSize} images per client`);
  parts.push(`seed ${scheme.seed}`, `test: ${scheme.test}`, `val: ${scheme.valShots === null ? 'all' : scheme.valShots === 0 ? 'none' : `${scheme.valShots} per class`}`);
  return `${scheme.name} split: ${parts.join(', ')}`;
}

function clientTable(partition: Partition): string {
  const rows = partitionSummary(partition);
  const hasVal = rows.some((r) => r.val !== undefined);
  const table = new Table({
    head: ['client', 'classes', 'class names', 'train', ...(hasVal ? ['val'] : []), 'test'],
    colAligns: ['right', 'right', 'left', 'right', ...(hasVal ? ['right' as const] : []), 'right'],
    style: { head: [], border: [], compact: true },
  });
  for (const r of rows) table.push([r.client, r.classes, abbreviate(r.classnames), r.train, ...(hasVal ? [r.val ?? 0] : []), r.test]);
  const sum = (pick: (r: (typeof rows)[number]) => number): number => rows.reduce((s, r) => s + pick(r), 0);
  const covered = new Set(partition.clients.flatMap((c) => c.classes)).size;
  table.push(['total', covered, `${covered} of ${partition.dataset.numClasses} classes held`, sum((r) => r.train), ...(hasVal ? [sum((r) => r.val ?? 0)] : []), sum((r) => r.test)]);
  return table.toString();
}

/** Class names up to about `width` characters, then how many more. */
function abbreviate(names: readonly string[], width = 48): string {
  let text = '';
  for (const [i, name] of names.entries()) {
    const next = text ? `${text}, ${name}` : name;
    const rest = names.length - i - 1;
    if (next.length > width && text) return `${text}, … (+${names.length - i})`;
    text = next;
    if (rest === 0) break;
  }
  return text;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || value.trim() === '') throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = integer(value);
  if (n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  return n;
}

/** "all" (the val split divided as the test split is) or a count (0: no validation set). */
function valShots(value: string): number | null {
  if (value === 'all') return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || value.trim() === '') throw new InvalidArgumentError(`expected a non-negative integer or "all", got "${value}"`);
  return n;
}
