// The procedural world's scenes: one object with a shape, colour, size,
// pattern and position, and captions that name it in varied wording.
//
// A scene is plain data (indices into the attribute lists below); render.ts
// draws it and style.ts says how a client's camera sees it. Everything is
// drawn from a SeededRandom, so the same seed gives the same scenes.
//
// Held-out combinations: HELD_OUT_PAIRS lists (colour, shape) pairs that
// pre-training never shows, neither as images nor in captions, so that a
// model's accuracy on them measures zero-shot recognition of combinations it
// has only met as separate words.

import { SeededRandom } from '../clip/random.js';

export const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'cross', 'star'] as const;
export const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'white', 'black'] as const;
export const SIZES = ['small', 'large'] as const;
export const PATTERNS = ['plain', 'striped', 'dotted', 'checkered'] as const;
export const POSITIONS = ['left', 'right', 'top', 'bottom', 'center'] as const;

export type Shape = (typeof SHAPES)[number];
export type Colour = (typeof COLOURS)[number];
export type Size = (typeof SIZES)[number];
export type Pattern = (typeof PATTERNS)[number];
export type Position = (typeof POSITIONS)[number];

/** sRGB of each colour name. */
export const COLOUR_RGB: Readonly<Record<Colour, readonly [number, number, number]>> = {
  red: [220, 30, 35],
  orange: [245, 135, 20],
  yellow: [245, 225, 40],
  green: [40, 170, 60],
  blue: [35, 80, 220],
  purple: [140, 50, 175],
  white: [245, 245, 245],
  black: [20, 20, 20],
};

export interface Scene {
  readonly shape: Shape;
  readonly colour: Colour;
  readonly size: Size;
  readonly pattern: Pattern;
  readonly position: Position;
  /** Rotation of the shape in radians (small, so "triangle" still points up). */
  readonly rotation: number;
  /** Offset of the centre from its position's anchor, in fractions of the image (jitter). */
  readonly jitter: readonly [number, number];
  /** Colour of the pattern's second tone (stripes, dots, checks): a darker or lighter shade of the object's colour. */
  readonly patternTone: 'dark' | 'light';
  /** Seed of everything else in the picture (background texture, noise). */
  readonly detailSeed: number;
}

/** Attributes a class of a classification dataset can be defined by. */
export type Attribute = 'colour' | 'shape' | 'size' | 'pattern' | 'position';
export const ATTRIBUTE_VALUES: Readonly<Record<Attribute, readonly string[]>> = {
  colour: COLOURS,
  shape: SHAPES,
  size: SIZES,
  pattern: PATTERNS,
  position: POSITIONS,
};

/**
 * (colour, shape) pairs pre-training never sees: one per colour, spread over
 * the shapes so that every colour and every shape is still seen with others.
 */
export const HELD_OUT_PAIRS: readonly (readonly [Colour, Shape])[] = COLOURS.map((c, i) => [c, SHAPES[(i * 5 + 1) % SHAPES.length]] as const);

export function isHeldOut(colour: Colour, shape: Shape): boolean {
  return HELD_OUT_PAIRS.some(([c, s]) => c === colour && s === shape);
}

/** Constraints on sampled scenes: fixed attribute values, and whether held-out pairs are allowed, excluded or required. */
export interface SceneConstraints {
  readonly shape?: Shape;
  readonly colour?: Colour;
  readonly size?: Size;
  readonly pattern?: Pattern;
  readonly position?: Position;
  /** 'exclude' (pre-training), 'only' (a held-out test set) or 'any' (default). */
  readonly heldOut?: 'exclude' | 'only' | 'any';
}

const pick = <T>(random: SeededRandom, values: readonly T[]): T => values[random.int(0, values.length)];

/** One scene; attributes not fixed by `constraints` are uniform (pairs re-drawn until the held-out rule holds). */
export function sampleScene(random: SeededRandom, constraints: SceneConstraints = {}): Scene {
  const rule = constraints.heldOut ?? 'any';
  if (rule === 'only' && constraints.colour && constraints.shape && !isHeldOut(constraints.colour, constraints.shape)) {
    throw new Error(`sampleScene: ${constraints.colour} ${constraints.shape} is not a held-out pair`);
  }
  if (rule === 'exclude' && constraints.colour && constraints.shape && isHeldOut(constraints.colour, constraints.shape)) {
    throw new Error(`sampleScene: ${constraints.colour} ${constraints.shape} is a held-out pair, which this sample excludes`);
  }
  let colour: Colour;
  let shape: Shape;
  for (;;) {
    colour = constraints.colour ?? pick(random, COLOURS);
    shape = constraints.shape ?? pick(random, SHAPES);
    const held = isHeldOut(colour, shape);
    if (rule === 'any' || (rule === 'only') === held) break;
  }
  return {
    shape,
    colour,
    size: constraints.size ?? pick(random, SIZES),
    pattern: constraints.pattern ?? pick(random, PATTERNS),
    position: constraints.position ?? pick(random, POSITIONS),
    rotation: (random.uniform() - 0.5) * 0.5,
    jitter: [(random.uniform() - 0.5) * 0.08, (random.uniform() - 0.5) * 0.08],
    patternTone: random.uniform() < 0.5 ? 'dark' : 'light',
    detailSeed: random.nextUint32(),
  };
}

// ---------------------------------------------------------------- captions

const PATTERN_ADJECTIVE: Record<Pattern, readonly string[]> = {
  plain: ['plain', 'solid'],
  striped: ['striped'],
  dotted: ['dotted', 'spotted'],
  checkered: ['checkered'],
};
const PATTERN_PHRASE: Record<Pattern, readonly string[]> = {
  plain: ['with no pattern', 'in a single solid colour'],
  striped: ['with stripes'],
  dotted: ['with dots', 'with spots'],
  checkered: ['with a checkered pattern', 'with checks'],
};
const SIZE_WORDS: Record<Size, readonly string[]> = { small: ['small', 'little', 'tiny'], large: ['large', 'big'] };
const POSITION_PHRASE: Record<Position, readonly string[]> = {
  left: ['on the left', 'at the left side'],
  right: ['on the right', 'at the right side'],
  top: ['at the top', 'near the top'],
  bottom: ['at the bottom', 'near the bottom'],
  center: ['in the center', 'in the middle'],
};
const OPENERS = ['a photo of', 'a picture of', 'an image of', 'there is', 'a drawing of', 'a rendering of', ''];

const article = (word: string): string => (/^[aeiou]/.test(word) ? 'an' : 'a');

/**
 * A caption of `scene` in one of several wordings. Each attribute but the
 * shape is named with some probability, so captions also teach the parts on
 * their own ("a red shape", "a striped star"), which is what lets a model put
 * together combinations it never saw.
 */
export function caption(scene: Scene, random: SeededRandom): string {
  return describe(scene, random).text;
}

/** What a caption says about a scene: the attributes it names (the others it leaves open). */
export type Mentions = Partial<Pick<Scene, Attribute>>;

/** A caption and the attributes it names, so that a batch can tell which captions are true of which images. */
export function describe(scene: Scene, random: SeededRandom): { text: string; mentions: Mentions } {
  const say = (p: number): boolean => random.uniform() < p;
  // About half the captions name only one of colour and shape: they tie each
  // word to its part of the picture, not to the pair.
  const nameShape = say(0.75);
  const colour = say(0.7) || !nameShape ? scene.colour : undefined;
  const size = say(0.5) ? pick(random, SIZE_WORDS[scene.size]) : undefined;
  const patternMode = say(0.55) ? (say(0.5) ? 'adjective' : 'phrase') : undefined;
  const position = say(0.45) ? pick(random, POSITION_PHRASE[scene.position]) : undefined;
  const noun = nameShape ? scene.shape : pick(random, ['shape', 'object', 'thing']);

  const adjectives = [size, colour, patternMode === 'adjective' ? pick(random, PATTERN_ADJECTIVE[scene.pattern]) : undefined].filter((w) => w !== undefined);
  const head = [...adjectives, noun].join(' ');
  const positionFirst = position !== undefined && say(0.2); // "on the left, a red circle"
  const tail = [patternMode === 'phrase' ? pick(random, PATTERN_PHRASE[scene.pattern]) : undefined, positionFirst ? undefined : position].filter((w) => w !== undefined);
  const opener = pick(random, OPENERS);
  const body = `${article(head)} ${head}${tail.length ? ` ${tail.join(' ')}` : ''}`;
  const text = positionFirst ? `${position}, ${body}` : opener ? `${opener} ${body}` : body;
  const mentions: Mentions = {
    ...(nameShape ? { shape: scene.shape } : {}),
    ...(colour ? { colour: scene.colour } : {}),
    ...(size ? { size: scene.size } : {}),
    ...(patternMode ? { pattern: scene.pattern } : {}),
    ...(position ? { position: scene.position } : {}),
  };
  return { text: say(0.6) ? `${text}.` : text, mentions };
}

/** Whether a caption naming `mentions` is true of `scene`. */
export function isTrueOf(mentions: Mentions, scene: Scene): boolean {
  return (Object.keys(mentions) as Attribute[]).every((a) => mentions[a] === scene[a]);
}

/** The name of a class defined by `attributes` of a scene, e.g. "red circle" or "small striped star". */
export function className(scene: Scene, attributes: readonly Attribute[]): string {
  const order: Attribute[] = ['size', 'colour', 'pattern', 'shape', 'position'];
  const words: string[] = [];
  for (const a of order) {
    if (!attributes.includes(a)) continue;
    if (a === 'position') words.push(POSITION_PHRASE[scene.position][0]);
    else words.push(scene[a]);
  }
  if (!attributes.includes('shape')) words.splice(attributes.includes('position') ? words.length - 1 : words.length, 0, 'shape');
  return words.join(' ');
}
