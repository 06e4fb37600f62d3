// Local CoOp: each client learns its own prompt on its own images alone, for
// as many epochs as a federated client trains in the whole run; no
// federation. The floor any federated method must beat.
//
// Trains: the client's own context. Uploads: nothing. Stays on the client:
// its context and its images.

import { contextOf, type Method } from '../federation/method.js';

export function localCoop(): Method {
  return {
    id: 'local-coop',
    label: 'local CoOp',
    trains: "each client's own prompt context, on its own images only",
    uploads: 'nothing',
    staysOnClient: 'its prompt context and images',
    trainsPrompt: true,
    uploadSpec: () => ({}),
    initialServer: (setup) => ({ context: setup.initialContext }),
    download: (server) => server, // the shared seeded starting point; never updated
    async fit(runtime, download, personal) {
      const start = personal?.context ?? download.context;
      const result = await runtime.train(start);
      return { upload: {}, personal: { context: result.context }, loss: result.meanLoss, steps: result.steps };
    },
    aggregate: (server) => server,
    predictor: (download, personal, setup) => ({ context: contextOf(personal ?? download, 'context', setup), memory: false }),
  };
}
