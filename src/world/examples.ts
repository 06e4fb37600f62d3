// The world's few-shot datasets in memory: classes, domains and every image's
// pixels, deterministic from the options (datasets.ts writes them to disk as an
// image folder; a browser node draws them here, without files).

import { SeededRandom } from '../clip/random.js';
import type { SplitName } from '../data/dataset.js';
import { renderScene } from './render.js';
import { ATTRIBUTE_VALUES, type Attribute, type Scene, type SceneConstraints, className, isHeldOut, sampleScene, type Colour, type Shape } from './scene.js';
import { randomStyle, stylePreset, type Style } from './style.js';

/** Image side of the world's pictures (and of the shipped model's input). */
export const WORLD_IMAGE_SIZE = 48;

export interface WorldClass {
  readonly name: string;
  /** The attribute values every image of the class has. */
  readonly fixed: SceneConstraints;
  /** Whether the class is a (colour, shape) pair held out of pre-training. */
  readonly heldOut: boolean;
}

export interface WorldDomain {
  readonly name: string;
  readonly style: Style | 'random';
}

export interface WorldDatasetOptions {
  readonly seed: number;
  readonly classAttributes?: readonly Attribute[];
  readonly classes?: 'all' | 'seen' | 'held-out';
  readonly perClass?: Partial<Record<SplitName, number>>;
  readonly imageSize?: number;
  /** Named styles, or preset names; default one domain "mixed" of random styles. */
  readonly domains?: readonly (WorldDomain | string)[];
  /**
   * The domain (index into `domains`) of every image of each class, by label,
   * instead of image k in domain k mod D: a class seen by one client only (a
   * pathological split) is then seen through that client's camera.
   */
  readonly domainOfClass?: readonly number[];
}

export interface WorldExample {
  readonly split: SplitName;
  readonly index: number;
  readonly label: number;
  readonly domain: string;
  readonly scene: Scene;
  /** RGB bytes, imageSize × imageSize × 3. */
  readonly rgb: Uint8Array;
  /** Path relative to the dataset folder. */
  readonly relativePath: string;
}

export const SPLITS: readonly SplitName[] = ['train', 'val', 'test'];
const DEFAULT_PER_CLASS: Record<SplitName, number> = { train: 16, val: 4, test: 20 };

/** Every class the attributes define (their values' product), filtered by held-out status. */
export function worldClasses(options: Pick<WorldDatasetOptions, 'classAttributes' | 'classes'> = {}): WorldClass[] {
  const attributes = options.classAttributes ?? ['colour', 'shape'];
  if (attributes.length === 0) throw new Error('world dataset: classAttributes must name at least one attribute');
  for (const a of attributes) {
    if (!(a in ATTRIBUTE_VALUES)) throw new Error(`world dataset: unknown attribute "${a}"; attributes are ${Object.keys(ATTRIBUTE_VALUES).join(', ')}`);
  }
  if (new Set(attributes).size !== attributes.length) throw new Error(`world dataset: classAttributes repeats an attribute (${attributes.join(', ')})`);
  const which = options.classes ?? 'all';
  const pairs = attributes.includes('colour') && attributes.includes('shape');
  if (which !== 'all' && !pairs) throw new Error(`world dataset: classes "${which}" needs classAttributes with both colour and shape (held-out pairs are colour–shape pairs)`);

  let combos: Record<string, string>[] = [{}];
  for (const a of attributes) combos = combos.flatMap((c) => ATTRIBUTE_VALUES[a].map((v) => ({ ...c, [a]: v })));
  const classes: WorldClass[] = [];
  for (const fixed of combos) {
    const heldOut = pairs && isHeldOut(fixed.colour as Colour, fixed.shape as Shape);
    if ((which === 'seen' && heldOut) || (which === 'held-out' && !heldOut)) continue;
    // className reads only the listed attributes; the rest of this stand-in scene is never looked at.
    const name = className(fixed as unknown as Scene, attributes);
    classes.push({ name, fixed: fixed as SceneConstraints, heldOut });
  }
  return classes;
}

export function resolveDomains(domains: WorldDatasetOptions['domains']): WorldDomain[] {
  const list = (domains ?? [{ name: 'mixed', style: 'random' as const }]).map((d) => (typeof d === 'string' ? { name: d, style: stylePreset(d) } : d));
  if (list.length === 0) throw new Error('world dataset: domains must not be empty');
  for (const d of list) {
    if (!/^[a-z0-9-]+$/.test(d.name)) throw new Error(`world dataset: domain name "${d.name}" must be lower-case letters, digits and dashes`);
  }
  if (new Set(list.map((d) => d.name)).size !== list.length) throw new Error('world dataset: domain names must be distinct');
  return list;
}

function perClassCounts(perClass: WorldDatasetOptions['perClass']): Record<SplitName, number> {
  const counts = { ...DEFAULT_PER_CLASS, ...perClass };
  for (const split of SPLITS) {
    const n = counts[split];
    if (!Number.isInteger(n) || n < 0) throw new Error(`world dataset: perClass.${split} must be a non-negative integer, got ${n}`);
  }
  if (counts.train < 1 || counts.test < 1) throw new Error('world dataset: perClass needs at least one train and one test image per class');
  return counts;
}

export const folderOf = (name: string): string => name.replaceAll(' ', '_');

/** The dataset's images in memory, in split.json order (split, then class, then index). */
export function worldExamples(options: WorldDatasetOptions): WorldExample[] {
  const size = options.imageSize ?? WORLD_IMAGE_SIZE;
  const classes = worldClasses(options);
  const domains = resolveDomains(options.domains);
  const counts = perClassCounts(options.perClass);
  const classDomains = options.domainOfClass;
  if (classDomains && (classDomains.length !== classes.length || classDomains.some((d) => !Number.isInteger(d) || d < 0 || d >= domains.length))) {
    throw new Error(`world dataset: domainOfClass must give each of the ${classes.length} classes a domain index in 0 … ${domains.length - 1}`);
  }
  const examples: WorldExample[] = [];
  for (const split of SPLITS) {
    let index = 0;
    for (const [label, cls] of classes.entries()) {
      for (let k = 0; k < counts[split]; k++) {
        const random = SeededRandom.forName(options.seed, `${cls.name}/${split}/${k}`);
        const domain = domains[classDomains ? classDomains[label] : k % domains.length];
        const scene = sampleScene(random, cls.fixed);
        const style = domain.style === 'random' ? randomStyle(random) : domain.style;
        const relativePath = `${folderOf(cls.name)}/${split}_${String(k).padStart(4, '0')}_${domain.name}.png`;
        examples.push({ split, index: index++, label, domain: domain.name, scene, rgb: renderScene(scene, style, size), relativePath });
      }
    }
  }
  return examples;
}

