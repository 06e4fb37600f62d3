// What one client holds: the frozen encoder's features of its own images,
// computed once (and cached) before any training. A method reads them; none
// of it is ever uploaded.
//
// Every image is kept as two vectors: CLIP's projected image embedding f(x)
// (the input of the contrastive logits) and its spatial features F_s pooled
// to one vector (ViT: the mean of the patch tokens through ln_post; ResNet:
// the mean of the map before attention pooling), the query and keys of
// pFedPrompt's visual memory. Pooling at load time keeps a client's memory a
// few megabytes where the full maps would be gigabytes.

import { tensor, type ClipWeights, type HostTensor, type ModifiedResNetConfig, type VisionTransformerConfig } from '../clip/weights.js';

/** Features of n images: rows of `embeds` [n, E] and `pooled` [n, D], with their labels. */
export interface FeatureSet {
  readonly count: number;
  readonly embedDim: number;
  readonly pooledDim: number;
  readonly embeds: Float32Array;
  readonly pooled: Float32Array;
  readonly labels: Int32Array;
  /**
   * Spatial tokens in the joint embedding space, when the run asked for them
   * (FedOTP's image side, the memory's per-token query): [n, tokens, E]
   * (ViT: each patch token through ln_post and the projection; ResNet: each
   * position through the attention pool's value and output projections).
   * Not normalised. Absent when no method of the run reads them.
   */
  readonly tokens?: Float32Array;
  /** Tokens per image (ViT: patches; ResNet: h·w), when `tokens` is present. */
  readonly tokenCount?: number;
}

export interface ClientData {
  readonly id: number;
  /** Labels this client holds (over the dataset's label space). */
  readonly classes: readonly number[];
  /** Training images: `views[0]` un-augmented, `views[1 …]` the seeded augmented views, same image order in each. */
  readonly train: readonly FeatureSet[];
  readonly val: FeatureSet;
  readonly test: FeatureSet;
}

/** A FeatureSet from rows given one at a time. */
export class FeatureSetBuilder {
  private readonly embeds: number[][] = [];
  private readonly pooled: number[][] = [];
  private readonly labels: number[] = [];

  constructor(readonly embedDim: number, readonly pooledDim: number) {}

  add(embed: Float32Array, pooled: Float32Array, label: number): void {
    if (embed.length !== this.embedDim || pooled.length !== this.pooledDim) {
      throw new Error(`feature rows must be ${this.embedDim} + ${this.pooledDim} wide, got ${embed.length} + ${pooled.length}`);
    }
    this.embeds.push(Array.from(embed));
    this.pooled.push(Array.from(pooled));
    this.labels.push(label);
  }

  build(): FeatureSet {
    return {
      count: this.labels.length,
      embedDim: this.embedDim,
      pooledDim: this.pooledDim,
      embeds: Float32Array.from(this.embeds.flat()),
      pooled: Float32Array.from(this.pooled.flat()),
      labels: Int32Array.from(this.labels),
    };
  }
}

/** Width of pooled spatial features: a ViT's width, or the channels of a ModifiedResNet's last map (32 × stem width). */
export function pooledWidth(vision: VisionTransformerConfig | ModifiedResNetConfig): number {
  return vision.kind === 'vit' ? vision.width : vision.width * 32;
}

/**
 * How one item's spatial features become one vector. ViT: each patch token
 * (the class token left out) through the tower's own ln_post, then their mean
 * — the raw residual stream has a few outlier dimensions that would swamp any
 * cosine similarity, ln_post is how the tower itself reads it. ResNet: the
 * map averaged over positions (post-ReLU, already well scaled).
 */
export function spatialPooler(weights: ClipWeights): (spatial: Float32Array, shape: readonly number[]) => Float32Array {
  const { vision, layerNormEps } = weights.config;
  if (vision.kind === 'resnet') {
    return (spatial, [channels, h, w]) => {
      const area = h * w;
      const out = new Float32Array(channels);
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let i = 0; i < area; i++) sum += spatial[c * area + i];
        out[c] = sum / area;
      }
      return out;
    };
  }
  const gamma = tensor(weights, 'visual.ln_post.weight', [vision.width]).data;
  const beta = tensor(weights, 'visual.ln_post.bias', [vision.width]).data;
  return (spatial, [tokens, width]) => {
    const out = new Float32Array(width);
    for (let t = 1; t < tokens; t++) {
      const row = spatial.subarray(t * width, (t + 1) * width);
      let mean = 0;
      for (let k = 0; k < width; k++) mean += row[k];
      mean /= width;
      let variance = 0;
      for (let k = 0; k < width; k++) variance += (row[k] - mean) ** 2;
      const inv = 1 / Math.sqrt(variance / width + layerNormEps);
      for (let k = 0; k < width; k++) out[k] += (row[k] - mean) * inv * gamma[k] + beta[k];
    }
    for (let k = 0; k < width; k++) out[k] /= tokens - 1;
    return out;
  };
}

/** Rows `indices` of a feature set, in that order. */
export function selectRows(set: FeatureSet, indices: ArrayLike<number>): { embeds: HostTensor; pooled: HostTensor; labels: Int32Array } {
  const n = indices.length;
  const embeds = new Float32Array(n * set.embedDim);
  const pooled = new Float32Array(n * set.pooledDim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = indices[i];
    embeds.set(set.embeds.subarray(r * set.embedDim, (r + 1) * set.embedDim), i * set.embedDim);
    pooled.set(set.pooled.subarray(r * set.pooledDim, (r + 1) * set.pooledDim), i * set.pooledDim);
    labels[i] = set.labels[r];
  }
  return { embeds: { shape: [n, set.embedDim], data: embeds }, pooled: { shape: [n, set.pooledDim], data: pooled }, labels };
}

export function emptyFeatureSet(embedDim: number, pooledDim: number): FeatureSet {
  return { count: 0, embedDim, pooledDim, embeds: new Float32Array(0), pooled: new Float32Array(0), labels: new Int32Array(0) };
}
