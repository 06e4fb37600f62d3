// Pre-training's parts: the contrastive step's weight gradients against
// finite differences on a tiny CLIP, AdamW against its formula, the BPE
// vocabulary through ClipTokenizer, and the Hugging Face writer through the
// loader.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadClip } from '../src/clip/checkpoint-file.js';
import { SeededRandom, randomClipWeights } from '../src/clip/random.js';
import { type ClipTokenizer } from '../src/clip/tokenizer.js';
import { loadTokenizer } from '../src/clip/tokenizer-file.js';
import { EOT_MASK, PREFIX, SUFFIX } from '../src/clip/text-encoder.js';
import type { ClipConfig } from '../src/clip/weights.js';
import { halfBitsToFloat32 } from '../src/io/safetensors.js';
import { AdamW, warmupCosine } from '../src/pretrain/adamw.js';
import { trainBpe, writeBpeFiles } from '../src/pretrain/bpe.js';
import { GRAD_PREFIX, buildContrastiveStep } from '../src/pretrain/contrastive.js';
import { writeHuggingFaceClip } from '../src/pretrain/hf-checkpoint.js';
import { float32ToHalfBits } from '../src/io/safetensors.js';
import { DEFAULT_PRETRAIN, pretrainWorldClip } from '../src/pretrain/train.js';

const TINY: ClipConfig = {
  embedDim: 8,
  vision: { kind: 'vit', imageSize: 8, patchSize: 4, width: 8, layers: 1, heads: 2 },
  text: { contextLength: 6, vocabSize: 20, width: 8, layers: 1, heads: 2 },
  layerNormEps: 1e-5,
};

const temporary: string[] = [];
after(async () => Promise.all(temporary.map((d) => rm(d, { recursive: true, force: true }))));
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pfedprompt-pretrain-'));
  temporary.push(dir);
  return dir;
}

test('contrastive step: weight, prefix and suffix gradients match finite differences', async () => {
  const weights = randomClipWeights(TINY, 5);
  const step = buildContrastiveStep(weights);
  const session = await ort.InferenceSession.create(step.graph.encode());
  const random = new SeededRandom(9);
  const B = 3;
  const S = 3;
  const W = TINY.text.width;
  const inputs: Record<string, { data: Float32Array; shape: number[] }> = {
    pixel_values: { data: random.normals(B * 3 * 8 * 8), shape: [B, 3, 8, 8] },
    [PREFIX]: { data: random.normals(W, 0.5), shape: [1, W] },
    [SUFFIX]: { data: random.normals(B * S * W, 0.5), shape: [B, S, W] },
  };
  const mask = Float32Array.from([0, 1, 0, 0, 0, 1, 1, 0, 0]); // end tokens at 1, 2, 0
  // Two positives for image 0 (captions 0 and 2), to exercise multi-positive targets.
  const match = [[1, 0, 1], [0, 1, 0], [1, 0, 1]];
  const i2t = Float32Array.from(match.flatMap((row) => row.map((m) => m / row.reduce((a, b) => a + b) / B)));
  const t2i = Float32Array.from(match.flatMap((row) => row.map((m, j) => m / match.reduce((a, r) => a + r[j], 0) / B)));
  for (const p of step.parameters) inputs[p.input.name] = { data: weights.tensors.get(p.tensor)!.data.slice(p.start, p.end), shape: p.input.shape as number[] };

  const run = async (values: Record<string, Float32Array>): Promise<ort.InferenceSession.ReturnType> => {
    const feeds: Record<string, ort.Tensor> = {
      [EOT_MASK]: new ort.Tensor('float32', mask, [B, S]),
      targets_i2t: new ort.Tensor('float32', i2t, [B, B]),
      targets_t2i: new ort.Tensor('float32', t2i, [B, B]),
    };
    for (const [name, v] of Object.entries(inputs)) feeds[name] = new ort.Tensor('float32', values[name] ?? v.data, v.shape);
    return session.run(feeds);
  };
  const base = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.data]));
  const analytic = await run(base);
  const loss = async (values: Record<string, Float32Array>): Promise<number> => ((await run(values)).loss.data as Float32Array)[0];

  // Per coordinate, for inputs that go through each kind of weight use: the
  // patch Conv, a q/k/v row block of in_proj, the sliced position table, the
  // logit scale, a projection, a layer norm, and the text inputs.
  const checked = [
    'visual.conv1.weight',
    `visual.transformer.resblocks.0.attn.in_proj_weight[${W * W}:${2 * W * W}]`,
    'positional_embedding',
    'visual.positional_embedding',
    'logit_scale',
    'text_projection',
    'visual.ln_post.weight',
    'transformer.resblocks.0.mlp.c_fc.weight',
    PREFIX,
    SUFFIX,
  ];
  const names = new Set(Object.keys(inputs));
  for (const name of checked) assert.ok(names.has(name), `the step has an input "${name}" (inputs: ${[...names].join(', ')})`);
  const eps = 1e-2;
  for (const name of checked) {
    const ad = analytic[GRAD_PREFIX + name].data as Float32Array;
    assert.equal(ad.length, inputs[name].data.length, `${name}: gradient has the input's size`);
    let worst = 0;
    let largest = 0;
    const picks = [0, 1, Math.floor(ad.length / 2), ad.length - 1].filter((j, i, a) => j < ad.length && a.indexOf(j) === i);
    for (const j of picks) {
      const shifted = (delta: number): Record<string, Float32Array> => ({ ...base, [name]: base[name].map((v, k) => (k === j ? v + delta : v)) });
      // Richardson-extrapolated central difference: float32 losses need a step this large.
      const central = async (h: number): Promise<number> => ((await loss(shifted(h))) - (await loss(shifted(-h)))) / (2 * h);
      const fd = (4 * (await central(eps / 2)) - (await central(eps))) / 3;
      worst = Math.max(worst, Math.abs(fd - ad[j]));
      largest = Math.max(largest, Math.abs(ad[j]));
    }
    assert.ok(largest > 0, `${name}: some gradient is non-zero`);
    assert.ok(worst <= 2e-3 * Math.max(largest, 0.1), `${name}: worst |fd − analytic| ${worst} (largest gradient ${largest})`);
  }

  // Along one random direction through every differentiated input at once (all but the pixels).
  const direction = Object.fromEntries(Object.entries(base).map(([k, v]) => [k, k === 'pixel_values' ? new Float32Array(v.length) : random.normals(v.length)]));
  const norm = Math.sqrt(Object.values(direction).reduce((s, d) => s + d.reduce((a, x) => a + x * x, 0), 0));
  const moved = (h: number): Record<string, Float32Array> => Object.fromEntries(Object.entries(base).map(([k, v]) => [k, v.map((x, i) => x + (h * direction[k][i]) / norm)]));
  const central = async (h: number): Promise<number> => ((await loss(moved(h))) - (await loss(moved(-h)))) / (2 * h);
  // float32 losses put a noise floor of about 1e-4 / h on a central difference
  // (a key bias, whose exact gradient is 0, reads ~1e-4 at h = 2.5e-3), so the
  // steps are as large as Richardson extrapolation keeps accurate.
  const fd = (4 * (await central(1e-2)) - (await central(2e-2))) / 3;
  const ad = Object.keys(base).filter((k) => k !== 'pixel_values').reduce((s, k) => s + (analytic[GRAD_PREFIX + k].data as Float32Array).reduce((a, g, i) => a + (g * direction[k][i]) / norm, 0), 0);
  console.log(`contrastive step, random direction: finite difference ${fd.toFixed(6)}, analytic ${ad.toFixed(6)}`);
  assert.ok(Math.abs(fd - ad) <= 2e-3 * Math.abs(ad) + 1e-4, `random direction: fd ${fd} vs analytic ${ad}`);
  await session.release();
});

test('AdamW: one step follows the formula (bias-corrected moments, decoupled decay, clipping)', () => {
  const p = Float32Array.of(1, -2);
  const q = Float32Array.of(0.5);
  const opt = new AdamW(new Map([['w', p], ['b', q]]), (n) => n === 'w', { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 });
  const norm = opt.step(new Map([['w', Float32Array.of(3, 0)], ['b', Float32Array.of(4)]]), 0.01);
  assert.equal(norm, 5);
  // Clipped gradient (0.6, 0, 0.8); first Adam step moves each by lr · sign(g) (g ≠ 0), decay applies to w only.
  assert.ok(Math.abs(p[0] - (1 * (1 - 0.001) - 0.01)) < 1e-6, `w0 ${p[0]}`);
  assert.ok(Math.abs(p[1] - -2 * (1 - 0.001)) < 1e-6, `w1 ${p[1]}`);
  assert.ok(Math.abs(q[0] - (0.5 - 0.01)) < 1e-6, `b ${q[0]}`);
  assert.throws(() => opt.step(new Map([['w', Float32Array.of(NaN, 0)]]), 0.01), /diverged/);
  assert.equal(warmupCosine(0, 100, 10, 1), 0.1);
  assert.ok(Math.abs(warmupCosine(10, 100, 10, 1) - 1) < 1e-12);
});

test('BPE: a vocabulary trained on captions loads in ClipTokenizer, end token last, words become single tokens', async () => {
  const corpus = ['a red circle', 'a blue square on the left', 'there is a red square.', 'a striped blue circle'];
  const bpe = trainBpe(corpus, 500);
  const dir = await tempDir();
  await writeBpeFiles(dir, bpe, 32);
  const tokenizer = await loadTokenizer(dir);
  assert.equal(tokenizer.endToken, tokenizer.vocabularySize - 1);
  assert.equal(tokenizer.startToken, tokenizer.vocabularySize - 2);
  assert.deepEqual(tokenizer.encode('a red circle').length, 3);
  assert.equal(tokenizer.decode(tokenizer.tokenize('A Striped  circle!', 32)), 'a striped circle !');
  assert.throws(() => trainBpe(corpus, -1), /maxMerges/);
});

test('Hugging Face writer: written weights load back through loadClip (F32 exactly, F16 to half precision)', async () => {
  const config: ClipConfig = { ...TINY, text: { ...TINY.text, vocabSize: 514 } };
  const weights = randomClipWeights(config, 3);
  for (const dtype of ['F32', 'F16'] as const) {
    const dir = await tempDir();
    await writeHuggingFaceClip(dir, weights, { dtype, startToken: 512, endToken: 513 });
    const loaded = await loadClip(dir);
    assert.deepEqual(loaded.config, config);
    for (const [name, t] of weights.tensors) {
      const back = loaded.tensors.get(name)!;
      assert.deepEqual(back.shape, t.shape, name);
      const expected = dtype === 'F32' ? t.data : halfBitsToFloat32(float32ToHalfBits(t.data));
      assert.deepEqual(back.data, expected, `${name} (${dtype})`);
    }
  }
  // Rounding to nearest even, overflow, subnormals.
  const halves = halfBitsToFloat32(float32ToHalfBits(Float32Array.of(1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -24, -0.1)));
  assert.deepEqual([...halves.slice(0, 5)], [1, 1, 1 + 2 ** -9, Infinity, 2 ** -24]);
  assert.ok(Math.abs(halves[5] + 0.1) < 1e-4);
});

test('pre-training is reproducible: the same seed writes the same checkpoint and vocabulary', async () => {
  const tiny = { embedDim: 16, imageSize: 16, patchSize: 8, visionWidth: 16, visionLayers: 1, visionHeads: 2, textWidth: 16, textLayers: 1, textHeads: 2, contextLength: 32 };
  const run = async (seed: number): Promise<{ dir: string; report: Awaited<ReturnType<typeof pretrainWorldClip>> }> => {
    const dir = await tempDir();
    const report = await pretrainWorldClip({
      ...DEFAULT_PRETRAIN, out: dir, seed, steps: 3, batchSize: 8, warmupSteps: 1, architecture: tiny, threads: 1, evalEvery: 0, evalImagesPerClass: 1, log: () => {},
    });
    return { dir, report };
  };
  const [a, b, c] = [await run(3), await run(3), await run(4)];
  const file = (dir: string, name: string): Promise<Buffer> => readFile(path.join(dir, name));
  for (const name of ['model.safetensors', 'vocab.json', 'merges.txt', 'config.json']) assert.deepEqual(await file(a.dir, name), await file(b.dir, name), name);
  assert.notDeepEqual(await file(a.dir, 'model.safetensors'), await file(c.dir, 'model.safetensors'));
  assert.equal(a.report.finalLoss, b.report.finalLoss);
  assert.ok(Number.isFinite(a.report.finalLoss));
});
