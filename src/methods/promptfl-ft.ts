// PromptFL+FT: PromptFL, then each client fine-tunes the final global prompt
// on its own images before testing (personalisation by local adaptation).
// Curves per round show the global prompt; the final test uses each
// client's fine-tuned one.
//
// How to fine-tune is an open choice: the field's short fine-tunes run at a
// constant low rate, on a short cosine from a fraction of the peak rate, or
// on the run's own schedule carried on (which, after a full cosine, is
// almost no fine-tuning), for a few epochs. Each client fine-tunes once per
// candidate schedule and keeps every result; the clients score the
// candidates on their validation images and the server keeps the best mean
// (never test images); the test then uses each client's copy of that
// candidate.
//
// Trains: the shared context, then private fine-tuned copies. Uploads: the
// context during the rounds; nothing of the fine-tuned copies. Stays on the
// client: its fine-tuned contexts and its images.

import { contextOf, type Choice, type ClientRuntime, type Method, type Tensors } from '../federation/method.js';
import { learningRate, type SgdOptions } from '../prompt/sgd.js';
import { PROMPTFL_DEFAULTS, promptFl, type PromptFlOptions } from './promptfl.js';

/** The learning rates of a fine-tune. */
export const FINE_TUNE_SHAPES = ['constant', 'cosine', 'continued'] as const;
export type FineTuneShape = (typeof FINE_TUNE_SHAPES)[number];

export interface FineTuneSchedule {
  /** Fine-tuning epochs (default: the run's local epochs). */
  readonly epochs?: number;
  /**
   * 'constant': lrScale × the peak rate throughout; 'cosine': a fresh cosine from lrScale × the peak
   * rate to 0 over the epochs; 'continued': the run's schedule carried on past its end as PyTorch's
   * CosineAnnealingLR carries on (rising again from about 0: 2e-6, 0, 2e-6, 8e-6, 2e-5 after the
   * default run), lrScale ignored.
   */
  readonly shape: FineTuneShape;
  readonly lrScale: number;
}

/** Candidates, the first of which is used where no client has validation images. */
export const DEFAULT_FINE_TUNES: readonly FineTuneSchedule[] = [
  { shape: 'constant', lrScale: 0.1 },
  { shape: 'cosine', lrScale: 0.1 },
  { shape: 'constant', lrScale: 0.01 },
  { shape: 'constant', lrScale: 0.1, epochs: 1 },
  { shape: 'continued', lrScale: 1 },
  { shape: 'cosine', lrScale: 1 },
];

export interface PromptFlFtOptions extends PromptFlOptions {
  /** Default epochs of a candidate (default: the run's local epochs). */
  readonly fineTuneEpochs?: number;
  /** Candidate schedules, scored on validation images (default DEFAULT_FINE_TUNES). */
  readonly fineTunes?: readonly FineTuneSchedule[];
}

/** The fine-tune's learning rate per epoch, after a run of `runEpochs` epochs with optimiser `sgd` (its lr the peak rate). */
export function fineTuneRates(schedule: FineTuneSchedule, epochs: number, sgd: SgdOptions, runEpochs: number): number[] {
  if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`fine-tune epochs must be a non-negative integer, got ${epochs}`);
  if (!(schedule.lrScale >= 0)) throw new Error(`fine-tune lrScale must be non-negative, got ${schedule.lrScale}`);
  const lr = schedule.lrScale * sgd.lr;
  switch (schedule.shape) {
    case 'constant': return Array.from({ length: epochs }, () => lr);
    case 'cosine': return Array.from({ length: epochs }, (_, e) => 0.5 * lr * (1 + Math.cos((Math.PI * e) / epochs)));
    case 'continued': return Array.from({ length: epochs }, (_, e) => learningRate(sgd, runEpochs + e, runEpochs));
  }
  throw new Error(`unknown fine-tune shape "${String(schedule.shape)}" (known: ${FINE_TUNE_SHAPES.join(', ')})`);
}

/** Candidate k as the clients score it: numbers only (shape by its index in FINE_TUNE_SHAPES). */
function choiceOf(schedule: FineTuneSchedule, k: number, defaultEpochs: number | undefined): Choice {
  const epochs = schedule.epochs ?? defaultEpochs; // absent: the run's local epochs
  return { candidate: k, ...(epochs !== undefined ? { epochs } : {}), shape: FINE_TUNE_SHAPES.indexOf(schedule.shape), lrScale: schedule.lrScale };
}

const tunedName = (k: number): string => `context/fine-tune-${k}`;

export function promptFlFineTuned(options: PromptFlFtOptions = PROMPTFL_DEFAULTS): Method {
  const base = promptFl(options);
  const fineTunes = options.fineTunes ?? DEFAULT_FINE_TUNES;
  if (fineTunes.length === 0) throw new Error('PromptFL+FT: fineTunes must list at least one schedule');
  for (const f of fineTunes) if (!FINE_TUNE_SHAPES.includes(f.shape)) throw new Error(`PromptFL+FT: unknown fine-tune shape "${String(f.shape)}" (known: ${FINE_TUNE_SHAPES.join(', ')})`);
  const candidates = fineTunes.map((f, k) => choiceOf(f, k, options.fineTuneEpochs));
  const rates = (runtime: ClientRuntime, schedule: FineTuneSchedule): number[] => {
    const run = runtime.schedule();
    return fineTuneRates(schedule, schedule.epochs ?? options.fineTuneEpochs ?? run.epochs, run.sgd, runtime.setup.rounds * run.epochs);
  };
  return {
    ...base,
    id: 'promptfl-ft',
    label: 'PromptFL+FT',
    trains: 'the shared context, then private fine-tuned copies on each client (one per candidate schedule)',
    uploads: 'the locally trained context (never a fine-tuned copy)',
    staysOnClient: 'its fine-tuned contexts and its images',
    choosesOnValidation: 'the fine-tuning schedule',
    choices: { record: 'fineTuneSelection', candidates },
    client: {
      ...base.client,
      async finish(runtime, download) {
        const start = contextOf(download, 'context', runtime.setup);
        const tuned: Record<string, Float32Array> = {};
        for (const [k, schedule] of fineTunes.entries()) {
          tuned[tunedName(k)] = (await runtime.train(start, { learningRates: rates(runtime, schedule) })).context;
        }
        return tuned;
      },
      predictor: (runtime, download, personal, choice) => ({ context: tunedContext(runtime, download, personal, choice, fineTunes.length) }),
    },
  };
}

/** The copy fine-tuned with the candidate `choice` names (the first where none is named); the global prompt before the finishing step. */
function tunedContext(runtime: ClientRuntime, download: Tensors, personal: Tensors | undefined, choice: Choice | undefined, count: number): Float32Array {
  if (!personal || Object.keys(personal).length === 0) return contextOf(download, 'context', runtime.setup);
  const k = choice?.candidate ?? 0;
  if (!Number.isInteger(k) || k < 0 || k >= count) throw new Error(`PromptFL+FT: no fine-tune candidate ${k} (there are ${count})`);
  return contextOf(personal, tunedName(k), runtime.setup);
}
