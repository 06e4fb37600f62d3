// The portable half of a pfedprompt node: what it does with each message of
// a pfedprompt ServerApp (flower/PROTOCOL.md), whatever machine it runs on.
// It is given the model, the tokenizer, its own client's data for a cell and
// a store for its personal state; it runs the method's client half and
// answers with the method's declared upload and plain metrics only. It reads
// no files: a Node node (client-node.ts) loads datasets, caches features and
// keeps state on disk; a browser node (src/browser/client.ts) decodes its
// photos and keeps state in IndexedDB. The transport is elsewhere: this
// module takes requests and gives replies.

import type { ClipModel } from '../clip/model.js';
import type { ClipTokenizer } from '../clip/tokenizer.js';
import { backboneOf, cellConfigOf, cellFileName, cellSpecOf, datasetIdOf, methodOfCell, prepareCell, selectionField, validationChoices, type CellSpec, type PreparedCell } from '../experiment/cell.js';
import { parseConfig, type ExperimentConfig } from '../experiment/config.js';
import { runAugmentSeed } from '../features/augment.js';
import type { ClientData } from '../federation/client-data.js';
import { FederatedClient, textFeatureCache, type PersonalStore } from '../federation/client.js';
import { checkUpload, participants } from '../federation/engine.js';
import type { Choice, Tensors } from '../federation/method.js';
import { sha256Hex } from '../io/sha256.js';
import { CoopPrompt } from '../prompt/coop-prompt.js';

export type NodeAsk = 'describe' | 'fit' | 'finish' | 'evaluate';
export const NODE_ASKS: readonly NodeAsk[] = ['describe', 'fit', 'finish', 'evaluate'];

/** A message from the ServerApp, as flower/PROTOCOL.md describes it, already taken out of its transport. */
export interface NodeRequest {
  /** The federation run it belongs to: personal state is kept per run. */
  readonly runId: string;
  readonly ask: NodeAsk;
  /** The experiment config as the user wrote it (JSON text). */
  readonly runConfig: string;
  readonly cell: { readonly method: string; readonly seed: number; readonly shots: number };
  readonly round?: number;
  readonly arrays: Tensors;
  readonly split?: 'test' | 'val';
  readonly choices?: readonly Choice[];
  readonly choice?: Choice;
}

export type MetricValue = number | readonly number[];

export interface NodeReply {
  readonly arrays?: Tensors;
  readonly metrics?: Readonly<Record<string, MetricValue>>;
  /** describe only: what the server needs to know of the cell (flower/PROTOCOL.md). */
  readonly facts?: CellFacts;
}

export interface CellFacts {
  readonly client: number;
  readonly clients: number;
  readonly trainCount: number;
  readonly testCount: number;
  readonly classes: readonly number[];
  readonly cell: CellSpec & { readonly methodLabel: string; readonly datasetLabel: string; readonly backbone: string; readonly scoring: string };
  readonly cellConfig: Record<string, unknown>;
  readonly rounds: number;
  readonly participants: readonly (readonly number[])[];
  readonly minClients: number;
  /** Seconds a client has to reply to one step; null: no limit. */
  readonly timeoutSeconds: number | null;
  readonly uploadSpec: Readonly<Record<string, number>>;
  readonly communicates: boolean;
  readonly trainsPrompt: boolean;
  readonly hasFinish: boolean;
  /** The choices the clients score on validation images (the memory's α and β, PromptFL+FT's schedules); empty: none. */
  readonly memoryGrid: readonly Choice[];
  /** The field of the cell's config that records the selection. */
  readonly selectionField: string;
  readonly evaluateEachRound: boolean;
  /** FedAvg weighted by training images (methodOptions.weighted). */
  readonly weighted: boolean;
}

/**
 * Where a node keeps each cell's personal state between rounds (and
 * restarts): a Node node on its disk (DiskStateStore), a browser in
 * IndexedDB. `cell` is the cell's id as one file name.
 */
export interface PersonalStateStore {
  get(runId: string, cell: string): Promise<Tensors | undefined>;
  put(runId: string, cell: string, state: Tensors): Promise<void>;
}

/** A cell as the node must load its data for it. */
export interface CellRequest {
  /** The run's config, with this node's own model and data. */
  readonly config: ExperimentConfig;
  readonly spec: CellSpec;
  readonly model: ClipModel;
  /** Augmented views per training image, and the seed of those views (runAugmentSeed of the run's seed). */
  readonly views: number;
  readonly augmentSeed: number;
  /** Whether the cell's method reads spatial tokens (FeatureSet.tokens). */
  readonly tokens: boolean;
}

/** This node's client of a cell: its features and what the node knows of the federation's data. */
export interface ClientSource {
  readonly data: ClientData;
  /** Clients of the federation (the partition's). */
  readonly clients: number;
  /** Class names by label, as prompts use them. */
  readonly classnames: readonly string[];
  /** The dataset's name in tables. */
  readonly datasetLabel: string;
  /** The dataset's fingerprint (Dataset.fingerprint), recorded in the cell's config. */
  readonly fingerprint: string;
}

/** This node's own model and data, which replace the run's paths in its config. */
export interface NodeOwn {
  readonly model: string;
  readonly tokenizer: string;
  /** The dataset's name or folder: it names the cell (cellSpecOf). */
  readonly dataset: string;
  readonly root?: string;
}

export interface ClientCoreOptions {
  readonly own: NodeOwn;
  /** The model, loaded on the first request. */
  readonly model: () => Promise<ClipModel>;
  /** The tokenizer the run's config asks for. */
  readonly tokenizer: (config: ExperimentConfig) => Promise<ClipTokenizer>;
  /** This node's client of a cell. */
  readonly data: (cell: CellRequest) => Promise<ClientSource>;
  readonly store: PersonalStateStore;
  readonly log?: (message: string) => void;
}

interface LoadedCell {
  readonly key: string;
  readonly spec: CellSpec;
  readonly config: ExperimentConfig;
  /** The config as results record it: the run's own paths (the same on every node), not this node's. */
  readonly reported: ExperimentConfig;
  readonly prepared: PreparedCell;
  readonly source: ClientSource;
  readonly data: ClientData;
  readonly client: FederatedClient;
  /** Names and sizes of what the method's server half sends this client. */
  readonly downloadSizes: Readonly<Record<string, number>>;
  /** The model's exp(logit_scale), which scales the memory's α grid. */
  readonly logitScale: number;
}

/** The fields of the run's config as the server sent it (JSON text); not JSON, or not a mapping, is an error naming run-config. */
export function runConfigFields(runConfig: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(runConfig);
  } catch (error) {
    throw new Error(`run-config: not JSON (${(error as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('run-config: a config must be a mapping of fields');
  return raw as Record<string, unknown>;
}

export class ClientCore {
  private cell?: Promise<LoadedCell>;

  constructor(readonly options: ClientCoreOptions) {}

  /** Answers one request; an error names what is wrong and leaves the node serving. */
  async handle(request: NodeRequest): Promise<NodeReply> {
    if (!NODE_ASKS.includes(request.ask)) throw new Error(`unknown request "${String(request.ask)}" (a pfedprompt node answers ${NODE_ASKS.join(', ')})`);
    const cell = await this.load(request);
    const round = request.round ?? cell.config.federation.rounds + 1;
    switch (request.ask) {
      case 'describe':
        return { arrays: cell.prepared.method.server.initialState(cell.prepared.federation), facts: this.facts(cell) };
      case 'fit': {
        this.checkDownload(cell, request.arrays);
        const reply = await cell.client.fit(round, request.arrays);
        // Checked before it leaves: exactly the tensors the method declares, of their declared sizes, finite.
        checkUpload(cell.prepared.method, cell.prepared.federation, reply.client, reply.upload);
        return { arrays: reply.upload, metrics: { 'num-examples': reply.samples, 'train-loss': Number.isFinite(reply.loss) ? reply.loss : 0, steps: reply.steps, client: reply.client } };
      }
      case 'finish':
        this.checkDownload(cell, request.arrays);
        await cell.client.finish(round, request.arrays);
        return { metrics: { 'num-examples': cell.data.train[0].count, client: cell.data.id } };
      case 'evaluate': {
        this.checkDownload(cell, request.arrays);
        const split = request.split ?? 'test';
        const reply = await cell.client.evaluate(split, request.arrays, request.choices ?? (request.choice ? [request.choice] : undefined));
        if (reply.count === 0) return { metrics: { 'num-examples': 0, client: reply.client } };
        return {
          metrics: request.choices
            ? { 'num-examples': reply.count, client: reply.client, accuracies: reply.accuracies }
            : { 'num-examples': reply.count, client: reply.client, accuracy: reply.accuracies[0] },
        };
      }
    }
  }

  /** What the server sent must have the names and sizes of what the method's server half sends: anything else is refused. */
  private checkDownload(cell: LoadedCell, arrays: Tensors): void {
    const { method } = cell.prepared;
    const expected = cell.downloadSizes;
    for (const [name, size] of Object.entries(expected)) {
      const got = arrays[name];
      if (!got) throw new Error(`the server's message lacks array "${name}" (${method.label} sends ${Object.keys(expected).join(', ')})`);
      if (got.length !== size) throw new Error(`array "${name}" has ${got.length} values, ${method.label} expects ${size}`);
      if (!got.every(Number.isFinite)) throw new Error(`array "${name}" holds non-finite values`);
    }
    for (const name of Object.keys(arrays)) if (!(name in expected)) throw new Error(`the server sent array "${name}", which ${method.label} does not send`);
  }

  private facts(cell: LoadedCell): CellFacts {
    const { config, spec, prepared, data } = cell;
    const { method, federation } = prepared;
    const uploadSpec = method.server.uploadSpec(federation);
    return {
      client: data.id,
      clients: federation.clients,
      trainCount: data.train[0].count,
      testCount: data.test.count,
      classes: data.classes,
      cell: { ...spec, methodLabel: method.label, datasetLabel: cell.source.datasetLabel, backbone: backboneOf(config), scoring: config.evaluation.scoring },
      cellConfig: cellConfigOf(cell.reported, spec, backboneOf(config), { dataset: { fingerprint: cell.source.fingerprint } }),
      rounds: federation.rounds,
      participants: Array.from({ length: federation.rounds }, (_, r) => participants(federation.clients, config.federation.participation, spec.seed, r + 1)),
      minClients: config.federation.minClients,
      timeoutSeconds: config.federation.timeoutSeconds ?? null,
      uploadSpec,
      communicates: Object.keys(uploadSpec).length > 0,
      trainsPrompt: method.trainsPrompt,
      hasFinish: Boolean(method.client.finish),
      memoryGrid: validationChoices(config, method, spec.method, cell.logitScale),
      selectionField: selectionField(method),
      evaluateEachRound: config.evaluation.eachRound,
      weighted: config.methodOptions.weighted,
    };
  }

  /** The cell a request belongs to, loaded once (a node serves one cell at a time; the next cell replaces it). */
  private load(request: NodeRequest): Promise<LoadedCell> {
    const key = sha256Hex(JSON.stringify([request.runId, request.runConfig, request.cell]));
    const current = this.cell;
    const next = (async () => {
      const loaded = await current?.catch(() => undefined);
      if (loaded?.key === key) return loaded;
      return this.loadCell(key, request);
    })();
    this.cell = next;
    next.catch(() => { if (this.cell === next) this.cell = undefined; });
    return next;
  }

  private async loadCell(key: string, request: NodeRequest): Promise<LoadedCell> {
    const { options } = this;
    const { config, reported } = this.nodeConfig(request.runConfig);
    const { method: methodId, seed, shots } = request.cell;
    if (!config.methods.includes(methodId)) throw new Error(`cell: method "${methodId}" is not in the run's methods (${config.methods.join(', ')})`);
    if (!Number.isInteger(seed) || !Number.isInteger(shots) || shots < 1) throw new Error(`cell: seed and shots must be integers, got seed ${seed}, shots ${shots}`);
    const model = await options.model();
    const tokenizer = await options.tokenizer(config);
    const spec = cellSpecOf(datasetIdOf(options.own.dataset), backboneOf(config), shots, methodId, seed);
    const source = await options.data({
      config, spec, model, views: config.data.views, augmentSeed: runAugmentSeed(config.data.augmentSeed, seed),
      tokens: methodOfCell(config, methodId).readsTokens === true,
    });
    const { data } = source;
    const prepared = prepareCell(config, spec, model, tokenizer, source.classnames, source.clients);
    const compute = { model, prompt: new CoopPrompt(model, tokenizer, source.classnames, prepared.prompt) };
    const cellName = cellFileName(spec.id);
    const store: PersonalStore = {
      load: () => options.store.get(request.runId, cellName),
      save: (state) => options.store.put(request.runId, cellName, state),
    };
    const client = new FederatedClient(prepared.method, compute, prepared.settings, data, store, textFeatureCache(compute));
    options.log?.(`${spec.id}: client ${data.id} of ${source.clients}, ${data.train[0].count} training images`);
    const { server } = prepared.method;
    const download = server.download(server.initialState(prepared.federation), data.id, prepared.federation);
    const downloadSizes = Object.fromEntries(Object.entries(download).map(([name, t]) => [name, t.length]));
    return { key, spec, config, reported, prepared, source, data, client, downloadSizes, logitScale: model.logitScale };
  }

  /** The run's config with this node's own paths (its model, tokenizer and data, never the server's), and as the run wrote it. */
  private nodeConfig(runConfig: string): { config: ExperimentConfig; reported: ExperimentConfig } {
    const raw = runConfigFields(runConfig);
    const { data, cache: _cache, output: _output, ...rest } = raw;
    const { own } = this.options;
    const runData = (data ?? {}) as Record<string, unknown>;
    const config = parseConfig({
      ...rest,
      model: own.model,
      tokenizer: own.tokenizer,
      data: { ...runData, datasets: [own.dataset], ...(own.root !== undefined ? { root: own.root } : { root: undefined }) },
    }, 'run-config');
    const given = raw as { model?: string; tokenizer?: string };
    const reported: ExperimentConfig = {
      ...config,
      model: typeof given.model === 'string' ? given.model : config.model,
      tokenizer: typeof given.tokenizer === 'string' ? given.tokenizer : undefined,
      data: { ...config.data, root: typeof runData.root === 'string' ? runData.root : undefined },
    };
    return { config, reported };
  }
}
