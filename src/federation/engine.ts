// The federation, simulated: rounds of download → local training → upload →
// aggregation, then evaluation of every client. The engine is the privacy
// boundary: a client's personal state lives only in the engine's client
// store, never in what the server functions see, and an upload that is not
// exactly what the method declared (names, sizes, finite values) stops the
// run with an error naming the client and the tensor. Bytes are counted on
// what actually crosses, each way, each round.

import { SeededRandom } from '../clip/random.js';
import type { MemoryOptions } from '../methods/visual-memory.js';
import type { ClientData } from './client-data.js';
import type { ClientExecutor, EvalJob, FitJobResult } from './client-executor.js';
import type { ClientUpload, FederationSetup, Method, Tensors } from './method.js';

export interface FederationOptions {
  /** Fraction of clients training each round (at least one). */
  readonly participation: number;
  readonly seed: number;
  /** α and β pairs for the visual memory, chosen on each client's validation images after training; empty: the method's own. */
  readonly memoryGrid: readonly { readonly alpha: number; readonly beta: number }[];
  /** Evaluate every client on its test images after every round (the per-round curves). */
  readonly evaluateEachRound: boolean;
}

export interface RoundRecord {
  readonly round: number;
  readonly participants: readonly number[];
  /** Mean over clients of test accuracy after this round (when evaluated). */
  readonly meanAccuracy?: number;
  readonly clientAccuracies?: readonly number[];
  /** Mean local training loss of the participants. */
  readonly trainLoss: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly seconds: number;
  /** Where the round's time went: clients' local training, the server's aggregation, evaluating every client. */
  readonly stageSeconds: { readonly training: number; readonly aggregation: number; readonly evaluation: number };
}

export interface MemorySelection {
  /** Each candidate with the mean validation accuracy over clients. */
  readonly candidates: readonly { readonly alpha: number; readonly beta: number; readonly valAccuracy: number }[];
  readonly chosen: { readonly alpha: number; readonly beta: number };
  readonly how: string;
}

export interface FederationResult {
  readonly clients: readonly { readonly id: number; readonly accuracy: number; readonly testCount: number; readonly classes: readonly number[] }[];
  readonly rounds: readonly RoundRecord[];
  readonly memorySelection?: MemorySelection;
}

const bytesOf = (tensors: Tensors): number => Object.values(tensors).reduce((sum, t) => sum + t.byteLength, 0);

/** Checks an upload against the method's declaration; anything else is an error naming the client. */
export function checkUpload(method: Method, setup: FederationSetup, client: number, upload: Tensors): void {
  const spec = method.uploadSpec(setup);
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

export async function runFederation(
  method: Method,
  setup: FederationSetup,
  clients: readonly ClientData[],
  executor: ClientExecutor,
  options: FederationOptions,
  onRound?: (record: RoundRecord) => void,
): Promise<FederationResult> {
  const personal = new Map<number, Tensors>(); // the client store: only ever handed back to its own client
  let server = method.initialServer(setup);
  const rounds: RoundRecord[] = [];
  const ids = clients.map((c) => c.id);
  const predictorOf = (client: number) => method.predictor(method.download(server, client, setup), personal.get(client), setup);
  const memories = (chosen?: MemoryOptions): MemoryOptions[] => (method.memoryOptions ? [chosen ?? method.memoryOptions] : []);

  const testAccuracies = async (memory?: MemoryOptions): Promise<number[]> => {
    const jobs: EvalJob[] = ids.map((client) => {
      const p = predictorOf(client);
      return { client, split: 'test', context: p.context, memories: p.memory ? memories(memory) : [] };
    });
    return (await executor.evaluate(jobs)).map((r) => r.accuracies[0]);
  };

  if (method.trainsPrompt) {
    for (let round = 1; round <= setup.rounds; round++) {
      const started = performance.now();
      const chosen = participants(setup.clients, options.participation, options.seed, round);
      const downloads = chosen.map((client) => method.download(server, client, setup));
      const results: FitJobResult[] = await executor.fit(chosen.map((client, i) => ({
        kind: 'fit', client, round, download: downloads[i], personal: personal.get(client),
      })));
      const uploads: ClientUpload[] = results.map((r) => {
        checkUpload(method, setup, r.client, r.upload);
        personal.set(r.client, r.personal);
        return { client: r.client, samples: clients[r.client].train[0].count, tensors: r.upload };
      });
      const trained = performance.now();
      const communicates = Object.keys(method.uploadSpec(setup)).length > 0;
      if (communicates) server = method.aggregate(server, uploads, setup);
      const aggregated = performance.now();
      const clientAccuracies = options.evaluateEachRound ? await testAccuracies() : undefined;
      const evaluated = performance.now();
      const record: RoundRecord = {
        round,
        participants: chosen,
        meanAccuracy: clientAccuracies && mean(clientAccuracies),
        clientAccuracies,
        trainLoss: mean(results.map((r) => r.loss)),
        bytesUp: uploads.reduce((sum, u) => sum + bytesOf(u.tensors), 0),
        bytesDown: communicates ? downloads.reduce((sum, d) => sum + bytesOf(d), 0) : 0,
        seconds: (evaluated - started) / 1000,
        stageSeconds: { training: (trained - started) / 1000, aggregation: (aggregated - trained) / 1000, evaluation: (evaluated - aggregated) / 1000 },
      };
      rounds.push(record);
      onRound?.(record);
    }
  }

  if (method.finish) {
    const results = await executor.fit(ids.map((client) => ({
      kind: 'finish', client, round: setup.rounds + 1, download: method.download(server, client, setup), personal: personal.get(client),
    })));
    for (const r of results) personal.set(r.client, r.personal);
  }

  let memorySelection: MemorySelection | undefined;
  let chosenMemory: MemoryOptions | undefined;
  if (method.memoryOptions && options.memoryGrid.length > 0) {
    memorySelection = await selectMemory(method.memoryOptions, options.memoryGrid, ids, predictorOf, executor);
    chosenMemory = { ...method.memoryOptions, ...memorySelection.chosen };
  }
  const final = await testAccuracies(chosenMemory);
  return {
    clients: clients.map((c, i) => ({ id: c.id, accuracy: final[i], testCount: c.test.count, classes: c.classes })),
    rounds,
    memorySelection,
  };
}

/** α and β with the best mean accuracy over clients on their validation images (never their test images). */
async function selectMemory(
  base: MemoryOptions,
  grid: FederationOptions['memoryGrid'],
  ids: readonly number[],
  predictorOf: (client: number) => { context: Float32Array },
  executor: ClientExecutor,
): Promise<MemorySelection> {
  const candidates = grid.map((g) => ({ ...base, alpha: g.alpha, beta: g.beta }));
  const results = await executor.evaluate(ids.map((client) => ({ client, split: 'val', context: predictorOf(client).context, memories: candidates })));
  const scored = grid.map((g, k) => ({ alpha: g.alpha, beta: g.beta, valAccuracy: mean(results.map((r) => r.accuracies[k]).filter((a) => !Number.isNaN(a))) }));
  if (scored.every((s) => Number.isNaN(s.valAccuracy))) {
    return { candidates: scored, chosen: { alpha: base.alpha, beta: base.beta }, how: 'no client has validation images: the configured α and β were kept' };
  }
  const best = scored.reduce((a, b) => (b.valAccuracy > a.valAccuracy || Number.isNaN(a.valAccuracy) ? b : a));
  return {
    candidates: scored,
    chosen: { alpha: best.alpha, beta: best.beta },
    how: `grid of ${grid.length} (α, β) pairs scored by mean accuracy over clients on their validation images after training; the first best kept`,
  };
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}
