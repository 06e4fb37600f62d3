// The results file an experiment run writes (`results.json`): its types, and a
// reader that checks a file against them before anything is drawn from it, so
// a malformed file fails with the file and the offending field named rather
// than as a NaN in a table.
import { readFile } from 'node:fs/promises';

export const RESULTS_FORMAT = 'pfedprompt-results/1';

import type { DefaultsOfRun } from '../experiment/default-choices.js';
import { SCORINGS, type Scoring } from '../federation/evaluation.js';

/** How test logits were scored: over every class of the dataset, or over the client's own classes only. */
export type { Scoring };

export interface ResultsFile {
  format: typeof RESULTS_FORMAT;
  /** Package version, and the git commit when known. */
  code: { version: string; commit?: string };
  /** ISO time the file was written. */
  createdAt: string;
  /** The default experiment's open settings as chosen on validation images, and any a flag overrode (src/experiment/default-choices.ts). */
  defaults?: DefaultsOfRun;
  cells: CellResult[];
}

export interface ClientResult {
  id: number;
  /** Accuracy on the client's test images, in [0, 1]. */
  accuracy: number;
  testCount: number;
  /** Accuracy on the client's validation images under the same prediction (absent without validation images): what defaults are chosen on. */
  valAccuracy?: number;
  classes: number[];
}

export interface RoundResult {
  round: number;
  /** Mean accuracy over clients after this round, in [0, 1], when it was evaluated. */
  meanAccuracy?: number;
  trainLoss?: number;
  bytesUp: number;
  bytesDown: number;
  seconds: number;
}

export interface CellResult {
  /** Stable key, e.g. 'caltech101/rn50/16shot/pfedprompt/seed1'. */
  id: string;
  /** Method id: 'zeroshot' | 'local-coop' | 'promptfl' | 'promptfl-ft' | 'promptper' | 'promptprox' | 'promptamp' | 'pfedprompt' | ... */
  method: string;
  /** Display name: 'zero-shot CLIP', 'PromptFL+FT', 'pFedPrompt', ... */
  methodLabel: string;
  /** Dataset id, e.g. 'caltech101'. */
  dataset: string;
  /** Display name, e.g. 'Caltech101'. */
  datasetLabel: string;
  /** E.g. 'RN50', 'ViT-B/16', or a model folder name. */
  backbone: string;
  shots: number;
  seed: number;
  scoring: Scoring;
  /** The full config of this cell. */
  config: Record<string, unknown>;
  clients: ClientResult[];
  /** Mean over clients, in [0, 1]. */
  meanAccuracy: number;
  /** Population standard deviation over clients. */
  stdAccuracy: number;
  /** Mean over clients of their validation accuracy, when clients have validation images. */
  meanValAccuracy?: number;
  rounds: RoundResult[];
  wallSeconds: number;
}

/** Reads and validates a results file; errors name the file and the offending field. */
export async function readResults(file: string): Promise<ResultsFile> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${file}: cannot read the results (${err.code ?? err.message})`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return validateResults(json, file);
}

/**
 * Checks the structure and ranges of a parsed results object and returns it
 * typed. `null` in the optional per-round fields (what JSON.stringify makes of
 * a NaN loss) is read as absent. Unknown extra fields are kept.
 */
export function validateResults(json: unknown, source: string): ResultsFile {
  const fail = (field: string, message: string): never => {
    throw new Error(`${source}: ${field}: ${message}`);
  };
  const got = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value));
  const object = (value: unknown, field: string): Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : fail(field, `expected an object, got ${got(value)}`);
  const list = (value: unknown, field: string): unknown[] => (Array.isArray(value) ? value : fail(field, `expected a list, got ${got(value)}`));
  const string = (value: unknown, field: string): string =>
    typeof value === 'string' && value.length > 0 ? value : fail(field, `expected a non-empty string, got ${got(value)}`);
  const number = (value: unknown, field: string, min = -Infinity, max = Infinity): number =>
    typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max
      ? value
      : fail(field, `expected a number${rangeText(min, max)}, got ${got(value)}`);
  const integer = (value: unknown, field: string, min: number): number =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min ? value : fail(field, `expected an integer ≥ ${min}, got ${got(value)}`);

  const root = object(json, '(root)');
  if (root.format !== RESULTS_FORMAT) fail('format', `expected ${JSON.stringify(RESULTS_FORMAT)}, got ${got(root.format)}`);
  const code = object(root.code, 'code');
  string(code.version, 'code.version');
  if (code.commit !== undefined) string(code.commit, 'code.commit');
  string(root.createdAt, 'createdAt');
  if (Number.isNaN(Date.parse(root.createdAt as string))) fail('createdAt', `expected an ISO time, got ${got(root.createdAt)}`);

  const ids = new Map<string, number>();
  const slots = new Map<string, number>();
  list(root.cells, 'cells').forEach((value, c) => {
    const at = `cells[${c}]`;
    const cell = object(value, at);
    const id = string(cell.id, `${at}.id`);
    if (ids.has(id)) fail(`${at}.id`, `${JSON.stringify(id)} is already the id of cells[${ids.get(id)}]`);
    ids.set(id, c);
    for (const key of ['method', 'methodLabel', 'dataset', 'datasetLabel', 'backbone'] as const) string(cell[key], `${at}.${key}`);
    integer(cell.shots, `${at}.shots`, 0);
    integer(cell.seed, `${at}.seed`, 0);
    if (!(SCORINGS as readonly unknown[]).includes(cell.scoring)) {
      fail(`${at}.scoring`, `expected ${SCORINGS.map((s) => `"${s}"`).join(' or ')}, got ${got(cell.scoring)}`);
    }
    object(cell.config, `${at}.config`);
    const clientIds = new Set<number>();
    list(cell.clients, `${at}.clients`).forEach((v, k) => {
      const cat = `${at}.clients[${k}]`;
      const client = object(v, cat);
      const clientId = integer(client.id, `${cat}.id`, 0);
      if (clientIds.has(clientId)) fail(`${cat}.id`, `client ${clientId} appears twice`);
      clientIds.add(clientId);
      number(client.accuracy, `${cat}.accuracy`, 0, 1);
      integer(client.testCount, `${cat}.testCount`, 0);
      if (client.valAccuracy !== undefined) number(client.valAccuracy, `${cat}.valAccuracy`, 0, 1);
      list(client.classes, `${cat}.classes`).forEach((cls, j) => integer(cls, `${cat}.classes[${j}]`, 0));
    });
    number(cell.meanAccuracy, `${at}.meanAccuracy`, 0, 1);
    number(cell.stdAccuracy, `${at}.stdAccuracy`, 0);
    if (cell.meanValAccuracy !== undefined) number(cell.meanValAccuracy, `${at}.meanValAccuracy`, 0, 1);
    list(cell.rounds, `${at}.rounds`).forEach((v, r) => {
      const rat = `${at}.rounds[${r}]`;
      const round = object(v, rat);
      integer(round.round, `${rat}.round`, 0);
      for (const key of ['meanAccuracy', 'trainLoss'] as const) {
        if (round[key] === null) delete round[key];
      }
      if (round.meanAccuracy !== undefined) number(round.meanAccuracy, `${rat}.meanAccuracy`, 0, 1);
      if (round.trainLoss !== undefined) number(round.trainLoss, `${rat}.trainLoss`);
      number(round.bytesUp, `${rat}.bytesUp`, 0);
      number(round.bytesDown, `${rat}.bytesDown`, 0);
      number(round.seconds, `${rat}.seconds`, 0);
    });
    number(cell.wallSeconds, `${at}.wallSeconds`, 0);
    // Two cells for the same seed of the same entry would be averaged as if they were two seeds.
    const slot = [cell.method, cell.dataset, cell.backbone, cell.shots, cell.scoring, cell.seed].join('\u0000');
    if (slots.has(slot)) {
      fail(at, `same method, dataset, backbone, shots, scoring and seed as cells[${slots.get(slot)}] (${JSON.stringify(cell.id)})`);
    }
    slots.set(slot, c);
  });
  return json as ResultsFile;
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return ` ≥ ${min}`;
  return ` in [${min}, ${max}]`;
}
