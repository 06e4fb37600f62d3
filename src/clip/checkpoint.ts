// Loading a frozen CLIP from the two checkpoint layouts users have into the
// canonical ClipWeights (OpenAI / open_clip state-dict names, float32):
//
//  - a Hugging Face CLIPModel folder: config.json + model.safetensors, or a
//    sharded model.safetensors.index.json. Names are mapped to OpenAI's (q/k/v
//    joined into in_proj, projections transposed) and the architecture is read
//    from config.json, with CLIPTextConfig / CLIPVisionConfig defaults;
//  - an OpenAI / open_clip state dict in one .safetensors file, whose
//    architecture is inferred from tensor shapes as OpenAI's build_model does.
//
// Either way every tensor the architecture needs is then checked against
// expectedShapes(config), and errors name the file and the tensor as the user's
// file spells it.
//
// This module works on files already in memory, so a browser can build the
// model from what it fetched (clipFromFiles); checkpoint-file.ts finds and
// reads the files on disk in Node.
import {
  CLIP_PREPROCESS,
  type ClipConfig,
  type ClipWeights,
  type HostTensor,
  type ModifiedResNetConfig,
  type PreprocessConfig,
  type TextTransformerConfig,
  type VisionTransformerConfig,
} from './weights.js';
import { isFloatDtype, parseSafetensors, toFloat32, type SafetensorsEntry } from '../io/safetensors-format.js';

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export const looksLikeHuggingFace = (entries: ReadonlyMap<string, SafetensorsEntry>): boolean =>
  [...entries.keys()].some((n) => n.startsWith('vision_model.') || n.startsWith('text_model.'));

/** A CLIP checkpoint as files in memory, as a browser fetches them. */
export interface ClipFiles {
  /** One .safetensors file: a Hugging Face CLIPModel's model.safetensors, or an OpenAI / open_clip state dict. */
  readonly weights: Uint8Array;
  /** config.json, for a Hugging Face CLIPModel. */
  readonly config?: Uint8Array | string;
  /** preprocessor_config.json, when the model has one. */
  readonly preprocessorConfig?: Uint8Array | string;
  /** open_clip_config.json, when an open_clip state dict has one. */
  readonly openClipConfig?: Uint8Array | string;
}

/** A CLIP from files in memory; `source` (e.g. the URL they came from) names them in errors. */
export function clipFromFiles(files: ClipFiles, source: string): ClipWeights {
  const at = (name: string): string => `${source.replace(/\/+$/, '')}/${name}`;
  const json = (contents: Uint8Array | string | undefined, name: string): JsonFile | undefined =>
    contents === undefined ? undefined : { label: at(name), json: parseJsonObject(typeof contents === 'string' ? contents : new TextDecoder().decode(contents), at(name)) };
  const { tensors } = parseSafetensors(files.weights, at(files.config !== undefined ? 'model.safetensors' : 'weights.safetensors'));
  const set: TensorSet = { label: at(files.config !== undefined ? 'model.safetensors' : 'weights.safetensors'), entries: tensors };
  const config = json(files.config, 'config.json');
  if (config) return huggingFaceClip(config, json(files.preprocessorConfig, 'preprocessor_config.json'), set, source);
  if (looksLikeHuggingFace(tensors)) throw new Error(`${set.label}: holds Hugging Face CLIPModel tensors (vision_model.*, text_model.*) but no config.json was given`);
  return openAiClip(set, source, json(files.openClipConfig, 'open_clip_config.json'));
}

// ---------------------------------------------------------------- tensor sets

/** The tensors of a checkpoint, from one file or several shards. */
export interface TensorSet {
  /** What to name when a tensor is missing: the weights file, or the shard index. */
  readonly label: string;
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
}

// ---------------------------------------------------------------- collecting canonical tensors

/**
 * How one canonical tensor is made from the checkpoint's tensors: taken as it
 * is, transposed (a 2-D matrix), or several concatenated along the first axis.
 */
interface Recipe {
  readonly parts: readonly string[];
  readonly combine: 'copy' | 'transpose' | 'concat';
}

/** Every tensor `expected` names, made by `recipeFor`, checked and converted to float32. */
function collectTensors(
  expected: ReadonlyMap<string, readonly number[]>,
  recipeFor: (canonicalName: string) => Recipe,
  set: TensorSet,
): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of expected) {
    const { parts, combine } = recipeFor(name);
    const partShape =
      combine === 'transpose' ? [shape[1], shape[0]] : combine === 'concat' ? [shape[0] / parts.length, ...shape.slice(1)] : shape;
    const values = parts.map((part) => checkedValues(set, part, partShape));
    const data =
      combine === 'transpose' ? transpose2d(values[0], partShape[0], partShape[1]) : combine === 'concat' ? concat(values) : values[0];
    out.set(name, { shape: [...shape], data });
  }
  return out;
}

/** The float32 values of tensor `name`, after checking it exists, is floating point and has `shape`. */
function checkedValues(set: TensorSet, name: string, shape: readonly number[]): Float32Array {
  const entry = set.entries.get(name);
  if (!entry) throw new Error(`${set.label}: missing tensor "${name}" (expected shape ${formatShape(shape)})`);
  if (!shapesMatch(entry.shape, shape)) {
    throw new Error(`${entry.file}: tensor "${name}" has shape ${formatShape(entry.shape)}, expected ${formatShape(shape)}`);
  }
  if (!isFloatDtype(entry.dtype)) {
    throw new Error(`${entry.file}: tensor "${name}" has dtype ${entry.dtype}, expected a floating-point dtype`);
  }
  return toFloat32(entry);
}

/** Exact match, except that a scalar may be stored 0-d or as [1] (checkpoints differ for logit_scale). */
function shapesMatch(actual: readonly number[], expected: readonly number[]): boolean {
  if (expected.length === 0 && actual.length === 1 && actual[0] === 1) return true;
  return actual.length === expected.length && actual.every((d, i) => d === expected[i]);
}

function transpose2d(source: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = source[r * cols + c];
  }
  return out;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

// ---------------------------------------------------------------- OpenAI / open_clip layout

/** A JSON file's object, and what to call the file in errors. */
export interface JsonFile {
  readonly label: string;
  readonly json: Record<string, unknown>;
}

/** An OpenAI / open_clip state dict; `openClipConfig`: the open_clip_config.json beside it, if any. */
export function openAiClip(set: TensorSet, source: string, openClipConfig?: JsonFile): ClipWeights {
  // DDP checkpoints prefix every name with "module.".
  const prefix = [...set.entries.keys()].every((n) => n.startsWith('module.')) && set.entries.size > 0 ? 'module.' : '';
  const shapeOf = (name: string): readonly number[] | undefined => set.entries.get(prefix + name)?.shape;
  if (openClipConfig) rejectOpenClipGelu(openClipConfig);
  const config = inferOpenAiConfig(shapeOf, [...set.entries.keys()].map((n) => n.slice(prefix.length)), set.label, prefix);
  const tensors = collectTensors(expectedShapes(config), (name) => ({ parts: [prefix + name], combine: 'copy' }), set);
  return { config, preprocess: CLIP_PREPROCESS(config.vision.imageSize), source, tensors };
}

/**
 * open_clip models use QuickGELU only when their config says `quick_gelu`
 * (LAION's are mostly trained with exact GELU). The state dict cannot tell, so
 * read open_clip_config.json when it sits beside the weights.
 */
function rejectOpenClipGelu({ label: configPath, json: config }: JsonFile): void {
  const modelConfig = isObject(config['model_cfg']) ? (config['model_cfg'] as Record<string, unknown>) : config;
  if (modelConfig['quick_gelu'] !== true) {
    throw new Error(`${configPath}: this open_clip model uses exact GELU (no "quick_gelu": true in model_cfg); only QuickGELU models are supported for now, as the graphs implement x·σ(1.702x)`);
  }
}

/** The architecture of an OpenAI state dict, read from its shapes as OpenAI's clip.model.build_model does. */
function inferOpenAiConfig(
  shapeOf: (name: string) => readonly number[] | undefined,
  names: readonly string[],
  file: string,
  prefix: string,
): ClipConfig {
  const need = (name: string, rank: number): readonly number[] => {
    const shape = shapeOf(name);
    if (!shape) throw new Error(`${file}: missing tensor "${prefix}${name}" (needed to infer the architecture of an OpenAI / open_clip state dict)`);
    if (shape.length !== rank) throw new Error(`${file}: tensor "${prefix}${name}" has shape ${formatShape(shape)}, expected ${rank} dimensions`);
    return shape;
  };
  /** One more than the largest N among names matching `pattern` (whose group 1 is N): a missing block then shows as a missing tensor. */
  const countIndexed = (pattern: RegExp): number =>
    names.reduce((n, name) => {
      const m = pattern.exec(name);
      return m ? Math.max(n, Number(m[1]) + 1) : n;
    }, 0);
  const headsOf = (width: number): number => Math.max(1, Math.floor(width / 64));

  const textWidth = need('ln_final.weight', 1)[0];
  const text: TextTransformerConfig = {
    contextLength: need('positional_embedding', 2)[0],
    vocabSize: need('token_embedding.weight', 2)[0],
    width: textWidth,
    layers: countIndexed(/^transformer\.resblocks\.(\d+)\./),
    heads: headsOf(textWidth),
  };
  if (text.layers === 0) throw new Error(`${file}: no text transformer blocks ("${prefix}transformer.resblocks.N.*") found`);
  const embedDim = need('text_projection', 2)[1];

  let vision: VisionTransformerConfig | ModifiedResNetConfig;
  if (shapeOf('visual.proj')) {
    const conv = need('visual.conv1.weight', 4);
    const positions = need('visual.positional_embedding', 2)[0];
    const grid = Math.round(Math.sqrt(positions - 1));
    if (grid * grid + 1 !== positions) {
      throw new Error(`${file}: tensor "${prefix}visual.positional_embedding" has ${positions} rows, not a square grid of patches plus the class token`);
    }
    const layers = countIndexed(/^visual\.transformer\.resblocks\.(\d+)\./);
    if (layers === 0) throw new Error(`${file}: no vision transformer blocks ("${prefix}visual.transformer.resblocks.N.*") found`);
    vision = { kind: 'vit', imageSize: conv[3] * grid, patchSize: conv[3], width: conv[0], layers, heads: headsOf(conv[0]) };
  } else if (shapeOf('visual.attnpool.positional_embedding')) {
    const stageBlocks = [1, 2, 3, 4].map((stage) => countIndexed(new RegExp(`^visual\\.layer${stage}\\.(\\d+)\\.`)));
    const emptyStage = stageBlocks.findIndex((n) => n === 0);
    if (emptyStage >= 0) throw new Error(`${file}: ModifiedResNet stage "${prefix}visual.layer${emptyStage + 1}" has no blocks`);
    const width = need('visual.layer1.0.conv1.weight', 4)[0];
    const positions = need('visual.attnpool.positional_embedding', 2)[0];
    const outputWidth = Math.round(Math.sqrt(positions - 1));
    if (outputWidth * outputWidth + 1 !== positions) {
      throw new Error(`${file}: tensor "${prefix}visual.attnpool.positional_embedding" has ${positions} rows, not a square feature map plus the pooled token`);
    }
    vision = {
      kind: 'resnet',
      imageSize: outputWidth * 32,
      width,
      layers: stageBlocks as [number, number, number, number],
      heads: Math.floor((width * 32) / 64),
    };
  } else {
    throw new Error(`${file}: not a CLIP state dict: it has neither "${prefix}visual.proj" (ViT image tower) nor "${prefix}visual.attnpool.positional_embedding" (ModifiedResNet image tower)`);
  }
  return { embedDim, vision, text, layerNormEps: 1e-5 };
}

// ---------------------------------------------------------------- Hugging Face CLIPModel layout

/** A Hugging Face CLIPModel: its config.json, its preprocessor_config.json if any, its tensors. */
export function huggingFaceClip(configFile: JsonFile, preprocessorFile: JsonFile | undefined, set: TensorSet, source: string): ClipWeights {
  const config = huggingFaceConfig(configFile);
  const preprocess = preprocessConfigOf(preprocessorFile, config.vision.imageSize);
  const tensors = collectTensors(expectedShapes(config), huggingFaceRecipe, set);
  return { config, preprocess, source, tensors };
}

/** OpenAI name → the Hugging Face tensors it is made from. */
const HF_NAMES: Readonly<Record<string, string | [string, 'transpose']>> = {
  'token_embedding.weight': 'text_model.embeddings.token_embedding.weight',
  positional_embedding: 'text_model.embeddings.position_embedding.weight',
  'ln_final.weight': 'text_model.final_layer_norm.weight',
  'ln_final.bias': 'text_model.final_layer_norm.bias',
  text_projection: ['text_projection.weight', 'transpose'], // nn.Linear stores [out, in]
  logit_scale: 'logit_scale',
  'visual.class_embedding': 'vision_model.embeddings.class_embedding',
  'visual.conv1.weight': 'vision_model.embeddings.patch_embedding.weight',
  'visual.positional_embedding': 'vision_model.embeddings.position_embedding.weight',
  'visual.ln_pre.weight': 'vision_model.pre_layrnorm.weight', // sic: HF's spelling
  'visual.ln_pre.bias': 'vision_model.pre_layrnorm.bias',
  'visual.ln_post.weight': 'vision_model.post_layernorm.weight',
  'visual.ln_post.bias': 'vision_model.post_layernorm.bias',
  'visual.proj': ['visual_projection.weight', 'transpose'],
};

/** Per transformer block: OpenAI suffix → Hugging Face suffix. */
const HF_BLOCK_NAMES: Readonly<Record<string, string>> = {
  'attn.out_proj.weight': 'self_attn.out_proj.weight',
  'attn.out_proj.bias': 'self_attn.out_proj.bias',
  'ln_1.weight': 'layer_norm1.weight',
  'ln_1.bias': 'layer_norm1.bias',
  'ln_2.weight': 'layer_norm2.weight',
  'ln_2.bias': 'layer_norm2.bias',
  'mlp.c_fc.weight': 'mlp.fc1.weight',
  'mlp.c_fc.bias': 'mlp.fc1.bias',
  'mlp.c_proj.weight': 'mlp.fc2.weight',
  'mlp.c_proj.bias': 'mlp.fc2.bias',
};

function huggingFaceRecipe(name: string): Recipe {
  const block = /^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$/.exec(name);
  if (block) {
    const prefix = `${block[1] ? 'vision_model' : 'text_model'}.encoder.layers.${block[2]}.`;
    const suffix = block[3];
    // OpenAI's nn.MultiheadAttention keeps q, k and v stacked in one in_proj.
    if (suffix === 'attn.in_proj_weight' || suffix === 'attn.in_proj_bias') {
      const kind = suffix.endsWith('weight') ? 'weight' : 'bias';
      return { parts: ['q', 'k', 'v'].map((p) => `${prefix}self_attn.${p}_proj.${kind}`), combine: 'concat' };
    }
    const hfSuffix = HF_BLOCK_NAMES[suffix];
    if (hfSuffix) return { parts: [prefix + hfSuffix], combine: 'copy' };
  }
  const mapped = HF_NAMES[name];
  if (typeof mapped === 'string') return { parts: [mapped], combine: 'copy' };
  if (mapped) return { parts: [mapped[0]], combine: 'transpose' };
  throw new Error(`internal: no Hugging Face name for "${name}"`);
}

// CLIPTextConfig / CLIPVisionConfig defaults, for fields a config.json leaves out.
const HF_TEXT_DEFAULTS = {
  hidden_size: 512,
  intermediate_size: 2048,
  num_attention_heads: 8,
  num_hidden_layers: 12,
  max_position_embeddings: 77,
  vocab_size: 49408,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};
const HF_VISION_DEFAULTS = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  image_size: 224,
  patch_size: 32,
  num_channels: 3,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};
const HF_PROJECTION_DIM_DEFAULT = 512;

function huggingFaceConfig({ label: configPath, json }: JsonFile): ClipConfig {
  const fail = (message: string): never => {
    throw new Error(`${configPath}: ${message}`);
  };
  if (json['model_type'] !== undefined && json['model_type'] !== 'clip') {
    fail(`model_type is ${JSON.stringify(json['model_type'])}, expected "clip" (a Hugging Face CLIPModel)`);
  }
  // Old configs spell the sections text_config_dict / vision_config_dict.
  const section = (key: string): Record<string, unknown> => {
    const value = json[key] ?? json[`${key}_dict`];
    if (value === undefined || value === null) return {};
    if (!isObject(value)) fail(`"${key}" is not an object`);
    return value as Record<string, unknown>;
  };
  const textJson = section('text_config');
  const visionJson = section('vision_config');

  const field = <T extends number | string>(obj: Record<string, unknown>, where: string, key: string, fallback: T): T => {
    const value = obj[key] ?? fallback;
    if (typeof fallback === 'string' ? typeof value !== 'string' : typeof value !== 'number' || !(value > 0)) {
      fail(`${where}.${key} is ${JSON.stringify(value)}, expected ${typeof fallback === 'string' ? 'a string' : 'a positive number'}`);
    }
    if (typeof fallback === 'number' && key !== 'layer_norm_eps' && !Number.isInteger(value)) {
      fail(`${where}.${key} is ${value}, expected an integer`);
    }
    return value as T;
  };
  const tower = <D extends Record<string, number | string>>(obj: Record<string, unknown>, where: string, defaults: D) => {
    const read = <K extends keyof D & string>(key: K): D[K] => field(obj, where, key, defaults[key]);
    const width = read('hidden_size') as number;
    const heads = read('num_attention_heads') as number;
    const act = read('hidden_act') as string;
    if (act !== 'quick_gelu') {
      fail(`${where}.hidden_act is "${act}"; only "quick_gelu" is supported for now, as the graphs implement QuickGELU (x·σ(1.702x)) as OpenAI's CLIP does`);
    }
    if (width % heads !== 0) fail(`${where}.hidden_size ${width} is not divisible by num_attention_heads ${heads}`);
    const intermediate = read('intermediate_size') as number;
    if (intermediate !== 4 * width) {
      fail(`${where}.intermediate_size is ${intermediate}; CLIP's MLP is 4 × hidden_size = ${4 * width}, the only width supported`);
    }
    return { read, width, heads, eps: read('layer_norm_eps') as number };
  };

  const t = tower(textJson, 'text_config', HF_TEXT_DEFAULTS);
  const v = tower(visionJson, 'vision_config', HF_VISION_DEFAULTS);
  if (t.eps !== v.eps) fail(`text_config.layer_norm_eps ${t.eps} differs from vision_config.layer_norm_eps ${v.eps}; one value is supported`);
  if (v.read('num_channels') !== 3) fail(`vision_config.num_channels is ${v.read('num_channels')}, expected 3 (RGB)`);
  const imageSize = v.read('image_size');
  const patchSize = v.read('patch_size');
  if (imageSize % patchSize !== 0) fail(`vision_config.image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);

  return {
    embedDim: field(json, 'config', 'projection_dim', HF_PROJECTION_DIM_DEFAULT),
    vision: { kind: 'vit', imageSize, patchSize, width: v.width, layers: v.read('num_hidden_layers'), heads: v.heads },
    text: {
      contextLength: t.read('max_position_embeddings'),
      vocabSize: t.read('vocab_size'),
      width: t.width,
      layers: t.read('num_hidden_layers'),
      heads: t.heads,
    },
    layerNormEps: t.eps,
  };
}

/**
 * Image preparation from a CLIPImageProcessor config, or CLIP's defaults when
 * there is none. The crop must be the model's image size (its position
 * embeddings fix it); a config that disagrees is scaled to it, keeping its
 * resize-to-crop ratio and its mean and std.
 */
function preprocessConfigOf(file: JsonFile | undefined, imageSize: number): PreprocessConfig {
  if (!file) return CLIP_PREPROCESS(imageSize);
  const { label: configPath, json } = file;
  const fail = (message: string): never => {
    throw new Error(`${configPath}: ${message}`);
  };
  const squareSize = (key: string): number | undefined => {
    const value = json[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'number') return value;
    if (isObject(value)) {
      const { shortest_edge: edge, height, width } = value as Record<string, unknown>;
      if (typeof edge === 'number') return edge;
      if (typeof height === 'number' && height === width) return height;
    }
    return fail(`"${key}" is ${JSON.stringify(value)}; expected a number, {"shortest_edge": n} or a square {"height": n, "width": n}`);
  };
  const triple = (key: string, fallback: readonly [number, number, number]): [number, number, number] => {
    const value = json[key];
    if (value === undefined || value === null) return [...fallback];
    if (!Array.isArray(value) || value.length !== 3 || !value.every((x) => typeof x === 'number')) {
      fail(`"${key}" is ${JSON.stringify(value)}, expected three numbers (R, G, B)`);
    }
    return value as [number, number, number];
  };
  const defaults = CLIP_PREPROCESS(imageSize);
  let resize = squareSize('size') ?? squareSize('crop_size') ?? imageSize;
  let crop = squareSize('crop_size') ?? resize;
  if (crop !== imageSize) {
    resize = Math.round((resize * imageSize) / crop);
    crop = imageSize;
  }
  return { resizeShortestEdge: resize, cropSize: crop, mean: triple('image_mean', defaults.mean), std: triple('image_std', defaults.std) };
}

// ---------------------------------------------------------------- expected shapes

/** Every tensor the architecture reads, under its OpenAI name, with its shape. */
export function expectedShapes(config: ClipConfig): Map<string, readonly number[]> {
  const shapes = new Map<string, readonly number[]>();
  const add = (name: string, shape: readonly number[]): void => void shapes.set(name, shape);
  const { text, vision, embedDim } = config;

  add('token_embedding.weight', [text.vocabSize, text.width]);
  add('positional_embedding', [text.contextLength, text.width]);
  addTransformer(add, 'transformer', text.width, text.layers);
  addLayerNorm(add, 'ln_final', text.width);
  add('text_projection', [text.width, embedDim]);
  add('logit_scale', []);

  if (vision.kind === 'vit') {
    const grid = vision.imageSize / vision.patchSize;
    add('visual.conv1.weight', [vision.width, 3, vision.patchSize, vision.patchSize]);
    add('visual.class_embedding', [vision.width]);
    add('visual.positional_embedding', [grid * grid + 1, vision.width]);
    addLayerNorm(add, 'visual.ln_pre', vision.width);
    addTransformer(add, 'visual.transformer', vision.width, vision.layers);
    addLayerNorm(add, 'visual.ln_post', vision.width);
    add('visual.proj', [vision.width, embedDim]);
  } else {
    addModifiedResNet(add, vision, embedDim);
  }
  return shapes;
}

type AddShape = (name: string, shape: readonly number[]) => void;

function addLayerNorm(add: AddShape, name: string, width: number): void {
  add(`${name}.weight`, [width]);
  add(`${name}.bias`, [width]);
}

function addTransformer(add: AddShape, name: string, width: number, layers: number): void {
  for (let i = 0; i < layers; i++) {
    const block = `${name}.resblocks.${i}`;
    add(`${block}.attn.in_proj_weight`, [3 * width, width]);
    add(`${block}.attn.in_proj_bias`, [3 * width]);
    add(`${block}.attn.out_proj.weight`, [width, width]);
    add(`${block}.attn.out_proj.bias`, [width]);
    addLayerNorm(add, `${block}.ln_1`, width);
    add(`${block}.mlp.c_fc.weight`, [4 * width, width]);
    add(`${block}.mlp.c_fc.bias`, [4 * width]);
    add(`${block}.mlp.c_proj.weight`, [width, 4 * width]);
    add(`${block}.mlp.c_proj.bias`, [width]);
    addLayerNorm(add, `${block}.ln_2`, width);
  }
}

function addBatchNorm(add: AddShape, name: string, channels: number): void {
  for (const part of ['weight', 'bias', 'running_mean', 'running_var']) add(`${name}.${part}`, [channels]);
}

function addModifiedResNet(add: AddShape, vision: ModifiedResNetConfig, embedDim: number): void {
  const { width } = vision;
  // Stem: three 3×3 convolutions (the first with stride 2), each with a batch norm.
  add('visual.conv1.weight', [width / 2, 3, 3, 3]);
  addBatchNorm(add, 'visual.bn1', width / 2);
  add('visual.conv2.weight', [width / 2, width / 2, 3, 3]);
  addBatchNorm(add, 'visual.bn2', width / 2);
  add('visual.conv3.weight', [width, width / 2, 3, 3]);
  addBatchNorm(add, 'visual.bn3', width);

  let inplanes = width;
  vision.layers.forEach((blocks, stage) => {
    const planes = width * 2 ** stage;
    for (let b = 0; b < blocks; b++) {
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const block = `visual.layer${stage + 1}.${b}`;
      add(`${block}.conv1.weight`, [planes, inplanes, 1, 1]);
      addBatchNorm(add, `${block}.bn1`, planes);
      add(`${block}.conv2.weight`, [planes, planes, 3, 3]);
      addBatchNorm(add, `${block}.bn2`, planes);
      add(`${block}.conv3.weight`, [planes * 4, planes, 1, 1]);
      addBatchNorm(add, `${block}.bn3`, planes * 4);
      // Bottleneck's downsample branch: average pool, 1×1 conv, batch norm.
      if (stride > 1 || inplanes !== planes * 4) {
        add(`${block}.downsample.0.weight`, [planes * 4, inplanes, 1, 1]);
        addBatchNorm(add, `${block}.downsample.1`, planes * 4);
      }
      inplanes = planes * 4;
    }
  });

  const channels = width * 32;
  const spatial = vision.imageSize / 32;
  add('visual.attnpool.positional_embedding', [spatial * spatial + 1, channels]);
  for (const p of ['q_proj', 'k_proj', 'v_proj']) {
    add(`visual.attnpool.${p}.weight`, [channels, channels]);
    add(`visual.attnpool.${p}.bias`, [channels]);
  }
  add('visual.attnpool.c_proj.weight', [embedDim, channels]);
  add('visual.attnpool.c_proj.bias', [embedDim]);
}

// ---------------------------------------------------------------- small helpers

export const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON object from a file's text; errors name `file`. */
export function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(value)) throw new Error(`${file}: expected a JSON object`);
  return value as Record<string, unknown>;
}
