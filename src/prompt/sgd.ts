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
}

/** CoOp's optimiser: SGD lr 0.002, momentum 0.9, weight decay 5e-4, cosine schedule. */
export const DEFAULT_SGD: SgdOptions = { lr: 0.002, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine' };

/** The learning rate of epoch `epoch` (0-based) out of `totalEpochs`. */
export function learningRate(options: SgdOptions, epoch: number, totalEpochs: number): number {
  if (options.schedule === 'constant' || totalEpochs <= 0) return options.lr;
  return 0.5 * options.lr * (1 + Math.cos((Math.PI * Math.min(epoch, totalEpochs)) / totalEpochs));
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
