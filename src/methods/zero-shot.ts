// Zero-shot CLIP: the hand-written prompt "a photo of a {class}.", nothing
// trained. As a CoOp prompt whose four context vectors are the embeddings of
// "a photo of a", it is exactly CLIP's zero-shot classifier.
//
// Trains: nothing. Uploads: nothing. Stays on the client: its images.

import type { Method } from '../federation/method.js';

export const HAND_PROMPT_WORDS = 'a photo of a';

export function zeroShot(): Method {
  return {
    id: 'zeroshot',
    label: 'zero-shot CLIP',
    trains: 'nothing',
    uploads: 'nothing',
    staysOnClient: 'its images',
    prompt: { initWords: HAND_PROMPT_WORDS, position: 'end', classSpecific: false },
    trainsPrompt: false,
    uploadSpec: () => ({}),
    initialServer: (setup) => ({ context: setup.initialContext }),
    download: (server) => server,
    fit: async () => { throw new Error('zero-shot CLIP does not train'); },
    aggregate: (server) => server,
    predictor: (download) => ({ context: download.context, memory: false }),
  };
}
