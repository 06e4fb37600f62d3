// pFedPrompt (Guo, Guo and Wang, WWW 2023): a prompt shared by all clients in
// language space (user consensus, FedAvg of a CoOp context) plus a personal,
// non-parametric attention over each client's own few-shot image features in
// visual space (user characteristics; see visual-memory.ts). Final logits:
//
//   exp(logit_scale) · cos(f(x), w_c) + α · exp(−β (1 − cos(F_s(x), M_k))) · M_v
//
// trained with cross-entropy (the memory's term joins the training loss
// unless `memory.inTraining` is off; it has no parameters, so only the
// context learns).
//
// Trains: the shared context. Uploads: the context. Stays on the client: its
// visual memory (keys from its images' features, its labels) and its images.

import { contextOf, type Method } from '../federation/method.js';
import { promptFl } from './promptfl.js';
import { DEFAULT_MEMORY, type MemoryOptions } from './visual-memory.js';

export interface PFedPromptOptions {
  readonly weighted: boolean;
  readonly memory: MemoryOptions;
}

export const PFEDPROMPT_DEFAULTS: PFedPromptOptions = { weighted: true, memory: DEFAULT_MEMORY };

export function pFedPrompt(options: PFedPromptOptions = PFEDPROMPT_DEFAULTS): Method {
  return {
    ...promptFl({ weighted: options.weighted }), // the shared half is PromptFL's: FedAvg of the context
    id: 'pfedprompt',
    label: 'pFedPrompt',
    trains: 'one prompt context shared by all clients (the visual memory is built, not trained)',
    staysOnClient: 'its visual memory (features and labels of its own shots) and its images',
    memoryOptions: options.memory,
    async fit(runtime, download) {
      const result = await runtime.train(download.context, { memory: options.memory.inTraining });
      return { upload: { context: result.context }, personal: {}, loss: result.meanLoss, steps: result.steps };
    },
    predictor: (download, _personal, setup) => ({ context: contextOf(download, 'context', setup), memory: true }),
  };
}
