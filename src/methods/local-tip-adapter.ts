// Local Tip-Adapter (training-free): zero-shot CLIP's hand prompt plus the
// client's visual memory, nothing learned and nothing federated. Next to
// zero-shot CLIP and pFedPrompt it shows what the memory alone adds.
//
// Trains: nothing. Uploads: nothing. Stays on the client: its visual memory
// and its images.

import type { Method } from '../federation/method.js';
import { DEFAULT_MEMORY, VisualMemory, type MemoryOptions } from './visual-memory.js';
import { zeroShot } from './zero-shot.js';

export function localTipAdapter(memory: MemoryOptions = DEFAULT_MEMORY): Method {
  const base = zeroShot();
  return {
    ...base,
    id: 'local-tip-adapter',
    label: 'local Tip-Adapter',
    staysOnClient: 'its visual memory and its images',
    choosesOnValidation: "the visual memory's α and β",
    client: {
      ...base.client,
      predictor: (runtime, download, _personal, choice) => ({ context: download.context, personal: VisualMemory.ofClient(runtime, { ...memory, ...choice }) }),
    },
  };
}
