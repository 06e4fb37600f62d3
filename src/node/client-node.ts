// One client of a federation on its own machine: what a `pfedprompt node`
// does with each message of a pfedprompt ServerApp (flower/PROTOCOL.md). It
// loads the model and its own client's images and nobody else's, runs the
// method's client half, keeps its personal state on its own disk, and
// answers with the method's declared upload and plain metrics only. The
// transport (Flower's Fleet API) is elsewhere: this module takes requests
// and gives replies.

import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ClipModel } from '../clip/model.js';
import type { ClipTokenizer } from '../clip/tokenizer.js';
import { loadDataset } from '../data/load-dataset.js';
import { readPartition, type Partition } from '../data/partition.js';
import { createPartition } from '../data/partitioners/index.js';
import { loadClientData } from '../experiment/client-features.js';
import { parseConfig, type ExperimentConfig } from '../experiment/config.js';
import { backboneOf, cellConfigOf, cellFileName, cellSpecOf, datasetIdOf, methodOfCell, partitionRequest, prepareCell, selectionField, validationChoices, type CellSpec, type PreparedCell } from '../experiment/runner.js';
import { runAugmentSeed } from '../features/augment.js';
import { FeatureCache } from '../features/cache.js';
import type { ClientData } from '../federation/client-data.js';
import { sharedModel, sharedTokenizer, textFeatureCache } from '../federation/client-executor.js';
import { FederatedClient } from '../federation/client.js';
import { checkUpload, participants } from '../federation/engine.js';
import type { Choice, Tensors } from '../federation/method.js';
import { CoopPrompt } from '../prompt/coop-prompt.js';
import { DiskStore } from './personal-store.js';

import { NODE_ASKS, type NodeAsk } from './asks.js';

export { NODE_ASKS, type NodeAsk };

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

/** Where a node's data comes from: a dataset (CoOp name under `root`, a CoOp folder, an image folder or a world dataset), and which client it is. */
export interface NodeData {
  readonly dataset: string;
  readonly root?: string;
  /** A partition file (from `pfedprompt partition`); absent: the config's partition of the dataset, drawn as `pfedprompt run` draws it. */
  readonly partitionFile?: string;
  readonly client: number;
}

export interface ClientNodeOptions {
  readonly model: string;
  readonly tokenizer?: string;
  readonly data: NodeData;
  /** The node's own folder: personal state per run. */
  readonly stateDir: string;
  /** Feature cache root (default as `pfedprompt run`). */
  readonly cache?: string;
  readonly threads?: number;
  readonly log?: (message: string) => void;
}

interface LoadedCell {
  readonly key: string;
  readonly spec: CellSpec;
  readonly config: ExperimentConfig;
  /** The config as results record it: the run's own paths (the same on every node), not this node's. */
  readonly reported: ExperimentConfig;
  readonly prepared: PreparedCell;
  readonly partition: Partition;
  readonly data: ClientData;
  readonly client: FederatedClient;
  readonly datasetLabel: string;
  /** Names and sizes of what the method's server half sends this client. */
  readonly downloadSizes: Readonly<Record<string, number>>;
  /** The model's exp(logit_scale), which scales the memory's α grid. */
  readonly logitScale: number;
}

export class ClientNode {
  private cell?: Promise<LoadedCell>;
  private model?: Promise<ClipModel>;

  constructor(readonly options: ClientNodeOptions) {}

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
      cell: { ...spec, methodLabel: method.label, datasetLabel: cell.datasetLabel, backbone: backboneOf(config), scoring: config.evaluation.scoring },
      cellConfig: cellConfigOf(cell.reported, spec, backboneOf(config), cell.partition),
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
    const key = createHash('sha256').update(JSON.stringify([request.runId, request.runConfig, request.cell])).digest('hex');
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
    this.model ??= sharedModel(options.model, { threads: options.threads });
    const model = await this.model;
    const tokenizerDir = config.tokenizer!;
    const tokenizer: ClipTokenizer = await sharedTokenizer(tokenizerDir);
    const dataset = await loadDataset(options.data.dataset, { root: options.data.root, skipBad: config.data.skipBad });
    const partition = options.data.partitionFile
      ? await readPartition(options.data.partitionFile, dataset)
      : createPartition(dataset, partitionRequest(config, shots));
    if (partition.scheme.shots !== shots) throw new Error(`${options.data.partitionFile}: a ${partition.scheme.shots}-shot partition, but the server asks for ${shots} shots`);
    const cache = await FeatureCache.open(model.weights, { root: options.cache ?? config.cache, onWarning: options.log });
    const [data] = await loadClientData(model, dataset, partition, {
      views: config.data.views, augmentSeed: runAugmentSeed(config.data.augmentSeed, seed), cache, onWarning: options.log, only: [options.data.client],
      tokens: methodOfCell(config, methodId).readsTokens === true,
    });
    const spec = cellSpecOf(datasetIdOf(options.data.dataset), backboneOf(config), shots, methodId, seed);
    const prepared = await prepareCell(config, spec, model, tokenizerDir, dataset.classnames, partition.clients.length);
    const compute = { model, prompt: new CoopPrompt(model, tokenizer, dataset.classnames, prepared.prompt) };
    const store = new DiskStore(path.join(options.stateDir, 'runs', safe(request.runId), `${cellFileName(spec.id)}.safetensors`));
    const client = new FederatedClient(prepared.method, compute, prepared.settings, data, store, textFeatureCache(compute));
    options.log?.(`${spec.id}: client ${data.id} of ${partition.clients.length}, ${data.train[0].count} training images`);
    const { server } = prepared.method;
    const download = server.download(server.initialState(prepared.federation), data.id, prepared.federation);
    const downloadSizes = Object.fromEntries(Object.entries(download).map(([name, t]) => [name, t.length]));
    return { key, spec, config, reported, prepared, partition, data, client, datasetLabel: dataset.name, downloadSizes, logitScale: model.logitScale };
  }

  /** The run's config with this node's own paths (its model, tokenizer and data, never the server's), and as the run wrote it. */
  private nodeConfig(runConfig: string): { config: ExperimentConfig; reported: ExperimentConfig } {
    let raw: unknown;
    try {
      raw = JSON.parse(runConfig);
    } catch (error) {
      throw new Error(`run-config: not JSON (${(error as Error).message})`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('run-config: a config must be a mapping of fields');
    const { data, cache: _cache, output: _output, ...rest } = raw as Record<string, unknown>;
    const { options } = this;
    const modelDir = path.extname(options.model) === '.safetensors' ? path.dirname(options.model) : options.model;
    const runData = (data ?? {}) as Record<string, unknown>;
    const config = parseConfig({
      ...rest,
      model: options.model,
      tokenizer: options.tokenizer ?? modelDir,
      data: { ...runData, datasets: [options.data.dataset], ...(options.data.root !== undefined ? { root: options.data.root } : { root: undefined }) },
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

function safe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '-') || 'run';
}
