// A browser node computes what a Node node computes. onnxruntime-web runs in
// Node too (its wasm backend), so the browser's client (src/browser/client.ts:
// model and tokenizer from fetched bytes, features from decoded pixels, the
// portable node) is driven here with onnxruntime-web against a Node ClientNode
// on onnxruntime-node, on the same world client: both describe the same cell
// and give the same pFedPrompt update. The browser's own decoder needs a
// browser (createImageBitmap, OffscreenCanvas), so pixels come from Node's
// decoder here; the canvas path's arithmetic is test/browser-decode.test.ts's,
// and the decoder itself runs in the page's Playwright test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as ortWeb from 'onnxruntime-web';
import { createBrowserClient, imagesFromFolder, type BrowserImage, type WebRuntime } from '../src/browser/client.js';
import { decodeImage } from '../src/clip/decode.js';
import { loadDataset } from '../src/data/load-dataset.js';
import { createPartition } from '../src/data/partitioners/index.js';
import { partitionRequest } from '../src/experiment/cell.js';
import { parseConfig } from '../src/experiment/config.js';
import type { Tensors } from '../src/federation/method.js';
import { sha256Hex } from '../src/io/sha256.js';
import type { PersonalStateStore } from '../src/node/client-core.js';
import { ClientNode, clientImageFiles, type NodeRequest } from '../src/node/client-node.js';
import { writeWorldDataset } from '../src/world/datasets.js';
import { nodeRuntime } from '../src/clip/node-runtime.js';
import { ClipModel } from '../src/clip/model.js';
import { loadClip } from '../src/clip/checkpoint-file.js';
import { loadClientData } from '../src/experiment/client-features.js';
import { FeatureCache } from '../src/features/cache.js';
import { clientDataFromImages } from '../src/features/client-images.js';
import type { FeatureSet } from '../src/federation/client-data.js';
import { relativeError } from './shared.js';
import { PROJECT_ROOT } from './shared.js';

const SHIPPED = path.join(PROJECT_ROOT, 'models', 'world-clip');
const CLIENT = 1;
let workdir: string;
let worldDir: string;

const runConfig = {
  name: 'browser',
  model: '/the/server/has/another/path',
  data: { datasets: ['/elsewhere/world'], shots: [2], partition: { scheme: 'pathological', clients: 2 }, views: 2 },
  methods: ['pfedprompt'],
  seeds: [1],
  federation: { rounds: 2, localEpochs: 2, batchSize: 4, workers: 1 },
  prompt: { contextLength: 4 },
  memorySearch: { alpha: [1, 2], beta: [5.5] },
};

before(async () => {
  workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-browser-'));
  worldDir = path.join(workdir, 'world');
  await writeWorldDataset(worldDir, { seed: 5, perClass: { train: 3, val: 1, test: 2 }, domains: ['studio', 'night'], classes: 'held-out' });
});
after(() => rmSync(workdir, { recursive: true, force: true }));

class MemoryStateStore implements PersonalStateStore {
  readonly states = new Map<string, Tensors>();
  async get(runId: string, cell: string): Promise<Tensors | undefined> {
    return this.states.get(`${runId}/${cell}`);
  }
  async put(runId: string, cell: string, state: Tensors): Promise<void> {
    this.states.set(`${runId}/${cell}`, state);
  }
}

/** Client CLIENT's images as a server hands them to its browser (clientImageFiles): file bytes, labels, names and splits. */
async function worldClientImages(): Promise<{ images: BrowserImage[]; classNames: readonly string[]; classes: readonly number[]; fingerprint: string }> {
  const files = await clientImageFiles({ dataset: worldDir, client: CLIENT }, parseConfig({ ...runConfig, model: SHIPPED }), 2);
  const images = await Promise.all(files.images.map(async ({ path: file, id, label, split }) => ({ bytes: new Uint8Array(await readFile(file)), id, label, split })));
  return { images, classNames: files.classNames, classes: files.classes, fingerprint: files.fingerprint };
}

test('a browser client on onnxruntime-web gives a Node node\'s pFedPrompt update on the same world client', async () => {
  const nodeNode = new ClientNode({ model: SHIPPED, data: { dataset: worldDir, client: CLIENT }, stateDir: path.join(workdir, 'state'), cache: path.join(workdir, 'cache'), threads: 1 });
  const { images, classNames, classes, fingerprint } = await worldClientImages();
  const store = new MemoryStateStore();
  const browser = createBrowserClient({
    ort: ortWeb as unknown as WebRuntime,
    threads: 1,
    modelFiles: async (name) => readFile(path.join(SHIPPED, name)).then((b) => new Uint8Array(b), () => undefined),
    images, classNames, classes, client: CLIENT, clients: 2, dataset: worldDir, datasetLabel: 'world', fingerprint, store,
    decode: async (bytes, name) => decodeImage(Buffer.from(bytes as Uint8Array), name),
  });
  const base = { runId: 'run-7', runConfig: JSON.stringify(runConfig), cell: { method: 'pfedprompt', seed: 1, shots: 2 } };
  const describe: NodeRequest = { ...base, ask: 'describe', arrays: {} };
  const [fromNode, fromBrowser] = [await nodeNode.handle(describe), await browser.handle(describe)];
  // The same cell, the same client, the same facts (the dataset's label aside, which each node names).
  assert.deepEqual({ ...fromBrowser.facts!, cell: { ...fromBrowser.facts!.cell, datasetLabel: '' } }, { ...fromNode.facts!, cell: { ...fromNode.facts!.cell, datasetLabel: '' } });
  assert.equal(fromBrowser.facts!.client, CLIENT);
  assert.deepEqual(fromBrowser.arrays, fromNode.arrays);

  const fit: NodeRequest = { ...base, ask: 'fit', round: 1, arrays: fromNode.arrays! };
  const [nodeFit, browserFit] = [await nodeNode.handle(fit), await browser.handle(fit)];
  assert.deepEqual(Object.keys(browserFit.arrays!), Object.keys(nodeFit.arrays!));
  assert.deepEqual({ ...browserFit.metrics, 'train-loss': 0 }, { ...nodeFit.metrics, 'train-loss': 0 });
  const sent = fromNode.arrays!.context;
  const [a, b] = [browserFit.arrays!.context, nodeFit.arrays!.context];
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i] - sent[i])); // the update: what training changed
  }
  assert.ok(scale > 0, 'the fit changed nothing: nothing was compared');
  console.log(`browser vs Node update: max |Δ| ${worst.toExponential(2)} over an update of max ${scale.toExponential(2)}: ${(worst / scale).toExponential(2)} relative; train loss ${browserFit.metrics!['train-loss']} vs ${nodeFit.metrics!['train-loss']}`);
  assert.ok(worst / scale <= 1e-4, `browser update differs by ${worst / scale} of the update's scale`);
  assert.ok(Math.abs((browserFit.metrics!['train-loss'] as number) - (nodeFit.metrics!['train-loss'] as number)) <= 1e-4 * Math.abs(nodeFit.metrics!['train-loss'] as number));
  // The browser kept pFedPrompt's personal memory in its store, as the Node node on its disk.
  assert.equal(store.states.size, 1);
});

test('features from decoded images on onnxruntime-web equal a Node node\'s through its feature cache, view by view', async () => {
  const weights = await loadClip(SHIPPED);
  const dataset = await loadDataset(worldDir, {});
  const partition = createPartition(dataset, partitionRequest(parseConfig({ ...runConfig, model: SHIPPED }), 2));
  const nodeModel = new ClipModel(weights, nodeRuntime({ threads: 1 }));
  const webModel = new ClipModel(weights, { ort: ortWeb as unknown as WebRuntime, sessionOptions: { executionProviders: ['wasm'] } });
  const options = { views: 2, augmentSeed: 12345, tokens: true };
  const cache = await FeatureCache.open(weights, { root: path.join(workdir, 'features-cache') });
  const [fromNode] = await loadClientData(nodeModel, dataset, partition, { ...options, cache, only: [CLIENT] });
  const { images, classes } = await worldClientImages();
  const decoded = await Promise.all(images.map(async (image) => ({ id: image.id!, label: image.label, pixels: await decodeImage(Buffer.from(image.bytes as Uint8Array)) })));
  const of = (split: string) => decoded.filter((_, i) => images[i].split === split);
  const fromWeb = await clientDataFromImages(webModel, { id: CLIENT, classes, train: of('train'), val: of('val'), test: of('test') }, options);
  const sets = (d: typeof fromNode): FeatureSet[] => [...d.train, d.val, d.test];
  assert.equal(fromWeb.train.length, 3);
  sets(fromWeb).forEach((set, k) => {
    const other = sets(fromNode)[k];
    assert.deepEqual(set.labels, other.labels);
    // Embeddings differ by the runtimes' float error (6e-7 measured). Pooled features and tokens come from
    // the spatial maps, which the Node node's cache rounds to F16 and the browser rounds too: a runtime
    // difference flips a few roundings by one F16 step (measured 1.1e-5 and 6.5e-5). Without the browser's
    // rounding they differ by 5.3e-5 and 1.7e-4, which these bounds refuse.
    const bounds = { embeds: 1e-5, pooled: 2e-5, tokens: 1e-4 };
    for (const [field, bound] of Object.entries(bounds) as ['embeds' | 'pooled' | 'tokens', number][]) {
      const error = relativeError(set[field]!, other[field]!);
      assert.ok(error < bound, `set ${k} ${field}: ${error} relative, bound ${bound}`);
    }
  });
  await nodeModel.release();
  await webModel.release();
});

test('createBrowserClient: a label outside the classes, an image without bytes, a client outside the federation, a missing model file are refused by name', async () => {
  const common = { ort: ortWeb as unknown as WebRuntime, modelFiles: async () => undefined, classNames: ['a', 'b'], client: 0, clients: 2, store: new MemoryStateStore() };
  assert.throws(() => createBrowserClient({ ...common, images: [{ bytes: new Uint8Array(1), label: 2, id: 'x.png' }] }), /image x\.png: label 2 is not one of the 2 classes/);
  assert.throws(() => createBrowserClient({ ...common, images: [{ label: 0, id: 'y.png' }] }), /image y\.png: neither bytes nor pixels/);
  assert.throws(() => createBrowserClient({ ...common, images: [{ bytes: new Uint8Array(1), label: 0, id: 'a.png' }, { bytes: new Uint8Array(1), label: 1, id: 'a.png' }] }), /two images are both named "a\.png"/);
  assert.throws(() => createBrowserClient({ ...common, client: 2, images: [{ bytes: new Uint8Array(1), label: 0 }] }), /client 2 is not one of the federation's 2 clients/);
  const noModel = createBrowserClient({ ...common, modelName: 'https://example.org/m', images: [{ pixels: { width: 1, height: 1, channels: 3, data: new Uint8Array(3) }, label: 0 }] });
  const describe: NodeRequest = { runId: 'r', ask: 'describe', runConfig: JSON.stringify(runConfig), cell: { method: 'pfedprompt', seed: 1, shots: 2 }, arrays: {} };
  await assert.rejects(noModel.handle(describe), /https:\/\/example\.org\/m: the server has no model\.safetensors/);
  await assert.rejects(noModel.model, /the server has no model\.safetensors/);
});

test('imagesFromFolder: labels from sorted class folders, a split per photo that does not depend on order, refusals by name', () => {
  const files = Array.from({ length: 200 }, (_, i) => ({ path: `${['zebra_crossing', 'apple', 'cat'][i % 3]}/photo-${i}.jpg`, data: new Uint8Array([i]) }));
  const { images, classNames } = imagesFromFolder(files);
  assert.deepEqual(classNames, ['apple', 'cat', 'zebra crossing']);
  assert.equal(images.find((image) => image.id === 'zebra_crossing/photo-0.jpg')!.label, 2);
  const count = (split: string) => images.filter((image) => image.split === split).length;
  assert.ok(count('test') > 20 && count('test') < 60 && count('val') > 5 && count('val') < 40, `splits ${count('train')}/${count('val')}/${count('test')}`);
  const reversed = imagesFromFolder([...files].reverse());
  assert.deepEqual(reversed.images.map((image) => [image.id, image.split, image.label]), images.map((image) => [image.id, image.split, image.label]));
  assert.throws(() => imagesFromFolder([{ path: 'loose.jpg', data: new Uint8Array(1) }, ...files]), /loose\.jpg: not inside a class folder/);
  assert.throws(() => imagesFromFolder(files.filter((f) => f.path.startsWith('cat/'))), /1 class sub-folder\(s\); a classifier needs at least 2/);
  assert.throws(() => imagesFromFolder(files, { val: 0.5, test: 0.5 }), /must be non-negative and leave some photos for training/);
});

test('sha256 (the pure one the browser path hashes with) matches node:crypto', async () => {
  const { createHash } = await import('node:crypto');
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 32768]) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 131 + n) & 255);
    assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'), `${n} bytes`);
  }
  assert.equal(sha256Hex('héllo'), createHash('sha256').update('héllo').digest('hex'));
});
