// PromptProx: FedProx moved onto the prompt. As PromptFL, but the local loss
// adds (μ/2)‖P − P_global‖², pulling each client's context towards the one it
// was sent. The penalty is part of the gradient (public code of this line
// computed it from detached copies, which silently turned it into PromptFL);
// test/methods.test.ts checks its gradient by finite differences.
//
// Trains: the shared context. Uploads: the context. Stays on the client: its
// images.

import type { Penalty } from '../federation/local-training.js';
import type { Method } from '../federation/method.js';
import { promptFl } from './promptfl.js';

export interface PromptProxOptions {
  /** Strength μ of the proximal term; 0.5 by default (searched over {0.01, 0.1, 0.5, 1} in the literature). */
  readonly mu: number;
  readonly weighted: boolean;
}

export const PROMPTPROX_DEFAULTS: PromptProxOptions = { mu: 0.5, weighted: true };

/** (μ/2)‖P − anchor‖² and its gradient μ(P − anchor). */
export function proximalPenalty(anchor: Float32Array, mu: number): Penalty {
  return (context) => {
    const grad = new Float32Array(context.length);
    let sum = 0;
    for (let i = 0; i < context.length; i++) {
      const d = context[i] - anchor[i];
      sum += d * d;
      grad[i] = mu * d;
    }
    return { value: 0.5 * mu * sum, grad };
  };
}

export function promptProx(options: PromptProxOptions = PROMPTPROX_DEFAULTS): Method {
  const base = promptFl({ weighted: options.weighted });
  return {
    ...base,
    id: 'promptprox',
    label: 'PromptProx',
    trains: 'one shared context, each client held near the global one by a proximal term',
    client: {
      ...base.client,
      async fit(runtime, download) {
        const result = await runtime.train(download.context, { penalty: proximalPenalty(download.context, options.mu) });
        return { upload: { context: result.context }, personal: {}, loss: result.meanLoss, steps: result.steps };
      },
    },
  };
}
