// A frozen CLIP running on onnxruntime: image and text encoders, and the
// gradients of the text tower with respect to its input embeddings. Graphs
// are built from the weights on first use and kept for the model's lifetime.
// The runtime is given, not imported: onnxruntime-node in Node
// (src/clip/node-runtime.ts), onnxruntime-web in a browser; both speak
// onnxruntime-common's API, which is all this module uses.

import type { InferenceSession, Tensor } from 'onnxruntime-common';
import type { Graph } from '../onnx/graph.js';
import { buildModifiedResNet } from './modified-resnet.js';
import { EOT_MASK, PREFIX, SUFFIX, buildPromptLoss, buildTextEncoder, buildTextVjp } from './text-encoder.js';
import { buildVisionTransformer } from './vision-transformer.js';
import { tensor, type ClipConfig, type ClipWeights, type HostTensor, type PreprocessConfig } from './weights.js';

/** The part of an onnxruntime package (onnxruntime-node or onnxruntime-web) a ClipModel uses. */
export interface OnnxRuntime {
  readonly InferenceSession: { create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  readonly Tensor: typeof Tensor;
}

/** The runtime a ClipModel computes with, and the options of every session it creates. */
export interface ClipRuntime {
  readonly ort: OnnxRuntime;
  /** Execution providers, threads, …: what only one runtime knows (default: the runtime's own). */
  readonly sessionOptions?: InferenceSession.SessionOptions;
}

/**
 * Texts split for the text tower: a prefix of token embeddings shared by all
 * texts (at least the start token), and each text's remaining embeddings up to
 * the latest end-of-text token of the batch.
 */
export interface TextBatch {
  readonly prefix: HostTensor; // [P, W]
  readonly suffix: HostTensor; // [C, S, W]
  /** Position of each text's end-of-text token within its suffix. */
  readonly eotIndex: Int32Array; // [C]
}

export interface ImageFeatures {
  /** Projected image embeddings [N, E], not normalised. */
  readonly embeds: HostTensor;
  /** ViT: every token before ln_post [N, 1+HW, W]. ResNet: the map before attention pooling [N, C, h, w]. */
  readonly spatial: HostTensor;
}

export interface PromptLossResult {
  readonly loss: number;
  readonly logits: HostTensor; // [B, C]
  readonly textEmbeds: HostTensor; // [C, E]
  readonly prefixGrad: HostTensor; // [P, W]
  readonly suffixGrad: HostTensor; // [C, S, W]
}

const host = (t: Tensor): HostTensor => ({ shape: t.dims.map(Number), data: t.data as Float32Array });

export class ClipModel {
  private readonly sessions = new Map<string, Promise<InferenceSession>>();

  constructor(readonly weights: ClipWeights, readonly runtime: ClipRuntime) {}

  private feed(t: HostTensor): Tensor {
    return new this.runtime.ort.Tensor('float32', t.data, t.shape as number[]);
  }

  get config(): ClipConfig {
    return this.weights.config;
  }

  get preprocess(): PreprocessConfig {
    return this.weights.preprocess;
  }

  get logitScale(): number {
    // In float32, as CLIP computes logit_scale.exp(): the same number in every JavaScript engine, where Math.exp's
    // last bit is not (Chromium's V8 and Node 20's differ on the world CLIP's), so a browser node and a Node node
    // report the same memory grid to the server, which compares them exactly.
    return Math.fround(Math.exp(tensor(this.weights, 'logit_scale').data[0]));
  }

  private session(key: string, build: () => Graph): Promise<InferenceSession> {
    let s = this.sessions.get(key);
    if (!s) {
      s = this.runtime.ort.InferenceSession.create(build().encode(), { graphOptimizationLevel: 'all', ...this.runtime.sessionOptions });
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Images already preprocessed, [N, 3, R, R] in one buffer. */
  async encodeImages(pixels: Float32Array, count: number): Promise<ImageFeatures> {
    const R = this.config.vision.imageSize;
    if (pixels.length !== count * 3 * R * R) throw new Error(`encodeImages: expected ${count}×3×${R}×${R} values, got ${pixels.length}`);
    const vit = this.config.vision.kind === 'vit';
    const s = await this.session('vision', () => (vit ? buildVisionTransformer(this.weights) : buildModifiedResNet(this.weights)));
    const out = await s.run({ pixel_values: new this.runtime.ort.Tensor('float32', pixels, [count, 3, R, R]) });
    return { embeds: host(out.image_embeds), spatial: host(out[vit ? 'vision_tokens' : 'vision_feature_map']) };
  }

  /** Rows of the token embedding table for `ids`. */
  embedTokens(ids: ArrayLike<number>): Float32Array {
    const { width, vocabSize } = this.config.text;
    const table = tensor(this.weights, 'token_embedding.weight', [vocabSize, width]).data;
    const out = new Float32Array(ids.length * width);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < vocabSize)) throw new Error(`token id ${id} is outside the vocabulary (size ${vocabSize})`);
      out.set(table.subarray(id * width, (id + 1) * width), i * width);
    }
    return out;
  }

  /**
   * Splits tokenized texts ([N, L] ids, end-of-text marked by the largest id)
   * into a TextBatch whose shared prefix is their first `prefixLength` tokens,
   * which must be the same for all. `prefixEmbeds` [prefixLength, W], when
   * given, replaces those tokens' embeddings (learned context vectors).
   */
  textBatch(ids: ArrayLike<number>, count: number, prefixLength = 1, prefixEmbeds?: Float32Array): TextBatch {
    const W = this.config.text.width;
    const L = ids.length / count;
    if (!Number.isInteger(L) || L < 1) throw new Error(`textBatch: ${ids.length} ids do not make ${count} rows`);
    const eot = new Int32Array(count);
    for (let c = 0; c < count; c++) {
      let best = 0;
      for (let t = 1; t < L; t++) if (ids[c * L + t] > ids[c * L + best]) best = t;
      if (best < prefixLength) throw new Error(`text ${c}: its end-of-text token (position ${best}) lies inside the shared prefix of ${prefixLength} tokens`);
      eot[c] = best - prefixLength;
    }
    const S = Math.max(...eot) + 1;
    const suffixIds: number[] = [];
    for (let c = 0; c < count; c++) {
      for (let t = 0; t < prefixLength; t++) {
        if (!prefixEmbeds && ids[c * L + t] !== ids[t]) throw new Error(`text ${c}: token ${t} differs from text 0's, so it cannot be part of the shared prefix`);
      }
      for (let t = 0; t < S; t++) suffixIds.push(ids[c * L + prefixLength + t]);
    }
    const prefix = prefixEmbeds ?? this.embedTokens(Array.from({ length: prefixLength }, (_, t) => ids[t]));
    if (prefix.length !== prefixLength * W) throw new Error(`textBatch: prefix embeddings must be ${prefixLength}×${W}`);
    return {
      prefix: { shape: [prefixLength, W], data: prefix },
      suffix: { shape: [count, S, W], data: this.embedTokens(suffixIds) },
      eotIndex: eot,
    };
  }

  private textFeeds(batch: TextBatch): Record<string, Tensor> {
    const [C, S] = batch.suffix.shape;
    const mask = new Float32Array(C * S);
    batch.eotIndex.forEach((e, c) => {
      if (e < 0 || e >= S) throw new Error(`end-of-text index ${e} of text ${c} is outside its suffix of ${S} tokens`);
      mask[c * S + e] = 1;
    });
    return { [PREFIX]: this.feed(batch.prefix), [SUFFIX]: this.feed(batch.suffix), [EOT_MASK]: new this.runtime.ort.Tensor('float32', mask, [C, S]) };
  }

  /** Projected end-of-text features [C, E], not normalised. */
  async encodeTextBatch(batch: TextBatch): Promise<HostTensor> {
    const s = await this.session('text', () => buildTextEncoder(this.weights));
    return host((await s.run(this.textFeeds(batch))).text_embeds);
  }

  /** Tokenized texts [N, L] → projected features [N, E]. */
  async encodeTokens(ids: ArrayLike<number>, count: number): Promise<HostTensor> {
    return this.encodeTextBatch(this.textBatch(ids, count));
  }

  /** ∂loss/∂prefix and ∂loss/∂suffix given ∂loss/∂text_embeds [C, E]. */
  async textVjp(batch: TextBatch, textEmbedsGrad: HostTensor): Promise<{ textEmbeds: HostTensor; prefixGrad: HostTensor; suffixGrad: HostTensor }> {
    const s = await this.session('text-vjp', () => buildTextVjp(this.weights));
    const out = await s.run({ ...this.textFeeds(batch), text_embeds_grad: this.feed(textEmbedsGrad) });
    return { textEmbeds: host(out.text_embeds), prefixGrad: host(out.prefix_grad), suffixGrad: host(out.suffix_grad) };
  }

  /**
   * Cross-entropy of CLIP's scaled cosine logits (+ `logitBias`) of `imageEmbeds`
   * [B, E] against the batch's texts, with soft `targets` [B, C] that sum to 1
   * over the batch for a mean loss; and its gradient, in one pass.
   */
  async promptLoss(batch: TextBatch, imageEmbeds: HostTensor, targets: HostTensor, logitBias?: HostTensor): Promise<PromptLossResult> {
    const s = await this.session('prompt-loss', () => buildPromptLoss(this.weights));
    const [B] = imageEmbeds.shape;
    const C = batch.suffix.shape[0];
    const bias = logitBias ?? { shape: [B, C], data: new Float32Array(B * C) };
    const out = await s.run({ ...this.textFeeds(batch), image_embeds: this.feed(imageEmbeds), targets: this.feed(targets), logit_bias: this.feed(bias) });
    return {
      loss: (out.loss.data as Float32Array)[0],
      logits: host(out.logits),
      textEmbeds: host(out.text_embeds),
      prefixGrad: host(out.prefix_grad),
      suffixGrad: host(out.suffix_grad),
    };
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}
