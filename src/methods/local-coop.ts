// Local CoOp: each client learns its own prompt on its own images alone, for
// as many epochs as a federated client trains in the whole run; no
// federation. The floor any federated method must beat.
//
// Trains: the client's own context. Uploads: nothing. Stays on the client:
// its context and its images.

import { contextOf, type Method } from '../federation/method.js';
import { seededStartServer } from './zero-shot.js';

export function localCoop(): Method {
  return {
    id: 'local-coop',
    label: 'local CoOp',
    trains: "each client's own prompt context, on its own images only",
    uploads: 'nothing',
    staysOnClient: 'its prompt context and images',
    trainsPrompt: true,
    server: seededStartServer(), // the shared seeded starting point; never updated
    client: {
      async fit(runtime, download, personal) {
        const start = personal?.context ?? download.context;
        const result = await runtime.train(start);
        return { upload: {}, personal: { context: result.context }, loss: result.meanLoss, steps: result.steps };
      },
      predictor: (runtime, download, personal) => ({ context: contextOf(personal?.context ? personal : download, 'context', runtime.setup) }),
    },
  };
}
