// The tables of the report as text: Markdown laid out like the paper's
// (methods down, datasets across, mean ± std over seeds, best in bold), the
// same for a terminal, and a flat CSV of every (cell, client).
import Table from 'cli-table3';
import { stringify } from 'csv-stringify/sync';

import { entryKey, percent, summarize, type Summary, type TableEntry, type TableGroup } from './aggregate.js';
import type { ResultsFile, Scoring } from './results.js';

/** The sentence every output carries saying how test logits were scored. */
export function scoringText(scoring: Scoring): string {
  return scoring === 'all-classes'
    ? 'logits over all C classes of the dataset'
    : "logits over each client's own classes only";
}

export const scoringLine = (scoring: Scoring): string => `Scoring: ${scoringText(scoring)}.`;

export function groupTitle(g: Pick<TableGroup, 'backbone' | 'shots' | 'scoring'>): string {
  return `${g.backbone} · ${g.shots}-shot · ${g.scoring} scoring`;
}

export function seedsText(g: TableGroup): string {
  const seeds = [...new Set([...g.entries.values()].flatMap((e) => e.seeds))].sort((a, b) => a - b);
  return `${seeds.length} seed${seeds.length === 1 ? '' : 's'} (${seeds.join(', ')})`;
}

/** The body of an accuracy entry: '71.23 ± 0.45', with '(n=1)' when it has fewer seeds than the group's most. */
export function accuracyText(e: TableEntry, g: TableGroup): string {
  return `${percent(e.mean)} ± ${percent(e.std)}${fewerSeeds(e, g)}`;
}

export function spreadText(e: TableEntry, g: TableGroup): string {
  return `${percent(e.clientSpread)}${fewerSeeds(e, g)}`;
}

const fewerSeeds = (e: TableEntry, g: TableGroup): string => (e.seeds.length < g.maxSeeds ? ` (n=${e.seeds.length})` : '');

export const ACCURACY_CAPTION =
  'Accuracy (%): mean ± std over seeds of the per-seed mean accuracy over clients (std: population std over seeds).';
export const SPREAD_CAPTION =
  'Spread between clients (%): mean over seeds of the population std of accuracy over clients (lower is more uniform).';

/** One Markdown section per (backbone, shots, scoring): the accuracy table and the client-spread table. */
export function markdownTables(results: ResultsFile, summary: Summary = summarize(results)): string {
  const md = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const out: string[] = [];
  for (const g of summary.groups) {
    const header = `| Method | ${g.datasets.map((d) => md(d.label)).join(' | ')} |`;
    const rule = `|:---|${g.datasets.map(() => '---:').join('|')}|`;
    const table = (cell: (e: TableEntry) => string): string[] => [
      header,
      rule,
      ...g.methods.map((m) => {
        const row = g.datasets.map((d) => {
          const e = g.entries.get(entryKey(m.id, d.id));
          return e ? cell(e) : '—';
        });
        return `| ${md(m.label)} | ${row.join(' | ')} |`;
      }),
    ];
    out.push(
      `## ${md(groupTitle(g))}`,
      '',
      `${ACCURACY_CAPTION} ${seedsText(g)}; best per column in bold.`,
      '',
      ...table((e) => (e.best ? `**${accuracyText(e, g)}**` : accuracyText(e, g))),
      '',
      scoringLine(g.scoring),
      '',
      `${SPREAD_CAPTION} Lowest per column in bold.`,
      '',
      ...table((e) => (e.leastSpread ? `**${spreadText(e, g)}**` : spreadText(e, g))),
      '',
      scoringLine(g.scoring),
      '',
    );
  }
  const chosen = defaultsRows(results);
  if (chosen.length > 0) {
    out.push('## Settings chosen on validation', '', DEFAULTS_CAPTION, '', '| Choice | Chosen | Candidates |', '|:---|:---|:---|',
      ...chosen.map((r) => `| ${md(r.choice)} | ${md(r.chosen)}${r.overridden ? ' (overridden in this run)' : ''} | ${md(r.candidates)} |`), '');
  }
  return out.join('\n');
}

export const DEFAULTS_CAPTION =
  'Settings of this run chosen on the clients\' validation images, never on test: each candidate\'s validation accuracy (%), mean over the methods it was scored on and over seeds; the chosen one first.';

/** A row per choice recorded in results.json (the default experiment's): what was chosen, from what, and whether a flag overrode it. */
export function defaultsRows(results: ResultsFile): Array<{ choice: string; chosen: string; candidates: string; overridden: boolean }> {
  const defaults = results.defaults;
  if (!defaults) return [];
  const settingsText = (settings: Record<string, unknown>): string => Object.entries(settings).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');
  return defaults.choices.choices.map((c) => {
    const winner = c.candidates[c.chosen];
    const others = c.candidates.filter((_, i) => i !== c.chosen);
    return {
      choice: c.name,
      chosen: settingsText(winner.settings),
      candidates: [winner, ...others].map((x) => `${Object.values(x.settings).map((v) => JSON.stringify(v)).join(' / ')}: ${(100 * x.valAccuracy).toFixed(2)}`).join('; '),
      overridden: Object.keys(winner.settings).some((k) => defaults.overridden.includes(k)),
    };
  });
}

export interface SummaryTableOptions {
  /** Bold the best entry with ANSI escapes instead of marking it with '*' (default false). */
  color?: boolean;
}

/** The accuracy tables for a terminal, one per (backbone, shots, scoring), each followed by its scoring line. */
export function summaryTable(results: ResultsFile, options: SummaryTableOptions = {}, summary: Summary = summarize(results)): string {
  const color = options.color ?? false;
  const out: string[] = [];
  for (const g of summary.groups) {
    const table = new Table({
      head: ['Method', ...g.datasets.map((d) => d.label)],
      colAligns: ['left', ...g.datasets.map(() => 'right' as const)],
      style: color ? { head: ['cyan'] } : { head: [], border: [] },
      // No rule between method rows: the table stays as compact as the paper's.
      chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    });
    for (const m of g.methods) {
      table.push([
        m.label,
        ...g.datasets.map((d) => {
          const e = g.entries.get(entryKey(m.id, d.id));
          if (!e) return '—';
          const text = accuracyText(e, g);
          if (!e.best) return color ? text : `${text}  `;
          return color ? `\u001b[1m${text}\u001b[22m` : `${text} *`;
        }),
      ]);
    }
    out.push(
      `${groupTitle(g)} — accuracy (%), mean ± std over ${seedsText(g)}${color ? ', best in bold' : ', * best'}`,
      table.toString(),
      scoringLine(g.scoring),
      '',
    );
  }
  return out.join('\n');
}

export const CSV_COLUMNS = [
  'cell_id',
  'method',
  'method_label',
  'dataset',
  'dataset_label',
  'backbone',
  'shots',
  'seed',
  'scoring',
  'client_id',
  'client_accuracy',
  'client_test_count',
  'client_classes',
  'cell_mean_accuracy',
  'cell_std_accuracy',
  'rounds',
  'bytes_up_total',
  'bytes_down_total',
  'wall_seconds',
] as const;

/**
 * One row per (cell, client); a cell without clients gets one row with the
 * client columns empty. Accuracies are fractions in [0, 1] as in the results;
 * a client's classes are space-separated.
 */
export function resultsCsv(results: ResultsFile): string {
  const rows: (string | number)[][] = [];
  for (const c of results.cells) {
    const cell = [c.id, c.method, c.methodLabel, c.dataset, c.datasetLabel, c.backbone, c.shots, c.seed, c.scoring];
    const tail = [
      c.meanAccuracy,
      c.stdAccuracy,
      c.rounds.length,
      c.rounds.reduce((s, r) => s + r.bytesUp, 0),
      c.rounds.reduce((s, r) => s + r.bytesDown, 0),
      c.wallSeconds,
    ];
    if (c.clients.length === 0) rows.push([...cell, '', '', '', '', ...tail]);
    for (const k of c.clients) rows.push([...cell, k.id, k.accuracy, k.testCount, k.classes.join(' '), ...tail]);
  }
  return stringify(rows, { header: true, columns: [...CSV_COLUMNS], record_delimiter: 'unix' });
}
