// Zero-shot accuracy of a CLIP on the world: classify images of colour–shape
// classes among all of them by the text "a photo of a {class}." alone, and
// report seen pairs and held-out pairs (never shown in pre-training)
// separately. The model is any ClipModel, so this measures the shipped
// checkpoint through the same code as a user's.

import type { ClipModel } from '../clip/model.js';
import { preprocessPixels } from '../clip/preprocess.js';
import { cosineLogits } from '../clip/similarity.js';
import type { ClipTokenizer } from '../clip/tokenizer.js';
import { asDecodedPixels } from '../world/render.js';
import { worldClasses, worldExamples, type WorldDatasetOptions } from '../world/datasets.js';
import { COLOURS, SHAPES } from '../world/scene.js';

export const DEFAULT_TEMPLATE = 'a photo of a {}.';

export interface ZeroShotReport {
  /** Accuracy over images of seen (colour, shape) pairs. */
  readonly seen: number;
  /** Accuracy over images of held-out pairs. */
  readonly heldOut: number;
  readonly overall: number;
  readonly images: number;
  readonly classes: number;
}

/** Zero-shot accuracy given each image's features and the class texts' features. */
export function zeroShotAccuracy(predicted: readonly number[], labels: readonly number[], heldOut: readonly boolean[]): ZeroShotReport {
  let seenRight = 0, seenAll = 0, heldRight = 0, heldAll = 0;
  labels.forEach((label, i) => {
    const right = predicted[i] === label ? 1 : 0;
    if (heldOut[label]) {
      heldRight += right;
      heldAll++;
    } else {
      seenRight += right;
      seenAll++;
    }
  });
  return {
    seen: seenAll ? seenRight / seenAll : NaN,
    heldOut: heldAll ? heldRight / heldAll : NaN,
    overall: (seenRight + heldRight) / labels.length,
    images: labels.length,
    classes: heldOut.length,
  };
}

/** Argmax class of each image among the class prompts. */
export async function classify(model: ClipModel, tokenizer: ClipTokenizer, classnames: readonly string[], pixels: Float32Array, count: number, template = DEFAULT_TEMPLATE): Promise<number[]> {
  const tokens = tokenizer.tokenizeBatch(classnames.map((c) => template.replaceAll('{}', c)), model.config.text.contextLength);
  const texts = await model.encodeTokens(tokens.ids, tokens.count);
  const R = model.config.vision.imageSize;
  const per = 3 * R * R;
  const predicted: number[] = [];
  for (let start = 0; start < count; start += 64) {
    const n = Math.min(64, count - start);
    const { embeds } = await model.encodeImages(pixels.subarray(start * per, (start + n) * per), n);
    const logits = cosineLogits(embeds, texts, model.logitScale);
    const C = classnames.length;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (logits.data[i * C + c] > logits.data[i * C + best]) best = c;
      predicted.push(best);
    }
  }
  return predicted;
}

/**
 * Zero-shot accuracy on `perClass` fresh test images of every colour–shape
 * class (random styles), rendered in memory.
 */
export async function zeroShotWorld(model: ClipModel, tokenizer: ClipTokenizer, options: { seed: number; perClass: number; domains?: WorldDatasetOptions['domains'] }): Promise<ZeroShotReport> {
  const R = model.config.vision.imageSize;
  const classes = worldClasses();
  const examples = worldExamples({ seed: options.seed, perClass: { train: 1, val: 0, test: options.perClass }, imageSize: R, domains: options.domains }).filter((e) => e.split === 'test');
  const pixels = new Float32Array(examples.length * 3 * R * R);
  examples.forEach((e, i) => pixels.set(preprocessPixels(asDecodedPixels(e.rgb, R), model.preprocess), i * 3 * R * R));
  const predicted = await classify(model, tokenizer, classes.map((c) => c.name), pixels, examples.length);
  return zeroShotAccuracy(predicted, examples.map((e) => e.label), classes.map((c) => c.heldOut));
}

/**
 * Zero-shot accuracy of each attribute on its own, on the same kind of images:
 * colour among "a photo of a {colour} shape." and shape among "a photo of a
 * {shape}.", for images of seen and of held-out pairs. Tells which part of a
 * pair a model gets wrong.
 */
export async function attributeZeroShot(model: ClipModel, tokenizer: ClipTokenizer, options: { seed: number; perClass: number }): Promise<{ colour: ZeroShotReport; shape: ZeroShotReport }> {
  const R = model.config.vision.imageSize;
  const classes = worldClasses();
  const examples = worldExamples({ seed: options.seed, perClass: { train: 1, val: 0, test: options.perClass }, imageSize: R }).filter((e) => e.split === 'test');
  const pixels = new Float32Array(examples.length * 3 * R * R);
  examples.forEach((e, i) => pixels.set(preprocessPixels(asDecodedPixels(e.rgb, R), model.preprocess), i * 3 * R * R));
  const heldOutImage = examples.map((e) => classes[e.label].heldOut);
  const score = async (names: readonly string[], template: string, truth: (i: number) => number): Promise<ZeroShotReport> => {
    const predicted = await classify(model, tokenizer, names, pixels, examples.length, template);
    // Per image rather than per class: whether the image's pair is held out.
    let seenRight = 0, seenAll = 0, heldRight = 0, heldAll = 0;
    predicted.forEach((p, i) => {
      const right = p === truth(i) ? 1 : 0;
      if (heldOutImage[i]) { heldRight += right; heldAll++; } else { seenRight += right; seenAll++; }
    });
    return { seen: seenRight / seenAll, heldOut: heldRight / heldAll, overall: (seenRight + heldRight) / examples.length, images: examples.length, classes: names.length };
  };
  return {
    colour: await score(COLOURS, 'a photo of a {} shape.', (i) => COLOURS.indexOf(examples[i].scene.colour)),
    shape: await score(SHAPES, 'a photo of a {}.', (i) => SHAPES.indexOf(examples[i].scene.shape)),
  };
}
