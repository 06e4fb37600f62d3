// CLIP's contrastive pre-training step as one ONNX graph: both towers with
// every weight a graph input (GraphWeights' `asInputs`), the symmetric
// cross-entropy of the scaled cosine logits, and the gradient of that loss
// with respect to every weight and to the token embeddings the text tower
// was fed (the host scatters those into token_embedding's rows).
//
// Targets may have several positives per row: a caption such as "a red
// shape" is true of every red image in the batch, so `targets_i2t` [B, B]
// holds, per image, its true captions weighted 1/count/B, and `targets_t2i`
// the same per caption over images. With one positive per row (the diagonal)
// this is CLIP's loss exactly.

import { Graph, type Value } from '../onnx/graph.js';
import { gradients } from '../onnx/autodiff.js';
import * as op from '../onnx/ops.js';
import { GraphWeights, type WeightInput } from '../clip/layers.js';
import { textInputs, textTower } from '../clip/text-encoder.js';
import { visionTower } from '../clip/vision-transformer.js';
import type { ClipWeights } from '../clip/weights.js';

export const GRAD_PREFIX = 'grad:';

export interface ContrastiveStep {
  readonly graph: Graph;
  /** The weights the graph reads as inputs; `grad:<input name>` is each one's gradient output. */
  readonly parameters: readonly WeightInput[];
}

/**
 * Inputs: `pixel_values` [B, 3, R, R], the text tower's `prefix_embeds` [P, W],
 * `suffix_embeds` [B, S, W] and `eot_mask` [B, S], `targets_i2t` and
 * `targets_t2i` [B, B], and every weight. Outputs: `loss`, `logits` [B, B]
 * (images × texts), `grad:prefix_embeds`, `grad:suffix_embeds` and a
 * `grad:<name>` per weight input.
 */
export function buildContrastiveStep(weights: ClipWeights): ContrastiveStep {
  if (weights.config.vision.kind !== 'vit') throw new Error('contrastive pre-training is implemented for ViT image towers only');
  const g = new Graph('clip_contrastive_step');
  const w = new GraphWeights(g, weights, { asInputs: true });
  const R = weights.config.vision.imageSize;
  const pixels = g.input('pixel_values', ['batch', 3, R, R]);
  const text = textInputs(g, weights.config.text.width);
  const i2t = g.input('targets_i2t', ['batch', 'batch']);
  const t2i = g.input('targets_t2i', ['batch', 'batch']);

  const images = visionTower(w, pixels).embeds;
  const texts = textTower(w, text);
  const normalize = (x: Value): Value => op.div(g, x, op.sqrt(g, op.reduceSum(g, op.mul(g, x, x), [-1], true)));
  const scale = op.exp(g, w.raw('logit_scale', []));
  const logits = op.mul(g, op.matmul(g, normalize(images), op.transposeLast(g, normalize(texts))), scale);
  const imageToText = op.reduceSum(g, op.mul(g, i2t, op.logSoftmax(g, logits, -1)), [0, 1], false);
  const textToImage = op.reduceSum(g, op.mul(g, t2i, op.logSoftmax(g, logits, 0)), [0, 1], false);
  const loss = op.mul(g, op.add(g, imageToText, textToImage), g.scalar(-0.5));

  const wrt = [text.prefix, text.suffix, ...w.inputs.map((p) => p.input)];
  const grads = gradients(g, loss, wrt);
  g.output(loss, 'loss');
  g.output(logits, 'logits');
  wrt.forEach((v, i) => g.output(grads[i], `${GRAD_PREFIX}${v.name}`));
  return { graph: g, parameters: w.inputs };
}
