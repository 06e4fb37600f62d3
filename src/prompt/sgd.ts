// Stochastic gradient descent as PyTorch's torch.optim.SGD computes it
// (weight decay added to the gradient, heavy-ball momentum whose buffer
// starts at the first gradient), with the learning-rate schedules CoOp uses.

export interface SgdOptions {
  /** Base learning rate. */
  readonly lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  /** 'cosine': lr · ½(1 + cos(π t / T)) over the run's epochs; 'constant': lr throughout. */
  readonly schedule: 'constant' | 'cosine';
  /**
   * The run's first epochs at the constant `warmupLr` (default 1e-5), after which the schedule starts
   * from its own beginning (Dassl's ConstantWarmupScheduler with WARMUP_RECOUNT, its default: epoch
   * W + t runs at the schedule's rate of epoch t). Default 0.
   */
  readonly warmupEpochs?: number;
  readonly warmupLr?: number;
}

/** CoOp's optimiser: SGD lr 0.002, momentum 0.9, weight decay 5e-4, cosine schedule (its one warm-up epoch at 1e-5 is an option). */
export const DEFAULT_SGD: SgdOptions = { lr: 0.002, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine' };

/** CoOp's and PromptFL's warm-up rate (WARMUP_CONS_LR). */
export const WARMUP_LR = 1e-5;

/**
 * The learning rate of epoch `epoch` (0-based) of a run of `totalEpochs`, as PyTorch's
 * CosineAnnealingLR (T_max = totalEpochs) under Dassl's warm-up gives it, stepped once per epoch
 * (test/fixtures/schedule). Past the run's end the cosine carries on as PyTorch's does, rising again.
 */
export function learningRate(options: SgdOptions, epoch: number, totalEpochs: number): number {
  const warmup = options.warmupEpochs ?? 0;
  if (epoch < warmup) return options.warmupLr ?? WARMUP_LR;
  if (options.schedule === 'constant' || totalEpochs <= 0) return options.lr;
  return 0.5 * options.lr * (1 + Math.cos((Math.PI * (epoch - warmup)) / totalEpochs));
}

export class Sgd {
  /** Momentum buffer; absent until the first step (PyTorch starts it at the first gradient). */
  private buffer: Float32Array | undefined;

  constructor(private readonly options: SgdOptions) {}

  /** Updates `params` in place with `grad` at learning rate `lr`. */
  step(params: Float32Array, grad: Float32Array, lr: number): void {
    if (grad.length !== params.length) throw new Error(`SGD: gradient of ${grad.length} values for ${params.length} parameters`);
    const { momentum, weightDecay } = this.options;
    const first = this.buffer === undefined;
    if (momentum > 0 && first) this.buffer = new Float32Array(params.length);
    const buffer = this.buffer;
    for (let i = 0; i < params.length; i++) {
      let d = grad[i] + weightDecay * params[i];
      if (buffer) d = buffer[i] = first ? d : momentum * buffer[i] + d;
      params[i] -= lr * d;
    }
  }
}
