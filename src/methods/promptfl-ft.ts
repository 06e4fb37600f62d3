// PromptFL+FT: PromptFL, then each client fine-tunes the final global prompt
// on its own images before testing (personalisation by local adaptation).
// Curves per round show the global prompt; the final test uses each
// client's fine-tuned one.
//
// Trains: the shared context, then a private copy of it. Uploads: the context
// during the rounds; nothing of the fine-tuned copy. Stays on the client: its
// fine-tuned context and its images.

import { contextOf, type Method } from '../federation/method.js';
import { PROMPTFL_DEFAULTS, promptFl, type PromptFlOptions } from './promptfl.js';

export interface PromptFlFtOptions extends PromptFlOptions {
  /** Local fine-tuning epochs after the last round (default: the run's local epochs). */
  readonly fineTuneEpochs?: number;
}

export function promptFlFineTuned(options: PromptFlFtOptions = PROMPTFL_DEFAULTS): Method {
  const base = promptFl(options);
  return {
    ...base,
    id: 'promptfl-ft',
    label: 'PromptFL+FT',
    trains: 'the shared context, then a private fine-tuned copy on each client',
    uploads: 'the locally trained context (never the fine-tuned copy)',
    staysOnClient: 'its fine-tuned context and its images',
    client: {
      ...base.client,
      async finish(runtime, download) {
        const tuned = await runtime.train(download.context, { epochs: options.fineTuneEpochs });
        return { context: tuned.context };
      },
      predictor: (runtime, download, personal) => ({ context: contextOf(personal?.context ? personal : download, 'context', runtime.setup) }),
    },
  };
}
