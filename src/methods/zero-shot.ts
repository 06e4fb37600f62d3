// Zero-shot CLIP: the hand-written prompt "a photo of a {class}.", nothing
// trained. As a CoOp prompt whose four context vectors are the embeddings of
// "a photo of a", it is exactly CLIP's zero-shot classifier.
//
// Trains: nothing. Uploads: nothing. Stays on the client: its images.

import type { Method, MethodServer } from '../federation/method.js';

export const HAND_PROMPT_WORDS = 'a photo of a';

/** A server that only hands every client the run's starting context and never receives anything. */
export function seededStartServer(): MethodServer {
  return {
    uploadSpec: () => ({}),
    initialState: (setup) => ({ context: setup.initialContext }),
    download: (server) => server,
    aggregate: (server) => server,
  };
}

export function zeroShot(): Method {
  return {
    id: 'zeroshot',
    label: 'zero-shot CLIP',
    trains: 'nothing',
    uploads: 'nothing',
    staysOnClient: 'its images',
    prompt: { initWords: HAND_PROMPT_WORDS, position: 'end', classSpecific: false },
    trainsPrompt: false,
    server: seededStartServer(),
    client: {
      fit: async () => { throw new Error('zero-shot CLIP does not train'); },
      predictor: (_runtime, download) => ({ context: download.context }),
    },
  };
}
