// Seeded random CLIP weights of any architecture, for benchmarks, tests and
// as the starting point of pre-training. They follow the scaling of the
// PyTorch reference's `randomize_` (shared/reference/clip_ref.py): matrices
// with std fan_in^-0.5, layer and batch norms with affine terms near (1, 0),
// positive running variances, so activations stay finite through deep towers,
// and every tensor matters (a tensor loaded wrongly changes the outputs).
//
// The values are not those of PyTorch's generator: only the distributions
// match. Each tensor draws from its own stream, seeded by (seed, name), so a
// tensor's values do not depend on which other tensors the architecture has.

import { expectedShapes } from './checkpoint.js';
import { CLIP_PREPROCESS, type ClipConfig, type ClipWeights, type HostTensor } from './weights.js';

// ---------------------------------------------------------------- configs of the released models

const CLIP_TEXT_BASE = { contextLength: 77, vocabSize: 49408, width: 512, layers: 12, heads: 8 } as const;
const VIT_B_VISION = { kind: 'vit', imageSize: 224, width: 768, layers: 12, heads: 12 } as const;

/** OpenAI's ViT-B/16: 224 px, 16 px patches, a 12-layer width-768 image tower. */
export const CLIP_VIT_B16: ClipConfig = {
  embedDim: 512,
  vision: { ...VIT_B_VISION, patchSize: 16 },
  text: CLIP_TEXT_BASE,
  layerNormEps: 1e-5,
};

/** OpenAI's ViT-B/32: as ViT-B/16 with 32 px patches. */
export const CLIP_VIT_B32: ClipConfig = { ...CLIP_VIT_B16, vision: { ...VIT_B_VISION, patchSize: 32 } };

/** OpenAI's RN50: ModifiedResNet [3, 4, 6, 3] of stem width 64, attention pooling with 32 heads. */
export const CLIP_RN50: ClipConfig = {
  embedDim: 1024,
  vision: { kind: 'resnet', imageSize: 224, width: 64, layers: [3, 4, 6, 3], heads: 32 },
  text: CLIP_TEXT_BASE,
  layerNormEps: 1e-5,
};

// ---------------------------------------------------------------- generator

/**
 * A small, fast seeded generator: mulberry32 for uniforms, Marsaglia's polar
 * method for normals (about 13 ns a value; pairs are made, the second is kept
 * for the next call). normals(n) gives the same values as n calls of normal().
 */
export class SeededRandom {
  private state: number;
  private spareNormal: number | undefined;

  constructor(seed: number) {
    this.state = seed | 0;
  }

  /** A stream for `name` under `seed`: independent of every other name's. */
  static forName(seed: number, name: string): SeededRandom {
    // FNV-1a of the name, mixed with the seed so that nearby seeds differ everywhere.
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    return new SeededRandom(Math.imul(h ^ Math.imul(seed | 0, 0x9e3779b1), 0x85ebca6b) ^ seed);
  }

  /** A 32-bit unsigned integer (mulberry32). */
  nextUint32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in (0, 1), never exactly 0 or 1. */
  uniform(): number {
    return (this.nextUint32() + 0.5) / 4294967296;
  }

  /** An integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low));
  }

  /** A standard normal. */
  normal(): number {
    return this.normals(1)[0];
  }

  /** `count` normals of the given std and mean. */
  normals(count: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(count);
    let i = 0;
    if (count > 0 && this.spareNormal !== undefined) {
      out[i++] = mean + std * this.spareNormal;
      this.spareNormal = undefined;
    }
    // nextUint32 inlined, on a local copy of the state: this loop draws every weight.
    let state = this.state;
    while (i < count) {
      let t = (state = (state + 0x6d2b79f5) | 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const x = ((t ^ (t >>> 14)) | 0) / 2147483648; // uniform in [-1, 1)
      t = (state = (state + 0x6d2b79f5) | 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const y = ((t ^ (t >>> 14)) | 0) / 2147483648;
      const radius2 = x * x + y * y;
      if (radius2 >= 1 || radius2 === 0) continue; // outside the unit disc: draw again
      const f = Math.sqrt((-2 * Math.log(radius2)) / radius2);
      out[i++] = mean + std * x * f;
      if (i < count) out[i++] = mean + std * y * f;
      else this.spareNormal = y * f;
    }
    this.state = state;
    return out;
  }

  /** `count` uniforms in (low, high). */
  uniforms(count: number, low = 0, high = 1): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = low + (high - low) * this.uniform();
    return out;
  }
}

// ---------------------------------------------------------------- weights

/** How clip_ref.randomize_ draws the tensor `name` of `shape`. */
function drawTensor(name: string, shape: readonly number[], random: SeededRandom): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (name === 'logit_scale') return Float32Array.of(Math.log(1 / 0.07));
  if (name.endsWith('.running_mean')) return random.normals(count, 0.1);
  if (name.endsWith('.running_var')) return random.uniforms(count, 0.5, 1.5);
  // Layer norm and batch norm affine terms: scale ≈ 1, shift ≈ 0.
  const isNorm = shape.length === 1 && (name.includes('ln') || name.includes('bn') || name.includes('downsample.1'));
  if (isNorm) return name.endsWith('weight') ? random.normals(count, 0.1, 1) : random.normals(count, 0.1);
  if (name.endsWith('bias')) return random.normals(count, 0.02);
  if (name === 'token_embedding.weight') return random.normals(count, 0.02);
  if (name === 'positional_embedding') return random.normals(count, 0.01);
  // Everything else is read as x @ W or W x: keep unit variance through it.
  let fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : shape[0];
  if (name === 'text_projection' || name === 'visual.proj') fanIn = shape[0]; // stored [in, out]
  return random.normals(count, fanIn ** -0.5);
}

/**
 * Random weights for `config` under the OpenAI state-dict names and shapes
 * the graph builders read (checkpoint.ts's expectedShapes), the same for the
 * same (config, seed). ViT-B/16 draws 150 M values: about 2 s.
 */
export function randomClipWeights(config: ClipConfig, seed: number): ClipWeights {
  const tensors = new Map<string, HostTensor>();
  for (const [name, shape] of expectedShapes(config)) {
    tensors.set(name, { shape: [...shape], data: drawTensor(name, shape, SeededRandom.forName(seed, name)) });
  }
  return { config, preprocess: CLIP_PREPROCESS(config.vision.imageSize), source: `random CLIP weights (seed ${seed})`, tensors };
}
