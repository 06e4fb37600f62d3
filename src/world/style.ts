// How a client's camera sees the world: a visual style applied on top of a
// scene, which gives clients feature shift in addition to label skew.
//
// A style fixes the background family (plain, gradient, noise, grid, waves),
// a colour cast (per-channel gain and offset), pixel noise, blur and an object
// scale. STYLE_PRESETS are named, fixed styles for clients; randomStyle draws
// a style from a seed (pre-training draws one per image, so the model is not
// tied to any one look).

import { SeededRandom } from '../clip/random.js';

export const BACKGROUNDS = ['plain', 'gradient', 'noise', 'grid', 'waves'] as const;
export type Background = (typeof BACKGROUNDS)[number];

export interface Style {
  /** Background families to draw from (one per image, uniformly). */
  readonly backgrounds: readonly Background[];
  /** Base tone of backgrounds: RGB in 0…255 around which they vary. */
  readonly backgroundTone: readonly [number, number, number];
  /** How far background colours stray from the tone (0…1). */
  readonly backgroundVariation: number;
  /** Per-channel gain applied to the whole image (1 = none). */
  readonly gain: readonly [number, number, number];
  /** Per-channel offset added after the gain, in 0…255 units. */
  readonly offset: readonly [number, number, number];
  /** Standard deviation of Gaussian pixel noise, in 0…255 units. */
  readonly noise: number;
  /** Box-blur radius in pixels (0 = sharp). */
  readonly blur: number;
  /** Multiplies the object's size (1 = as the scene says). */
  readonly scale: number;
}

export const NEUTRAL_STYLE: Style = {
  backgrounds: BACKGROUNDS,
  backgroundTone: [128, 128, 128],
  backgroundVariation: 0.5,
  gain: [1, 1, 1],
  offset: [0, 0, 0],
  noise: 0,
  blur: 0,
  scale: 1,
};

/** Named client styles, distinct enough to shift features, mild enough to keep colours nameable. */
export const STYLE_PRESETS: Readonly<Record<string, Style>> = {
  studio: { ...NEUTRAL_STYLE, backgrounds: ['plain'], backgroundTone: [150, 150, 150], backgroundVariation: 0.15 },
  sunset: { ...NEUTRAL_STYLE, backgrounds: ['gradient'], backgroundTone: [170, 120, 90], gain: [1.1, 0.95, 0.8], offset: [15, 5, 0], noise: 4 },
  night: { ...NEUTRAL_STYLE, backgrounds: ['noise', 'plain'], backgroundTone: [60, 65, 90], gain: [0.75, 0.75, 0.85], offset: [0, 0, 10], noise: 14 },
  fog: { ...NEUTRAL_STYLE, backgrounds: ['gradient', 'plain'], backgroundTone: [175, 178, 180], backgroundVariation: 0.2, gain: [0.7, 0.7, 0.7], offset: [55, 55, 58], blur: 1 },
  tiles: { ...NEUTRAL_STYLE, backgrounds: ['grid'], backgroundTone: [120, 140, 120], backgroundVariation: 0.4, scale: 0.85 },
  ocean: { ...NEUTRAL_STYLE, backgrounds: ['waves'], backgroundTone: [80, 130, 160], gain: [0.9, 1, 1.1], noise: 6, scale: 1.15 },
};

/** How far a drawn style strays from neutral: the range of the colour cast, noise, blur and object scale. */
export interface StyleRange {
  /** Multiplies the colour cast's spread (gain 1 ± 0.15, offset ± 20 at 1). */
  readonly cast: number;
  /** Share of styles with pixel noise, and the noise's centre and spread (0…255 units). */
  readonly noisy: number;
  readonly noise: readonly [number, number];
  /** Share of styles with a 1-pixel blur. */
  readonly blurry: number;
  /** Object scale: centre and spread. */
  readonly scale: readonly [number, number];
}

/** The styles pre-training draws from (one per image), so the model is not tied to any one look. */
export const PRETRAINING_STYLES: StyleRange = { cast: 1, noisy: 0.5, noise: [8, 8], blurry: 0.25, scale: [1, 0.15] };

/**
 * Cameras further from anything pre-training saw: twice the colour cast,
 * always some noise, blur on half, smaller objects. The default experiment's
 * clients see through these (its zero-shot accuracy is then in the range of
 * CLIP's on the paper's datasets; see world-experiment.ts).
 */
export const HARSH_CAMERAS: StyleRange = { cast: 2, noisy: 1, noise: [16, 12], blurry: 0.5, scale: [0.8, 0.1] };

/** A style drawn from `random` within `range`: any background, a colour cast, noise and blur, a scale. */
export function randomStyle(random: SeededRandom, range: StyleRange = PRETRAINING_STYLES): Style {
  const around = (centre: number, spread: number): number => centre + (random.uniform() - 0.5) * 2 * spread;
  const family = BACKGROUNDS[random.int(0, BACKGROUNDS.length)];
  const gain = 0.15 * range.cast;
  const offset = 20 * range.cast;
  return {
    backgrounds: [family],
    backgroundTone: [around(128, 70), around(128, 70), around(128, 70)],
    backgroundVariation: around(0.4, 0.3),
    gain: [around(1, gain), around(1, gain), around(1, gain)],
    offset: [around(0, offset), around(0, offset), around(0, offset)],
    noise: random.uniform() < 1 - range.noisy ? 0 : Math.max(0, around(range.noise[0], range.noise[1])),
    blur: random.uniform() < 1 - range.blurry ? 0 : 1,
    scale: around(range.scale[0], range.scale[1]),
  };
}

/** The preset `name`, with a clear error naming the presets otherwise. */
export function stylePreset(name: string): Style {
  const style = STYLE_PRESETS[name];
  if (!style) throw new Error(`unknown world style "${name}"; presets are ${Object.keys(STYLE_PRESETS).join(', ')}`);
  return style;
}
