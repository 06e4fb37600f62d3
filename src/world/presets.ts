// The bundled worlds (WORLD_PRESETS: how each client's camera is drawn) and the
// options of the default experiment's dataset (experiment/world-experiment.ts
// writes it; a browser node draws it in memory, world/examples.ts).

import { SeededRandom } from '../clip/random.js';
import { pathologicalSplit, PATHOLOGICAL_SEED } from '../data/partitioners/pathological.js';
import { PythonRandom } from '../data/python-random.js';
import { worldClasses, type WorldDatasetOptions, type WorldDomain } from './examples.js';
import { HARSH_CAMERAS, STYLE_PRESETS, randomStyle } from './style.js';

/** Clients of the default experiment's world, and the seed its dataset is drawn with. */
export const WORLD_CLIENTS = 10;
export const WORLD_DATASET_SEED = 1;

/** A default world: how its clients' cameras are drawn. Classes are always the 48 colour–shape pairs. */
export interface WorldPreset {
  readonly description: string;
  /** One camera per client. */
  cameras(clients: number, seed: number): WorldDomain[];
}

export const WORLD_PRESETS = {
  'harsh-cameras': {
    description: 'each client a camera drawn far from pre-training (HARSH_CAMERAS): zero-shot 63 %',
    cameras: (clients, seed) => Array.from({ length: clients }, (_, i) =>
      ({ name: `camera-${i}`, style: randomStyle(SeededRandom.forName(seed, `harsh-camera-${i}`), HARSH_CAMERAS) })),
  },
  classic: {
    description: 'the first world: the named style presets, then mild random cameras: zero-shot 91 %',
    cameras: (clients, seed) => {
      const presets = Object.keys(STYLE_PRESETS);
      return Array.from({ length: clients }, (_, i) =>
        i < presets.length ? { name: presets[i], style: STYLE_PRESETS[presets[i]] } : { name: `camera-${i}`, style: randomStyle(SeededRandom.forName(seed, `client-style-${i}`)) });
    },
  },
} as const satisfies Record<string, WorldPreset>;

export type WorldPresetName = keyof typeof WORLD_PRESETS;
export const DEFAULT_WORLD: WorldPresetName = 'harsh-cameras';

export function worldPreset(name: string): WorldPreset {
  if (!(name in WORLD_PRESETS)) throw new Error(`unknown world "${name}"; worlds are ${Object.keys(WORLD_PRESETS).join(', ')}`);
  return WORLD_PRESETS[name as WorldPresetName];
}

/** One camera per client of `world`. */
export function clientDomains(clients: number, seed: number, world: string = DEFAULT_WORLD): WorldDomain[] {
  return worldPreset(world).cameras(clients, seed);
}

/** The dataset's options: each class drawn in the camera of the client the pathological split gives it to. */
export function worldDatasetOptions(clients = WORLD_CLIENTS, seed = WORLD_DATASET_SEED, world: string = DEFAULT_WORLD): WorldDatasetOptions {
  const classes = worldClasses({ classes: 'all' });
  const labels = classes.map((_, c) => c);
  const owners = pathologicalSplit(labels, labels, clients, 1, new PythonRandom(PATHOLOGICAL_SEED)).classes;
  const domainOfClass = new Array<number>(classes.length);
  owners.forEach((owned, client) => owned.forEach((c) => (domainOfClass[c] = client)));
  return { seed, classes: 'all', perClass: { train: 16, val: 4, test: 20 }, domains: clientDomains(clients, seed, world), domainOfClass };
}

