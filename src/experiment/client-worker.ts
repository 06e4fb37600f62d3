// The entry module of the client worker threads of a simulated run: a worker
// builds the run's method from its id and options, then hosts its share of
// the clients (federation/client-executor.ts). Imported in the main thread,
// it only names itself.

import { serveClientWorker } from '../federation/client-executor.js';
import { createMethod, type MethodId, type MethodOptions } from '../methods/index.js';

/** How a run names its method to a client host. */
export interface MethodSpec {
  readonly id: MethodId;
  readonly options: MethodOptions;
}

export const methodFromSpec = (spec: unknown) => {
  const { id, options } = spec as MethodSpec;
  return createMethod(id, options);
};

export const CLIENT_WORKER_ENTRY = new URL(import.meta.url);

serveClientWorker(methodFromSpec);
