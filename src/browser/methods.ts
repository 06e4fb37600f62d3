// The methods a browser node runs, and what each declares it trains, uploads and keeps:
// every method's client half runs on the node (src/methods/), so every method runs here.
import { METHOD_IDS, createMethod } from '../methods/index.js';
import type { MethodTexts } from './node-worker.js';

export function browserMethods(): MethodTexts[] {
  return METHOD_IDS.map((id) => {
    const { label, trains, uploads, staysOnClient } = createMethod(id);
    return { id, label, trains, uploads, staysOnClient };
  });
}
