// PromptFL (Guo et al., 2023): FedAvg of a CoOp prompt. Clients start each
// round from the global context, train it locally, and the server averages
// what comes back, weighted by each client's training images (or equally).
// Every client is tested with the global prompt.
//
// Trains: the shared context. Uploads: the context. Stays on the client: its
// images.

import { contextOf, federatedAverage, type Method, type MethodServer } from '../federation/method.js';

export interface PromptFlOptions {
  /** FedAvg weighted by each client's training images (default), or a plain mean. */
  readonly weighted: boolean;
}

export const PROMPTFL_DEFAULTS: PromptFlOptions = { weighted: true };

/** The server of every method that averages one shared context: FedAvg. */
export function sharedContextServer(options: PromptFlOptions): MethodServer {
  return {
    uploadSpec: (setup) => ({ context: setup.contextSize }),
    initialState: (setup) => ({ context: setup.initialContext }),
    download: (server) => server,
    aggregate: (_server, uploads) => ({ context: federatedAverage(uploads, 'context', options.weighted) }),
  };
}

export function promptFl(options: PromptFlOptions = PROMPTFL_DEFAULTS): Method {
  return {
    id: 'promptfl',
    label: 'PromptFL',
    trains: 'one prompt context shared by all clients',
    uploads: 'the locally trained context',
    staysOnClient: 'its images',
    trainsPrompt: true,
    server: sharedContextServer(options),
    client: {
      async fit(runtime, download) {
        const result = await runtime.train(download.context);
        return { upload: { context: result.context }, personal: {}, loss: result.meanLoss, steps: result.steps };
      },
      predictor: (runtime, download) => ({ context: contextOf(download, 'context', runtime.setup) }),
    },
  };
}
