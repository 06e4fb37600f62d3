// Checkpoint loading: safetensors reading/writing, the two CLIP layouts, the
// inferred architecture, and the errors users see for broken files.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fixture } from './shared.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import {
  bfloat16BitsToFloat32,
  DTYPE_BYTES,
  halfBitsToFloat32,
  readSafetensors,
  toFloat32,
  toTypedArray,
  writeSafetensors,
  type SafetensorsEntry,
  type WritableTensor,
} from '../src/io/safetensors.js';
import { expectedShapes } from '../src/clip/checkpoint.js';
import { loadClip } from '../src/clip/checkpoint-file.js';
import { foldBatchNorm } from '../src/clip/modified-resnet.js';
import type { ClipWeights, HostTensor } from '../src/clip/weights.js';

const VIT_OPENAI = fixture('clip', 'tiny-vit-openai');
const RN_OPENAI = fixture('clip', 'tiny-rn-openai');
const VIT_HF = fixture('clip', 'tiny-vit-hf');
const VIT_HF_FP16 = fixture('clip', 'tiny-vit-hf-fp16');

let scratch = '';
let scratchCount = 0;
before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'pfedprompt-ckpt-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});
/** A fresh empty folder under the scratch folder. */
async function freshDir(name: string): Promise<string> {
  const dir = path.join(scratch, `${name}-${scratchCount++}`);
  await mkdir(dir);
  return dir;
}

/** Asserts the promise rejects with a message containing every fragment. */
async function rejectsWith(promise: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

/** The tensors of a safetensors file, as writable entries that can be edited and written again. */
async function editableTensors(file: string): Promise<Map<string, WritableTensor>> {
  return new Map((await readSafetensors(file)).tensors);
}

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Same config, same tensor names, and every tensor bit-identical. */
function assertSameWeights(actual: ClipWeights, expected: ClipWeights): void {
  assert.deepEqual(actual.config, expected.config);
  assert.deepEqual([...actual.tensors.keys()], [...expected.tensors.keys()]);
  for (const [name, t] of expected.tensors) {
    const a = actual.tensors.get(name)!;
    assert.deepEqual(a.shape, t.shape, name);
    assert.ok(bytesOf(a.data).equals(bytesOf(t.data)), `tensor ${name} differs`);
  }
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

// ---------------------------------------------------------------- safetensors

test('F16 decodes known values, subnormals, infinities and NaN', () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504], // largest finite
    [0x0400, 2 ** -14], // smallest normal
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x8001, -(2 ** -24)],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  const decoded = halfBitsToFloat32(Uint16Array.from(cases.map(([bits]) => bits)));
  cases.forEach(([bits, value], i) => assert.ok(Object.is(decoded[i], value), `0x${bits.toString(16)} → ${decoded[i]}, expected ${value}`));
  const nans = halfBitsToFloat32(Uint16Array.from([0x7e00, 0x7c01, 0xfe00]));
  assert.ok(nans.every(Number.isNaN));
});

test('BF16 decodes known values exactly', () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x3f80, 1],
    [0xc000, -2],
    [0x3eaa, 0.33203125],
    [0x0001, 2 ** -133], // smallest bf16 subnormal, a float32 subnormal too
    [0x7f7f, 3.3895313892515355e38], // largest finite
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ];
  const decoded = bfloat16BitsToFloat32(Uint16Array.from(cases.map(([bits]) => bits)));
  cases.forEach(([bits, value], i) => assert.ok(Object.is(decoded[i], value), `0x${bits.toString(16)} → ${decoded[i]}, expected ${value}`));
  assert.ok(Number.isNaN(bfloat16BitsToFloat32(Uint16Array.of(0x7fc0))[0]));
});

test('safetensors round trip: F32, F64, F16, BF16, I64, I32, BOOL and metadata; header padded to 8 bytes', async () => {
  const file = path.join(await freshDir('roundtrip'), 'x.safetensors');
  await writeSafetensors(
    file,
    {
      b: { shape: [3], data: Int32Array.of(-1, 0, 7) }, // narrow first: the writer must still align the wide ones
      flag: { shape: [2], data: Uint8Array.of(1, 0), dtype: 'BOOL' },
      half: { shape: [2], data: Uint16Array.of(0x3c00, 0x0001), dtype: 'F16' },
      brain: { shape: [1], data: Uint16Array.of(0xc000), dtype: 'BF16' },
      a: { shape: [2, 2], data: Float32Array.of(1, 2, 3, 4.5) },
      scalar: { shape: [], data: Float32Array.of(2.5) },
      ids: { shape: [1, 3], data: BigInt64Array.of(0n, 1n, -(2n ** 40n)) },
      wide: { shape: [2], data: Float64Array.of(0.1, -3) },
    },
    { format: 'pt', note: 'hello' },
  );
  const raw = await readFile(file);
  assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
  const st = await readSafetensors(file);
  assert.deepEqual(st.metadata, { format: 'pt', note: 'hello' });
  const get = (name: string): SafetensorsEntry => st.tensors.get(name)!;
  // Widest first: every tensor lands aligned for a typed-array view.
  for (const e of st.tensors.values()) assert.equal(e.data.byteOffset % DTYPE_BYTES[e.dtype], 0, e.name);
  assert.deepEqual([...toFloat32(get('a'))], [1, 2, 3, 4.5]);
  assert.deepEqual(get('a').shape, [2, 2]);
  assert.deepEqual(get('scalar').shape, []);
  assert.deepEqual([...toFloat32(get('scalar'))], [2.5]);
  assert.deepEqual([...toFloat32(get('wide'))], [Math.fround(0.1), -3]);
  assert.deepEqual([...toFloat32(get('half'))], [1, 2 ** -24]);
  assert.deepEqual([...toFloat32(get('brain'))], [-2]);
  assert.deepEqual([...(toTypedArray(get('ids')) as BigInt64Array)], [0n, 1n, -(2n ** 40n)]);
  assert.deepEqual([...(toTypedArray(get('b')) as Int32Array)], [-1, 0, 7]);
  assert.deepEqual([...(toTypedArray(get('flag')) as Uint8Array)], [1, 0]);
  assert.throws(() => toFloat32(get('ids')), /x\.safetensors: tensor "ids" has dtype I64, expected a floating-point dtype/);
  // Aligned F32 is a view of the file's buffer, not a copy.
  assert.equal(toFloat32(get('a')).buffer, get('a').data.buffer);
});

test('an unaligned F32 tensor is copied, not viewed', () => {
  const backing = new Uint8Array(9);
  backing.set(new Uint8Array(Float32Array.of(1.5, -2).buffer), 1);
  const entry: SafetensorsEntry = { name: 't', file: 'mem', dtype: 'F32', shape: [2], data: backing.subarray(1) };
  assert.deepEqual([...toFloat32(entry)], [1.5, -2]);
});

test('safetensors errors name the file and the tensor', async () => {
  const dir = await freshDir('corrupt');
  const withHeader = async (name: string, header: string, dataBytes = 0, declaredLength?: number): Promise<string> => {
    const file = path.join(dir, name);
    const h = Buffer.from(header);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(declaredLength ?? h.byteLength));
    await writeFile(file, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
    return file;
  };
  const missing = path.join(dir, 'nope.safetensors');
  await rejectsWith(readSafetensors(missing), missing, 'no such file');

  const short = path.join(dir, 'short.safetensors');
  await writeFile(short, Buffer.from([1, 2, 3]));
  await rejectsWith(readSafetensors(short), short, 'too short');

  const longHeader = await withHeader('long.safetensors', '{}', 0, 1_000_000);
  await rejectsWith(readSafetensors(longHeader), longHeader, 'header length 1000000 exceeds');

  const badJson = await withHeader('json.safetensors', '{"a": {"dtype": "F3');
  await rejectsWith(readSafetensors(badJson), badJson, 'header is not valid JSON');

  const inconsistent = await withHeader('span.safetensors', '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4);
  await rejectsWith(readSafetensors(inconsistent), inconsistent, 'tensor "w"', 'span 4 bytes', 'needs 8');

  const unknown = await withHeader('dtype.safetensors', '{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}', 1);
  await rejectsWith(readSafetensors(unknown), unknown, 'tensor "w"', 'unknown dtype "Q4"');

  const beyond = await withHeader('beyond.safetensors', '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8);
  await rejectsWith(readSafetensors(beyond), beyond, 'tensor "w"', 'truncated');
});

test('a truncated checkpoint is reported with its file and its last tensor', async () => {
  const source = path.join(VIT_OPENAI, 'model.safetensors');
  const st = await readSafetensors(source);
  const last = [...st.tensors.values()].reduce((a, b) => (b.data.byteOffset > a.data.byteOffset ? b : a));
  const truncated = path.join(await freshDir('truncated'), 'model.safetensors');
  const bytes = await readFile(source);
  await writeFile(truncated, bytes.subarray(0, bytes.byteLength - 100));
  await rejectsWith(readSafetensors(truncated), truncated, `tensor "${last.name}"`, 'truncated');
  await rejectsWith(loadClip(truncated), truncated, `tensor "${last.name}"`, 'truncated');
});

test('writeFileAtomic replaces a file whole and leaves no temporary behind, even on failure', async () => {
  const dir = await freshDir('atomic');
  const file = path.join(dir, 'out.txt');
  await writeFileAtomic(file, 'first');
  await writeFileAtomic(file, [Buffer.from('sec'), Buffer.from('ond')]);
  assert.equal(await readFile(file, 'utf8'), 'second');
  function* failing(): Iterable<Uint8Array> {
    yield Buffer.from('partial');
    throw new Error('disk on fire');
  }
  await assert.rejects(writeFileAtomic(file, failing()), /disk on fire/);
  assert.equal(await readFile(file, 'utf8'), 'second');
  assert.deepEqual(await readdir(dir), ['out.txt']);
});

// ---------------------------------------------------------------- the four fixtures

test('tiny-vit-openai: ViT architecture inferred from shapes', async () => {
  const w = await loadClip(VIT_OPENAI);
  assert.deepEqual(w.config, {
    embedDim: 48,
    vision: { kind: 'vit', imageSize: 32, patchSize: 8, width: 128, layers: 2, heads: 2 },
    text: { contextLength: 77, vocabSize: 49408, width: 64, layers: 2, heads: 1 },
    layerNormEps: 1e-5,
  });
  assert.deepEqual(w.preprocess, { resizeShortestEdge: 32, cropSize: 32, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] });
  assert.equal(w.source, VIT_OPENAI);
  // Exactly the tensors the architecture needs, with the expected shapes.
  assert.deepEqual([...w.tensors].map(([n, t]) => [n, t.shape]), [...expectedShapes(w.config)]);
  for (const t of w.tensors.values()) assert.ok(t.data instanceof Float32Array);
  assert.deepEqual(w.tensors.get('logit_scale')!.shape, []);
  assert.ok(Math.abs(w.tensors.get('logit_scale')!.data[0] - Math.log(1 / 0.07)) < 1e-6);
  // The file itself loads the same as its folder (which also holds goldens.safetensors).
  assertSameWeights(await loadClip(path.join(VIT_OPENAI, 'model.safetensors')), w);
});

test('tiny-rn-openai: ModifiedResNet inferred from shapes; batch norms kept, counters dropped', async () => {
  const w = await loadClip(RN_OPENAI);
  assert.deepEqual(w.config, {
    embedDim: 48,
    vision: { kind: 'resnet', imageSize: 64, width: 16, layers: [1, 2, 1, 1], heads: 8 },
    text: { contextLength: 77, vocabSize: 49408, width: 64, layers: 2, heads: 1 },
    layerNormEps: 1e-5,
  });
  assert.deepEqual([...w.tensors].map(([n, t]) => [n, t.shape]), [...expectedShapes(w.config)]);
  const file = await readSafetensors(path.join(RN_OPENAI, 'model.safetensors'));
  for (const name of ['visual.bn1.running_var', 'visual.layer2.0.downsample.1.running_mean', 'visual.attnpool.c_proj.weight']) {
    assert.deepEqual([...w.tensors.get(name)!.data], [...toFloat32(file.tensors.get(name)!)], name);
  }
  assert.ok(![...w.tensors.keys()].some((n) => n.endsWith('num_batches_tracked')));
  // Downsample branches exactly where a Bottleneck has them.
  assert.ok(w.tensors.has('visual.layer1.0.downsample.0.weight')); // 16 → 64 channels
  assert.ok(w.tensors.has('visual.layer2.0.downsample.0.weight')); // stride 2
  assert.ok(!w.tensors.has('visual.layer2.1.downsample.0.weight'));
  assert.deepEqual(w.tensors.get('visual.attnpool.positional_embedding')!.shape, [5, 512]);
});

test('tiny-vit-hf: Hugging Face names mapped, config and preprocessing read', async () => {
  const w = await loadClip(VIT_HF);
  assert.deepEqual(w.config, {
    embedDim: 48,
    vision: { kind: 'vit', imageSize: 32, patchSize: 8, width: 64, layers: 2, heads: 4 },
    text: { contextLength: 77, vocabSize: 49408, width: 64, layers: 2, heads: 4 },
    layerNormEps: 1e-5,
  });
  // The fixture's preprocessor says 224, but the model takes 32 px: scaled to the model.
  assert.deepEqual(w.preprocess, { resizeShortestEdge: 32, cropSize: 32, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] });
  assert.deepEqual([...w.tensors].map(([n, t]) => [n, t.shape]), [...expectedShapes(w.config)]);

  const file = (await readSafetensors(path.join(VIT_HF, 'model.safetensors'))).tensors;
  const hf = (name: string): Float32Array => toFloat32(file.get(name)!);
  const layer = 'vision_model.encoder.layers.1.self_attn';
  const inProj = w.tensors.get('visual.transformer.resblocks.1.attn.in_proj_weight')!;
  assert.deepEqual(inProj.shape, [192, 64]);
  assert.deepEqual([...inProj.data.subarray(0, 64 * 64)], [...hf(`${layer}.q_proj.weight`)]);
  assert.deepEqual([...inProj.data.subarray(64 * 64, 128 * 64)], [...hf(`${layer}.k_proj.weight`)]);
  assert.deepEqual([...inProj.data.subarray(128 * 64)], [...hf(`${layer}.v_proj.weight`)]);
  assert.deepEqual([...w.tensors.get('visual.proj')!.data], [...transpose(hf('visual_projection.weight'), 48, 64)]);
  assert.deepEqual([...w.tensors.get('text_projection')!.data], [...transpose(hf('text_projection.weight'), 48, 64)]);
  assert.deepEqual([...w.tensors.get('visual.ln_pre.bias')!.data], [...hf('vision_model.pre_layrnorm.bias')]);
  // The folder's weights file, named directly, loads the same.
  assertSameWeights(await loadClip(path.join(VIT_HF, 'model.safetensors')), w);
});

test('tiny-vit-hf-fp16: F16 tensors load as float32 equal to their F16 decode', async () => {
  const w = await loadClip(VIT_HF_FP16);
  assert.deepEqual(w.config, (await loadClip(VIT_HF)).config);
  const file = (await readSafetensors(path.join(VIT_HF_FP16, 'model.safetensors'))).tensors;
  const ln = file.get('text_model.final_layer_norm.weight')!;
  assert.equal(ln.dtype, 'F16');
  assert.deepEqual([...w.tensors.get('ln_final.weight')!.data], [...halfBitsToFloat32(toTypedArray(ln) as Uint16Array)]);

  // Every tensor: the same folder with the F16 values written out as F32 loads identically.
  const dir = await freshDir('fp16-as-fp32');
  const widened = new Map<string, WritableTensor>();
  for (const [name, e] of file) widened.set(name, e.dtype === 'F16' ? { shape: e.shape, data: toFloat32(e) } : e);
  await writeSafetensors(path.join(dir, 'model.safetensors'), widened);
  await copyFile(path.join(VIT_HF_FP16, 'config.json'), path.join(dir, 'config.json'));
  assertSameWeights(await loadClip(dir), w);
});

// ---------------------------------------------------------------- layouts agree

/** OpenAI state-dict names → Hugging Face CLIPModel names, as make_goldens.py's to_hf does. */
function openAiToHuggingFace(sd: ReadonlyMap<string, HostTensor>, visionLayers: number, textLayers: number): Map<string, WritableTensor> {
  const out = new Map<string, WritableTensor>();
  const put = (name: string, t: HostTensor): void => void out.set(name, t);
  const get = (name: string): HostTensor => sd.get(name)!;
  const block = (src: string, dst: string, width: number): void => {
    const w = get(`${src}attn.in_proj_weight`).data;
    const b = get(`${src}attn.in_proj_bias`).data;
    ['q', 'k', 'v'].forEach((n, i) => {
      put(`${dst}self_attn.${n}_proj.weight`, { shape: [width, width], data: w.slice(i * width * width, (i + 1) * width * width) });
      put(`${dst}self_attn.${n}_proj.bias`, { shape: [width], data: b.slice(i * width, (i + 1) * width) });
    });
    const renames: [string, string][] = [
      ['attn.out_proj', 'self_attn.out_proj'],
      ['ln_1', 'layer_norm1'],
      ['ln_2', 'layer_norm2'],
      ['mlp.c_fc', 'mlp.fc1'],
      ['mlp.c_proj', 'mlp.fc2'],
    ];
    for (const [a, c] of renames) for (const p of ['weight', 'bias']) put(`${dst}${c}.${p}`, get(`${src}${a}.${p}`));
  };
  const tw = get('ln_final.weight').shape[0];
  const vw = get('visual.ln_pre.weight').shape[0];
  const positionIds = (n: number): WritableTensor => ({ shape: [1, n], data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) });
  const transposed = (t: HostTensor): HostTensor => ({ shape: [t.shape[1], t.shape[0]], data: transpose(t.data, t.shape[0], t.shape[1]) });
  put('text_model.embeddings.token_embedding.weight', get('token_embedding.weight'));
  put('text_model.embeddings.position_embedding.weight', get('positional_embedding'));
  out.set('text_model.embeddings.position_ids', positionIds(get('positional_embedding').shape[0]));
  for (let i = 0; i < textLayers; i++) block(`transformer.resblocks.${i}.`, `text_model.encoder.layers.${i}.`, tw);
  put('text_model.final_layer_norm.weight', get('ln_final.weight'));
  put('text_model.final_layer_norm.bias', get('ln_final.bias'));
  put('text_projection.weight', transposed(get('text_projection')));
  put('vision_model.embeddings.class_embedding', get('visual.class_embedding'));
  put('vision_model.embeddings.patch_embedding.weight', get('visual.conv1.weight'));
  put('vision_model.embeddings.position_embedding.weight', get('visual.positional_embedding'));
  out.set('vision_model.embeddings.position_ids', positionIds(get('visual.positional_embedding').shape[0]));
  put('vision_model.pre_layrnorm.weight', get('visual.ln_pre.weight'));
  put('vision_model.pre_layrnorm.bias', get('visual.ln_pre.bias'));
  for (let i = 0; i < visionLayers; i++) block(`visual.transformer.resblocks.${i}.`, `vision_model.encoder.layers.${i}.`, vw);
  put('vision_model.post_layernorm.weight', get('visual.ln_post.weight'));
  put('vision_model.post_layernorm.bias', get('visual.ln_post.bias'));
  put('visual_projection.weight', transposed(get('visual.proj')));
  put('logit_scale', { shape: [1], data: get('logit_scale').data }); // [1] here; the fixtures store it 0-d
  return out;
}

/** A Hugging Face config.json for tiny-vit-openai's architecture. */
const TINY_VIT_OPENAI_HF_CONFIG = {
  architectures: ['CLIPModel'],
  model_type: 'clip',
  projection_dim: 48,
  text_config: { hidden_size: 64, intermediate_size: 256, num_attention_heads: 1, num_hidden_layers: 2, max_position_embeddings: 77, vocab_size: 49408, hidden_act: 'quick_gelu' },
  vision_config: { hidden_size: 128, intermediate_size: 512, num_attention_heads: 2, num_hidden_layers: 2, image_size: 32, patch_size: 8, hidden_act: 'quick_gelu' },
};

async function writeHuggingFaceCopyOfVitOpenAi(config: object = TINY_VIT_OPENAI_HF_CONFIG): Promise<string> {
  const openai = await loadClip(VIT_OPENAI);
  const dir = await freshDir('vit-openai-as-hf');
  await writeSafetensors(path.join(dir, 'model.safetensors'), openAiToHuggingFace(openai.tensors, 2, 2), { format: 'pt' });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

test('the same weights in Hugging Face and OpenAI layouts load identically', async () => {
  const dir = await writeHuggingFaceCopyOfVitOpenAi();
  const fromHf = await loadClip(dir);
  assertSameWeights(fromHf, await loadClip(VIT_OPENAI));
  // No preprocessor_config.json: CLIP's defaults at the model's size.
  assert.deepEqual(fromHf.preprocess, (await loadClip(VIT_OPENAI)).preprocess);
});

test('a sharded Hugging Face checkpoint loads like the single file', async () => {
  const dir = await freshDir('sharded');
  const all = await editableTensors(path.join(VIT_HF, 'model.safetensors'));
  const shardNames = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const shards = [new Map<string, WritableTensor>(), new Map<string, WritableTensor>()];
  const weightMap: Record<string, string> = {};
  for (const [name, t] of all) {
    const s = name.startsWith('vision_model.') ? 1 : 0;
    shards[s].set(name, t);
    weightMap[name] = shardNames[s];
  }
  for (let s = 0; s < 2; s++) await writeSafetensors(path.join(dir, shardNames[s]), shards[s], { format: 'pt' });
  await writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  for (const f of ['config.json', 'preprocessor_config.json']) await copyFile(path.join(VIT_HF, f), path.join(dir, f));

  const sharded = await loadClip(dir);
  const single = await loadClip(VIT_HF);
  assertSameWeights(sharded, single);
  assert.deepEqual(sharded.preprocess, single.preprocess);
  // Naming the index file means its folder.
  assertSameWeights(await loadClip(path.join(dir, 'model.safetensors.index.json')), single);

  // An index naming a shard that is not there.
  await rm(path.join(dir, shardNames[1]));
  await rejectsWith(loadClip(dir), path.join(dir, 'model.safetensors.index.json'), `shard "${shardNames[1]}"`, 'does not exist');
});

test('DDP "module." prefixes are stripped and stray non-weight entries ignored', async () => {
  const dir = await freshDir('ddp');
  const prefixed = new Map<string, WritableTensor>();
  for (const [name, t] of await editableTensors(path.join(VIT_OPENAI, 'model.safetensors'))) prefixed.set(`module.${name}`, t);
  for (const extra of ['input_resolution', 'context_length', 'vocab_size']) prefixed.set(`module.${extra}`, { shape: [], data: BigInt64Array.of(1n) });
  const file = path.join(dir, 'clip.safetensors');
  await writeSafetensors(file, prefixed);
  const w = await loadClip(dir); // the folder's only .safetensors file
  assertSameWeights(w, await loadClip(VIT_OPENAI));
  assert.ok(!w.tensors.has('input_resolution'));
});

// ---------------------------------------------------------------- validation errors

test('a missing or misshapen tensor names the file, the tensor and the expected shape', async () => {
  const dir = await freshDir('bad-openai');
  const missing = path.join(dir, 'missing.safetensors');
  const tensors = await editableTensors(path.join(VIT_OPENAI, 'model.safetensors'));
  const lnPost = tensors.get('visual.ln_post.weight')!;
  tensors.delete('visual.ln_post.weight');
  await writeSafetensors(missing, tensors);
  await rejectsWith(loadClip(missing), `${missing}: missing tensor "visual.ln_post.weight" (expected shape [128])`);

  const misshapen = path.join(dir, 'misshapen.safetensors');
  tensors.set('visual.ln_post.weight', { shape: [127], data: toFloat32(lnPost as SafetensorsEntry).slice(0, 127) });
  await writeSafetensors(misshapen, tensors);
  await rejectsWith(loadClip(misshapen), `${misshapen}: tensor "visual.ln_post.weight" has shape [127], expected [128]`);

  // A missing block shows as its missing tensors, not as a shallower model.
  const gap = path.join(dir, 'gap.safetensors');
  tensors.set('visual.ln_post.weight', lnPost);
  tensors.delete('transformer.resblocks.0.mlp.c_fc.bias');
  await writeSafetensors(gap, tensors);
  await rejectsWith(loadClip(gap), gap, 'missing tensor "transformer.resblocks.0.mlp.c_fc.bias" (expected shape [256])');
});

test('Hugging Face errors name the Hugging Face tensor', async () => {
  const dir = await freshDir('bad-hf');
  await copyFile(path.join(VIT_HF, 'config.json'), path.join(dir, 'config.json'));
  const weights = path.join(dir, 'model.safetensors');
  const tensors = await editableTensors(path.join(VIT_HF, 'model.safetensors'));
  const kBias = 'vision_model.encoder.layers.1.self_attn.k_proj.bias';
  const saved = tensors.get(kBias)!;
  tensors.delete(kBias);
  await writeSafetensors(weights, tensors);
  await rejectsWith(loadClip(dir), `${weights}: missing tensor "${kBias}" (expected shape [64])`);

  tensors.set(kBias, saved);
  tensors.set('visual_projection.weight', { shape: [64, 48], data: new Float32Array(64 * 48) }); // not transposed
  await writeSafetensors(weights, tensors);
  await rejectsWith(loadClip(dir), `${weights}: tensor "visual_projection.weight" has shape [64, 48], expected [48, 64]`);
});

test('config errors: GELU models and non-4× MLPs are refused clearly', async () => {
  const gelu = structuredClone(TINY_VIT_OPENAI_HF_CONFIG);
  gelu.vision_config.hidden_act = 'gelu';
  const dir = await writeHuggingFaceCopyOfVitOpenAi(gelu);
  await rejectsWith(loadClip(dir), path.join(dir, 'config.json'), 'vision_config.hidden_act is "gelu"', 'quick_gelu');

  const wide = structuredClone(TINY_VIT_OPENAI_HF_CONFIG);
  delete (wide.text_config as Partial<typeof wide.text_config>).intermediate_size; // HF's default, 2048, is not 4 × 64
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(wide));
  await rejectsWith(loadClip(dir), 'text_config.intermediate_size is 2048');
});

test('path errors: missing path, empty folder, corrupt header', async () => {
  const nowhere = path.join(scratch, 'does-not-exist');
  await rejectsWith(loadClip(nowhere), nowhere, 'no such file or directory');

  const empty = await freshDir('empty');
  await rejectsWith(loadClip(empty), empty, 'no CLIP checkpoint found', 'config.json', 'model.safetensors.index.json', '.safetensors');

  const hfWithoutWeights = await freshDir('config-only');
  await copyFile(path.join(VIT_HF, 'config.json'), path.join(hfWithoutWeights, 'config.json'));
  await rejectsWith(loadClip(hfWithoutWeights), hfWithoutWeights, 'neither model.safetensors nor model.safetensors.index.json');

  const corrupt = path.join(await freshDir('corrupt-header'), 'model.safetensors');
  const bytes = Buffer.from(await readFile(path.join(VIT_OPENAI, 'model.safetensors')));
  bytes.write('#', 8); // the header's opening brace: no longer JSON
  await writeFile(corrupt, bytes);
  await rejectsWith(loadClip(corrupt), corrupt, 'header is not valid JSON');
});

// ---------------------------------------------------------------- batch norm folding

test('foldBatchNorm: conv then batch norm equals the folded conv', () => {
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const fill = (n: number, f: () => number = random): Float32Array => Float32Array.from({ length: n }, f);
  const [out, inC, k, size] = [4, 3, 3, 5];
  const conv = fill(out * inC * k * k);
  const bn = { gamma: fill(out, () => 1 + random() * 0.2), beta: fill(out), mean: fill(out), variance: fill(out, () => 0.5 + random() + 0.5) };
  const weights = {
    config: undefined as never,
    preprocess: undefined as never,
    source: 'hand-made',
    tensors: new Map<string, HostTensor>([
      ['c.weight', { shape: [out, inC, k, k], data: conv }],
      ['n.weight', { shape: [out], data: bn.gamma }],
      ['n.bias', { shape: [out], data: bn.beta }],
      ['n.running_mean', { shape: [out], data: bn.mean }],
      ['n.running_var', { shape: [out], data: bn.variance }],
    ]),
  } satisfies ClipWeights;
  const x = fill(inC * size * size);
  // 3×3 convolution, stride 1, zero padding 1, as CLIP's stem and bottlenecks use.
  const convolve = (w: Float32Array, o: number, h: number, v: number): number => {
    let sum = 0;
    for (let c = 0; c < inC; c++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
      const [hh, vv] = [h + i - 1, v + j - 1];
      if (hh >= 0 && hh < size && vv >= 0 && vv < size) sum += w[((o * inC + c) * k + i) * k + j] * x[(c * size + hh) * size + vv];
    }
    return sum;
  };
  const folded = foldBatchNorm(weights, 'c', 'n');
  assert.deepEqual(folded.weight.shape, [out, inC, k, k]);
  assert.deepEqual(folded.bias.shape, [out]);
  for (let o = 0; o < out; o++) for (let h = 0; h < size; h++) for (let v = 0; v < size; v++) {
    const byHand = ((convolve(conv, o, h, v) - bn.mean[o]) / Math.sqrt(bn.variance[o] + 1e-5)) * bn.gamma[o] + bn.beta[o];
    const byFold = convolve(folded.weight.data, o, h, v) + folded.bias.data[o];
    assert.ok(Math.abs(byHand - byFold) <= 1e-5 * (1 + Math.abs(byHand)), `o=${o} h=${h} v=${v}: ${byHand} vs ${byFold}`);
  }
});

test('foldBatchNorm applies to the ResNet fixture', async () => {
  const w = await loadClip(RN_OPENAI);
  const { weight, bias } = foldBatchNorm(w, 'visual.layer1.0.downsample.0', 'visual.layer1.0.downsample.1');
  assert.deepEqual(weight.shape, [64, 16, 1, 1]);
  assert.deepEqual(bias.shape, [64]);
  assert.throws(() => foldBatchNorm(w, 'visual.layer2.1.downsample.0', 'visual.layer2.1.downsample.1'), /missing tensor "visual\.layer2\.1\.downsample\.0\.weight"/);
});
