// What a federated prompt-learning method is: two halves that can live on
// different machines, as Flower's ServerApp and ClientApp do. The server half
// says what each client is sent, what a client may upload and how uploads
// combine; the client half says what a client does with what it was sent and
// its own personal state, which only the client ever holds. The engine
// (engine.ts) runs the server half; a client host (client.ts, a worker
// thread, a Flower node) runs the client half. Neither knows which method it
// runs beyond this interface.

import type { PromptOptions } from '../prompt/coop-prompt.js';
import type { ClientData, FeatureSet } from './client-data.js';
import type { LocalTrainingResult, Penalty, TrainingSchedule } from './local-training.js';
import type { TextTower } from './text-tower.js';

/** Named float tensors: a message between server and client, or a client's personal state. */
export type Tensors = Readonly<Record<string, Float32Array>>;

/** One option a client scores on its validation images (pFedPrompt's α and β); the server keeps the best mean. */
export type Choice = Readonly<Record<string, number>>;

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

/** Logits a client adds to CLIP's from its own state (pFedPrompt's visual memory). */
export interface PersonalLogits {
  /** [rows, classes] for `rows` of `set` (every row when absent). */
  logits(set: FeatureSet, rows?: ArrayLike<number>): Float32Array;
}

/** What a client computes with. */
export interface ClientRuntime {
  readonly setup: FederationSetup;
  readonly data: ClientData;
  /** Classes of the dataset (the label space every client scores over). */
  readonly numClasses: number;
  readonly round: number;
  /** Runs the shared training loop (CLIP's cross-entropy) from `start` for the run's local epochs (or as `options` asks). */
  train(start: Float32Array, options?: ScheduleRequest & { readonly penalty?: Penalty; readonly personal?: PersonalLogits }): Promise<LocalTrainingResult>;
  /** For a method with a loss of its own: the frozen text tower under the run's prompt layout… */
  readonly text: TextTower;
  /** …and the schedule `train` would follow (epochs, batch size, learning rates, SGD, this step's seed), for `forEachBatch`. */
  schedule(options?: ScheduleRequest): TrainingSchedule;
}

/** A local training other than the run's: `epochs` on the run's schedule, or epochs at these `learningRates` (a fine-tune's own). */
export interface ScheduleRequest {
  readonly epochs?: number;
  readonly learningRates?: readonly number[];
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
  /** Training images the client holds, as it reports them (FedAvg's weight). */
  readonly samples: number;
  readonly tensors: Tensors;
}

/**
 * How a client predicts: CLIP's logits under `context` plus its personal
 * logits, or — for a method that scores images its own way (FedOTP's
 * transport, pFedMoAP's mixture) — `logits` alone.
 */
export interface Predictor {
  readonly context?: Float32Array;
  readonly personal?: PersonalLogits;
  /** Logits [n, C] of every image of `set`, replacing CLIP's. */
  readonly logits?: (set: FeatureSet) => Promise<Float32Array>;
}

/** The server half: never sees a client's personal state, only uploads. */
export interface MethodServer {
  /** Names and lengths of the tensors a client uploads each round; anything else is refused. Empty: nothing is ever sent. */
  uploadSpec(setup: FederationSetup): Readonly<Record<string, number>>;
  /** The server's state before the first round. */
  initialState(setup: FederationSetup): Tensors;
  /** What the server sends `client` (for a round, the finishing step and evaluation). */
  download(server: Tensors, client: number, setup: FederationSetup): Tensors;
  /** The server's next state from this round's uploads (of the clients that replied). */
  aggregate(server: Tensors, uploads: readonly ClientUpload[], setup: FederationSetup): Tensors;
}

/** The client half: runs where the client's images are, with the client's own state. */
export interface MethodClient {
  /** A local round. `personal` is what this client kept from its last round (absent the first time). */
  fit(runtime: ClientRuntime, download: Tensors, personal: Tensors | undefined): Promise<FitResult>;
  /** After the last round, the client's own last step before testing (PromptFL+FT's fine-tuning); returns its new personal state. */
  finish?(runtime: ClientRuntime, download: Tensors, personal: Tensors | undefined): Promise<Tensors>;
  /** How the client predicts from what it was sent and its own state; `choice` is a candidate to score, or the one chosen. */
  predictor(runtime: ClientRuntime, download: Tensors, personal: Tensors | undefined, choice?: Choice): Predictor;
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
  /** Whether clients train at all (zero-shot CLIP and Tip-Adapter do not). */
  readonly trainsPrompt: boolean;
  /** Whether the client reads each image's spatial tokens (FeatureSet.tokens, FedOTP); only then are they computed and sent to it. */
  readonly readsTokens?: boolean;
  /** What the clients' validation scores choose, when the method has choices to make (pFedPrompt: the memory's α and β). */
  readonly choosesOnValidation?: string;
  /**
   * The candidates of a method that brings its own (PromptFL+FT's fine-tuning schedules), and the field of
   * a cell's config that records the selection; absent: the run's memory grid, recorded as `memorySelection`.
   */
  readonly choices?: { readonly record: string; readonly candidates: readonly Choice[] };
  readonly server: MethodServer;
  readonly client: MethodClient;
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
