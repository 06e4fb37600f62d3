// One client of a federation on its own machine, in Node: a `pfedprompt
// node`. It loads the model and its own client's images and nobody else's
// (a dataset on disk, partitioned as the run partitions it), encodes them
// through the feature cache, and keeps its personal state on its own disk;
// everything it does with a message is client-core.ts's, shared with the
// browser node.

import path from 'node:path';
import type { ClipModel } from '../clip/model.js';
import type { Dataset, ImageItem } from '../data/dataset.js';
import { loadDataset } from '../data/load-dataset.js';
import type { Partition } from '../data/partition.js';
import { readPartition } from '../data/partition-file.js';
import { createPartition } from '../data/partitioners/index.js';
import { partitionRequest } from '../experiment/cell.js';
import { loadClientData } from '../experiment/client-features.js';
import type { ExperimentConfig } from '../experiment/config.js';
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

  /** This node's client of a cell, through the feature cache. */
  private async clientSource({ config, spec, model, views, augmentSeed, tokens }: CellRequest): Promise<ClientSource> {
    const { options } = this;
    const { dataset, partition } = await clientPartition(options.data, config, spec.shots);
    const cache = await FeatureCache.open(model.weights, { root: options.cache ?? config.cache, onWarning: options.log });
    const [data] = await loadClientData(model, dataset, partition, { views, augmentSeed, cache, onWarning: options.log, only: [options.data.client], tokens });
    return { data, clients: partition.clients.length, classnames: dataset.classnames, datasetLabel: dataset.name, fingerprint: dataset.fingerprint };
  }
}

/** A node's dataset, partitioned as the run partitions it (or by the node's partition file) for `shots`. */
export async function clientPartition(data: NodeData, config: ExperimentConfig, shots: number): Promise<{ dataset: Dataset; partition: Partition }> {
  const dataset = await loadDataset(data.dataset, { root: data.root, skipBad: config.data.skipBad });
  const partition = data.partitionFile ? await readPartition(data.partitionFile, dataset) : createPartition(dataset, partitionRequest(config, shots));
  if (partition.scheme.shots !== shots) throw new Error(`${data.partitionFile}: a ${partition.scheme.shots}-shot partition, but the server asks for ${shots} shots`);
  if (!partition.clients[data.client]) throw new Error(`no client ${data.client}: the partition has ${partition.clients.length} clients (0 … ${partition.clients.length - 1})`);
  return { dataset, partition };
}

/** One image file of a client, as a page's server offers it to a browser node (createBrowserClient's images). */
export interface ClientImageFile {
  readonly path: string;
  /** Its path relative to the dataset: it seeds the image's augmented views, so a browser must use it as the image's id. */
  readonly id: string;
  readonly label: number;
  readonly split: 'train' | 'val' | 'test';
}

/**
 * A client's images as files, with what a browser node must be told to stand in for that client
 * (createBrowserClient's classNames, classes, clients, fingerprint): how a server lets a browser hold
 * a world client, whose images a page cannot draw itself (src/world/ and the partitioners need Node).
 */
export async function clientImageFiles(data: NodeData, config: ExperimentConfig, shots: number): Promise<{
  readonly images: readonly ClientImageFile[]; readonly classNames: readonly string[]; readonly classes: readonly number[];
  readonly clients: number; readonly fingerprint: string; readonly datasetLabel: string;
}> {
  const { dataset, partition } = await clientPartition(data, config, shots);
  const own = partition.clients[data.client];
  const files = (split: ClientImageFile['split'], indices: readonly number[], items: readonly ImageItem[]): ClientImageFile[] =>
    indices.map((i) => ({ path: items[i].path, id: items[i].relativePath, label: items[i].label, split }));
  return {
    images: [...files('train', own.train, dataset.train), ...files('val', own.val ?? [], dataset.val), ...files('test', own.test, dataset.test)],
    classNames: dataset.classnames, classes: own.classes, clients: partition.clients.length, fingerprint: dataset.fingerprint, datasetLabel: dataset.name,
  };
}

function safe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '-') || 'run';
}
