// CLIP's ViT image tower as an ONNX graph: patch embedding, class token,
// pre-norm transformer, and the class token's projection. Also outputs every
// token before ln_post, the spatial features a personalised memory reads.

import { Graph, type Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { GraphWeights, attend, mergeHeads, splitHeads } from './layers.js';
import type { ClipWeights, VisionTransformerConfig } from './weights.js';

export function buildVisionTransformer(weights: ClipWeights): Graph {
  const R = weights.config.vision.imageSize;
  const g = new Graph('clip_vit');
  const { tokens, embeds } = visionTower(new GraphWeights(g, weights), g.input('pixel_values', ['batch', 3, R, R]));
  g.output(tokens, 'vision_tokens');
  g.output(embeds, 'image_embeds');
  return g;
}

/**
 * The tower on `w`'s graph from `pixels` [B, 3, R, R]: every token before
 * ln_post [B, 1+HW, W] and the projected class token [B, E].
 */
export function visionTower(w: GraphWeights, pixels: Value): { tokens: Value; embeds: Value } {
  const { g, weights } = w;
  const cfg = weights.config.vision as VisionTransformerConfig;
  const { imageSize: R, patchSize: p, width: W, heads, layers } = cfg;
  const grid = Math.floor(R / p);
  const tokens = grid * grid + 1;

  const patches = op.conv(g, pixels, w.raw('visual.conv1.weight', [W, 3, p, p]), undefined, { stride: p, pad: 0, outShape: ['batch', W, grid, grid] });
  const sequence = op.transpose(g, op.reshape(g, patches, [0, 0, -1], ['batch', W, grid * grid]), [0, 2, 1]);
  const perImage = op.concat(g, [op.shapeOf(g, pixels, 0, 1), g.ints([1, 1])], 0);
  const cls = op.expand(g, op.reshape(g, w.raw('visual.class_embedding', [W]), [1, 1, W], [1, 1, W]), perImage, ['batch', 1, W]);
  let x: Value = op.add(g, op.concat(g, [cls, sequence], 1), w.raw('visual.positional_embedding', [tokens, W]));
  x = w.layerNorm(x, 'visual.ln_pre', W);

  for (let l = 0; l < layers; l++) {
    const name = `visual.transformer.resblocks.${l}`;
    const [q, k, v] = w.qkv(w.layerNorm(x, `${name}.ln_1`, W), `${name}.attn`, W).map((t) => splitHeads(g, t, heads));
    x = op.add(g, x, w.linear(mergeHeads(g, attend(g, q, k, v)), `${name}.attn.out_proj`, W, W));
    x = op.add(g, x, w.mlp(w.layerNorm(x, `${name}.ln_2`, W), `${name}.mlp`, W));
  }
  const first = op.slice(g, x, g.ints([0]), g.ints([1]), 1, 1);
  const clsOut = op.reshape(g, first, [0, W], ['batch', W]);
  const embeds = op.matmul(g, w.layerNorm(clsOut, 'visual.ln_post', W), w.raw('visual.proj', [W, weights.config.embedDim]));
  return { tokens: x, embeds };
}
