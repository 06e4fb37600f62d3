// CLIP's ModifiedResNet image tower (RN50 family) as an ONNX graph: a
// three-convolution stem, anti-aliased bottlenecks (average pooling before
// strided paths) and attention pooling. BatchNorm is folded into the
// preceding convolution, exact for a frozen network in eval mode.

import { Graph, type Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { GraphWeights, attend, mergeHeads, splitHeads } from './layers.js';
import { numel } from '../io/safetensors-format.js';
import { tensor, type ClipWeights, type HostTensor, type ModifiedResNetConfig } from './weights.js';

/**
 * A convolution followed by an inference-mode batch norm, as one convolution:
 * with s = γ / √(running_var + eps), the folded weight is W·s (per output
 * channel) and the bias (b − running_mean)·s + β, where b is the conv's own
 * bias (0 for CLIP's convolutions). `convName` and `bnName` are module names,
 * e.g. "visual.layer1.0.conv1" and "visual.layer1.0.bn1". PyTorch's default
 * eps is 1e-5, which CLIP's ModifiedResNet uses.
 */
export function foldBatchNorm(
  weights: ClipWeights,
  convName: string,
  bnName: string,
  eps = 1e-5,
): { weight: HostTensor; bias: HostTensor } {
  const conv = tensor(weights, `${convName}.weight`);
  const channels = conv.shape[0];
  const perChannel = [channels];
  const gamma = tensor(weights, `${bnName}.weight`, perChannel).data;
  const beta = tensor(weights, `${bnName}.bias`, perChannel).data;
  const mean = tensor(weights, `${bnName}.running_mean`, perChannel).data;
  const variance = tensor(weights, `${bnName}.running_var`, perChannel).data;
  const convBias = weights.tensors.has(`${convName}.bias`) ? tensor(weights, `${convName}.bias`, perChannel).data : undefined;

  const perOutput = numel(conv.shape) / channels;
  const weight = new Float32Array(conv.data.length);
  const bias = new Float32Array(channels);
  for (let o = 0; o < channels; o++) {
    const scale = gamma[o] / Math.sqrt(variance[o] + eps);
    for (let i = o * perOutput; i < (o + 1) * perOutput; i++) weight[i] = conv.data[i] * scale;
    bias[o] = ((convBias?.[o] ?? 0) - mean[o]) * scale + beta[o];
  }
  return { weight: { shape: [...conv.shape], data: weight }, bias: { shape: perChannel, data: bias } };
}

export function buildModifiedResNet(weights: ClipWeights): Graph {
  const cfg = weights.config.vision as ModifiedResNetConfig;
  const R = cfg.imageSize;
  const g = new Graph('clip_resnet');
  const w = new GraphWeights(g, weights);
  const pixels = g.input('pixel_values', ['batch', 3, R, R]);

  /** Convolution + folded BatchNorm; `size` is the output's spatial size. */
  const convBn = (x: Value, conv: string, bn: string, inC: number, outC: number, k: number, stride: number, size: number): Value => {
    tensor(weights, `${conv}.weight`, [outC, inC, k, k]);
    const folded = foldBatchNorm(weights, conv, bn);
    const wt = g.weight(`${conv}.folded`, [outC, inC, k, k], folded.weight.data);
    const b = g.weight(`${bn}.folded_bias`, [outC], folded.bias.data);
    return op.conv(g, x, wt, b, { stride, pad: (k - 1) / 2, outShape: ['batch', outC, size, size] });
  };
  const pool = (x: Value, k: number): Value => {
    const [n, c, s] = x.shape;
    return k === 1 ? x : op.averagePool(g, x, k, [n, c, (s as number) / k, (s as number) / k]);
  };

  const half = cfg.width / 2;
  let x = op.relu(g, convBn(pixels, 'visual.conv1', 'visual.bn1', 3, half, 3, 2, R / 2));
  x = op.relu(g, convBn(x, 'visual.conv2', 'visual.bn2', half, half, 3, 1, R / 2));
  x = op.relu(g, convBn(x, 'visual.conv3', 'visual.bn3', half, cfg.width, 3, 1, R / 2));
  x = pool(x, 2);

  let inplanes = cfg.width;
  let size = R / 4;
  cfg.layers.forEach((blocks, stage) => {
    const planes = cfg.width * 2 ** stage;
    for (let b = 0; b < blocks; b++) {
      const name = `visual.layer${stage + 1}.${b}`;
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const outSize = size / stride;
      let out = op.relu(g, convBn(x, `${name}.conv1`, `${name}.bn1`, inplanes, planes, 1, 1, size));
      out = op.relu(g, convBn(out, `${name}.conv2`, `${name}.bn2`, planes, planes, 3, 1, size));
      out = convBn(pool(out, stride), `${name}.conv3`, `${name}.bn3`, planes, planes * 4, 1, 1, outSize);
      const identity = stride > 1 || inplanes !== planes * 4
        ? convBn(pool(x, stride), `${name}.downsample.0`, `${name}.downsample.1`, inplanes, planes * 4, 1, 1, outSize)
        : x;
      x = op.relu(g, op.add(g, out, identity));
      inplanes = planes * 4;
      size = outSize;
    }
  });
  g.output(x, 'vision_feature_map');

  // Attention pooling: the mean token queries every spatial token.
  const C = inplanes;
  const tokens = op.transpose(g, op.reshape(g, x, [0, 0, -1], ['batch', C, size * size]), [0, 2, 1]);
  let seq = op.concat(g, [op.reduceMean(g, tokens, [1], true), tokens], 1);
  seq = op.add(g, seq, w.raw('visual.attnpool.positional_embedding', [size * size + 1, C]));
  const first = op.slice(g, seq, g.ints([0]), g.ints([1]), 1, 1);
  const q = splitHeads(g, w.linear(first, 'visual.attnpool.q_proj', C, C), cfg.heads);
  const k = splitHeads(g, w.linear(seq, 'visual.attnpool.k_proj', C, C), cfg.heads);
  const v = splitHeads(g, w.linear(seq, 'visual.attnpool.v_proj', C, C), cfg.heads);
  const pooled = w.linear(mergeHeads(g, attend(g, q, k, v)), 'visual.attnpool.c_proj', weights.config.embedDim, C);
  g.output(op.reshape(g, pooled, [0, weights.config.embedDim], ['batch', weights.config.embedDim]), 'image_embeds');
  return g;
}
