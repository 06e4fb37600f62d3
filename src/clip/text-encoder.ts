// CLIP's text tower as ONNX graphs that start from token embeddings, so that
// learned context vectors can be spliced in.
//
// Every prompt starts with the same tokens (the start token, and in CoOp the
// shared context), so the input is split into a `prefix` [P, W] common to all
// texts and a per-text `suffix` [C, S, W]. With the causal mask the prefix's
// hidden states do not depend on what follows, so they are computed once and
// every text's suffix attends to the prefix's keys and values. Sequences end
// at the last end-of-text token: nothing after it can reach it. Both cuts are
// exact, and they are where most of the speed comes from.

import { Graph, type Value } from '../onnx/graph.js';
import { gradients } from '../onnx/autodiff.js';
import * as op from '../onnx/ops.js';
import { GraphWeights, attend, mergeHeads, splitHeads } from './layers.js';
import type { ClipWeights } from './weights.js';
import { tensor } from './weights.js';

export const PREFIX = 'prefix_embeds';
export const SUFFIX = 'suffix_embeds';
export const EOT_MASK = 'eot_mask';

export interface TextInputs {
  readonly prefix: Value; // [P, W]
  readonly suffix: Value; // [C, S, W]
  readonly eotMask: Value; // [C, S], one-hot position of each text's end token in its suffix
}

export function textInputs(g: Graph, width: number): TextInputs {
  return {
    prefix: g.input(PREFIX, ['prefix', width]),
    suffix: g.input(SUFFIX, ['texts', 'suffix', width]),
    eotMask: g.input(EOT_MASK, ['texts', 'suffix']),
  };
}

/** Builds the text tower on `w`'s graph from its inputs to the projected end-of-text features [C, E]. */
export function textTower(w: GraphWeights, { prefix, suffix, eotMask }: TextInputs): Value {
  const { g, weights } = w;
  const { width, heads, layers, contextLength } = weights.config.text;

  const P = op.shapeOf(g, prefix, 0, 1);
  const S = op.shapeOf(g, suffix, 1, 2);
  const PS = op.int64Add(g, P, S);
  const zero = g.ints([0]);

  const positions = w.raw('positional_embedding', [contextLength, width]);
  let hp = op.add(g, prefix, op.slice(g, positions, zero, P, 0, 'prefix'));
  let hs = op.add(g, suffix, op.slice(g, positions, P, PS, 0, 'suffix'));

  // One causal table, sliced: rows are query positions, columns key positions.
  const causal = new Float32Array(contextLength * contextLength);
  for (let i = 0; i < contextLength; i++) for (let j = i + 1; j < contextLength; j++) causal[i * contextLength + j] = -Infinity;
  const table = g.weight('causal_mask', [contextLength, contextLength], causal);
  const prefixMask = op.slice(g, op.slice(g, table, zero, P, 0, 'prefix'), zero, P, 1, 'prefix');
  const suffixMask = op.slice(g, op.slice(g, table, P, PS, 0, 'suffix'), zero, PS, 1, 'prefix+suffix');

  // [C, 1, 1, 1], to broadcast the prefix's keys and values to every text.
  const perText = op.concat(g, [op.shapeOf(g, suffix, 0, 1), g.ints([1, 1, 1])], 0);

  for (let l = 0; l < layers; l++) {
    const name = `transformer.resblocks.${l}`;
    const ap = w.layerNorm(hp, `${name}.ln_1`, width);
    const as = w.layerNorm(hs, `${name}.ln_1`, width);
    const [qp, kp, vp] = w.qkv(ap, `${name}.attn`, width).map((x) => splitHeads(g, x, heads)); // [H, P, D]
    const [qs, ks, vs] = w.qkv(as, `${name}.attn`, width).map((x) => splitHeads(g, x, heads)); // [C, H, S, D]

    const outPrefix = attend(g, qp, kp, vp, prefixMask);
    const shared = (x: Value): Value => op.expand(g, op.unsqueeze(g, x, [0]), perText, ['texts', ...x.shape]);
    const keys = op.concat(g, [shared(kp), ks], 2);
    const values = op.concat(g, [shared(vp), vs], 2);
    const outSuffix = attend(g, qs, keys, values, suffixMask);

    hp = op.add(g, hp, w.linear(mergeHeads(g, outPrefix), `${name}.attn.out_proj`, width, width));
    hs = op.add(g, hs, w.linear(mergeHeads(g, outSuffix), `${name}.attn.out_proj`, width, width));
    hp = op.add(g, hp, w.mlp(w.layerNorm(hp, `${name}.ln_2`, width), `${name}.mlp`, width));
    hs = op.add(g, hs, w.mlp(w.layerNorm(hs, `${name}.ln_2`, width), `${name}.mlp`, width));
  }
  // The last layer's prefix output is unused: only end-of-text features leave the tower.
  const eot = op.reduceSum(g, op.mul(g, hs, op.unsqueeze(g, eotMask, [-1])), [1], false); // [C, W]
  const projection = w.raw('text_projection', [width, weights.config.embedDim]);
  return op.matmul(g, w.layerNorm(eot, 'ln_final', width), projection);
}

/** Inputs → `text_embeds` [C, E]. */
export function buildTextEncoder(weights: ClipWeights): Graph {
  const g = new Graph('clip_text');
  g.output(textTower(new GraphWeights(g, weights), textInputs(g, weights.config.text.width)), 'text_embeds');
  return g;
}

/**
 * The vector-Jacobian product of the text tower: given `text_embeds_grad`
 * [C, E] (∂loss/∂text_embeds), outputs ∂loss/∂prefix and ∂loss/∂suffix, and
 * the forward `text_embeds`.
 */
export function buildTextVjp(weights: ClipWeights): Graph {
  const g = new Graph('clip_text_vjp');
  const inputs = textInputs(g, weights.config.text.width);
  const embeds = textTower(new GraphWeights(g, weights), inputs);
  const cotangent = g.input('text_embeds_grad', ['texts', weights.config.embedDim]);
  const [dPrefix, dSuffix] = gradients(g, embeds, [inputs.prefix, inputs.suffix], cotangent);
  g.output(embeds, 'text_embeds');
  g.output(dPrefix, 'prefix_grad');
  g.output(dSuffix, 'suffix_grad');
  return g;
}

/**
 * One prompt-learning step's forward and backward in one graph: CLIP's
 * contrastive logits of images against the texts, plus an optional additive
 * `logit_bias` [B, C] (e.g. a personalised cache's logits), then
 * loss = -Σ targets · log_softmax(logits). `targets` [B, C] are one-hot rows
 * divided by the batch size for the mean cross-entropy. Outputs `loss`,
 * `logits`, `text_embeds` and the gradients with respect to prefix and suffix.
 */
export function buildPromptLoss(weights: ClipWeights): Graph {
  const g = new Graph('clip_prompt_loss');
  const inputs = textInputs(g, weights.config.text.width);
  const E = weights.config.embedDim;
  const images = g.input('image_embeds', ['batch', E]);
  const targets = g.input('targets', ['batch', 'texts']);
  const bias = g.input('logit_bias', ['batch', 'texts']);
  const text = textTower(new GraphWeights(g, weights), inputs);

  const normalize = (x: Value): Value => op.div(g, x, op.sqrt(g, op.reduceSum(g, op.mul(g, x, x), [-1], true)));
  const scale = Math.exp(tensor(weights, 'logit_scale').data[0]);
  const cosine = op.matmul(g, normalize(images), op.transposeLast(g, normalize(text)));
  const logits = op.add(g, op.mul(g, cosine, g.scalar(scale)), bias);
  const loss = op.neg(g, op.reduceSum(g, op.mul(g, targets, op.logSoftmax(g, logits)), [0, 1], false));

  const [dPrefix, dSuffix] = gradients(g, loss, [inputs.prefix, inputs.suffix]);
  g.output(loss, 'loss');
  g.output(logits, 'logits');
  g.output(text, 'text_embeds');
  g.output(dPrefix, 'prefix_grad');
  g.output(dSuffix, 'suffix_grad');
  return g;
}
