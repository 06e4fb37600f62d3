// The experiment that runs out of the box (`npm start`, `pfedprompt run`
// without a config): the bundled CLIP pre-trained on the procedural world
// (models/world-clip), on a few-shot dataset drawn from that world with 10
// clients that differ in labels (the published pathological split: each
// client its own block of classes) and in how they see (each client its own
// visual style: background, colour cast, noise, blur, scale), every method
// of the paper's table, 3 seeds.
//
// The dataset is written once into the output folder and reused; it is
// byte-identical for the same options.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SeededRandom } from '../clip/random.js';
import { pathologicalSplit, PATHOLOGICAL_SEED } from '../data/partitioners/pathological.js';
import { PythonRandom } from '../data/python-random.js';
import { writeFileAtomic } from '../io/atomic.js';
import { worldClasses, writeWorldDataset, type WorldDatasetOptions, type WorldDomain } from '../world/datasets.js';
import { STYLE_PRESETS, randomStyle } from '../world/style.js';
import type { ConfigInput } from './config.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..'); // from dist/src/experiment
export const WORLD_MODEL_DIR = path.join(PACKAGE_ROOT, 'models', 'world-clip');

const CLIENTS = 10;
const DATASET_SEED = 1;

/** One camera per client: the named presets first, then seeded random styles. */
export function clientDomains(clients: number, seed: number): WorldDomain[] {
  const presets = Object.keys(STYLE_PRESETS);
  return Array.from({ length: clients }, (_, i) =>
    i < presets.length ? { name: presets[i], style: STYLE_PRESETS[presets[i]] } : { name: `camera-${i}`, style: randomStyle(SeededRandom.forName(seed, `client-style-${i}`)) });
}

/** The dataset's options: each class drawn in the style of the client the pathological split gives it to. */
export function worldDatasetOptions(clients = CLIENTS, seed = DATASET_SEED): WorldDatasetOptions {
  const classes = worldClasses({ classes: 'all' });
  const labels = classes.map((_, c) => c);
  const owners = pathologicalSplit(labels, labels, clients, 1, new PythonRandom(PATHOLOGICAL_SEED)).classes;
  const domainOfClass = new Array<number>(classes.length);
  owners.forEach((owned, client) => owned.forEach((c) => (domainOfClass[c] = client)));
  return { seed, classes: 'all', perClass: { train: 16, val: 4, test: 20 }, domains: clientDomains(clients, seed), domainOfClass };
}

/** Writes the world dataset under `dir` unless the same one is there already. */
export async function prepareWorldDataset(dir: string, log: (message: string) => void = () => {}): Promise<string> {
  const options = worldDatasetOptions();
  const marker = path.join(dir, 'generator.json');
  const wanted = JSON.stringify(options);
  if (existsSync(marker) && existsSync(path.join(dir, 'split.json')) && readFileSync(marker, 'utf8') === wanted) return dir;
  log(`drawing the world dataset into ${dir} (once)...`);
  await writeWorldDataset(dir, options);
  await writeFileAtomic(marker, wanted); // last: a dataset interrupted half-way is drawn again
  return dir;
}

/** The default experiment's config (before flags), its dataset drawn into `<output>/data/world`. */
export async function worldExperimentConfig(outputDir: string, log?: (message: string) => void): Promise<ConfigInput> {
  if (!existsSync(path.join(WORLD_MODEL_DIR, 'config.json'))) {
    throw new Error(`the bundled model is missing from ${WORLD_MODEL_DIR}: run \`npm run pretrain:world\` to make it`);
  }
  const dataset = await prepareWorldDataset(path.join(outputDir, 'data', 'world'), log);
  return {
    name: 'world',
    model: WORLD_MODEL_DIR,
    backbone: 'world-ViT (bundled)',
    output: outputDir,
    data: {
      datasets: [dataset],
      shots: [4],
      partition: { scheme: 'pathological', clients: CLIENTS },
      views: 4,
    },
    methods: ['zeroshot', 'local-coop', 'promptfl', 'promptfl-ft', 'promptper', 'promptprox', 'promptamp', 'pfedprompt', 'local-tip-adapter', 'pfedmoap'],
    seeds: [1, 2, 3],
    federation: { rounds: 10, localEpochs: 5, batchSize: 32 },
    prompt: { contextLength: 16 },
  };
}
