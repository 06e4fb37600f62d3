// AdamW (Loshchilov and Hutter): Adam's moments with decoupled weight decay,
// on named float32 tensors updated in place, with global gradient-norm
// clipping and a warm-up + cosine learning-rate schedule.

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Clip the global gradient norm to this (Infinity: no clipping). */
  readonly maxGradNorm: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1, maxGradNorm: 1 };

export class AdamW {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;

  /** `decays(name)` says which tensors get weight decay (matrices, usually; not gains, biases or embeddings). */
  constructor(
    readonly params: ReadonlyMap<string, Float32Array>,
    readonly decays: (name: string) => boolean,
    readonly options: AdamWOptions = DEFAULT_ADAMW,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.length));
      this.v.set(name, new Float32Array(p.length));
    }
  }

  /** One step with learning rate `lr`; returns the gradient norm before clipping. */
  step(grads: ReadonlyMap<string, Float32Array>, lr: number): number {
    const { beta1, beta2, eps, weightDecay, maxGradNorm } = this.options;
    let sumSquares = 0;
    for (const [name, gr] of grads) {
      if (!this.params.has(name)) throw new Error(`AdamW: gradient for unknown parameter "${name}"`);
      for (let i = 0; i < gr.length; i++) sumSquares += gr[i] * gr[i];
    }
    const norm = Math.sqrt(sumSquares);
    if (!Number.isFinite(norm)) throw new Error(`AdamW: the gradient norm is ${norm}; training diverged`);
    const clip = norm > maxGradNorm ? maxGradNorm / norm : 1;
    this.t++;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const [name, p] of this.params) {
      const gr = grads.get(name);
      if (!gr) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const decay = this.decays(name) ? 1 - lr * weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        const gi = gr[i] * clip;
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        p[i] = p[i] * decay - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
      }
    }
    return norm;
  }
}

/** Linear warm-up to `peak` over `warmup` steps, then cosine decay to `peak · floor` at `total`. */
export function warmupCosine(step: number, total: number, warmup: number, peak: number, floor = 0.02): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
