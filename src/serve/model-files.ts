// Which of a model's files a browser client may fetch: what it needs to build the CLIP
// graphs and tokenize class names (a Hugging Face CLIPModel folder's config, weights and
// tokenizer files), never anything else in the folder (training logs, notes) and never a
// path of the client's choosing.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

const PUBLIC_FILES = new Set([
  'config.json', 'model.safetensors', 'model.safetensors.index.json',
  'tokenizer.json', 'vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'preprocessor_config.json',
]);
/** Shards named by model.safetensors.index.json. */
const SHARD = /^model-\d{5}-of-\d{5}\.safetensors$/;

export class ModelFiles {
  private constructor(
    /** The folder the files are served from. */
    readonly dir: string,
    /** The public files present, by name. */
    readonly files: readonly string[],
  ) {}

  /** A model folder, or a single .safetensors state dict (then only that file is public). */
  static async open(modelPath: string): Promise<ModelFiles> {
    const info = await stat(modelPath).catch(() => undefined);
    if (info === undefined) throw new Error(`--model ${modelPath}: no such file or folder`);
    if (info.isFile()) {
      if (!modelPath.endsWith('.safetensors')) throw new Error(`--model ${modelPath}: expected a model folder or a .safetensors file`);
      return new ModelFiles(path.dirname(modelPath), [path.basename(modelPath)]);
    }
    const names = (await readdir(modelPath, { withFileTypes: true })).filter((e) => e.isFile() && isPublicModelFile(e.name)).map((e) => e.name).sort();
    if (!names.includes('config.json')) throw new Error(`--model ${modelPath}: no config.json (a Hugging Face CLIPModel folder is expected)`);
    return new ModelFiles(modelPath, names);
  }

  has(name: string): boolean {
    return this.files.includes(name);
  }
}

export function isPublicModelFile(name: string): boolean {
  return PUBLIC_FILES.has(name) || SHARD.test(name);
}
