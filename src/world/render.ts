// Rasterises a scene, seen in a style, to 8-bit RGB pixels: background,
// then the object (2×2 supersampled, so edges are anti-aliased), then the
// style's blur, colour cast and noise. Pure and deterministic: the same
// (scene, style, size) gives the same bytes on every machine (only integer
// and IEEE double arithmetic, no platform maths beyond Math.sin/cos/sqrt/log,
// which Node computes identically on one build).

import { SeededRandom } from '../clip/random.js';
import type { DecodedPixels } from '../clip/preprocess.js';
import { COLOUR_RGB, type Scene } from './scene.js';
import type { Background, Style } from './style.js';

type RGB = [number, number, number];

/** Half-extent of the object as a fraction of the image side, by size word. */
const RADIUS = { small: 0.2, large: 0.31 } as const;

/** Star outline: 10 vertices alternating outer and inner radius, first point up. */
const STAR: readonly (readonly [number, number])[] = Array.from({ length: 10 }, (_, i) => {
  const angle = -Math.PI / 2 + (i * Math.PI) / 5;
  const r = i % 2 === 0 ? 1 : 0.45;
  return [r * Math.cos(angle), r * Math.sin(angle)] as const;
});

function insidePolygon(u: number, v: number, polygon: readonly (readonly [number, number])[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether the point (u, v) of the shape's own frame ([-1, 1]², v down) is inside it. */
function insideShape(shape: Scene['shape'], u: number, v: number): boolean {
  const au = Math.abs(u);
  const av = Math.abs(v);
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return au <= 0.82 && av <= 0.82;
    case 'triangle':
      return v <= 0.78 && v >= -0.98 && au <= ((v + 0.98) / 1.76) * 1.0;
    case 'diamond':
      return au + av <= 1;
    case 'cross':
      return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95);
    case 'star':
      return insidePolygon(u, v, STAR);
  }
}

/** The second tone of a pattern: a dark or light shade (white only darkens, black only lightens). */
function patternColour(base: readonly number[], tone: Scene['patternTone'], colour: Scene['colour']): RGB {
  const dark = colour === 'white' || (tone === 'dark' && colour !== 'black');
  // Contrast enough to see the pattern, not so much that it breaks the silhouette.
  return dark ? [base[0] * 0.6, base[1] * 0.6, base[2] * 0.6] : [base[0] + (255 - base[0]) * 0.45, base[1] + (255 - base[1]) * 0.45, base[2] + (255 - base[2]) * 0.45];
}

/** Whether image point (x, y) (in pixels of a 32-pixel-equivalent grid) falls on the pattern's second tone. */
function onPattern(pattern: Scene['pattern'], x: number, y: number): boolean {
  switch (pattern) {
    case 'plain':
      return false;
    case 'striped':
      return Math.floor((x + y) / 2.2) % 2 === 0;
    case 'dotted': {
      const cx = x / 4.2 - Math.floor(x / 4.2) - 0.5;
      const cy = y / 4.2 - Math.floor(y / 4.2) - 0.5;
      return cx * cx + cy * cy < 0.09;
    }
    case 'checkered':
      return (Math.floor(x / 3) + Math.floor(y / 3)) % 2 === 0;
  }
}

function background(kind: Background, style: Style, size: number, random: SeededRandom): Float64Array {
  const out = new Float64Array(size * size * 3);
  const jitterColour = (): RGB => style.backgroundTone.map((t) => t + (random.uniform() - 0.5) * 2 * 110 * style.backgroundVariation) as RGB;
  const a = jitterColour();
  const b = jitterColour();
  const set = (x: number, y: number, c: readonly number[]): void => {
    const i = (y * size + x) * 3;
    out[i] = c[0];
    out[i + 1] = c[1];
    out[i + 2] = c[2];
  };
  const mix = (t: number): RGB => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
  switch (kind) {
    case 'plain':
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) set(x, y, a);
      break;
    case 'gradient': {
      const angle = random.uniform() * 2 * Math.PI;
      const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) set(x, y, mix(0.5 + ((x / size - 0.5) * dx + (y / size - 0.5) * dy)));
      break;
    }
    case 'noise': {
      // Value noise: a 5×5 lattice of random mixes, bilinearly interpolated, plus grain.
      const lattice = Array.from({ length: 25 }, () => random.uniform());
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const fx = (x / size) * 4;
          const fy = (y / size) * 4;
          const ix = Math.floor(fx);
          const iy = Math.floor(fy);
          const tx = fx - ix;
          const ty = fy - iy;
          const l = (i: number, j: number): number => lattice[Math.min(j, 4) * 5 + Math.min(i, 4)];
          const t = (l(ix, iy) * (1 - tx) + l(ix + 1, iy) * tx) * (1 - ty) + (l(ix, iy + 1) * (1 - tx) + l(ix + 1, iy + 1) * tx) * ty;
          set(x, y, mix(Math.min(1, Math.max(0, t + (random.uniform() - 0.5) * 0.15))));
        }
      }
      break;
    }
    case 'grid': {
      const cell = Math.max(3, Math.round(size / (4 + random.int(0, 4))));
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) set(x, y, x % cell === 0 || y % cell === 0 ? b : a);
      break;
    }
    case 'waves': {
      const angle = random.uniform() * Math.PI;
      const frequency = 2 + random.uniform() * 4;
      const phase = random.uniform() * 2 * Math.PI;
      const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) set(x, y, mix(0.5 + 0.5 * Math.sin(phase + 2 * Math.PI * frequency * ((x * dx + y * dy) / size))));
      }
      break;
    }
  }
  return out;
}

/** 3×3 box blur, `radius` times, edges clamped. */
function blur(pixels: Float64Array, size: number, radius: number): Float64Array {
  let src = pixels;
  for (let pass = 0; pass < radius; pass++) {
    const dst = new Float64Array(src.length);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const yy = Math.min(size - 1, Math.max(0, y + dy));
              const xx = Math.min(size - 1, Math.max(0, x + dx));
              sum += src[(yy * size + xx) * 3 + c];
            }
          }
          dst[(y * size + x) * 3 + c] = sum / 9;
        }
      }
    }
    src = dst;
  }
  return src;
}

/** The scene in the style, as `size`×`size` RGB bytes (row-major, interleaved). */
export function renderScene(scene: Scene, style: Style, size: number): Uint8Array {
  if (!Number.isInteger(size) || size < 8) throw new Error(`renderScene: image size must be an integer ≥ 8, got ${size}`);
  const random = new SeededRandom(scene.detailSeed);
  const kind = style.backgrounds[random.int(0, style.backgrounds.length)];
  if (!kind) throw new Error('renderScene: the style lists no backgrounds');
  let pixels = background(kind, style, size, random);

  const radius = RADIUS[scene.size] * style.scale;
  const reach = Math.max(0.1, 0.47 - radius);
  const anchor: Record<Scene['position'], [number, number]> = {
    left: [0.5 - reach, 0.5], right: [0.5 + reach, 0.5], top: [0.5, 0.5 - reach], bottom: [0.5, 0.5 + reach], center: [0.5, 0.5],
  };
  const [ax, ay] = anchor[scene.position];
  const cx = (ax + scene.jitter[0]) * size;
  const cy = (ay + scene.jitter[1]) * size;
  const r = radius * size;
  const cos = Math.cos(scene.rotation);
  const sin = Math.sin(scene.rotation);
  const base = COLOUR_RGB[scene.colour];
  const second = patternColour(base, scene.patternTone, scene.colour);
  const unit = size / 32; // patterns keep their look at any resolution

  const x0 = Math.max(0, Math.floor(cx - r * 1.5));
  const x1 = Math.min(size - 1, Math.ceil(cx + r * 1.5));
  const y0 = Math.max(0, Math.floor(cy - r * 1.5));
  const y1 = Math.min(size - 1, Math.ceil(cy + r * 1.5));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let covered = 0;
      const colour = [0, 0, 0];
      for (const [sx, sy] of [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]) {
        const px = x + sx - cx;
        const py = y + sy - cy;
        const u = (cos * px + sin * py) / r;
        const v = (-sin * px + cos * py) / r;
        if (!insideShape(scene.shape, u, v)) continue;
        covered++;
        const c = onPattern(scene.pattern, (px + 64) / unit, (py + 64) / unit) ? second : base;
        colour[0] += c[0];
        colour[1] += c[1];
        colour[2] += c[2];
      }
      if (covered === 0) continue;
      const i = (y * size + x) * 3;
      const alpha = covered / 4;
      for (let c = 0; c < 3; c++) pixels[i + c] = pixels[i + c] * (1 - alpha) + colour[c] / 4;
    }
  }

  if (style.blur > 0) pixels = blur(pixels, size, style.blur);
  const out = new Uint8Array(size * size * 3);
  const noise = style.noise > 0 ? random.normals(out.length, style.noise) : undefined;
  for (let i = 0; i < out.length; i++) {
    const c = i % 3;
    const value = pixels[i] * style.gain[c] + style.offset[c] + (noise ? noise[i] : 0);
    out[i] = Math.min(255, Math.max(0, Math.round(value)));
  }
  return out;
}

/** Rendered bytes as the decoded pixels preprocessing takes (what decoding the PNG gives back). */
export function asDecodedPixels(rgb: Uint8Array, size: number): DecodedPixels {
  return { width: size, height: size, channels: 3, data: rgb, mode: 'RGB' };
}

