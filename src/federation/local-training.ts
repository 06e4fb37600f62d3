// The one training loop every prompt method shares: a client's local epochs
// of SGD on its prompt context, through the frozen text tower, on cached image
// features. A method changes only what it passes in — where the context
// starts, a penalty pulling it somewhere, personal logits (the visual memory's).

import type { ClipModel } from '../clip/model.js';
import { SeededRandom } from '../clip/random.js';
import type { CoopPrompt } from '../prompt/coop-prompt.js';
import { Sgd, type SgdOptions } from '../prompt/sgd.js';
import { selectRows, type ClientData } from './client-data.js';
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

export interface LocalTrainingOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly sgd: SgdOptions;
  /** Learning rate of each local epoch (the run's schedule, already evaluated). */
  readonly learningRates: readonly number[];
  /** Seeds the shuffling and the choice of augmented view: (seed, round, client) makes a run reproducible in any order. */
  readonly seed: number;
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

/** Trains a copy of `start` on the client's images; `start` is left as it is. */
export async function trainLocally(compute: PromptCompute, data: ClientData, start: Float32Array, options: LocalTrainingOptions): Promise<LocalTrainingResult> {
  const { model, prompt } = compute;
  const context = start.slice();
  const images = data.train[0];
  if (images.count === 0) return { context, meanLoss: NaN, steps: 0 };
  if (options.learningRates.length !== options.epochs) throw new Error(`local training: ${options.learningRates.length} learning rates for ${options.epochs} epochs`);
  const C = prompt.classnames.length;
  const augmented = data.train.length - 1;
  const random = new SeededRandom(options.seed);
  const sgd = new Sgd(options.sgd);
  let lossSum = 0;
  let steps = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const order = shuffled(images.count, random);
    for (let start = 0; start < order.length; start += options.batchSize) {
      const rows = order.slice(start, start + options.batchSize);
      // Each image is seen in one of its augmented views (the plain one when there are none).
      const view = data.train[augmented > 0 ? 1 + random.int(0, augmented) : 0];
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
      sgd.step(context, grad, options.learningRates[epoch]);
      lossSum += loss;
      steps++;
    }
  }
  return { context, meanLoss: lossSum / steps, steps };
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
