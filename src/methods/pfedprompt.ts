// pFedPrompt (Guo, Guo and Wang, WWW 2023): a prompt shared by all clients in
// language space (user consensus, FedAvg of a CoOp context) plus a personal,
// non-parametric attention over each client's own few-shot image features in
// visual space (user characteristics; see visual-memory.ts). Final logits:
//
//   exp(logit_scale) · cos(f(x), w_c) + α · exp(−β (1 − cos(F_s(x), M_k))) · M_v
//
// trained with cross-entropy (the memory's term joins the training loss
// unless `memory.inTraining` is off; it has no parameters, so only the
// context learns). In training a training image is never its own key
// (`memory.leaveOneOut`): the loss's memory is called per batch row, and the
// rows index the client's training images. α and β are chosen after training
// by the clients' mean validation accuracy, each client scoring the
// candidates with its own memory.
//
// Trains: the shared context. Uploads: the context. Stays on the client: its
// visual memory (keys from its images' features, its labels) and its images.
// The memory is built inside the client half from the client's own data: the
// server half has no way to reach it.

import type { Method } from '../federation/method.js';
import { promptFl } from './promptfl.js';
import { DEFAULT_MEMORY, memoryReadsTokens, VisualMemory, type MemoryOptions } from './visual-memory.js';

export interface PFedPromptOptions {
  readonly weighted: boolean;
  readonly memory: MemoryOptions;
}

export const PFEDPROMPT_DEFAULTS: PFedPromptOptions = { weighted: true, memory: DEFAULT_MEMORY };

export function pFedPrompt(options: PFedPromptOptions = PFEDPROMPT_DEFAULTS): Method {
  const shared = promptFl({ weighted: options.weighted }); // the shared half is PromptFL's: FedAvg of the context
  return {
    ...shared,
    id: 'pfedprompt',
    label: 'pFedPrompt',
    trains: 'one prompt context shared by all clients (the visual memory is built, not trained)',
    staysOnClient: 'its visual memory (features and labels of its own shots) and its images',
    choosesOnValidation: "the visual memory's α and β",
    readsTokens: memoryReadsTokens(options.memory),
    client: {
      async fit(runtime, download) {
        const memory = options.memory.inTraining ? VisualMemory.ofClient(runtime, options.memory).forTraining() : undefined;
        const result = await runtime.train(download.context, { personal: memory });
        return { upload: { context: result.context }, personal: {}, loss: result.meanLoss, steps: result.steps };
      },
      predictor: (runtime, download, personal, choice) => ({
        ...shared.client.predictor(runtime, download, personal),
        personal: VisualMemory.ofClient(runtime, { ...options.memory, ...choice }),
      }),
    },
  };
}
