// Pre-training a small CLIP on the procedural world, reproducibly: a BPE
// vocabulary learnt from the world's captions, seeded random weights, then
// AdamW on CLIP's contrastive loss over freshly rendered batches (every image
// a new scene in a random style; held-out colour–shape pairs never shown).
// Forward and backward run as one onnxruntime session (contrastive.ts); the
// optimiser runs on the host. The result is written as a Hugging Face
// CLIPModel folder with its tokenizer files, loadable by loadClipModel.
//
// Everything random is drawn from streams seeded by (seed, purpose), so one
// seed fixes the vocabulary, the initial weights and every batch. onnxruntime
// on CPU is deterministic for a given thread count, so a rerun with the same
// seed, schedule and thread count reproduces the weights.

import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { SeededRandom, randomClipWeights } from '../clip/random.js';
import { ClipModel } from '../clip/model.js';
import { loadClipModel, nodeRuntime } from '../clip/node-runtime.js';
import { preprocessPixels } from '../clip/preprocess.js';
import { ClipTokenizer } from '../clip/tokenizer.js';
import { loadTokenizer } from '../clip/tokenizer-file.js';
import { CLIP_PREPROCESS, type ClipConfig, type ClipWeights } from '../clip/weights.js';
import { EOT_MASK, PREFIX, SUFFIX } from '../clip/text-encoder.js';
import { writeFileAtomic } from '../io/atomic.js';
import { asDecodedPixels, renderScene } from '../world/render.js';
import { describe, isTrueOf, sampleScene, type Mentions, type Scene } from '../world/scene.js';
import { randomStyle } from '../world/style.js';
import { WORLD_IMAGE_SIZE } from '../world/datasets.js';
import { AdamW, DEFAULT_ADAMW, warmupCosine } from './adamw.js';
import { trainBpe, writeBpeFiles } from './bpe.js';
import { GRAD_PREFIX, buildContrastiveStep } from './contrastive.js';
import { writeHuggingFaceClip } from './hf-checkpoint.js';
import { zeroShotWorld, type ZeroShotReport } from './evaluate.js';

export interface WorldClipArchitecture {
  readonly embedDim: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly visionWidth: number;
  readonly visionLayers: number;
  readonly visionHeads: number;
  readonly textWidth: number;
  readonly textLayers: number;
  readonly textHeads: number;
  readonly contextLength: number;
}

/** The shipped model's architecture. */
export const WORLD_CLIP: WorldClipArchitecture = {
  embedDim: 128,
  imageSize: WORLD_IMAGE_SIZE,
  patchSize: 8,
  visionWidth: 128,
  visionLayers: 4,
  visionHeads: 4,
  textWidth: 128,
  textLayers: 4,
  textHeads: 4,
  contextLength: 32,
};

export interface PretrainOptions {
  readonly out: string;
  readonly seed: number;
  readonly steps: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly warmupSteps: number;
  readonly architecture: WorldClipArchitecture;
  /** Merges of the BPE vocabulary at most (it stops earlier when pairs run out). */
  readonly bpeMerges: number;
  readonly threads: number;
  /** Quick zero-shot check every this many steps (0: never). */
  readonly evalEvery: number;
  readonly dtype: 'F32' | 'F16';
  /** Images per class of the final zero-shot measurement. */
  readonly evalImagesPerClass: number;
  readonly log: (line: string) => void;
}

export const DEFAULT_PRETRAIN: Omit<PretrainOptions, 'out' | 'log'> = {
  seed: 2026,
  steps: 4000,
  batchSize: 128,
  learningRate: 1e-3,
  warmupSteps: 150,
  architecture: WORLD_CLIP,
  bpeMerges: 2000,
  threads: os.availableParallelism(),
  evalEvery: 500,
  dtype: 'F32',
  evalImagesPerClass: 50,
};

export interface PretrainReport {
  readonly steps: number;
  readonly seconds: number;
  readonly finalLoss: number;
  readonly finalBatchAccuracy: number;
  readonly vocabularySize: number;
  readonly zeroShot: ZeroShotReport;
}

interface Batch {
  readonly pixels: Float32Array;
  readonly tokens: Int32Array;
  readonly scenes: readonly Scene[];
  readonly mentions: readonly Mentions[];
}

/** Captions for the BPE corpus: many scenes, each described once. */
function captionCorpus(seed: number, count: number): string[] {
  const random = SeededRandom.forName(seed, 'bpe-corpus');
  return Array.from({ length: count }, () => describe(sampleScene(random, { heldOut: 'exclude' }), random).text);
}

function makeBatch(seed: number, step: number, size: number, tokenizer: ClipTokenizer, config: ClipConfig): Batch {
  const random = SeededRandom.forName(seed, `batch/${step}`);
  const R = config.vision.imageSize;
  const preprocess = CLIP_PREPROCESS(R);
  const pixels = new Float32Array(size * 3 * R * R);
  const scenes: Scene[] = [];
  const mentions: Mentions[] = [];
  const texts: string[] = [];
  for (let i = 0; i < size; i++) {
    const scene = sampleScene(random, { heldOut: 'exclude' });
    const rgb = renderScene(scene, randomStyle(random), R);
    pixels.set(preprocessPixels(asDecodedPixels(rgb, R), preprocess), i * 3 * R * R);
    const d = describe(scene, random);
    scenes.push(scene);
    mentions.push(d.mentions);
    texts.push(d.text);
  }
  const { ids } = tokenizer.tokenizeBatch(texts, config.text.contextLength);
  return { pixels, tokens: ids, scenes, mentions };
}

/** The contrastive targets: caption j is a positive of image i when it is true of it. */
function targets(batch: Batch): { i2t: Float32Array; t2i: Float32Array } {
  const B = batch.scenes.length;
  const match = new Uint8Array(B * B);
  for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) match[i * B + j] = i === j || isTrueOf(batch.mentions[j], batch.scenes[i]) ? 1 : 0;
  const i2t = new Float32Array(B * B);
  const t2i = new Float32Array(B * B);
  for (let i = 0; i < B; i++) {
    let n = 0;
    for (let j = 0; j < B; j++) n += match[i * B + j];
    for (let j = 0; j < B; j++) if (match[i * B + j]) i2t[i * B + j] = 1 / n / B;
  }
  for (let j = 0; j < B; j++) {
    let n = 0;
    for (let i = 0; i < B; i++) n += match[i * B + j];
    for (let i = 0; i < B; i++) if (match[i * B + j]) t2i[i * B + j] = 1 / n / B;
  }
  return { i2t, t2i };
}

/** Matrices get weight decay; gains, biases, embeddings and the logit scale do not. */
const decays = (name: string): boolean =>
  /(in_proj_weight|out_proj\.weight|c_fc\.weight|c_proj\.weight|conv1\.weight)$/.test(name) || name === 'visual.proj' || name === 'text_projection';

export function worldClipConfig(a: WorldClipArchitecture, vocabSize: number): ClipConfig {
  return {
    embedDim: a.embedDim,
    vision: { kind: 'vit', imageSize: a.imageSize, patchSize: a.patchSize, width: a.visionWidth, layers: a.visionLayers, heads: a.visionHeads },
    text: { contextLength: a.contextLength, vocabSize, width: a.textWidth, layers: a.textLayers, heads: a.textHeads },
    layerNormEps: 1e-5,
  };
}

const formatDuration = (s: number): string => (s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`);

/** Pre-trains, writes the checkpoint folder to `options.out`, and measures zero-shot accuracy of what was written. */
export async function pretrainWorldClip(options: PretrainOptions): Promise<PretrainReport> {
  const { seed, steps, batchSize, log } = options;
  if (!(steps >= 1 && batchSize >= 2)) throw new Error(`pre-training needs steps ≥ 1 and a batch of at least 2 (got ${steps} steps, batch ${batchSize})`);
  const started = Date.now();

  const bpe = trainBpe(captionCorpus(seed, 20000), options.bpeMerges);
  const tokenizer = ClipTokenizer.fromVocabAndMerges(bpe.vocabulary, bpe.merges);
  log(`BPE: ${bpe.merges.length} merges, vocabulary of ${tokenizer.vocabularySize} tokens`);

  const config = worldClipConfig(options.architecture, tokenizer.vocabularySize);
  const initial = randomClipWeights(config, seed);
  const weights: ClipWeights = { ...initial, source: `world CLIP pre-training (seed ${seed})` };
  const params = new Map([...weights.tensors].map(([name, t]) => [name, t.data]));
  const count = [...params.values()].reduce((n, p) => n + p.length, 0);
  log(`model: ${(count / 1e6).toFixed(2)} M parameters; ViT ${config.vision.imageSize} px / ${options.architecture.patchSize}, width ${options.architecture.visionWidth} × ${options.architecture.visionLayers}; text width ${options.architecture.textWidth} × ${options.architecture.textLayers}, context ${config.text.contextLength}`);

  const step = buildContrastiveStep(weights);
  const session = await ort.InferenceSession.create(step.graph.encode(), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
  });
  const optimiser = new AdamW(params, decays, DEFAULT_ADAMW);
  const W = config.text.width;
  const L = config.text.contextLength;
  const tokenTable = params.get('token_embedding.weight')!;
  const maxLogitScale = Math.log(100);

  let next = makeBatch(seed, 0, batchSize, tokenizer, config);
  let smoothLoss = NaN;
  let smoothAccuracy = NaN;
  let lastLoss = NaN;
  let lastAccuracy = NaN;
  const loopStart = Date.now();
  for (let s = 0; s < steps; s++) {
    const batch = next;
    const B = batchSize;
    // Text split as the tower takes it: the start token is the shared prefix, the rest up to the batch's last end token the suffix.
    const eot = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      let best = 0;
      for (let t = 1; t < L; t++) if (batch.tokens[b * L + t] > batch.tokens[b * L + best]) best = t;
      eot[b] = best - 1;
    }
    const S = Math.max(...eot) + 1;
    const suffixIds = new Int32Array(B * S);
    const suffix = new Float32Array(B * S * W);
    const mask = new Float32Array(B * S);
    for (let b = 0; b < B; b++) {
      mask[b * S + eot[b]] = 1;
      for (let t = 0; t < S; t++) {
        const id = batch.tokens[b * L + 1 + t];
        suffixIds[b * S + t] = id;
        suffix.set(tokenTable.subarray(id * W, (id + 1) * W), (b * S + t) * W);
      }
    }
    const prefix = tokenTable.slice(tokenizer.startToken * W, (tokenizer.startToken + 1) * W);
    const { i2t, t2i } = targets(batch);
    const feeds: Record<string, ort.Tensor> = {
      pixel_values: new ort.Tensor('float32', batch.pixels, [B, 3, config.vision.imageSize, config.vision.imageSize]),
      [PREFIX]: new ort.Tensor('float32', prefix, [1, W]),
      [SUFFIX]: new ort.Tensor('float32', suffix, [B, S, W]),
      [EOT_MASK]: new ort.Tensor('float32', mask, [B, S]),
      targets_i2t: new ort.Tensor('float32', i2t, [B, B]),
      targets_t2i: new ort.Tensor('float32', t2i, [B, B]),
    };
    for (const p of step.parameters) feeds[p.input.name] = new ort.Tensor('float32', params.get(p.tensor)!.slice(p.start, p.end), p.input.shape as number[]);

    const running = session.run(feeds);
    if (s + 1 < steps) next = makeBatch(seed, s + 1, batchSize, tokenizer, config); // rendered while the session runs
    const out = await running;

    const grads = new Map<string, Float32Array>();
    for (const p of step.parameters) {
      let g = grads.get(p.tensor);
      if (!g) grads.set(p.tensor, (g = new Float32Array(params.get(p.tensor)!.length)));
      g.set(out[GRAD_PREFIX + p.input.name].data as Float32Array, p.start);
    }
    const tokenGrad = new Float32Array(tokenTable.length);
    const prefixGrad = out[GRAD_PREFIX + PREFIX].data as Float32Array;
    for (let k = 0; k < W; k++) tokenGrad[tokenizer.startToken * W + k] += prefixGrad[k];
    const suffixGrad = out[GRAD_PREFIX + SUFFIX].data as Float32Array;
    for (let r = 0; r < B * S; r++) {
      const base = suffixIds[r] * W;
      for (let k = 0; k < W; k++) tokenGrad[base + k] += suffixGrad[r * W + k];
    }
    grads.set('token_embedding.weight', tokenGrad);

    const lr = warmupCosine(s, steps, options.warmupSteps, options.learningRate);
    const gradNorm = optimiser.step(grads, lr);
    const logitScale = params.get('logit_scale')!;
    logitScale[0] = Math.min(maxLogitScale, Math.max(0, logitScale[0]));

    // Batch accuracy: the image's best caption is one that is true of it.
    const logits = out.logits.data as Float32Array;
    let right = 0;
    for (let i = 0; i < B; i++) {
      let best = 0;
      for (let j = 1; j < B; j++) if (logits[i * B + j] > logits[i * B + best]) best = j;
      if (i2t[i * B + best] > 0) right++;
    }
    lastLoss = (out.loss.data as Float32Array)[0];
    lastAccuracy = right / B;
    smoothLoss = Number.isNaN(smoothLoss) ? lastLoss : 0.95 * smoothLoss + 0.05 * lastLoss;
    smoothAccuracy = Number.isNaN(smoothAccuracy) ? lastAccuracy : 0.95 * smoothAccuracy + 0.05 * lastAccuracy;
    if (!Number.isFinite(lastLoss)) throw new Error(`step ${s + 1}: loss is ${lastLoss}; training diverged`);

    const done = s + 1;
    if (done % 25 === 0 || done === steps || done === 1) {
      const elapsed = (Date.now() - loopStart) / 1000;
      const rate = done / elapsed;
      log(`step ${done}/${steps}  loss ${lastLoss.toFixed(4)} (avg ${smoothLoss.toFixed(4)})  batch acc ${(100 * smoothAccuracy).toFixed(1)}%  lr ${lr.toExponential(2)}  |g| ${gradNorm.toFixed(2)}  scale ${Math.exp(logitScale[0]).toFixed(1)}  ${(rate * B).toFixed(0)} img/s  ETA ${formatDuration((steps - done) / rate)}`);
    }
    if (options.evalEvery > 0 && done % options.evalEvery === 0 && done < steps) {
      const probe = new ClipModel(weights, nodeRuntime({ threads: options.threads }));
      const r = await zeroShotWorld(probe, tokenizer, { seed: seed + 7, perClass: 5 });
      await probe.release();
      log(`  zero-shot (5 images per class): seen ${(100 * r.seen).toFixed(1)}%, held-out ${(100 * r.heldOut).toFixed(1)}% (chance ${(100 / r.classes).toFixed(1)}%)`);
    }
  }
  await session.release();
  const trainSeconds = (Date.now() - started) / 1000;

  await writeBpeFiles(options.out, bpe, config.text.contextLength);
  await writeHuggingFaceClip(options.out, weights, {
    dtype: options.dtype,
    startToken: tokenizer.startToken,
    endToken: tokenizer.endToken,
    metadata: { producer: 'pfedprompt pretrain-world', seed: String(seed), steps: String(steps) },
  });

  // Measured on what was written, through the loader every user goes through.
  const model = await loadClipModel(options.out, { threads: options.threads });
  const shippedTokenizer = await loadTokenizer(options.out);
  const zeroShot = await zeroShotWorld(model, shippedTokenizer, { seed: seed + 1000, perClass: options.evalImagesPerClass });
  await model.release();

  const report: PretrainReport = { steps, seconds: Math.round(trainSeconds), finalLoss: lastLoss, finalBatchAccuracy: lastAccuracy, vocabularySize: tokenizer.vocabularySize, zeroShot };
  const { log: _log, ...settings } = options;
  await writeFileAtomic(path.join(options.out, 'training.json'), `${JSON.stringify({ settings: { ...settings, out: undefined }, report, smoothedFinalLoss: smoothLoss }, null, 2)}\n`);
  log(`done in ${formatDuration(trainSeconds)}: final loss ${lastLoss.toFixed(4)} (avg ${smoothLoss.toFixed(4)})`);
  log(`zero-shot on ${zeroShot.images} fresh images, ${zeroShot.classes} colour–shape classes (chance ${(100 / zeroShot.classes).toFixed(1)}%): seen pairs ${(100 * zeroShot.seen).toFixed(1)}%, held-out pairs ${(100 * zeroShot.heldOut).toFixed(1)}%`);
  return report;
}
