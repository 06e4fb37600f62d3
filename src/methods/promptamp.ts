// PromptAMP: FedAMP's attentive message passing moved onto the prompt. Each
// client keeps its own context P_i and uploads it; the server sends client i
// a "cloud prompt" that weighs every other client's context by how close it
// is to P_i,
//
//   u_i = (1 − Σ_j ξ_ij) P_i + Σ_j ξ_ij P_j,   ξ_ij = α_K · exp(−‖P_i − P_j‖² / σ) / σ  (j ≠ i),
//
// and the client minimises CE + (λ / 2α_K)‖P − u_i‖² from its own P_i. Every
// ξ_ij is non-negative (one public port flipped a sign), and the penalty's
// gradient is checked by finite differences in test/methods.test.ts.
//
// Trains: each client's own context. Uploads: that context. Stays on the
// client: nothing else but its images (its context is sent, as in FedAMP).

import { contextOf, type ClientUpload, type Method, type Tensors } from '../federation/method.js';
import { proximalPenalty } from './promptprox.js';

export interface PromptAmpOptions {
  readonly alphaK: number;
  readonly sigma: number;
  readonly lambda: number;
}

/** α_K 0.1 and σ 1 keep the self-weight 1 − Σ_j ξ_ij non-negative for up to 11 clients; λ 1 as PFLlib. */
export const PROMPTAMP_DEFAULTS: PromptAmpOptions = { alphaK: 0.1, sigma: 1, lambda: 1 };

const cloudKey = (client: number): string => `cloud/${client}`;

/** Each uploader's cloud prompt u_i from this round's contexts. */
export function cloudPrompts(uploads: readonly ClientUpload[], options: PromptAmpOptions): Map<number, Float32Array> {
  const { alphaK, sigma } = options;
  const out = new Map<number, Float32Array>();
  for (const a of uploads) {
    const Pi = a.tensors.context;
    const u = new Float64Array(Pi.length);
    let others = 0;
    for (const b of uploads) {
      if (b.client === a.client) continue;
      const Pj = b.tensors.context;
      let distance = 0;
      for (let k = 0; k < Pi.length; k++) distance += (Pi[k] - Pj[k]) ** 2;
      const xi = (alphaK * Math.exp(-distance / sigma)) / sigma;
      others += xi;
      for (let k = 0; k < Pi.length; k++) u[k] += xi * Pj[k];
    }
    const self = 1 - others;
    for (let k = 0; k < Pi.length; k++) u[k] += self * Pi[k];
    out.set(a.client, Float32Array.from(u));
  }
  return out;
}

export function promptAmp(options: PromptAmpOptions = PROMPTAMP_DEFAULTS): Method {
  if (!(options.alphaK > 0 && options.sigma > 0 && options.lambda >= 0)) throw new Error('PromptAMP: α_K and σ must be positive and λ non-negative');
  return {
    id: 'promptamp',
    label: 'PromptAMP',
    trains: "each client's own context, pulled towards its cloud prompt",
    uploads: "the client's context",
    staysOnClient: 'its images',
    trainsPrompt: true,
    server: {
      uploadSpec: (setup) => ({ context: setup.contextSize }),
      initialState: (setup) => {
        const server: Record<string, Float32Array> = {};
        for (let i = 0; i < setup.clients; i++) server[cloudKey(i)] = setup.initialContext;
        return server;
      },
      download: (server, client) => ({ cloud: server[cloudKey(client)] }),
      aggregate(server, uploads) {
        const next: Record<string, Float32Array> = { ...server };
        for (const [client, u] of cloudPrompts(uploads, options)) next[cloudKey(client)] = u;
        return next as Tensors;
      },
    },
    client: {
      async fit(runtime, download, personal) {
        const start = personal?.context ?? download.cloud;
        const penalty = proximalPenalty(download.cloud, options.lambda / options.alphaK);
        const result = await runtime.train(start, { penalty });
        return { upload: { context: result.context }, personal: { context: result.context }, loss: result.meanLoss, steps: result.steps };
      },
      predictor: (runtime, download, personal) => ({ context: contextOf(personal?.context ? personal : { context: download.cloud }, 'context', runtime.setup) }),
    },
  };
}
