// The frozen CLIP as plain data: its architecture and its tensors, keyed by
// the OpenAI / open_clip state-dict names whatever layout they were loaded
// from, so the graph builders read one naming only.

/** A dense float32 tensor in host memory, row-major. */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface VisionTransformerConfig {
  readonly kind: 'vit';
  readonly imageSize: number;
  readonly patchSize: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
}

export interface ModifiedResNetConfig {
  readonly kind: 'resnet';
  readonly imageSize: number;
  /** Stem width; stage widths are 1×, 2×, 4×, 8× this, with 4× expansion. */
  readonly width: number;
  readonly layers: readonly [number, number, number, number];
  /** Heads of the attention pooling. */
  readonly heads: number;
}

export interface TextTransformerConfig {
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
}

export interface ClipConfig {
  /** Width of the joint embedding space. */
  readonly embedDim: number;
  readonly vision: VisionTransformerConfig | ModifiedResNetConfig;
  readonly text: TextTransformerConfig;
  readonly layerNormEps: number;
}

/** How images are prepared for this model (preprocessor_config.json, or CLIP's defaults). */
export interface PreprocessConfig {
  /** Shorter side is resized to this, then a centre crop of cropSize × cropSize is taken. */
  readonly resizeShortestEdge: number;
  readonly cropSize: number;
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

export const CLIP_PREPROCESS = (imageSize: number): PreprocessConfig => ({
  resizeShortestEdge: imageSize,
  cropSize: imageSize,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
});

export interface ClipWeights {
  readonly config: ClipConfig;
  readonly preprocess: PreprocessConfig;
  /** Where the weights came from, for error messages. */
  readonly source: string;
  /** Tensors under OpenAI state-dict names (`visual.conv1.weight`, `transformer.resblocks.0.attn.in_proj_weight`, ...). */
  readonly tensors: ReadonlyMap<string, HostTensor>;
}

/** The tensor `name`, checked against `shape`; a clear error naming both otherwise. */
export function tensor(weights: ClipWeights, name: string, shape?: readonly number[]): HostTensor {
  const t = weights.tensors.get(name);
  if (!t) throw new Error(`${weights.source}: missing tensor "${name}"${shape ? ` (expected shape [${shape.join(', ')}])` : ''}`);
  if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
    throw new Error(`${weights.source}: tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return t;
}
