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
export {
  readResults,
  validateResults,
  writeReport,
  summaryTable,
  markdownTables,
  resultsCsv,
  type ResultsFile,
  type CellResult,
  type ClientResult,
  type RoundResult,
  type Scoring,
} from './report/index.js';
