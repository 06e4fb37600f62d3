// pfedprompt's library API. The path of a run reads top to bottom:
// checkpoint → tokenizer and preprocessing → encoders and their gradients.

export type { ClipConfig, ClipWeights, HostTensor, ModifiedResNetConfig, PreprocessConfig, TextTransformerConfig, VisionTransformerConfig } from './clip/weights.js';
export { loadClip, expectedShapes } from './clip/checkpoint.js';
export { ClipTokenizer } from './clip/tokenizer.js';
export { decodeImage, preprocessImage, preprocessPixels } from './clip/preprocess.js';
export { ClipModel, type ImageFeatures, type PromptLossResult, type RuntimeOptions, type TextBatch } from './clip/model.js';
export { cosineLogits, normalizeRows, softmaxRows } from './clip/similarity.js';
export { verifyGoldens, type KeyError, type VerifyReport } from './clip/verify.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { writeFileAtomic } from './io/atomic.js';
export { HELD_OUT_PAIRS, SHAPES, COLOURS, SIZES, PATTERNS, POSITIONS, caption, describe, sampleScene, type Scene, type Attribute } from './world/scene.js';
export { STYLE_PRESETS, NEUTRAL_STYLE, randomStyle, stylePreset, type Style } from './world/style.js';
export { renderScene, encodePng } from './world/render.js';
export { WORLD_IMAGE_SIZE, readWorldDomains, worldClasses, worldExamples, writeWorldDataset, type WorldDatasetOptions, type WorldDatasetSummary } from './world/datasets.js';
export { pretrainWorldClip, DEFAULT_PRETRAIN, WORLD_CLIP, type PretrainOptions, type PretrainReport } from './pretrain/train.js';
export { zeroShotWorld, type ZeroShotReport } from './pretrain/evaluate.js';
