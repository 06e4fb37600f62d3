// A CLIP checkpoint from disk (Node): finds the files of either layout in a
// folder or names one file, reads them, and hands them to checkpoint.ts,
// which does the parsing on bytes.
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensors, type SafetensorsEntry } from '../io/safetensors.js';
import { huggingFaceClip, isObject, looksLikeHuggingFace, openAiClip, parseJsonObject, type JsonFile, type TensorSet } from './checkpoint.js';
import type { ClipWeights } from './weights.js';

const HF_CONFIG = 'config.json';
const HF_WEIGHTS = 'model.safetensors';
const HF_INDEX = 'model.safetensors.index.json';
const HF_PREPROCESSOR = 'preprocessor_config.json';
/** State-dict files to prefer when a folder without config.json holds several .safetensors files. */
const STATE_DICT_NAMES = ['model.safetensors', 'open_clip_model.safetensors'];

/** Loads a CLIP checkpoint (Hugging Face folder, or OpenAI / open_clip .safetensors file or folder). */
export async function loadClip(checkpointPath: string): Promise<ClipWeights> {
  const stats = await stat(checkpointPath).catch(() => undefined);
  if (!stats) throw new Error(`${checkpointPath}: no such file or directory`);
  if (stats.isDirectory()) return loadDirectory(checkpointPath);
  const base = path.basename(checkpointPath);
  // Naming a Hugging Face folder's config or index file means the folder.
  if (base === HF_CONFIG || base === HF_INDEX) return loadDirectory(path.dirname(checkpointPath));
  if (!base.endsWith('.safetensors')) {
    throw new Error(`${checkpointPath}: not a .safetensors file; pass a .safetensors state dict or a Hugging Face CLIPModel folder (convert .pt/.bin checkpoints to safetensors first)`);
  }
  return loadStateDictFile(checkpointPath);
}

async function loadDirectory(dir: string): Promise<ClipWeights> {
  const names = new Set(await readdir(dir));
  if (names.has(HF_CONFIG)) {
    if (names.has(HF_WEIGHTS)) {
      const weightsFile = path.join(dir, HF_WEIGHTS);
      return huggingFaceClip(await readJsonObject(path.join(dir, HF_CONFIG)), await readOptionalJson(path.join(dir, HF_PREPROCESSOR)), await readSingleFile(weightsFile), dir);
    }
    if (names.has(HF_INDEX)) return huggingFaceClip(await readJsonObject(path.join(dir, HF_CONFIG)), await readOptionalJson(path.join(dir, HF_PREPROCESSOR)), await readShardedIndex(path.join(dir, HF_INDEX)), dir);
    const legacy = ['pytorch_model.bin', 'tf_model.h5', 'flax_model.msgpack'].filter((n) => names.has(n));
    throw new Error(
      `${dir}: has ${HF_CONFIG} but neither ${HF_WEIGHTS} nor ${HF_INDEX}` +
        (legacy.length ? ` (found ${legacy.join(', ')}: convert it to safetensors)` : ''),
    );
  }
  const stateDicts = [...names].filter((n) => n.endsWith('.safetensors')).sort();
  const chosen = STATE_DICT_NAMES.find((n) => names.has(n)) ?? (stateDicts.length === 1 ? stateDicts[0] : undefined);
  if (chosen) return loadStateDictFile(path.join(dir, chosen), dir);
  if (stateDicts.length > 1) {
    throw new Error(`${dir}: holds several .safetensors files (${stateDicts.join(', ')}) and no ${HF_CONFIG}; pass the state-dict file itself`);
  }
  const unsupported = [...names].filter((n) => /\.(pt|pth|bin|ckpt)$/.test(n));
  throw new Error(
    `${dir}: no CLIP checkpoint found. Looked for a Hugging Face CLIPModel (${HF_CONFIG} with ${HF_WEIGHTS} or ${HF_INDEX}) ` +
      `and for an OpenAI / open_clip state dict (one .safetensors file)` +
      (unsupported.length ? `; found ${unsupported.join(', ')}: convert it to safetensors` : ''),
  );
}

/** A .safetensors file: an OpenAI / open_clip state dict, unless its names are Hugging Face's and a config.json sits beside it. */
async function loadStateDictFile(file: string, source: string = file): Promise<ClipWeights> {
  const tensors = await readSingleFile(file);
  if (looksLikeHuggingFace(tensors.entries)) {
    const dir = path.dirname(file);
    const hasConfig = await stat(path.join(dir, HF_CONFIG)).then(() => true, () => false);
    if (!hasConfig) {
      throw new Error(`${file}: holds Hugging Face CLIPModel tensors (vision_model.*, text_model.*) but there is no ${HF_CONFIG} beside it; pass the model's folder with its ${HF_CONFIG}`);
    }
    return huggingFaceClip(await readJsonObject(path.join(dir, HF_CONFIG)), await readOptionalJson(path.join(dir, HF_PREPROCESSOR)), tensors, source);
  }
  return openAiClip(tensors, source, await readOptionalJson(path.join(path.dirname(file), 'open_clip_config.json')));
}

// ---------------------------------------------------------------- files

async function readSingleFile(file: string): Promise<TensorSet> {
  const { tensors } = await readSafetensors(file);
  return { label: file, entries: tensors };
}

/** A sharded checkpoint: `weight_map` names the shard file holding each tensor. */
async function readShardedIndex(indexPath: string): Promise<TensorSet> {
  const index = (await readJsonObject(indexPath)).json;
  const weightMap = index['weight_map'];
  if (!isObject(weightMap) || !Object.values(weightMap as object).every((v) => typeof v === 'string')) {
    throw new Error(`${indexPath}: "weight_map" is not an object of tensor name → shard file`);
  }
  const tensorsOfShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
    tensorsOfShard.set(shard, [...(tensorsOfShard.get(shard) ?? []), name]);
  }
  const dir = path.dirname(indexPath);
  const entries = new Map<string, SafetensorsEntry>();
  for (const [shard, names] of tensorsOfShard) {
    const shardPath = path.join(dir, shard);
    const exists = await stat(shardPath).then((s) => s.isFile(), () => false);
    if (!exists) {
      throw new Error(`${indexPath}: shard "${shard}" (holding "${names[0]}"${names.length > 1 ? ` and ${names.length - 1} more` : ''}) does not exist at ${shardPath}`);
    }
    const { tensors } = await readSafetensors(shardPath);
    for (const name of names) {
      const entry = tensors.get(name);
      if (!entry) throw new Error(`${indexPath}: weight_map puts tensor "${name}" in ${shard}, but ${shardPath} has no such tensor`);
      entries.set(name, entry);
    }
  }
  return { label: indexPath, entries };
}

async function readJsonObject(file: string): Promise<JsonFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${file}: no such file`);
    throw err;
  }
  return { label: file, json: parseJsonObject(text, file) };
}

/** The JSON object in `file`, or undefined when there is no such file. */
async function readOptionalJson(file: string): Promise<JsonFile | undefined> {
  const exists = await stat(file).then(() => true, () => false);
  return exists ? readJsonObject(file) : undefined;
}
