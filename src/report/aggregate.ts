// All the arithmetic of the report in one place: grouping cells into tables
// and chart panels, means and standard deviations over seeds and clients,
// and the best entry of each column. Every output (Markdown, terminal, HTML,
// charts) formats what this returns and computes nothing of its own.
import type { CellResult, ResultsFile, Scoring } from './results.js';

export interface MethodInfo {
  id: string;
  label: string;
  /** Position in order of first appearance in the results; fixes the method's colour. */
  index: number;
}

export interface DatasetInfo {
  id: string;
  label: string;
}

/** One table: the cells sharing a backbone, a shot count and a scoring. */
export interface TableGroup {
  backbone: string;
  shots: number;
  scoring: Scoring;
  /** Methods with at least one cell in the group, in order of first appearance in the results. */
  methods: MethodInfo[];
  /** Datasets with at least one cell in the group, in order of first appearance. */
  datasets: DatasetInfo[];
  /** Keyed by `entryKey(method, dataset)`; absent where no cell was run. */
  entries: Map<string, TableEntry>;
  /** The most seeds any entry of the group has; entries with fewer are marked. */
  maxSeeds: number;
}

/** One table entry: a method on a dataset, over seeds. */
export interface TableEntry {
  method: string;
  dataset: string;
  seeds: number[];
  /** Mean over seeds of the per-seed mean-over-clients accuracy, in [0, 1]. */
  mean: number;
  /** Population std over seeds of the per-seed mean-over-clients accuracy. */
  std: number;
  /** Mean over seeds of the std over clients: the spread between clients. */
  clientSpread: number;
  /** Whether `mean` is the column's best (ties at the displayed 2 decimals are all best). */
  best: boolean;
  /** Whether `clientSpread` is the column's smallest (ties at 2 decimals all count). */
  leastSpread: boolean;
}

/** The charts of one (dataset, backbone, shots, scoring). */
export interface Panel {
  dataset: DatasetInfo;
  backbone: string;
  shots: number;
  scoring: Scoring;
  methods: MethodInfo[];
  /** Mean over seeds of each round's mean accuracy, in [0, 1]; only rounds where some seed evaluated. */
  curves: { method: MethodInfo; round: number; accuracy: number; seeds: number }[];
  /** Methods with no per-round accuracy at all (e.g. zero-shot): their final mean accuracy, shown as a level line. */
  levels: { method: MethodInfo; accuracy: number }[];
  /** Final accuracy per client, mean over the seeds that have the client. */
  clients: { method: MethodInfo; client: number; accuracy: number; seeds: number }[];
  /** Communication and time per method, means over rounds and seeds (rounds 0 when the method has none). */
  cost: { method: MethodInfo; rounds: number; bytesUpPerRound: number; bytesDownPerRound: number; wallSeconds: number }[];
  /** File-name stem, e.g. 'caltech101-rn50-16shot', unique within the report. */
  stem: string;
}

export interface Summary {
  methods: MethodInfo[];
  datasets: DatasetInfo[];
  groups: TableGroup[];
  panels: Panel[];
}

export const entryKey = (method: string, dataset: string): string => `${method}\u0000${dataset}`;

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Population standard deviation (divides by n, numpy's default); 0 for a single value. */
export function populationStd(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / xs.length);
}

/** Accuracy in [0, 1] as the percent text the tables show, 2 decimals. */
export const percent = (x: number): string => (x * 100).toFixed(2);

/** Groups and aggregates the cells of a results file. */
export function summarize(results: ResultsFile): Summary {
  const methods = firstAppearance(results.cells, (c) => c.method, (c, index) => ({ id: c.method, label: c.methodLabel, index }));
  const datasets = firstAppearance(results.cells, (c) => c.dataset, (c) => ({ id: c.dataset, label: c.datasetLabel }));
  const methodById = new Map(methods.map((m) => [m.id, m]));
  const datasetById = new Map(datasets.map((d) => [d.id, d]));

  const groups: TableGroup[] = [];
  for (const cells of groupBy(results.cells, (c) => [c.backbone, c.shots, c.scoring].join('\u0000')).values()) {
    const { backbone, shots, scoring } = cells[0];
    const groupMethods = methods.filter((m) => cells.some((c) => c.method === m.id));
    const groupDatasets = datasets.filter((d) => cells.some((c) => c.dataset === d.id));
    const entries = new Map<string, TableEntry>();
    for (const [key, entryCells] of groupBy(cells, (c) => entryKey(c.method, c.dataset))) {
      const sorted = [...entryCells].sort((a, b) => a.seed - b.seed);
      sorted.forEach((c, i) => {
        if (i > 0 && c.seed === sorted[i - 1].seed) {
          throw new Error(`cells ${JSON.stringify(sorted[i - 1].id)} and ${JSON.stringify(c.id)} are the same seed of the same entry`);
        }
      });
      const perSeed = sorted.map((c) => c.meanAccuracy);
      entries.set(key, {
        method: sorted[0].method,
        dataset: sorted[0].dataset,
        seeds: sorted.map((c) => c.seed),
        mean: mean(perSeed),
        std: populationStd(perSeed),
        clientSpread: mean(sorted.map((c) => c.stdAccuracy)),
        best: false,
        leastSpread: false,
      });
    }
    for (const d of groupDatasets) {
      const column = [...entries.values()].filter((e) => e.dataset === d.id);
      const top = Math.max(...column.map((e) => Number(percent(e.mean))));
      const least = Math.min(...column.map((e) => Number(percent(e.clientSpread))));
      for (const e of column) {
        e.best = Number(percent(e.mean)) === top;
        e.leastSpread = Number(percent(e.clientSpread)) === least;
      }
    }
    const maxSeeds = Math.max(...[...entries.values()].map((e) => e.seeds.length));
    groups.push({ backbone, shots, scoring, methods: groupMethods, datasets: groupDatasets, entries, maxSeeds });
  }

  const scorings = new Set(results.cells.map((c) => c.scoring));
  const stems = new Set<string>();
  const panels: Panel[] = [];
  for (const cells of groupBy(results.cells, (c) => [c.dataset, c.backbone, c.shots, c.scoring].join('\u0000')).values()) {
    const { dataset, backbone, shots, scoring } = cells[0];
    const byMethod = groupBy(cells, (c) => c.method);
    const panelMethods = methods.filter((m) => byMethod.has(m.id));
    const panel: Panel = {
      dataset: datasetById.get(dataset)!,
      backbone,
      shots,
      scoring,
      methods: panelMethods,
      curves: [],
      levels: [],
      clients: [],
      cost: [],
      stem: uniqueStem(
        [dataset, backbone, `${shots}shot`, ...(scorings.size > 1 ? [scoring] : [])].map(slug).join('-'),
        stems,
      ),
    };
    for (const m of panelMethods) {
      const seeds = byMethod.get(m.id)!;
      const method = methodById.get(m.id)!;
      // Accuracy per round, mean over the seeds that evaluated that round.
      const perRound = new Map<number, number[]>();
      for (const c of seeds) {
        for (const r of c.rounds) {
          if (r.meanAccuracy === undefined) continue;
          if (!perRound.has(r.round)) perRound.set(r.round, []);
          perRound.get(r.round)!.push(r.meanAccuracy);
        }
      }
      if (perRound.size === 0) panel.levels.push({ method, accuracy: mean(seeds.map((c) => c.meanAccuracy)) });
      for (const [round, accs] of [...perRound].sort((a, b) => a[0] - b[0])) {
        panel.curves.push({ method, round, accuracy: mean(accs), seeds: accs.length });
      }
      // Final accuracy per client, mean over seeds.
      const perClient = new Map<number, number[]>();
      for (const c of seeds) {
        for (const k of c.clients) {
          if (!perClient.has(k.id)) perClient.set(k.id, []);
          perClient.get(k.id)!.push(k.accuracy);
        }
      }
      for (const [client, accs] of [...perClient].sort((a, b) => a[0] - b[0])) {
        panel.clients.push({ method, client, accuracy: mean(accs), seeds: accs.length });
      }
      const rounds = seeds.flatMap((c) => c.rounds);
      panel.cost.push({
        method,
        rounds: mean(seeds.map((c) => c.rounds.length)),
        bytesUpPerRound: rounds.length ? mean(rounds.map((r) => r.bytesUp)) : 0,
        bytesDownPerRound: rounds.length ? mean(rounds.map((r) => r.bytesDown)) : 0,
        wallSeconds: mean(seeds.map((c) => c.wallSeconds)),
      });
    }
    panels.push(panel);
  }
  return { methods, datasets, groups, panels };
}

/** Lowercase file-name fragment: 'ViT-B/16' → 'vit-b-16'. */
export function slug(text: string | number): string {
  const s = String(text).toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-+|-+$/g, '');
  return s || 'x';
}

function uniqueStem(stem: string, taken: Set<string>): string {
  let s = stem;
  for (let i = 2; taken.has(s); i++) s = `${stem}-${i}`;
  taken.add(s);
  return s;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (!out.has(k)) out.set(k, []);
    out.get(k)!.push(item);
  }
  return out;
}

function firstAppearance<T>(cells: readonly CellResult[], key: (c: CellResult) => string, make: (c: CellResult, index: number) => T): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const c of cells) {
    const k = key(c);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(make(c, out.length));
  }
  return out;
}
