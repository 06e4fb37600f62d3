// Checks a model against a goldens file (the format of the shared CLIP
// fixtures): recomputes every output it holds from its inputs and measures
// the error. Users run it on converted or half-precision checkpoints.

import { readSafetensors, toFloat32, toTypedArray, type SafetensorsEntry } from '../io/safetensors.js';
import type { ClipModel } from './model.js';
import { cosineLogits } from './similarity.js';

export interface KeyError {
  readonly key: string;
  readonly count: number;
  readonly maxAbs: number;
  /** max |ours − reference| / max |reference|: scale-free, and stable where single values are near zero. */
  readonly relative: number;
}

export interface VerifyReport {
  readonly errors: KeyError[];
  /** Keys the file holds that this project does not know how to compute. */
  readonly skipped: string[];
}

function compare(key: string, reference: Float32Array, ours: Float32Array): KeyError {
  if (reference.length !== ours.length) throw new Error(`${key}: reference has ${reference.length} values, the model produced ${ours.length}`);
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < reference.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(reference[i] - ours[i]));
    maxRef = Math.max(maxRef, Math.abs(reference[i]));
  }
  return { key, count: reference.length, maxAbs, relative: maxRef > 0 ? maxAbs / maxRef : maxAbs };
}

const INPUTS = ['input.pixel_values', 'input.input_ids', 'coop.prompt_ids', 'coop.ctx', 'coop.labels'];

export async function verifyGoldens(model: ClipModel, goldensPath: string): Promise<VerifyReport> {
  const file = await readSafetensors(goldensPath);
  const entry = (key: string): SafetensorsEntry => {
    const e = file.tensors.get(key);
    if (!e) throw new Error(`${goldensPath}: missing input "${key}"`);
    return e;
  };
  const floats = (key: string): Float32Array => toFloat32(entry(key));
  const ints = (key: string): number[] => Array.from(toTypedArray(entry(key)) as ArrayLike<number | bigint>, Number);
  const rows = (key: string): number => entry(key).shape[0];
  const has = (key: string): boolean => file.tensors.has(key);

  const computed = new Map<string, Float32Array>();
  const keys = [...file.tensors.keys()].filter((k) => !INPUTS.includes(k));

  const needsImages = keys.some((k) => k.startsWith('output.image') || k.startsWith('output.vision') || k.startsWith('output.logits') || k.startsWith('coop.'));
  const images = needsImages ? await model.encodeImages(floats('input.pixel_values'), rows('input.pixel_values')) : undefined;
  if (images) {
    computed.set('output.image_embeds', images.embeds.data);
    computed.set(model.config.vision.kind === 'vit' ? 'output.vision_tokens' : 'output.vision_feature_map', images.spatial.data);
  }
  if (has('input.input_ids')) {
    const texts = await model.encodeTokens(ints('input.input_ids'), rows('input.input_ids'));
    computed.set('output.text_embeds', texts.data);
    if (images) computed.set('output.logits_per_image', cosineLogits(images.embeds, texts, model.logitScale).data);
  }
  if (images && has('coop.ctx')) {
    // The context replaces the placeholder tokens right after the start token.
    const ctx = floats('coop.ctx');
    const nCtx = rows('coop.ctx');
    const classes = rows('coop.prompt_ids');
    const W = model.config.text.width;
    const ids = ints('coop.prompt_ids');
    const prefix = new Float32Array((1 + nCtx) * W);
    prefix.set(model.embedTokens([ids[0]]));
    prefix.set(ctx, W);
    const batch = model.textBatch(ids, classes, 1 + nCtx, prefix);
    const labels = ints('coop.labels');
    const targets = new Float32Array(labels.length * classes);
    labels.forEach((label, i) => (targets[i * classes + label] = 1 / labels.length));
    const r = await model.promptLoss(batch, images.embeds, { shape: [labels.length, classes], data: targets });
    computed.set('coop.text_embeds', r.textEmbeds.data);
    computed.set('coop.logits', r.logits.data);
    computed.set('coop.loss', Float32Array.of(r.loss));
    computed.set('coop.grad_ctx', r.prefixGrad.data.subarray(W));
  }

  const errors: KeyError[] = [];
  const skipped: string[] = [];
  for (const key of keys) {
    const ours = computed.get(key);
    if (ours) errors.push(compare(key, floats(key), ours));
    else skipped.push(key);
  }
  return { errors, skipped };
}
