// The server side of a federation: rounds of download → local training →
// upload → aggregation, then evaluation of every client. It runs the server
// half of a method and talks to clients only through a ClientExecutor: it
// sends what the method says each client is sent and receives uploads and
// scores, never a client's personal state or data. An upload that is not
// exactly what the method declared (names, sizes, finite values) is refused
// and its client left out of the round, like a client that fails or times
// out; the run goes on while at least `minClients` reply. Bytes are counted
// on what actually crosses, each way, each round.

import { SeededRandom } from '../clip/random.js';
import type { EvaluateReply } from './client.js';
import type { ClientExecutor, FitJob, FitJobReply } from './client-executor.js';
import type { Choice, ClientUpload, FederationSetup, Method, Tensors } from './method.js';

export interface FederationOptions {
  /** Fraction of clients training each round (at least one). */
  readonly participation: number;
  readonly seed: number;
  /** Choices the clients score on their validation images after training, when the method has any (pFedPrompt's α and β); empty: the method's own. */
  readonly choices: readonly Choice[];
  /** Evaluate every client on its test images after every round (the per-round curves). */
  readonly evaluateEachRound: boolean;
  /** Fewest clients whose replies a round (or an evaluation) needs; fewer stops the run. Default 1. */
  readonly minClients?: number;
  /** A client that has not replied after this many seconds is left out of that step. Default: no limit. */
  readonly timeoutSeconds?: number;
  /** Told of every client left out, as it happens. */
  readonly onFailure?: (failure: ClientFailure) => void;
}

export interface ClientFailure {
  readonly client: number;
  /** 'fit', 'finish', 'evaluate' or 'select', and the round for fits. */
  readonly stage: string;
  readonly round?: number;
  readonly reason: string;
}

export interface RoundRecord {
  readonly round: number;
  readonly participants: readonly number[];
  /** Mean over clients of test accuracy after this round (when evaluated). */
  readonly meanAccuracy?: number;
  readonly clientAccuracies?: readonly number[];
  /** Mean local training loss of the participants that replied. */
  readonly trainLoss: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly seconds: number;
  /** Clients left out of this round, and why. */
  readonly failures: readonly ClientFailure[];
  /** Where the round's time went: clients' local training, the server's aggregation, evaluating every client. */
  readonly stageSeconds: { readonly training: number; readonly aggregation: number; readonly evaluation: number };
}

export interface Selection {
  /** Each candidate with the mean validation accuracy over clients. */
  readonly candidates: readonly (Choice & { readonly valAccuracy: number })[];
  readonly chosen: Choice;
  readonly how: string;
}

export interface FederationResult {
  /** Every client that replied to the final evaluation. */
  /** Each client's final test accuracy, and its validation accuracy under the same prediction (NaN without validation images): what a default is chosen on. */
  readonly clients: readonly { readonly id: number; readonly accuracy: number; readonly testCount: number; readonly valAccuracy: number }[];
  readonly rounds: readonly RoundRecord[];
  /** What the clients' validation scores chose, for methods with choices to make. */
  readonly selection?: Selection;
  /** Every client left out of any step, rounds included. */
  readonly failures: readonly ClientFailure[];
  /** The server's state after the last round: the shared prompt that a deployment would send its clients. */
  readonly finalState: Tensors;
}

const bytesOf = (tensors: Tensors): number => Object.values(tensors).reduce((sum, t) => sum + t.byteLength, 0);

/** Checks an upload against the method's declaration; anything else is an error naming the client. */
export function checkUpload(method: Method, setup: FederationSetup, client: number, upload: Tensors): void {
  const spec = method.server.uploadSpec(setup);
  const declared = Object.keys(spec);
  for (const name of Object.keys(upload)) {
    if (!(name in spec)) throw new Error(`client ${client} tried to upload "${name}", which ${method.label} does not declare (it uploads: ${declared.join(', ') || 'nothing'})`);
  }
  for (const name of declared) {
    const t = upload[name];
    if (!(t instanceof Float32Array)) throw new Error(`client ${client}: upload "${name}" is missing or not a Float32Array`);
    if (t.length !== spec[name]) throw new Error(`client ${client}: upload "${name}" has ${t.length} values, ${method.label} declares ${spec[name]}`);
    if (!t.every(Number.isFinite)) throw new Error(`client ${client}: upload "${name}" holds non-finite values`);
  }
}

/** Which clients train in `round`: all, or a seeded sample of ⌈fraction · N⌉ (at least one). */
export function participants(clients: number, fraction: number, seed: number, round: number): number[] {
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`participation must be in (0, 1], got ${fraction}`);
  const all = Array.from({ length: clients }, (_, i) => i);
  const take = Math.max(1, Math.round(fraction * clients));
  if (take >= clients) return all;
  const random = SeededRandom.forName(seed, `participants/round${round}`);
  for (let i = clients - 1; i > 0; i--) {
    const j = random.int(0, i + 1);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, take).sort((a, b) => a - b);
}

type Settled<T> = { readonly client: number; readonly value: T } | { readonly client: number; readonly error: string };

export async function runFederation(
  method: Method,
  setup: FederationSetup,
  executor: ClientExecutor,
  options: FederationOptions,
  onRound?: (record: RoundRecord) => void,
): Promise<FederationResult> {
  const { server: half } = method;
  const minClients = options.minClients ?? 1;
  const ids = Array.from({ length: setup.clients }, (_, i) => i);
  const failures: ClientFailure[] = [];
  let server = half.initialState(setup);
  const rounds: RoundRecord[] = [];

  /** Sends one job per client, waits for each reply up to the timeout, and keeps who failed and why. */
  const ask = async <T>(clients: readonly number[], stage: string, send: (client: number) => Promise<T>, round?: number) => {
    const settled = await Promise.all(clients.map((client) => withTimeout(send(client), options.timeoutSeconds).then(
      (value): Settled<T> => ({ client, value }),
      (error: unknown): Settled<T> => ({ client, error: error instanceof Error ? error.message : String(error) }),
    )));
    const replies: { client: number; value: T }[] = [];
    const failed: ClientFailure[] = [];
    for (const s of settled) {
      if ('error' in s) failed.push({ client: s.client, stage, ...(round !== undefined ? { round } : {}), reason: s.error });
      else replies.push(s);
    }
    return { replies, failed };
  };
  const leaveOut = (failed: readonly ClientFailure[], replied: number, stage: string): void => {
    for (const f of failed) {
      failures.push(f);
      options.onFailure?.(f);
    }
    if (replied < minClients) {
      const reasons = failed.map((f) => `client ${f.client}: ${f.reason}`).join('; ');
      throw new Error(`${stage}: ${replied} client(s) replied, fewer than federation.minClients = ${minClients}${reasons ? ` (${reasons})` : ''}`);
    }
  };
  const evaluateAll = async (stage: string, choices?: readonly Choice[], split: 'test' | 'val' = 'test') => {
    const { replies, failed } = await ask<EvaluateReply>(ids, stage, (client) => executor.evaluate({ client, split, download: half.download(server, client, setup), choices }));
    leaveOut(failed, replies.length, stage);
    return replies.map((r) => r.value);
  };

  if (method.trainsPrompt) {
    const communicates = Object.keys(half.uploadSpec(setup)).length > 0;
    for (let round = 1; round <= setup.rounds; round++) {
      const started = performance.now();
      const chosen = participants(setup.clients, options.participation, options.seed, round);
      const downloads = new Map(chosen.map((client) => [client, half.download(server, client, setup)]));
      const { replies, failed } = await ask<FitJobReply>(chosen, 'fit', (client) => executor.fit({ kind: 'fit', client, round, download: downloads.get(client)! }), round);
      const uploads: ClientUpload[] = [];
      const losses: number[] = [];
      for (const { client, value } of replies) {
        try {
          if (!('upload' in value)) throw new Error('replied to a round without an upload');
          checkUpload(method, setup, client, value.upload);
          uploads.push({ client, samples: value.samples, tensors: value.upload });
          losses.push(value.loss);
        } catch (error) {
          failed.push({ client, stage: 'fit', round, reason: (error as Error).message });
        }
      }
      leaveOut(failed, uploads.length, `round ${round}`);
      const trained = performance.now();
      if (communicates) server = half.aggregate(server, uploads, setup);
      const aggregated = performance.now();
      const evaluated = options.evaluateEachRound ? await evaluateAll('evaluate') : undefined;
      const clientAccuracies = evaluated?.map((r) => r.accuracies[0]);
      const done = performance.now();
      const record: RoundRecord = {
        round,
        participants: chosen,
        meanAccuracy: clientAccuracies && mean(clientAccuracies),
        clientAccuracies,
        trainLoss: mean(losses),
        bytesUp: uploads.reduce((sum, u) => sum + bytesOf(u.tensors), 0),
        bytesDown: communicates ? [...downloads.values()].reduce((sum, d) => sum + bytesOf(d), 0) : 0,
        seconds: (done - started) / 1000,
        failures: failed,
        stageSeconds: { training: (trained - started) / 1000, aggregation: (aggregated - trained) / 1000, evaluation: (done - aggregated) / 1000 },
      };
      rounds.push(record);
      onRound?.(record);
    }
  }

  if (method.client.finish) {
    const { replies, failed } = await ask(ids, 'finish', (client) => executor.fit({ kind: 'finish', client, round: setup.rounds + 1, download: half.download(server, client, setup) } satisfies FitJob));
    leaveOut(failed, replies.length, 'finish');
  }

  let selection: Selection | undefined;
  if (method.choosesOnValidation && options.choices.length > 0) {
    selection = select(options.choices, await evaluateAll('select', options.choices, 'val'));
  }
  const final = await evaluateAll('evaluate', selection && [selection.chosen]);
  const validation = new Map((await evaluateAll('validate', selection && [selection.chosen], 'val')).map((r) => [r.client, r.accuracies[0]]));
  return {
    clients: final.map((r) => ({ id: r.client, accuracy: r.accuracies[0], testCount: r.count, valAccuracy: validation.get(r.client) ?? NaN })),
    rounds,
    selection,
    failures,
    finalState: server,
  };
}

/** The choice with the best mean accuracy over clients on their validation images (never their test images). */
function select(choices: readonly Choice[], replies: readonly EvaluateReply[]): Selection {
  const scored = choices.map((choice, k) => ({ ...choice, valAccuracy: mean(replies.map((r) => r.accuracies[k]).filter((a) => !Number.isNaN(a))) }));
  if (scored.every((s) => Number.isNaN(s.valAccuracy))) {
    return { candidates: scored, chosen: {}, how: 'no client has validation images: the configured values were kept' };
  }
  let best = 0;
  scored.forEach((s, k) => { if (s.valAccuracy > scored[best].valAccuracy || Number.isNaN(scored[best].valAccuracy)) best = k; });
  return {
    candidates: scored,
    chosen: choices[best],
    how: `grid of ${choices.length} choices scored by mean accuracy over clients on their validation images after training; the first best kept`,
  };
}

function withTimeout<T>(work: Promise<T>, seconds: number | undefined): Promise<T> {
  if (seconds === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply within ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}
