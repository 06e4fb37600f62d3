// PromptPer: FedPer's parameter decoupling moved onto the prompt. The context
// is split along its tokens: the first ⌊M/2⌋ vectors are global and averaged
// by the server, the rest are personal and never leave the client. Each
// client trains both halves; it tests with the global half it was sent and
// its own personal half.
//
// Trains: the whole context. Uploads: its global (first ⌊M/2⌋ tokens) rows.
// Stays on the client: the personal rows and its images.

import { contextOf, federatedAverage, type FederationSetup, type Method, type Tensors } from '../federation/method.js';

export interface PromptPerOptions {
  /** Global context tokens; default ⌊M/2⌋. */
  readonly globalTokens?: number;
  readonly weighted: boolean;
}

export function promptPer(options: PromptPerOptions = { weighted: true }): Method {
  /** Rows of the context that are global (token index below the split), in order. */
  const globalRows = (setup: FederationSetup): number[] => {
    const M = setup.contextTokens;
    const split = options.globalTokens ?? Math.floor(M / 2);
    if (!(Number.isInteger(split) && split >= 0 && split <= M)) throw new Error(`PromptPer: global tokens must be in 0 … ${M}, got ${split}`);
    return Array.from({ length: setup.contextRows }, (_, r) => r).filter((r) => r % M < split);
  };
  const personalRows = (setup: FederationSetup): number[] => {
    const global = new Set(globalRows(setup));
    return Array.from({ length: setup.contextRows }, (_, r) => r).filter((r) => !global.has(r));
  };
  const gather = (context: Float32Array, rows: readonly number[], W: number): Float32Array => {
    const out = new Float32Array(rows.length * W);
    rows.forEach((r, i) => out.set(context.subarray(r * W, (r + 1) * W), i * W));
    return out;
  };
  /** The full context from its global rows and the client's personal rows. */
  const assemble = (download: Tensors, personal: Tensors | undefined, setup: FederationSetup): Float32Array => {
    const W = setup.width;
    const context = setup.initialContext.slice();
    globalRows(setup).forEach((r, i) => context.set(download.global.subarray(i * W, (i + 1) * W), r * W));
    if (personal?.personal) personalRows(setup).forEach((r, i) => context.set(personal.personal.subarray(i * W, (i + 1) * W), r * W));
    return context;
  };
  return {
    id: 'promptper',
    label: 'PromptPer',
    trains: 'the whole context: its first ⌊M/2⌋ token vectors shared, the rest personal',
    uploads: 'the shared token vectors only',
    staysOnClient: 'its personal token vectors and its images',
    trainsPrompt: true,
    server: {
      uploadSpec: (setup) => ({ global: globalRows(setup).length * setup.width }),
      initialState: (setup) => ({ global: gather(setup.initialContext, globalRows(setup), setup.width) }),
      download: (server) => server,
      aggregate: (_server, uploads) => ({ global: federatedAverage(uploads, 'global', options.weighted) }),
    },
    client: {
      async fit(runtime, download, personal) {
        const setup = runtime.setup;
        const result = await runtime.train(assemble(download, personal, setup));
        return {
          upload: { global: gather(result.context, globalRows(setup), setup.width) },
          personal: { personal: gather(result.context, personalRows(setup), setup.width) },
          loss: result.meanLoss,
          steps: result.steps,
        };
      },
      predictor: (runtime, download, personal) => ({ context: contextOf({ context: assemble(download, personal, runtime.setup) }, 'context', runtime.setup) }),
    },
  };
}
