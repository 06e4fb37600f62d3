// One client of a federation on its own machine, in Node: a `pfedprompt
// node`. It loads the model and its own client's images and nobody else's
// (a dataset on disk, partitioned as the run partitions it), encodes them
// through the feature cache, and keeps its personal state on its own disk;
// everything it does with a message is client-core.ts's, shared with the
// browser node.

import path from 'node:path';
import type { ClipModel } from '../clip/model.js';
import { loadDataset } from '../data/load-dataset.js';
import { readPartition } from '../data/partition-file.js';
import { createPartition } from '../data/partitioners/index.js';
import { partitionRequest } from '../experiment/cell.js';
import { loadClientData } from '../experiment/client-features.js';
import { FeatureCache } from '../features/cache.js';
import { sharedModel, sharedTokenizer } from '../federation/client-executor.js';
import type { Tensors } from '../federation/method.js';
import { ClientCore, type CellRequest, type ClientSource, type NodeReply, type NodeRequest, type PersonalStateStore } from './client-core.js';
import { DiskStore } from './personal-store.js';

export { NODE_ASKS, type CellFacts, type MetricValue, type NodeAsk, type NodeReply, type NodeRequest } from './client-core.js';

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

/** Personal state on the node's disk: one safetensors file per run and cell under `stateDir/runs/`. */
export class DiskStateStore implements PersonalStateStore {
  constructor(readonly stateDir: string) {}

  get(runId: string, cell: string): Promise<Tensors | undefined> {
    return this.file(runId, cell).load();
  }

  put(runId: string, cell: string, state: Tensors): Promise<void> {
    return this.file(runId, cell).save(state);
  }

  private file(runId: string, cell: string): DiskStore {
    return new DiskStore(path.join(this.stateDir, 'runs', safe(runId), `${cell}.safetensors`));
  }
}

export class ClientNode {
  private readonly core: ClientCore;
  private model?: Promise<ClipModel>;

  constructor(readonly options: ClientNodeOptions) {
    const modelDir = path.extname(options.model) === '.safetensors' ? path.dirname(options.model) : options.model;
    this.core = new ClientCore({
      own: { model: options.model, tokenizer: options.tokenizer ?? modelDir, dataset: options.data.dataset, ...(options.data.root !== undefined ? { root: options.data.root } : {}) },
      model: () => (this.model ??= sharedModel(options.model, { threads: options.threads })),
      tokenizer: (config) => sharedTokenizer(config.tokenizer!),
      data: (cell) => this.clientSource(cell),
      store: new DiskStateStore(options.stateDir),
      log: options.log,
    });
  }

  /** Answers one request; an error names what is wrong and leaves the node serving. */
  handle(request: NodeRequest): Promise<NodeReply> {
    return this.core.handle(request);
  }

  /** This node's client of a cell: its dataset, partitioned as the run partitions it (or by the node's partition file), through the feature cache. */
  private async clientSource({ config, spec, model, views, augmentSeed, tokens }: CellRequest): Promise<ClientSource> {
    const { options } = this;
    const dataset = await loadDataset(options.data.dataset, { root: options.data.root, skipBad: config.data.skipBad });
    const partition = options.data.partitionFile
      ? await readPartition(options.data.partitionFile, dataset)
      : createPartition(dataset, partitionRequest(config, spec.shots));
    if (partition.scheme.shots !== spec.shots) throw new Error(`${options.data.partitionFile}: a ${partition.scheme.shots}-shot partition, but the server asks for ${spec.shots} shots`);
    const cache = await FeatureCache.open(model.weights, { root: options.cache ?? config.cache, onWarning: options.log });
    const [data] = await loadClientData(model, dataset, partition, { views, augmentSeed, cache, onWarning: options.log, only: [options.data.client], tokens });
    return { data, clients: partition.clients.length, classnames: dataset.classnames, datasetLabel: dataset.name, fingerprint: dataset.fingerprint };
  }
}

function safe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '-') || 'run';
}
