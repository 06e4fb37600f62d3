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
   * (ViT: each patch token through ln_post and the projection; ResNet: the
   * attention pool's output with each position as the query, as FedOTP's
   * code takes them — see spatialTokenizer). Not normalised. Absent when no
   * method of the run reads them.
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
  private readonly tokens: Float32Array[] = [];
  private readonly labels: number[] = [];

  /** `tokenCount`: spatial tokens per row, when the set carries them (each row then adds [tokenCount, embedDim]). */
  constructor(readonly embedDim: number, readonly pooledDim: number, readonly tokenCount?: number) {}

  add(embed: Float32Array, pooled: Float32Array, label: number, tokens?: Float32Array): void {
    if (embed.length !== this.embedDim || pooled.length !== this.pooledDim) {
      throw new Error(`feature rows must be ${this.embedDim} + ${this.pooledDim} wide, got ${embed.length} + ${pooled.length}`);
    }
    if (this.tokenCount !== undefined) {
      const wanted = this.tokenCount * this.embedDim;
      if (tokens?.length !== wanted) throw new Error(`spatial tokens must be ${this.tokenCount}×${this.embedDim} values, got ${tokens?.length ?? 'none'}`);
      this.tokens.push(tokens);
    } else if (tokens) {
      throw new Error('spatial tokens given to a feature set built without them');
    }
    this.embeds.push(Array.from(embed));
    this.pooled.push(Array.from(pooled));
    this.labels.push(label);
  }

  build(): FeatureSet {
    const set: FeatureSet = {
      count: this.labels.length,
      embedDim: this.embedDim,
      pooledDim: this.pooledDim,
      embeds: Float32Array.from(this.embeds.flat()),
      pooled: Float32Array.from(this.pooled.flat()),
      labels: Int32Array.from(this.labels),
    };
    if (this.tokenCount === undefined) return set;
    const tokens = new Float32Array(this.tokens.length * this.tokenCount * this.embedDim);
    this.tokens.forEach((t, i) => tokens.set(t, i * t.length));
    return { ...set, tokens, tokenCount: this.tokenCount };
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
    const normed = new Float64Array(width);
    for (let t = 1; t < tokens; t++) {
      lnPost(spatial.subarray(t * width, (t + 1) * width), gamma, beta, layerNormEps, normed);
      for (let k = 0; k < width; k++) out[k] += normed[k];
    }
    for (let k = 0; k < width; k++) out[k] /= tokens - 1;
    return out;
  };
}

/** One ViT token through the tower's ln_post, into `out` (float64 where a caller sums tokens, float32 where it projects them). */
function lnPost(row: Float32Array, gamma: Float32Array, beta: Float32Array, eps: number, out: Float32Array | Float64Array): void {
  const width = row.length;
  let mean = 0;
  for (let k = 0; k < width; k++) mean += row[k];
  mean /= width;
  let variance = 0;
  for (let k = 0; k < width; k++) variance += (row[k] - mean) ** 2;
  const inv = 1 / Math.sqrt(variance / width + eps);
  for (let k = 0; k < width; k++) out[k] = (row[k] - mean) * inv * gamma[k] + beta[k];
}

/** Rows `indices` of a feature set, in that order (and their spatial tokens [n, T, E], when the set has them). */
export function selectRows(set: FeatureSet, indices: ArrayLike<number>): { embeds: HostTensor; pooled: HostTensor; labels: Int32Array; tokens?: HostTensor } {
  const n = indices.length;
  const embeds = new Float32Array(n * set.embedDim);
  const pooled = new Float32Array(n * set.pooledDim);
  const labels = new Int32Array(n);
  const perImage = set.tokens && set.tokenCount !== undefined ? set.tokenCount * set.embedDim : 0;
  const tokens = perImage > 0 ? new Float32Array(n * perImage) : undefined;
  for (let i = 0; i < n; i++) {
    const r = indices[i];
    embeds.set(set.embeds.subarray(r * set.embedDim, (r + 1) * set.embedDim), i * set.embedDim);
    pooled.set(set.pooled.subarray(r * set.pooledDim, (r + 1) * set.pooledDim), i * set.pooledDim);
    tokens?.set(set.tokens!.subarray(r * perImage, (r + 1) * perImage), i * perImage);
    labels[i] = set.labels[r];
  }
  return {
    embeds: { shape: [n, set.embedDim], data: embeds },
    pooled: { shape: [n, set.pooledDim], data: pooled },
    labels,
    ...(tokens ? { tokens: { shape: [n, set.tokenCount!, set.embedDim], data: tokens } } : {}),
  };
}

/**
 * How one item's spatial features become its spatial tokens in the joint
 * embedding space [T, E], as FedOTP's image encoder returns them
 * (HongxiaLee/FedOTP, clip/model.py). ViT (ModifiedVisionTransformer): every
 * token through ln_post and @ proj, the class token left out (GLP_OT.py takes
 * `image_features[1:]`). ResNet (ModifiedResNet_GLP_OT): the attention pool
 * run with every position as a query — the mean token and the positions,
 * plus the positional embedding, are keys and values for each — through
 * c_proj, the mean token's own output (CLIP's image embedding) left out.
 */
export function spatialTokenizer(weights: ClipWeights): { readonly tokenCount: number; tokens(spatial: Float32Array, shape: readonly number[]): Float32Array } {
  const { vision, layerNormEps, embedDim: E } = weights.config;
  if (vision.kind === 'vit') {
    const W = vision.width;
    const gamma = tensor(weights, 'visual.ln_post.weight', [W]).data;
    const beta = tensor(weights, 'visual.ln_post.bias', [W]).data;
    const proj = tensor(weights, 'visual.proj', [W, E]).data;
    const grid = vision.imageSize / vision.patchSize;
    return {
      tokenCount: grid * grid,
      tokens(spatial, [count, width]) {
        if (width !== W || count !== grid * grid + 1) throw new Error(`ViT spatial features must be [${grid * grid + 1}, ${W}], got [${count}, ${width}]`);
        const out = new Float32Array((count - 1) * E);
        const normed = new Float32Array(W);
        for (let t = 1; t < count; t++) {
          lnPost(spatial.subarray(t * W, (t + 1) * W), gamma, beta, layerNormEps, normed);
          const o = (t - 1) * E;
          for (let k = 0; k < W; k++) {
            const x = normed[k];
            const p = k * E;
            for (let e = 0; e < E; e++) out[o + e] += x * proj[p + e];
          }
        }
        return out;
      },
    };
  }
  const C = vision.width * 32;
  const size = vision.imageSize / 32;
  const area = size * size;
  const L = area + 1;
  const heads = vision.heads;
  const d = C / heads;
  const positional = tensor(weights, 'visual.attnpool.positional_embedding', [L, C]).data;
  const linear = (name: string, out: number): { w: Float32Array; b: Float32Array } =>
    ({ w: tensor(weights, `visual.attnpool.${name}.weight`, [out, C]).data, b: tensor(weights, `visual.attnpool.${name}.bias`, [out]).data });
  const qProj = linear('q_proj', C);
  const kProj = linear('k_proj', C);
  const vProj = linear('v_proj', C);
  const cProj = linear('c_proj', E);
  /** rows [n, C] @ W^T + b, W [out, C]. */
  const apply = ({ w, b }: { w: Float32Array; b: Float32Array }, rows: Float32Array, n: number, out: number): Float32Array => {
    const y = new Float32Array(n * out);
    for (let i = 0; i < n; i++) {
      const x = rows.subarray(i * C, (i + 1) * C);
      for (let o = 0; o < out; o++) {
        const wr = w.subarray(o * C, (o + 1) * C);
        let sum = b[o];
        for (let k = 0; k < C; k++) sum += x[k] * wr[k];
        y[i * out + o] = sum;
      }
    }
    return y;
  };
  return {
    tokenCount: area,
    tokens(spatial, [channels, h, w]) {
      if (channels !== C || h !== size || w !== size) throw new Error(`ResNet spatial features must be [${C}, ${size}, ${size}], got [${channels}, ${h}, ${w}]`);
      // The sequence [mean, position 1 … HW] + positional embedding, [L, C].
      const seq = new Float32Array(L * C);
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (let i = 0; i < area; i++) {
          const x = spatial[c * area + i];
          seq[(1 + i) * C + c] = x;
          sum += x;
        }
        seq[c] = sum / area;
      }
      for (let i = 0; i < L * C; i++) seq[i] += positional[i];
      const q = apply(qProj, seq.subarray(C), area, C);
      const k = apply(kProj, seq, L, C);
      const v = apply(vProj, seq, L, C);
      const attended = new Float32Array(area * C);
      const scores = new Float64Array(L);
      const scale = 1 / Math.sqrt(d);
      for (let i = 0; i < area; i++) {
        for (let hd = 0; hd < heads; hd++) {
          const off = hd * d;
          let max = -Infinity;
          for (let j = 0; j < L; j++) {
            let s = 0;
            for (let e = 0; e < d; e++) s += q[i * C + off + e] * k[j * C + off + e];
            scores[j] = s * scale;
            if (scores[j] > max) max = scores[j];
          }
          let total = 0;
          for (let j = 0; j < L; j++) total += (scores[j] = Math.exp(scores[j] - max));
          for (let j = 0; j < L; j++) {
            const a = scores[j] / total;
            for (let e = 0; e < d; e++) attended[i * C + off + e] += a * v[j * C + off + e];
          }
        }
      }
      return apply(cProj, attended, area, E);
    },
  };
}

export function emptyFeatureSet(embedDim: number, pooledDim: number): FeatureSet {
  return { count: 0, embedDim, pooledDim, embeds: new Float32Array(0), pooled: new Float32Array(0), labels: new Int32Array(0) };
}
