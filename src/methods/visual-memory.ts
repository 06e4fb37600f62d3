// pFedPrompt's personal part: a non-parametric attention over a memory built
// from the client's own few-shot images (user characteristics in visual
// space). It is built from frozen features, never trained, never uploaded.
//
//   keys M_k:   L2-normalised features of the client's shots, or one
//               prototype per local class (their normalised mean)
//   values M_v: one-hot labels of the keys over the dataset's label space
//   query Q:    the same features of the image being classified
//   A = exp(-β (1 - cos(Q, M_k))),  personal logits = α · A · M_v
//
// The open choices of the method are options: which features (`space`: the
// pooled spatial features F_s before the encoder's pooling — the paper's
// choice — or CLIP's projected embedding f(x), Tip-Adapter's), prototypes or
// every shot as keys, and whether the memory also shapes the loss the shared
// prompt is trained with.

import type { FeatureSet } from '../federation/client-data.js';
import type { Choice, ClientRuntime, PersonalLogits } from '../federation/method.js';

export interface MemoryOptions {
  /** Pooled spatial features F_s (pFedPrompt), or the projected image embedding (Tip-Adapter). */
  readonly space: 'spatial' | 'embedding';
  /** One key per local class (its prototype), or one key per shot. */
  readonly keys: 'prototypes' | 'shots';
  /** Weight of the personal logits. */
  readonly alpha: number;
  /** Sharpness of the affinity. */
  readonly beta: number;
  /** Add the personal logits during local training too (a training image then sits in its own memory), not only at test time. */
  readonly inTraining: boolean;
}

/** Tip-Adapter's defaults α = 1, β = 5.5; F_s prototypes; memory in training. */
export const DEFAULT_MEMORY: MemoryOptions = { space: 'spatial', keys: 'prototypes', alpha: 1, beta: 5.5, inTraining: true };

export class VisualMemory implements PersonalLogits {
  private constructor(
    readonly options: MemoryOptions,
    readonly numClasses: number,
    private readonly dim: number,
    /** Normalised keys [m, dim]. */
    private readonly keys: Float32Array,
    /** Label of each key. */
    private readonly keyLabels: Int32Array,
  ) {}

  /** The memory a client builds from its own shots, with `options` (a choice of α and β overriding them). */
  static ofClient(runtime: Pick<ClientRuntime, 'data' | 'numClasses'>, options: MemoryOptions | (MemoryOptions & Choice)): VisualMemory {
    return VisualMemory.build(runtime.data.train[0], runtime.numClasses, options);
  }

  /** The memory of a client from its (un-augmented) few-shot features. */
  static build(shots: FeatureSet, numClasses: number, options: MemoryOptions): VisualMemory {
    const dim = options.space === 'spatial' ? shots.pooledDim : shots.embedDim;
    const rows = normalizedRows(featuresOf(shots, options.space), dim);
    if (options.keys === 'shots') return new VisualMemory(options, numClasses, dim, rows, shots.labels.slice());
    const classes = [...new Set(shots.labels)].sort((a, b) => a - b);
    const sums = new Float32Array(classes.length * dim);
    shots.labels.forEach((label, i) => {
      const k = classes.indexOf(label);
      for (let d = 0; d < dim; d++) sums[k * dim + d] += rows[i * dim + d];
    });
    return new VisualMemory(options, numClasses, dim, normalizedRows(sums, dim), Int32Array.from(classes));
  }

  /** α · A · M_v for every query row of `queries` [n, C] over the dataset's classes. */
  logits(queries: FeatureSet, rows?: ArrayLike<number>): Float32Array {
    const { alpha, beta, space } = this.options;
    const all = featuresOf(queries, space);
    const picked = rows ?? Array.from({ length: queries.count }, (_, i) => i);
    const C = this.numClasses;
    const out = new Float32Array(picked.length * C);
    const q = new Float32Array(this.dim);
    const m = this.keyLabels.length;
    for (let i = 0; i < picked.length; i++) {
      q.set(all.subarray(picked[i] * this.dim, (picked[i] + 1) * this.dim));
      normalizeInPlace(q);
      for (let k = 0; k < m; k++) {
        let dot = 0;
        for (let d = 0; d < this.dim; d++) dot += q[d] * this.keys[k * this.dim + d];
        out[i * C + this.keyLabels[k]] += alpha * Math.exp(-beta * (1 - dot));
      }
    }
    return out;
  }
}

function featuresOf(set: FeatureSet, space: MemoryOptions['space']): Float32Array {
  return space === 'spatial' ? set.pooled : set.embeds;
}

function normalizeInPlace(v: Float32Array): void {
  let sum = 0;
  for (let d = 0; d < v.length; d++) sum += v[d] * v[d];
  const inv = 1 / Math.max(Math.sqrt(sum), 1e-12);
  for (let d = 0; d < v.length; d++) v[d] *= inv;
}

function normalizedRows(data: Float32Array, dim: number): Float32Array {
  const out = data.slice();
  for (let r = 0; r < out.length / dim; r++) normalizeInPlace(out.subarray(r * dim, (r + 1) * dim));
  return out;
}
