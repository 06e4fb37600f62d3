// What a federated prompt-learning method is, as the engine sees it: a value
// plugged into one engine (Flower's strategies are the model). A method says
// what it trains, what a client uploads and what stays on the client; the
// engine holds each client's personal state where the server never reads it,
// and lets nothing leave a client but the tensors the method declares.

import type { PromptOptions } from '../prompt/coop-prompt.js';
import type { MemoryOptions, VisualMemory } from '../methods/visual-memory.js';
import type { ClientData } from './client-data.js';
import type { LocalTrainingResult, Penalty } from './local-training.js';

/** Named float tensors: a message between server and client, or a client's personal state. */
export type Tensors = Readonly<Record<string, Float32Array>>;

/** Facts every method may read. */
export interface FederationSetup {
  readonly clients: number;
  readonly rounds: number;
  /** Values in the prompt context [rows, width]. */
  readonly contextSize: number;
  readonly contextRows: number;
  /** Context vectors per prompt, M (rows = M, or C·M for class-specific contexts). */
  readonly contextTokens: number;
  readonly width: number;
  /** The run's seeded starting context, the same for every client. */
  readonly initialContext: Float32Array;
}

/** What a client computes with in its local round. */
export interface ClientRuntime {
  readonly setup: FederationSetup;
  readonly data: ClientData;
  readonly round: number;
  /** Runs the shared training loop from `start` for the run's local epochs (or `epochs`). */
  train(start: Float32Array, options?: { readonly penalty?: Penalty; readonly memory?: boolean; readonly epochs?: number }): Promise<LocalTrainingResult>;
  /** The client's visual memory, built from its own shots. */
  memory(): VisualMemory;
}

export interface FitResult {
  /** Exactly the tensors of the method's upload spec: all that leaves the client. */
  readonly upload: Tensors;
  /** Kept by the client for its next round and for testing. */
  readonly personal: Tensors;
  readonly loss: number;
  readonly steps: number;
}

export interface ClientUpload {
  readonly client: number;
  /** Training images the client holds (FedAvg's weight). */
  readonly samples: number;
  readonly tensors: Tensors;
}

/** How a client predicts at test time. */
export interface Predictor {
  readonly context: Float32Array;
  /** Whether the client's visual memory adds its personal logits. */
  readonly memory: boolean;
}

export interface Method {
  /** Identifier used in configs and results, e.g. 'promptfl'. */
  readonly id: string;
  /** Name in tables, e.g. 'PromptFL'. */
  readonly label: string;
  readonly trains: string;
  readonly uploads: string;
  readonly staysOnClient: string;
  /** The prompt layout this method uses instead of the run's (zero-shot CLIP's hand prompt). */
  readonly prompt?: Partial<PromptOptions>;
  /** Memory options, for methods that use the visual memory. */
  readonly memoryOptions?: MemoryOptions;
  /** Whether clients train at all (zero-shot CLIP and Tip-Adapter do not). */
  readonly trainsPrompt: boolean;
  /** Names and lengths of the tensors a client uploads each round; the engine refuses anything else. Empty: nothing is ever sent. */
  uploadSpec(setup: FederationSetup): Readonly<Record<string, number>>;
  /** The server's state before the first round. */
  initialServer(setup: FederationSetup): Tensors;
  /** What the server sends `client` at the start of a round (also what the client predicts with, with its personal state). */
  download(server: Tensors, client: number, setup: FederationSetup): Tensors;
  /** A client's local round. `personal` is what it kept from its last round (absent the first time). */
  fit(runtime: ClientRuntime, download: Tensors, personal: Tensors | undefined): Promise<FitResult>;
  /** The server's next state from this round's uploads. */
  aggregate(server: Tensors, uploads: readonly ClientUpload[], setup: FederationSetup): Tensors;
  predictor(download: Tensors, personal: Tensors | undefined, setup: FederationSetup): Predictor;
  /** After the last round, a client's own last step before testing (PromptFL+FT's fine-tuning); returns its new personal state. */
  finish?(runtime: ClientRuntime, download: Tensors, personal: Tensors | undefined): Promise<Tensors>;
}

/** The context a message or state must hold, checked. */
export function contextOf(tensors: Tensors | undefined, name: string, setup: FederationSetup): Float32Array {
  const t = tensors?.[name];
  if (!t) throw new Error(`missing tensor "${name}"`);
  if (t.length !== setup.contextSize) throw new Error(`tensor "${name}" has ${t.length} values, expected ${setup.contextSize}`);
  return t;
}

/** FedAvg: Σ_k w_k x_k / Σ_k w_k of one named tensor across uploads, weighted by samples or equally. */
export function federatedAverage(uploads: readonly ClientUpload[], name: string, weighted: boolean): Float32Array {
  if (uploads.length === 0) throw new Error('federated average of no uploads');
  const size = uploads[0].tensors[name].length;
  const out = new Float64Array(size);
  let total = 0;
  for (const u of uploads) {
    const x = u.tensors[name];
    const w = weighted ? u.samples : 1;
    total += w;
    for (let i = 0; i < size; i++) out[i] += w * x[i];
  }
  if (!(total > 0)) throw new Error('federated average: the uploads carry no weight (no client has samples)');
  return Float32Array.from(out, (v) => v / total);
}
