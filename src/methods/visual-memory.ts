// pFedPrompt's personal part: a non-parametric attention over a memory built
// from the client's own few-shot images (user characteristics in visual
// space). It is built from frozen features, never trained, never uploaded.
//
//   keys M_k:   one L2-normalised vector per shot (Tip-Adapter's cache, whose
//               affinities add up over a class's shots), or one prototype per
//               local class (the normalised mean of its shots' keys)
//   values M_v: one-hot labels of the keys over the dataset's label space
//   A = exp(-β (1 - cos(Q, M_k))),  personal logits = α · A · M_v
//
// The query, and keys in the same space (a key is what a query would be for
// that shot, so a cosine compares like with like):
//   pooled     F_s pooled in the image encoder's own space (pFedPrompt's
//              reading; FeatureSet.pooled);
//   projected  the spatial tokens projected into the joint space, averaged
//              over the image (FeatureSet.tokens' mean);
//   tokens     per-token affinity: each spatial token of the query (joint
//              space) against the keys, A averaged over the image's tokens.
//              Keys are the shots' mean tokens, as for `projected`: a key per
//              token of every shot would make the memory T times larger and
//              compare a patch with a patch at a fixed position; the mean
//              token is the shot's summary in the space each token lives in;
//   embedding  CLIP's image embedding f(x) (Tip-Adapter's).
// `projected` and `tokens` read spatial tokens, which the extractor produces
// only for a run that asks (memoryReadsTokens).
//
// A key is the mean of a shot's raw features over `keyViews` views, then
// normalised (Tip-Adapter averages 10 augmented views so); 0 is the plain view.
//
// In training (`forTraining`) a training image is never its own key when
// `leaveOneOut` is on: its own shot is masked, or its contribution taken out
// of its class prototype (a class whose only shot it is then has no key).
// Without it the memory rewards each image for resembling itself and the
// shared prompt is trained against a cue that test images never have.

import type { FeatureSet } from '../federation/client-data.js';
import type { ClientRuntime, PersonalLogits } from '../federation/method.js';

export const MEMORY_QUERIES = ['pooled', 'projected', 'tokens', 'embedding'] as const;
export type MemoryQuery = (typeof MEMORY_QUERIES)[number];

export interface MemoryOptions {
  /** What represents an image, query and keys alike (see the header). */
  readonly query: MemoryQuery;
  /** One key per local class (its prototype), or one key per shot. */
  readonly keys: 'prototypes' | 'shots';
  /** Weight of the personal logits. */
  readonly alpha: number;
  /** Sharpness of the affinity. */
  readonly beta: number;
  /** Add the personal logits during local training too, not only at test time. */
  readonly inTraining: boolean;
  /** In training, a training image is never its own key. */
  readonly leaveOneOut: boolean;
  /** Augmented views averaged into each key (min(keyViews, views cached)); 0: the plain image. */
  readonly keyViews: number;
}

/** Tip-Adapter's α = 1, β = 5.5; pooled F_s prototypes; memory in training, leave-one-out. */
export const DEFAULT_MEMORY: MemoryOptions = { query: 'pooled', keys: 'prototypes', alpha: 1, beta: 5.5, inTraining: true, leaveOneOut: true, keyViews: 0 };

/** Whether a memory with these options reads the images' spatial tokens (the run must extract them). */
export function memoryReadsTokens(options: Pick<MemoryOptions, 'query'>): boolean {
  return options.query === 'projected' || options.query === 'tokens';
}

/** A client's keys: built once per client and options, shared by every α and β scored. */
class MemoryKeys {
  constructor(
    readonly dim: number,
    /** Normalised key of every shot [N, dim]. */
    readonly shotKeys: Float32Array,
    readonly shotLabels: Int32Array,
    /** Local classes, ascending, and the sum of their shots' keys [K, dim]. */
    readonly classes: Int32Array,
    readonly classSums: Float32Array,
    /** The keys the memory uses [m, dim] and their labels. */
    readonly keys: Float32Array,
    readonly keyLabels: Int32Array,
  ) {}

  /** cos(query, key) of whole sets already scored (validation, test), by set. */
  readonly cosines = new WeakMap<FeatureSet, Float64Array>();

  static build(views: readonly FeatureSet[], options: MemoryOptions): MemoryKeys {
    const plain = views[0];
    const used = options.keyViews > 0 && views.length > 1 ? views.slice(1, 1 + options.keyViews) : [plain];
    const dim = widthOf(plain, options.query);
    const n = plain.count;
    const sum = new Float32Array(n * dim);
    const row = new Float32Array(dim);
    for (const view of used) {
      if (view.count !== n) throw new Error(`visual memory: a view holds ${view.count} images, the plain set ${n}`);
      for (let i = 0; i < n; i++) {
        imageVector(view, options.query, i, row);
        for (let d = 0; d < dim; d++) sum[i * dim + d] += row[d];
      }
    }
    const shotKeys = normalizedRows(sum, dim); // the mean's direction is the sum's
    const classes = Int32Array.from([...new Set(plain.labels)].sort((a, b) => a - b));
    const classSums = new Float32Array(classes.length * dim);
    for (let i = 0; i < n; i++) {
      const k = classes.indexOf(plain.labels[i]);
      for (let d = 0; d < dim; d++) classSums[k * dim + d] += shotKeys[i * dim + d];
    }
    return options.keys === 'shots'
      ? new MemoryKeys(dim, shotKeys, plain.labels.slice(), classes, classSums, shotKeys, plain.labels.slice())
      : new MemoryKeys(dim, shotKeys, plain.labels.slice(), classes, classSums, normalizedRows(classSums, dim), classes);
  }
}

/** Keys by client data and the options that shape them: scoring a grid of α and β builds them once. */
const keyCache = new WeakMap<readonly FeatureSet[], Map<string, MemoryKeys>>();

function keysOf(views: readonly FeatureSet[], options: MemoryOptions): MemoryKeys {
  const name = `${options.query}/${options.keys}/${options.keyViews}`;
  let byName = keyCache.get(views);
  if (!byName) keyCache.set(views, (byName = new Map()));
  let keys = byName.get(name);
  if (!keys) byName.set(name, (keys = MemoryKeys.build(views, options)));
  return keys;
}

export class VisualMemory implements PersonalLogits {
  private constructor(
    readonly options: MemoryOptions,
    readonly numClasses: number,
    private readonly store: MemoryKeys,
    /** Row i of a training set is shot i, and never its own key. */
    private readonly leavesOut: boolean,
  ) {}

  /** The memory a client builds from its own shots, with `options` (a choice of α and β overriding them). */
  static ofClient(runtime: Pick<ClientRuntime, 'data' | 'numClasses'>, options: MemoryOptions): VisualMemory {
    return VisualMemory.build(runtime.data.train, runtime.numClasses, options);
  }

  /** The memory of a client from its training views (views[0] the plain shots, views[1 …] augmented). */
  static build(views: FeatureSet | readonly FeatureSet[], numClasses: number, options: MemoryOptions): VisualMemory {
    checkOptions(options);
    const list = Array.isArray(views) ? views as readonly FeatureSet[] : [views as FeatureSet];
    return new VisualMemory(options, numClasses, keysOf(list, options), false);
  }

  /**
   * The memory as the training loss reads it: `logits(view, rows)` with rows
   * indexing the client's training images; with `leaveOneOut` an image is
   * never its own key.
   */
  forTraining(): VisualMemory {
    return new VisualMemory(this.options, this.numClasses, this.store, this.options.leaveOneOut);
  }

  /** α · A · M_v for rows of `queries` (every row when absent) [rows, C] over the dataset's classes. */
  logits(queries: FeatureSet, rows?: ArrayLike<number>): Float32Array {
    const { alpha, beta } = this.options;
    const { keyLabels } = this.store;
    if (this.leavesOut && queries.count !== this.store.shotLabels.length) {
      throw new Error(`visual memory in training: the set holds ${queries.count} images, the memory ${this.store.shotLabels.length} shots (rows must index the training images)`);
    }
    const cos = this.cosines(queries, rows);
    const n = rows?.length ?? queries.count;
    const m = keyLabels.length;
    const T = cos.length / (n * m);
    const C = this.numClasses;
    const out = new Float32Array(n * C);
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < T; t++) {
        for (let k = 0; k < m; k++) {
          const c = cos[(i * T + t) * m + k];
          if (!Number.isNaN(c)) out[i * C + keyLabels[k]] += (alpha / T) * Math.exp(-beta * (1 - c));
        }
      }
    }
    return out;
  }

  /**
   * cos(query, key) [rows, T, keys] (T = 1 but for the per-token query); NaN where leave-one-out removed a key.
   * A whole set outside training is kept, so a grid of α and β over the same images computes them once.
   */
  private cosines(queries: FeatureSet, rows: ArrayLike<number> | undefined): Float64Array {
    const cacheable = rows === undefined && !this.leavesOut;
    const cached = cacheable ? this.store.cosines.get(queries) : undefined;
    if (cached) return cached;
    const { query } = this.options;
    const { dim, keys, keyLabels } = this.store;
    const picked = rows ?? Array.from({ length: queries.count }, (_, i) => i);
    const tokens = query === 'tokens' ? tokensOf(queries) : undefined;
    const T = query === 'tokens' ? queries.tokenCount! : 1;
    const width = widthOf(queries, query);
    if (width !== dim) throw new Error(`visual memory: queries are ${width} wide, keys ${dim}`);
    const m = keyLabels.length;
    const out = new Float64Array(picked.length * T * m);
    const q = new Float32Array(dim);
    const ownKey = new Float32Array(dim);
    for (let i = 0; i < picked.length; i++) {
      const r = picked[i];
      // Leave-one-out: the key this row must not meet, and what stands in for it (nothing for a masked shot).
      const own = this.leavesOut ? this.ownKey(r, ownKey) : undefined;
      for (let t = 0; t < T; t++) {
        if (tokens) q.set(tokens.subarray((r * T + t) * dim, (r * T + t + 1) * dim));
        else imageVector(queries, query, r, q);
        normalizeInPlace(q);
        for (let k = 0; k < m; k++) {
          const key = own?.index === k ? own.replacement : keys.subarray(k * dim, (k + 1) * dim);
          let dot = NaN;
          if (key) {
            dot = 0;
            for (let d = 0; d < dim; d++) dot += q[d] * key[d];
          }
          out[(i * T + t) * m + k] = dot;
        }
      }
    }
    if (cacheable) this.store.cosines.set(queries, out);
    return out;
  }

  /** Which key shot `r` must not meet, and what replaces it: nothing (a shot key), or its class prototype without it. */
  private ownKey(r: number, scratch: Float32Array): { index: number; replacement?: Float32Array } {
    const { dim, shotKeys, shotLabels, classes, classSums } = this.store;
    if (this.options.keys === 'shots') return { index: r };
    const k = classes.indexOf(shotLabels[r]);
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      scratch[d] = classSums[k * dim + d] - shotKeys[r * dim + d];
      norm += scratch[d] * scratch[d];
    }
    // Its class's only shot: the class has no key left (a sum of unit vectors minus one of them is zero only then).
    if (norm < 1e-12) return { index: k };
    return { index: k, replacement: normalizeInPlace(scratch) };
  }
}

function checkOptions(options: MemoryOptions): void {
  if (!(MEMORY_QUERIES as readonly string[]).includes(options.query)) throw new Error(`memory.query must be one of ${MEMORY_QUERIES.join(', ')}, got "${options.query}"`);
  if (options.keys !== 'prototypes' && options.keys !== 'shots') throw new Error(`memory.keys must be prototypes or shots, got "${options.keys as string}"`);
  if (!Number.isInteger(options.keyViews) || options.keyViews < 0) throw new Error(`memory.keyViews must be a whole number ≥ 0, got ${options.keyViews}`);
}

function widthOf(set: FeatureSet, query: MemoryQuery): number {
  return query === 'pooled' ? set.pooledDim : set.embedDim;
}

function tokensOf(set: FeatureSet): Float32Array {
  const T = set.tokenCount;
  if (!set.tokens || !T) throw new Error('visual memory: this query reads spatial tokens, and the features have none (the run did not extract them)');
  if (set.tokens.length !== set.count * T * set.embedDim) throw new Error(`visual memory: tokens hold ${set.tokens.length} values, expected ${set.count} × ${T} × ${set.embedDim}`);
  return set.tokens;
}

/** Image `r`'s raw vector into `out`: its pooled features, its embedding, or the mean of its spatial tokens. */
function imageVector(set: FeatureSet, query: MemoryQuery, r: number, out: Float32Array): Float32Array {
  const width = out.length;
  if (query === 'pooled' || query === 'embedding') {
    out.set((query === 'pooled' ? set.pooled : set.embeds).subarray(r * width, (r + 1) * width));
    return out;
  }
  const tokens = tokensOf(set);
  const T = set.tokenCount!;
  out.fill(0);
  for (let t = 0; t < T; t++) {
    const at = (r * T + t) * width;
    for (let d = 0; d < width; d++) out[d] += tokens[at + d] / T;
  }
  return out;
}

function normalizeInPlace(v: Float32Array): Float32Array {
  let sum = 0;
  for (let d = 0; d < v.length; d++) sum += v[d] * v[d];
  const inv = 1 / Math.max(Math.sqrt(sum), 1e-12);
  for (let d = 0; d < v.length; d++) v[d] *= inv;
  return v;
}

function normalizedRows(data: Float32Array, dim: number): Float32Array {
  const out = data.slice();
  for (let r = 0; r < out.length / dim; r++) normalizeInPlace(out.subarray(r * dim, (r + 1) * dim));
  return out;
}
