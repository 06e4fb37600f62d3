// A browser node's local dataset, from what the person chose on the page, as the
// portable client takes it (client.ts: images with labels and splits). Which of the
// images are this client's, and how many clients the federation has, depend on the run's
// config, which arrives with the first message: the client is made then, once per
// partition, and answers every request of that run.
//
//   world:  the bundled world's dataset drawn in memory (world/examples.ts: the same pixels
//           `pfedprompt node` writes as PNGs), partitioned as the run's config says, as
//           a Node node partitions it; the dataset is named "world", as the Node nodes'
//           folder is, so every node names the same cells.
//   folder: the person's photos, one sub-folder per class (classes in name order); each
//           class's every fifth photo is kept for testing, the rest trains.

import { asDecodedPixels } from '../world/render.js';
import type { DecodedPixels } from '../clip/preprocess.js';
import type { Dataset, ImageItem, SplitName } from '../data/dataset.js';
import { clientImages } from '../data/partition.js';
import { createPartition } from '../data/partitioners/index.js';
import { partitionRequest } from '../experiment/cell.js';
import { parseConfig, type ExperimentConfig } from '../experiment/config.js';
import { sha256Hex } from '../io/sha256.js';
import { runConfigFields, type NodeReply, type NodeRequest } from '../node/client-core.js';
import { WORLD_IMAGE_SIZE, worldClasses, worldExamples } from '../world/examples.js';
import { DEFAULT_WORLD, worldDatasetOptions, WORLD_CLIENTS } from '../world/presets.js';
import type { BrowserClientOptions, BrowserImage } from './client.js';
import type { NodeCompute } from './node-worker.js';
import type { DataSource, PhotoFile } from './protocol.js';

/** The dataset name a world node's cells carry: the folder name `pfedprompt node` draws the world into. */
export const WORLD_DATASET_NAME = 'world';

/** What the client needs besides its images: the runtime, the model's files, where personal state goes. */
export type ClientMaker = (options: Pick<BrowserClientOptions, 'images' | 'classNames' | 'classes' | 'client' | 'clients' | 'dataset' | 'datasetLabel' | 'fingerprint'>) => NodeCompute;

/** The world's dataset in memory: the same items, order and fingerprint as its folder on disk gives a Node node. */
export function worldDataset(seed: number, world: string = DEFAULT_WORLD): { dataset: Dataset; pixels: ReadonlyMap<string, DecodedPixels> } {
  const options = worldDatasetOptions(WORLD_CLIENTS, seed, world);
  const classes = worldClasses(options);
  const split: Record<SplitName, [string, number, string][]> = { train: [], val: [], test: [] };
  const items: Record<SplitName, ImageItem[]> = { train: [], val: [], test: [] };
  const pixels = new Map<string, DecodedPixels>();
  for (const e of worldExamples(options)) {
    split[e.split].push([e.relativePath, e.label, classes[e.label].name]);
    items[e.split].push({ path: e.relativePath, relativePath: e.relativePath, label: e.label });
    pixels.set(e.relativePath, asDecodedPixels(e.rgb, options.imageSize ?? WORLD_IMAGE_SIZE));
  }
  return {
    // The fingerprint of the folder's split.json, which holds exactly these bytes.
    dataset: { name: WORLD_DATASET_NAME, root: WORLD_DATASET_NAME, classnames: classes.map((c) => c.name), ...items, fingerprint: sha256Hex(JSON.stringify(split)) },
    pixels,
  };
}

/** The photos of a picked folder as a dataset: classes by sub-folder name, every fifth photo of a class for testing. */
export function folderImages(files: readonly PhotoFile[]): { images: BrowserImage[]; classNames: string[] } {
  const classNames = [...new Set(files.map((f) => f.path.split('/')[0]))].sort();
  if (classNames.length < 2) throw new Error(`the folder needs at least two class sub-folders, found ${classNames.length}`);
  const seen = new Map<string, number>();
  const images = [...files].sort((a, b) => (a.path < b.path ? -1 : 1)).map((f): BrowserImage => {
    const cls = f.path.split('/')[0];
    const k = seen.get(cls) ?? 0;
    seen.set(cls, k + 1);
    return { bytes: f.data, label: classNames.indexOf(cls), id: f.path, split: k % 5 === 4 ? 'test' : 'train' };
  });
  return { images, classNames: classNames.map((c) => c.replaceAll('_', ' ')) };
}

/** The run's config as the server sent it (only its partition is read here; the client checks the rest). */
function runConfigOf(request: NodeRequest): ExperimentConfig {
  return parseConfig(runConfigFields(request.runConfig), 'run-config');
}

/** A node computing for `source`: the client is made on the first request of each partition. */
export function sourceCompute(source: DataSource, make: ClientMaker, status: (text: string) => void = () => {}): NodeCompute {
  const clients = new Map<string, NodeCompute>();
  let world: ReturnType<typeof worldDataset> | undefined;
  const clientFor = (request: NodeRequest): NodeCompute => {
    const config = runConfigOf(request);
    const request_ = partitionRequest(config, request.cell.shots);
    const key = JSON.stringify(request_);
    let client = clients.get(key);
    if (client) return client;
    if (source.kind === 'world') {
      if (!world) {
        status('Drawing your local dataset from the bundled world…');
        world = worldDataset(source.seed);
      }
      const { dataset, pixels } = world;
      const partition = createPartition(dataset, request_);
      if (source.client >= partition.clients.length) throw new Error(`client ${source.client}: the run has ${partition.clients.length} clients (0 … ${partition.clients.length - 1})`);
      const own = clientImages(partition, dataset, source.client);
      const images: BrowserImage[] = (['train', 'val', 'test'] as const).flatMap((split) => own[split].map((item) => ({ pixels: pixels.get(item.relativePath)!, label: item.label, id: item.relativePath, split })));
      client = make({ images, classNames: dataset.classnames, classes: own.classes, client: source.client, clients: partition.clients.length, dataset: WORLD_DATASET_NAME, datasetLabel: dataset.name, fingerprint: dataset.fingerprint });
    } else {
      const { images, classNames } = folderImages(source.files);
      client = make({ images, classNames, client: source.client, clients: config.data.partition.clients, dataset: 'photos', datasetLabel: 'my photos' });
    }
    clients.set(key, client);
    return client;
  };
  return { handle: async (request: NodeRequest): Promise<NodeReply> => clientFor(request).handle(request) };
}

