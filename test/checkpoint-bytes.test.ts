// The model and tokenizer built from bytes in memory (what a browser fetches)
// equal those read from the folder on disk, tensor for tensor and id for id.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { clipFromFiles } from '../src/clip/checkpoint.js';
import { loadClip } from '../src/clip/checkpoint-file.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import { loadTokenizer } from '../src/clip/tokenizer-file.js';
import { parseSafetensors } from '../src/io/safetensors-format.js';
import { PROJECT_ROOT, fixture } from './shared.js';

const SHIPPED = path.join(PROJECT_ROOT, 'models', 'world-clip');
const read = (dir: string, name: string): Promise<Uint8Array> => readFile(path.join(dir, name));

for (const [name, dir, files] of [
  ['the shipped world CLIP (Hugging Face layout)', SHIPPED, { weights: 'model.safetensors', config: 'config.json', preprocessorConfig: 'preprocessor_config.json' }],
  ['an OpenAI state dict', fixture('clip', 'tiny-vit-openai'), { weights: 'model.safetensors' }],
] as const) {
  test(`clipFromFiles: ${name} from bytes equals loadClip from disk`, async () => {
    const fromDisk = await loadClip(dir);
    const inMemory = Object.fromEntries(await Promise.all(Object.entries(files).map(async ([key, file]) => [key, await read(dir, file)])));
    const fromBytes = clipFromFiles(inMemory as { weights: Uint8Array }, 'https://example.org/model');
    assert.deepEqual(fromBytes.config, fromDisk.config);
    assert.deepEqual(fromBytes.preprocess, fromDisk.preprocess);
    assert.deepEqual([...fromBytes.tensors.keys()].sort(), [...fromDisk.tensors.keys()].sort());
    for (const [tensorName, t] of fromDisk.tensors) {
      const other = fromBytes.tensors.get(tensorName)!;
      assert.deepEqual(other.shape, t.shape, tensorName);
      assert.ok(Buffer.from(other.data.buffer, other.data.byteOffset, other.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), tensorName);
    }
  });
}

test('clipFromFiles: Hugging Face tensors without config.json, and truncated bytes, are errors naming the file', async () => {
  const weights = await read(SHIPPED, 'model.safetensors');
  assert.throws(() => clipFromFiles({ weights }, 'https://example.org/m'), /https:\/\/example\.org\/m\/weights\.safetensors: holds Hugging Face CLIPModel tensors.*no config\.json/);
  const config = await read(SHIPPED, 'config.json');
  assert.throws(() => clipFromFiles({ weights: weights.subarray(0, weights.length - 4), config }, 'm'), /m\/model\.safetensors: tensor ".*" ends at byte \d+ .*truncated/);
  assert.throws(() => parseSafetensors(weights.subarray(0, 5), 'x.safetensors'), /x\.safetensors: file is 5 bytes long/);
  assert.throws(() => clipFromFiles({ weights, config: '{"model_type": "bert"}' }, 'm'), /m\/config\.json: model_type is "bert"/);
});

test('ClipTokenizer from the text of vocab.json and merges.txt equals loadTokenizer on the folder', async () => {
  const fromDisk = await loadTokenizer(SHIPPED);
  const fromText = ClipTokenizer.fromVocabJsonAndMergesText(
    (await read(SHIPPED, 'vocab.json')).toString(), (await read(SHIPPED, 'merges.txt')).toString(),
  );
  for (const text of ['a photo of a red circle.', 'X X X X a blue square on stripes', 'Hello, world! 123']) {
    assert.deepEqual(fromText.tokenize(text), fromDisk.tokenize(text));
  }
  assert.equal(fromText.vocabularySize, fromDisk.vocabularySize);
  assert.throws(() => ClipTokenizer.fromVocabJsonAndMergesText('{', 'a b', '/m/vocab.json', '/m/merges.txt'), /Invalid CLIP tokenizer file \/m\/vocab\.json: not valid JSON/);
});
