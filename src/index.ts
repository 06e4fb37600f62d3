// pfedprompt's library API. The path of a run reads top to bottom:
// checkpoint → tokenizer and preprocessing → encoders and their gradients.

export type { ClipConfig, ClipWeights, HostTensor, ModifiedResNetConfig, PreprocessConfig, TextTransformerConfig, VisionTransformerConfig } from './clip/weights.js';
export { expectedShapes, clipFromFiles, type ClipFiles } from './clip/checkpoint.js';
export { loadClip } from './clip/checkpoint-file.js';
export { ClipTokenizer } from './clip/tokenizer.js';
export { loadTokenizer } from './clip/tokenizer-file.js';
export { preprocessPixels, type DecodedPixels } from './clip/preprocess.js';
export { decodeImage, preprocessImage } from './clip/decode.js';
export { ClipModel, type ClipRuntime, type OnnxRuntime, type ImageFeatures, type PromptLossResult, type TextBatch } from './clip/model.js';
export { loadClipModel, nodeRuntime, type RuntimeOptions } from './clip/node-runtime.js';
export { cosineLogits, normalizeRows, softmaxRows } from './clip/similarity.js';
export { verifyGoldens, type KeyError, type VerifyReport } from './clip/verify.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { writeFileAtomic } from './io/atomic.js';
export { HELD_OUT_PAIRS, SHAPES, COLOURS, SIZES, PATTERNS, POSITIONS, caption, describe, sampleScene, type Scene, type Attribute } from './world/scene.js';
export { STYLE_PRESETS, NEUTRAL_STYLE, randomStyle, stylePreset, type Style } from './world/style.js';
export { renderScene } from './world/render.js';
export { WORLD_IMAGE_SIZE, encodePng, readWorldDomains, worldClasses, worldExamples, writeWorldDataset, type WorldDatasetOptions, type WorldDatasetSummary } from './world/datasets.js';
export { pretrainWorldClip, DEFAULT_PRETRAIN, WORLD_CLIP, type PretrainOptions, type PretrainReport } from './pretrain/train.js';
export { zeroShotWorld, type ZeroShotReport } from './pretrain/evaluate.js';
export { CoopPrompt, DEFAULT_PROMPT, type PromptOptions, type ClassTokenPosition } from './prompt/coop-prompt.js';
export { Sgd, learningRate, DEFAULT_SGD, type SgdOptions } from './prompt/sgd.js';
export type { ClientData, FeatureSet } from './federation/client-data.js';
export type { Method, MethodServer, MethodClient, Tensors, Choice, FederationSetup, ClientRuntime, FitResult, ClientUpload, Predictor, PersonalLogits } from './federation/method.js';
export { federatedAverage } from './federation/method.js';
export { runFederation, checkUpload, participants, type FederationOptions, type FederationResult, type RoundRecord, type ClientFailure, type Selection } from './federation/engine.js';
export { FederatedClient, InMemoryStore, type ClientSettings, type PersonalStore, type FitReply, type EvaluateReply } from './federation/client.js';
export { createExecutor, InProcessExecutor, WorkerPool, type ClientHostSetup, type ClientExecutor } from './federation/client-executor.js';
export { forEachBatch, trainLocally, type LocalTrainingOptions, type Penalty, type TrainingBatch, type TrainingSchedule } from './federation/local-training.js';
export { textTower, type TextTower } from './federation/text-tower.js';
export { METHOD_IDS, createMethod, DEFAULT_METHOD_OPTIONS, type MethodId, type MethodOptions } from './methods/index.js';
export { VisualMemory, DEFAULT_MEMORY, type MemoryOptions } from './methods/visual-memory.js';
export { ConfigSchema, parseConfig, applyOverrides, type ExperimentConfig } from './experiment/config.js';
export { readConfigFile } from './experiment/config-file.js';
export { runExperiment, type RunEvents, type ExperimentOutput } from './experiment/runner.js';
export { loadClientData } from './experiment/client-features.js';
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
export { ClientNode, type NodeRequest, type NodeReply, type CellFacts, type ClientNodeOptions, type NodeData } from './node/client-node.js';
export { DiskStore } from './node/personal-store.js';
export { flowerHandler } from './node/flower-handler.js';
export { federateLocally, type LocalFederationOutput } from './federate/local-federation.js';
export { SuperLink, superLinkMissing } from './federate/superlink.js';
export * as flower from './flower/index.js';
