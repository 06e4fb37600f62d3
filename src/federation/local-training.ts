// The one training loop every prompt method shares: a client's local epochs
// of SGD on its prompt context, through the frozen text tower, on cached image
// features. A method changes only what it passes in — where the context
// starts, a penalty pulling it somewhere, personal logits (the visual memory's).

import type { ClipModel } from '../clip/model.js';
import { SeededRandom } from '../clip/random.js';
import type { CoopPrompt } from '../prompt/coop-prompt.js';
import { Sgd, type SgdOptions } from '../prompt/sgd.js';
import { selectRows, type ClientData, type FeatureSet } from './client-data.js';
import type { PersonalLogits } from './method.js';

/** The frozen model and the prompt layout a client computes with. */
export interface PromptCompute {
  readonly model: ClipModel;
  readonly prompt: CoopPrompt;
}

/** An extra term of the local loss, e.g. FedProx's (μ/2)‖P − P_global‖². */
export interface Penalty {
  /** The term's value and its gradient with respect to the context. */
  (context: Float32Array): { readonly value: number; readonly grad: Float32Array };
}

/** How a client's local training runs: the run's settings evaluated for one round (or a finishing step). */
export interface TrainingSchedule {
  readonly epochs: number;
  readonly batchSize: number;
  readonly sgd: SgdOptions;
  /** Learning rate of each local epoch (the run's schedule, already evaluated). */
  readonly learningRates: readonly number[];
  /** Seeds the shuffling: (seed, round, client) makes a run reproducible in any order. */
  readonly seed: number;
  /** Index in the whole run of this schedule's first epoch (a round's epochs follow the last round's); picks each epoch's augmented view. Default 0. */
  readonly firstEpoch?: number;
  /** Seeds the order in which the client's epochs go through its augmented views: one seed for the whole run. Default `seed`. */
  readonly viewSeed?: number;
}

export interface LocalTrainingOptions extends TrainingSchedule {
  readonly penalty?: Penalty;
  /** Personal logits added to CLIP's during training (pFedPrompt's memory, when used in training). */
  readonly personal?: PersonalLogits;
}

export interface LocalTrainingResult {
  readonly context: Float32Array;
  /** Mean training loss (cross-entropy plus penalty) over the steps. */
  readonly meanLoss: number;
  readonly steps: number;
}

/** One mini-batch: rows of the client's training images, in the augmented view of this epoch. */
export interface TrainingBatch {
  /** The view the rows are read from (every row of a view is the same image as in the plain set). */
  readonly view: FeatureSet;
  readonly rows: readonly number[];
  readonly epoch: number;
  /** This epoch's learning rate. */
  readonly lr: number;
}

/**
 * The local loop every trained method shares: each epoch a seeded shuffle of
 * the client's training images, cut into batches, all read in the epoch's
 * augmented view (viewOfEpoch). `step` trains on a batch and returns its loss.
 * Returns the mean loss over the steps and their number.
 */
export async function forEachBatch(data: ClientData, schedule: TrainingSchedule, step: (batch: TrainingBatch) => Promise<number>): Promise<{ meanLoss: number; steps: number }> {
  const images = data.train[0];
  if (images.count === 0) return { meanLoss: NaN, steps: 0 };
  if (schedule.learningRates.length !== schedule.epochs) throw new Error(`local training: ${schedule.learningRates.length} learning rates for ${schedule.epochs} epochs`);
  const augmented = data.train.length - 1;
  const random = new SeededRandom(schedule.seed);
  let lossSum = 0;
  let steps = 0;
  for (let epoch = 0; epoch < schedule.epochs; epoch++) {
    const order = shuffled(images.count, random);
    const view = data.train[viewOfEpoch((schedule.firstEpoch ?? 0) + epoch, augmented, schedule.viewSeed ?? schedule.seed)];
    for (let start = 0; start < order.length; start += schedule.batchSize) {
      const rows = order.slice(start, start + schedule.batchSize);
      lossSum += await step({ view, rows, epoch, lr: schedule.learningRates[epoch] });
      steps++;
    }
  }
  return { meanLoss: lossSum / steps, steps };
}

/** Trains a copy of `start` on the client's images with CLIP's cross-entropy (plus options); `start` is left as it is. */
export async function trainLocally(compute: PromptCompute, data: ClientData, start: Float32Array, options: LocalTrainingOptions): Promise<LocalTrainingResult> {
  const { model, prompt } = compute;
  const context = start.slice();
  const C = prompt.classnames.length;
  const sgd = new Sgd(options.sgd);
  const { meanLoss, steps } = await forEachBatch(data, options, async ({ view, rows, lr }) => {
    const batch = selectRows(view, rows);
    const B = rows.length;
    const targets = new Float32Array(B * C);
    batch.labels.forEach((label, i) => (targets[i * C + label] = 1 / B));
    const bias = options.personal?.logits(view, rows);
    const result = await model.promptLoss(prompt.textBatch(context), batch.embeds, { shape: [B, C], data: targets },
      bias && { shape: [B, C], data: bias });
    const grad = prompt.contextGradient(result.prefixGrad.data, result.suffixGrad.data);
    let loss = result.loss;
    if (options.penalty) {
      const extra = options.penalty(context);
      loss += extra.value;
      for (let i = 0; i < grad.length; i++) grad[i] += extra.grad[i];
    }
    sgd.step(context, grad, lr);
    return loss;
  });
  return { context, meanLoss, steps };
}

/**
 * The augmented view (1 … V; 0, the plain images, when there are none) a
 * client reads its images in at epoch `epoch` of the run. Every cycle of V
 * epochs goes through every view once, in an order seeded per cycle: with one
 * view per epoch of the run each image is seen in each of its views exactly
 * once, as CoOp sees a fresh crop each epoch. One view index serves all of
 * an epoch's images, which loses nothing: the views of different images are
 * drawn independently of one another.
 */
export function viewOfEpoch(epoch: number, views: number, seed: number): number {
  if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`epoch must be a non-negative integer, got ${epoch}`);
  if (views === 0) return 0;
  const cycle = Math.floor(epoch / views);
  return 1 + shuffled(views, SeededRandom.forName(seed, `views/cycle${cycle}`))[epoch % views];
}

/** A seeded permutation of 0 … n−1 (Fisher–Yates). */
function shuffled(n: number, random: SeededRandom): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(0, i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
