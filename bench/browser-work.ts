// The work `npm run bench:browser` times, the same in a browser (onnxruntime-web, bundled
// into bench/browser-entry.ts) and in Node (onnxruntime-node): a node's local training step
// (ClipModel.promptLoss: the text tower over every class's prompt, the loss, its gradient
// to the context) for a CLIP whose weights are already in memory. Session start is the
// first step (graph built, session created, run once); the step is the median of the next.
// Inputs are seeded, so both runtimes see the same numbers; the loss is returned to check it.

import { ClipModel, type ClipRuntime, type TextBatch } from '../src/clip/model.js';
import { SeededRandom } from '../src/clip/random.js';
import type { ClipWeights } from '../src/clip/weights.js';

export interface StepWork {
  /** Classes (prompts through the text tower each step). */
  readonly classes: number;
  /** Learned context vectors (the shared prefix is [SOS] + these). */
  readonly context: number;
  /** Suffix positions per class: class name, period, end token, padding. */
  readonly suffix: number;
  readonly batch: number;
}

export interface StepTiming {
  readonly sessionStartMs: number;
  readonly stepsMs: number[];
  readonly loss: number;
}

export async function timeSteps(weights: ClipWeights, runtime: ClipRuntime, work: StepWork, steps: number): Promise<StepTiming> {
  const model = new ClipModel(weights, runtime);
  const W = model.config.text.width;
  const E = model.config.embedDim;
  const random = new SeededRandom(7);
  const P = 1 + work.context;
  const batch: TextBatch = {
    prefix: { shape: [P, W], data: random.normals(P * W, 0.02) },
    suffix: { shape: [work.classes, work.suffix, W], data: random.normals(work.classes * work.suffix * W, 0.02) },
    eotIndex: Int32Array.from({ length: work.classes }, (_, c) => 2 + (c % (work.suffix - 2))),
  };
  const images = { shape: [work.batch, E], data: random.normals(work.batch * E) };
  const targets = new Float32Array(work.batch * work.classes);
  for (let i = 0; i < work.batch; i++) targets[i * work.classes + (i % work.classes)] = 1 / work.batch;
  const step = () => model.promptLoss(batch, images, { shape: [work.batch, work.classes], data: targets });
  try {
    const start = performance.now();
    const first = await step();
    const sessionStartMs = performance.now() - start;
    const stepsMs: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      await step();
      stepsMs.push(performance.now() - t);
    }
    return { sessionStartMs, stepsMs, loss: first.loss };
  } finally {
    await model.release();
  }
}
