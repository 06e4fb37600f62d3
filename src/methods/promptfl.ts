// PromptFL (Guo et al., 2023): FedAvg of a CoOp prompt. Clients start each
// round from the global context, train it locally, and the server averages
// what comes back, weighted by each client's training images (or equally).
// Every client is tested with the global prompt.
//
// Trains: the shared context. Uploads: the context. Stays on the client: its
// images.

import { contextOf, federatedAverage, type Method } from '../federation/method.js';

export interface PromptFlOptions {
  /** FedAvg weighted by each client's training images (default), or a plain mean. */
  readonly weighted: boolean;
}

export const PROMPTFL_DEFAULTS: PromptFlOptions = { weighted: true };

export function promptFl(options: PromptFlOptions = PROMPTFL_DEFAULTS): Method {
  return {
    id: 'promptfl',
    label: 'PromptFL',
    trains: 'one prompt context shared by all clients',
    uploads: 'the locally trained context',
    staysOnClient: 'its images',
    trainsPrompt: true,
    uploadSpec: (setup) => ({ context: setup.contextSize }),
    initialServer: (setup) => ({ context: setup.initialContext }),
    download: (server) => server,
    async fit(runtime, download) {
      const result = await runtime.train(download.context);
      return { upload: { context: result.context }, personal: {}, loss: result.meanLoss, steps: result.steps };
    },
    aggregate: (_server, uploads) => ({ context: federatedAverage(uploads, 'context', options.weighted) }),
    predictor: (download, _personal, setup) => ({ context: contextOf(download, 'context', setup), memory: false }),
  };
}
