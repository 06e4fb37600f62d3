// What a browser node's Worker computes with: the portable node
// (client-core.ts) on onnxruntime-web, the model and tokenizer built from
// files fetched from the page's server, the person's images decoded by the
// browser, and personal state in a store the page gives (IndexedDB). The
// same requests get the same replies as a Node node's on the same images.

import type { InferenceSession } from 'onnxruntime-common';
import { clipFromFiles } from '../clip/checkpoint.js';
import { ClipModel, type OnnxRuntime } from '../clip/model.js';
import type { DecodedPixels } from '../clip/preprocess.js';
import { ClipTokenizer } from '../clip/tokenizer.js';
import { clientDataFromImages, type LabelledImage } from '../features/client-images.js';
import { sha256, sha256Hex } from '../io/sha256.js';
import { ClientCore, type CellRequest, type ClientSource, type NodeReply, type NodeRequest, type PersonalStateStore } from '../node/client-core.js';
import { decodeImageInBrowser } from './decode.js';

/** onnxruntime-web's module, as the Worker imports it. */
export interface WebRuntime extends OnnxRuntime {
  readonly env: { readonly wasm: { wasmPaths?: unknown; numThreads?: number } };
}

/** One of the person's images: its file's bytes (or already decoded pixels), its label, and where it belongs. */
export interface BrowserImage {
  readonly bytes?: Uint8Array | Blob;
  readonly pixels?: DecodedPixels;
  readonly label: number;
  /**
   * A stable name (e.g. the path inside the picked folder; for a world
   * client, the image's path relative to the dataset): it seeds the image's
   * augmented views. Default: its position, `image-<index>`.
   */
  readonly id?: string;
  /** Default 'train'. */
  readonly split?: 'train' | 'val' | 'test';
}

/** Fetches one of the model's files by name (config.json, model.safetensors, vocab.json, ...); undefined when the server has no such file. */
export type ModelFiles = (name: string) => Promise<Uint8Array | undefined>;

export interface BrowserClientOptions {
  readonly ort: WebRuntime;
  /** Session options for onnxruntime-web. Default: the wasm execution provider. */
  readonly sessionOptions?: InferenceSession.SessionOptions;
  /**
   * Where onnxruntime-web loads its .wasm/.mjs files from (ort.env.wasm.wasmPaths). Default: left as it is;
   * the bundle imports onnxruntime-web from the server's /ort/ (scripts/build-web.mjs), beside its files.
   */
  readonly wasmPaths?: string;
  /** Wasm threads; default onnxruntime-web's (needs cross-origin isolation for more than one). */
  readonly threads?: number;
  readonly modelFiles: ModelFiles;
  /** Names the model in the run's config and errors (e.g. its URL). Default 'world-clip'. */
  readonly modelName?: string;
  readonly images: readonly BrowserImage[];
  readonly classNames: readonly string[];
  /** This node's client index in the federation, and the federation's number of clients. */
  readonly client: number;
  readonly clients: number;
  /** Labels this client holds; default those of its training images. */
  readonly classes?: readonly number[];
  /** The dataset's name: it names the cell, so the browser and the Node nodes of one federation must give the same. Default 'browser'. */
  readonly dataset?: string;
  readonly datasetLabel?: string;
  /** The dataset's fingerprint, recorded in the cell's config. Default: a hash of the images' names and labels. */
  readonly fingerprint?: string;
  readonly store: PersonalStateStore;
  /** How image bytes become pixels; default the browser's decoder (decode.ts). */
  readonly decode?: (bytes: Uint8Array | Blob, name: string) => Promise<DecodedPixels>;
  readonly log?: (message: string) => void;
  /** Called with (features done, features in all) while a cell's images are encoded. */
  readonly onFeatures?: (done: number, total: number) => void;
}

export interface BrowserClient {
  handle(request: NodeRequest): Promise<NodeReply>;
  /** The model, once fetched and built (the first request waits for it too). */
  readonly model: Promise<ClipModel>;
}

/** A ModelFiles that fetches `base` + name (e.g. '/model/'); a 404 is a missing file, any other failure an error naming the URL. */
export function fetchModelFiles(base: string, fetchImpl: typeof fetch = fetch): ModelFiles {
  const root = base.endsWith('/') ? base : `${base}/`;
  return async (name) => {
    const url = root + name;
    const response = await fetchImpl(url);
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  };
}

/** The model and tokenizer from the model's files: a Hugging Face CLIPModel folder with vocab.json + merges.txt, as models/world-clip ships. */
export async function loadModelFiles(files: ModelFiles, runtime: { ort: OnnxRuntime; sessionOptions?: InferenceSession.SessionOptions }, name = 'model'): Promise<{ model: ClipModel; tokenizer: ClipTokenizer }> {
  const need = async (file: string): Promise<Uint8Array> => {
    const bytes = await files(file);
    if (!bytes) throw new Error(`${name}: the server has no ${file}`);
    return bytes;
  };
  const [weights, config, preprocessorConfig, vocab, merges] = await Promise.all([
    need('model.safetensors'), need('config.json'), files('preprocessor_config.json'), need('vocab.json'), need('merges.txt'),
  ]);
  const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
  const model = new ClipModel(clipFromFiles({ weights, config, ...(preprocessorConfig ? { preprocessorConfig } : {}) }, name), runtime);
  const tokenizer = ClipTokenizer.fromVocabJsonAndMergesText(text(vocab), text(merges), `${name}/vocab.json`, `${name}/merges.txt`);
  return { model, tokenizer };
}

export function createBrowserClient(options: BrowserClientOptions): BrowserClient {
  const { ort } = options;
  if (!Number.isInteger(options.client) || !Number.isInteger(options.clients) || options.client < 0 || options.client >= options.clients) {
    throw new Error(`client ${options.client} is not one of the federation's ${options.clients} clients`);
  }
  if (options.images.length === 0) throw new Error('images: a browser node needs at least one image');
  options.images.forEach((image, i) => {
    if (!Number.isInteger(image.label) || image.label < 0 || image.label >= options.classNames.length) {
      throw new Error(`image ${image.id ?? i}: label ${image.label} is not one of the ${options.classNames.length} classes`);
    }
    if (!image.bytes && !image.pixels) throw new Error(`image ${image.id ?? i}: neither bytes nor pixels`);
  });
  const ids = options.images.map((image, i) => image.id ?? `image-${i}`);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated !== undefined) throw new Error(`images: two images are both named "${repeated}" (an image's id seeds its views and keys its features)`);
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
  if (options.threads !== undefined) ort.env.wasm.numThreads = options.threads;
  const modelName = options.modelName ?? 'world-clip';
  const loaded = loadModelFiles(options.modelFiles, { ort, sessionOptions: options.sessionOptions ?? { executionProviders: ['wasm'] } }, modelName);
  loaded.catch(() => undefined); // reported by the request that waits for it
  const decoded = decodeAll(options);
  decoded.catch(() => undefined);
  const fingerprint = options.fingerprint ?? sha256Hex(JSON.stringify(options.images.map((image, i) => [image.id ?? `image-${i}`, image.label, image.split ?? 'train']))).slice(0, 20);

  // The features of the last cell's views: the next cell of the same run and seed reuses them.
  const features = new Map<string, Promise<ClientSource>>();
  const data = (cell: CellRequest): Promise<ClientSource> => {
    const key = JSON.stringify([cell.views, cell.augmentSeed, cell.tokens]);
    let source = features.get(key);
    if (!source) {
      features.clear();
      source = (async () => {
        const images = await decoded;
        const train = images.filter((_, i) => (options.images[i].split ?? 'train') === 'train');
        const split = (name: 'val' | 'test'): LabelledImage[] => images.filter((_, i) => options.images[i].split === name);
        const classes = options.classes ?? [...new Set(train.map((image) => image.label))].sort((a, b) => a - b);
        const clientData = await clientDataFromImages(cell.model, { id: options.client, classes, train, val: split('val'), test: split('test') }, {
          views: cell.views, augmentSeed: cell.augmentSeed, tokens: cell.tokens, onProgress: options.onFeatures,
        });
        return { data: clientData, clients: options.clients, classnames: options.classNames, datasetLabel: options.datasetLabel ?? options.dataset ?? 'browser', fingerprint };
      })();
      source.catch(() => features.delete(key));
      features.set(key, source);
    }
    return source;
  };

  const core = new ClientCore({
    own: { model: modelName, tokenizer: modelName, dataset: options.dataset ?? 'browser' },
    model: async () => (await loaded).model,
    tokenizer: async () => (await loaded).tokenizer,
    data,
    store: options.store,
    log: options.log,
  });
  const model = loaded.then((l) => l.model);
  model.catch(() => undefined);
  return { handle: (request) => core.handle(request), model };
}

/** A picked folder's photos, one sub-folder per class (`class/name.jpg`), as images with labels and splits. */
export interface FolderImages {
  readonly images: BrowserImage[];
  /** Class names by label: the sub-folders' names, sorted, underscores as spaces. */
  readonly classNames: string[];
}

/**
 * The person's photos as a client's images: classes from the sub-folders (sorted, so the same folder always
 * gives the same labels), each photo's split drawn from a hash of its path (so a reload splits it the same
 * way and the personal memory stays valid), `test` and `val` the expected shares of the photos. A photo's
 * path is its id.
 */
export function imagesFromFolder(files: readonly { readonly path: string; readonly data: Blob | Uint8Array }[], shares: { readonly val?: number; readonly test?: number } = {}): FolderImages {
  const val = shares.val ?? 0.1;
  const test = shares.test ?? 0.2;
  if (!(val >= 0 && test >= 0 && val + test < 1)) throw new Error(`shares: val ${val} and test ${test} must be non-negative and leave some photos for training`);
  const classOf = (file: string): string => {
    const parts = file.split('/').filter(Boolean);
    if (parts.length < 2) throw new Error(`${file}: not inside a class folder (the folder must hold one sub-folder per class)`);
    return parts[parts.length - 2];
  };
  const folders = [...new Set(files.map((f) => classOf(f.path)))].sort();
  if (folders.length < 2) throw new Error(`the folder has ${folders.length} class sub-folder(s); a classifier needs at least 2`);
  const images = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((file): BrowserImage => {
    const draw = new DataView(sha256(file.path).buffer).getUint32(0) / 2 ** 32;
    const split = draw < test ? 'test' : draw < test + val ? 'val' : 'train';
    return { bytes: file.data, label: folders.indexOf(classOf(file.path)), id: file.path, split };
  });
  return { images, classNames: folders.map((name) => name.replaceAll('_', ' ')) };
}

async function decodeAll(options: BrowserClientOptions): Promise<LabelledImage[]> {
  const decode = options.decode ?? decodeImageInBrowser;
  const out: LabelledImage[] = [];
  // One at a time: a decoded photo can be large, and only its pixels are kept.
  for (const [i, image] of options.images.entries()) {
    const id = image.id ?? `image-${i}`;
    out.push({ id, label: image.label, pixels: image.pixels ?? (await decode(image.bytes!, id)) });
  }
  return out;
}
