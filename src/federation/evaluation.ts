// A client's accuracy on its own images. By default logits are scored over
// every class of the dataset, as the published protocol does (a client's
// images compete against classes it never holds); 'client-classes' scores
// over the client's own classes only, an easier task that every output
// labels as such.

import { normalizeRows } from '../clip/similarity.js';
import type { FeatureSet } from './client-data.js';
import type { PromptCompute } from './local-training.js';
import type { PersonalLogits } from './method.js';

export type Scoring = 'all-classes' | 'client-classes';
export const SCORINGS: readonly Scoring[] = ['all-classes', 'client-classes'];

/** Normalised text features [C, E] of every class under `context`. */
export async function classTextFeatures(compute: PromptCompute, context: Float32Array): Promise<Float32Array> {
  const embeds = await compute.model.encodeTextBatch(compute.prompt.textBatch(context));
  return normalizeRows(embeds);
}

/** exp(logit_scale) · cos(f(x), w_c) for every image of `set` [n, C], plus the client's personal logits. */
export function predictLogits(set: FeatureSet, texts: Float32Array, logitScale: number, personal?: PersonalLogits): Float32Array {
  const E = set.embedDim;
  const C = texts.length / E;
  const images = normalizeRows({ shape: [set.count, E], data: set.embeds });
  const logits = personal ? personal.logits(set) : new Float32Array(set.count * C);
  for (let i = 0; i < set.count; i++) {
    for (let c = 0; c < C; c++) {
      let dot = 0;
      for (let k = 0; k < E; k++) dot += images[i * E + k] * texts[c * E + k];
      logits[i * C + c] += logitScale * dot;
    }
  }
  return logits;
}

/** Fraction of rows whose highest logit (among `classes` when scoring over the client's classes) is the label. */
export function accuracy(logits: Float32Array, labels: Int32Array, scoring: Scoring, classes: readonly number[]): number {
  const n = labels.length;
  if (n === 0) return NaN;
  const C = logits.length / n;
  const candidates = scoring === 'all-classes' ? Array.from({ length: C }, (_, c) => c) : [...classes];
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = candidates[0];
    for (const c of candidates) if (logits[i * C + c] > logits[i * C + best]) best = c;
    if (best === labels[i]) correct++;
  }
  return correct / n;
}
