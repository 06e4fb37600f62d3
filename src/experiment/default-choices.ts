// The default experiment's open settings (views per image, warm-up, the
// visual memory's query, keys and leave-one-out, Tip-Adapter's grid) and how
// each was chosen: on the clients' validation images, never on test. A
// record (configs/defaults/<world>.json, written by `npm run select:defaults`)
// lists every candidate with its validation accuracy — and its test accuracy,
// for the reader only — and which won. The default experiment takes its
// settings from the record rather than from values typed into code, and each
// run copies the record into results.json, so a table's defaults can always be
// traced to the validation scores that chose them.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../io/package-root.js';
import type { CellResult } from '../report/results.js';

export const DEFAULT_CHOICES_FORMAT = 'pfedprompt-default-choices/1';

/** A value set at a config path, e.g. ['data.views', 50]. */
const SettingsSchema = z.record(z.unknown()).refine((s) => Object.keys(s).length > 0, 'a candidate sets at least one field');

const CandidateSchema = z.object({
  /** The fields this candidate sets, by config path ("data.views", "methodOptions.memory.query"). */
  settings: SettingsSchema,
  /** Methods (ids or variant names) of its run whose validation accuracy is averaged to score it. */
  scoredOn: z.array(z.string().min(1)).min(1),
  /** Mean over the scored methods of the mean over seeds of the mean over clients, in [0, 1]. */
  valAccuracy: z.number().min(0).max(1),
  /** The same on test images: shown beside, never used to choose. */
  testAccuracy: z.number().min(0).max(1),
  seeds: z.array(z.number().int()).min(1),
  /** Validation accuracy per seed (in the order of `seeds`): what the rule below compares candidates on. */
  valBySeed: z.array(z.number().min(0).max(1)).min(1),
}).strict().refine((c) => c.valBySeed.length === c.seeds.length, 'valBySeed needs one value per seed');

const ChoiceSchema = z.object({
  /** What is chosen, in words. */
  name: z.string().min(1),
  candidates: z.array(CandidateSchema).min(1),
  /** Index of the winner in `candidates` by chooseOnValidation's rule. */
  chosen: z.number().int().nonnegative(),
}).strict();

const RecordSchema = z.object({
  format: z.literal(DEFAULT_CHOICES_FORMAT),
  world: z.string().min(1),
  /** The command that measured it, and the code it ran. */
  command: z.string().min(1),
  code: z.object({ version: z.string(), commit: z.string().optional() }).strict(),
  createdAt: z.string().min(1),
  choices: z.array(ChoiceSchema),
}).strict();

export type DefaultCandidate = z.infer<typeof CandidateSchema>;
export type DefaultChoice = z.infer<typeof ChoiceSchema>;
export type DefaultChoices = z.infer<typeof RecordSchema>;

export const DEFAULT_CHOICES_DIR = path.join(PACKAGE_ROOT, 'configs', 'defaults');

export function defaultChoicesFile(world: string): string {
  return path.join(DEFAULT_CHOICES_DIR, `${world}.json`);
}

/**
 * The rule: the first candidate is the reference (the paper's or the field's setting); another replaces it only
 * when its validation accuracy beats the reference's by more than one standard error of their per-seed difference
 * (paired: both ran on the same seeds), and of those the highest mean wins. So a default departs from the paper only
 * on evidence larger than the seed-to-seed noise, and never because of test accuracy, which is not read. With a
 * single seed there is no spread to measure and the higher mean wins.
 */
export function chooseOnValidation(candidates: readonly Pick<DefaultCandidate, 'valAccuracy' | 'valBySeed'>[]): number {
  if (candidates.length === 0) throw new Error('no candidates to choose from');
  const reference = candidates[0].valBySeed;
  let best = 0;
  candidates.forEach((c, i) => {
    if (i === 0 || c.valAccuracy <= candidates[best].valAccuracy) return;
    if (c.valBySeed.length !== reference.length) throw new Error(`candidate ${i} was scored on ${c.valBySeed.length} seeds, the reference on ${reference.length}`);
    const gains = c.valBySeed.map((v, s) => v - reference[s]);
    const gain = gains.reduce((a, b) => a + b, 0) / gains.length;
    const n = gains.length;
    const standardError = n < 2 ? 0 : Math.sqrt(gains.reduce((a, g) => a + (g - gain) ** 2, 0) / (n - 1) / n);
    if (gain > standardError) best = i;
  });
  return best;
}

/**
 * A candidate's score from the cells of its run: for each scored method, the
 * mean over seeds of its cells' mean client accuracy; then the mean over methods.
 * Every scored method must have a cell with validation accuracy in every seed.
 */
export function scoreCandidate(cells: readonly CellResult[], scoredOn: readonly string[], settings: Record<string, unknown>): DefaultCandidate {
  const seeds = [...new Set(cells.map((c) => c.seed))].sort((a, b) => a - b);
  if (seeds.length === 0) throw new Error('no cells to score');
  const cellOf = (method: string, seed: number): CellResult => {
    const cell = cells.find((c) => c.method === method && c.seed === seed);
    if (cell?.meanValAccuracy === undefined) throw new Error(`cannot score ${JSON.stringify(settings)}: method "${method}" has no validation accuracy for seed ${seed}`);
    return cell;
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const valBySeed = seeds.map((seed) => mean(scoredOn.map((method) => cellOf(method, seed).meanValAccuracy!)));
  const testBySeed = seeds.map((seed) => mean(scoredOn.map((method) => cellOf(method, seed).meanAccuracy)));
  return { settings, scoredOn: [...scoredOn], valAccuracy: mean(valBySeed), testAccuracy: mean(testBySeed), seeds, valBySeed };
}

/** Validates a record: its shape, and that each `chosen` is the one validation picks (a hand-edited default fails here). */
export function parseDefaultChoices(value: unknown, source: string): DefaultChoices {
  const parsed = RecordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  for (const [i, choice] of parsed.data.choices.entries()) {
    const winner = chooseOnValidation(choice.candidates);
    if (choice.chosen !== winner) {
      throw new Error(`${source}: choices.${i} ("${choice.name}") records candidate ${choice.chosen} as chosen, but candidate ${winner} has the highest validation accuracy`);
    }
  }
  return parsed.data;
}

/** The record for a world, or undefined when none was measured for it. */
export function readDefaultChoices(world: string, file = defaultChoicesFile(world)): DefaultChoices | undefined {
  if (!existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: not JSON (${(error as Error).message})`);
  }
  const record = parseDefaultChoices(json, file);
  if (record.world !== world) throw new Error(`${file}: recorded for world "${record.world}", read for "${world}"`);
  return record;
}

/** The winners' settings, as config path → value, in the record's order (a later choice overrides an earlier one's field). */
export function chosenSettings(record: DefaultChoices): Array<[string, unknown]> {
  return record.choices.flatMap((choice) => Object.entries(choice.candidates[choice.chosen].settings));
}

/** What results.json records of a run's defaults: the record, and the chosen settings a flag or config replaced. */
export interface DefaultsOfRun {
  readonly choices: DefaultChoices;
  /** Config paths whose chosen value this run does not use. */
  readonly overridden: string[];
}

/** The record a config carries (the default experiment's), checked, with the settings the run overrode; undefined without one. */
export function defaultsOfRun(config: { readonly defaultChoices?: Record<string, unknown> }): DefaultsOfRun | undefined {
  if (!config.defaultChoices) return undefined;
  const choices = parseDefaultChoices(config.defaultChoices, 'config.defaultChoices');
  const overridden = chosenSettings(choices).filter(([key, value]) => JSON.stringify(valueAt(config, key)) !== JSON.stringify(value)).map(([key]) => key);
  return { choices, overridden: [...new Set(overridden)] };
}

/** The value at a config path ("methodOptions.memory.query"), or undefined. */
export function valueAt(config: object, key: string): unknown {
  return key.split('.').reduce<unknown>((holder, part) => (holder as Record<string, unknown> | undefined)?.[part], config);
}
