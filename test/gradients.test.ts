// Every gradient the project computes, checked against central finite
// differences: each autodiff rule on a small graph, then the text tower's
// vector-Jacobian product and the prompt-loss gradient on a real fixture.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { gradients } from '../src/onnx/autodiff.js';
import { Graph, type Value } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops.js';
import { type ClipModel, type TextBatch } from '../src/clip/model.js';
import { loadClipModel } from '../src/clip/node-runtime.js';
import type { HostTensor } from '../src/clip/weights.js';
import { fixture } from './shared.js';

/** Seeded N(0, 1) values. */
function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform()));
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

interface Case {
  readonly name: string;
  readonly inputs: Record<string, number[]>; // name → shape
  readonly build: (g: Graph, x: Record<string, Value>) => Value;
  readonly positive?: boolean; // inputs must be > 0 (sqrt)
}

const cases: Case[] = [
  { name: 'MatMul with a broadcast batch', inputs: { a: [2, 3, 4], b: [4, 5] }, build: (g, x) => op.matmul(g, x.a, x.b) },
  { name: 'MatMul batch against batch', inputs: { a: [2, 1, 3, 4], b: [3, 4, 2] }, build: (g, x) => op.matmul(g, x.a, x.b) },
  { name: 'Add with broadcasting', inputs: { a: [2, 3, 4], b: [4] }, build: (g, x) => op.add(g, x.a, x.b) },
  { name: 'Sub with broadcasting', inputs: { a: [3, 1], b: [2, 3, 4] }, build: (g, x) => op.sub(g, x.a, x.b) },
  { name: 'Mul with broadcasting', inputs: { a: [2, 3, 4], b: [3, 1] }, build: (g, x) => op.mul(g, x.a, x.b) },
  { name: 'Div', inputs: { a: [2, 3], b: [2, 3] }, positive: true, build: (g, x) => op.div(g, x.a, op.add(g, x.b, g.scalar(0.5))) },
  { name: 'Sqrt', inputs: { a: [5] }, positive: true, build: (g, x) => op.sqrt(g, op.add(g, x.a, g.scalar(0.5))) },
  { name: 'Exp, Neg', inputs: { a: [6] }, build: (g, x) => op.neg(g, op.exp(g, x.a)) },
  { name: 'Sigmoid', inputs: { a: [2, 5] }, build: (g, x) => op.sigmoid(g, x.a) },
  { name: 'Softmax', inputs: { a: [2, 3, 5] }, build: (g, x) => op.softmax(g, x.a) },
  { name: 'LogSoftmax', inputs: { a: [3, 5] }, build: (g, x) => op.logSoftmax(g, x.a) },
  { name: 'LayerNormalization (input, scale and bias)', inputs: { a: [2, 3, 6], s: [6], b: [6] }, build: (g, x) => op.layerNorm(g, x.a, x.s, x.b, 1e-5) },
  { name: 'Transpose', inputs: { a: [2, 3, 4] }, build: (g, x) => op.mul(g, op.transpose(g, x.a, [2, 0, 1]), g.weight('w', [4, 2, 3], randn(24, 9))) },
  { name: 'Reshape', inputs: { a: [2, 6] }, build: (g, x) => op.mul(g, op.reshape(g, x.a, [0, 3, 2], [2, 3, 2]), g.weight('w', [2, 3, 2], randn(12, 8))) },
  { name: 'ReduceSum, dropping axes', inputs: { a: [2, 3, 4] }, build: (g, x) => op.mul(g, op.reduceSum(g, x.a, [0, 2], false), g.weight('w', [3], randn(3, 7))) },
  { name: 'ReduceMean, keeping axes', inputs: { a: [2, 3, 4] }, build: (g, x) => op.mul(g, op.reduceMean(g, x.a, [-1], true), g.weight('w', [2, 3, 1], randn(6, 6))) },
  { name: 'Concat', inputs: { a: [2, 1, 3], b: [2, 4, 3] }, build: (g, x) => op.mul(g, op.concat(g, [x.a, x.b], 1), g.weight('w', [2, 5, 3], randn(30, 5))) },
  { name: 'Slice (a middle range of an axis)', inputs: { a: [2, 4, 3] }, build: (g, x) => op.mul(g, op.slice(g, x.a, g.ints([1]), g.ints([3]), 1, 2), g.weight('w', [2, 2, 3], randn(12, 11))) },
  {
    name: 'Conv as a patch embedding (weights and bias)',
    inputs: { w: [4, 3, 2, 2], b: [4] },
    build: (g, x) => op.conv(g, g.weight('pixels', [2, 3, 4, 4], randn(96, 12)), x.w, x.b, { stride: 2, pad: 0, outShape: [2, 4, 2, 2] }),
  },
  {
    name: 'Conv whose input overhangs the patch grid',
    inputs: { w: [3, 3, 2, 2] },
    build: (g, x) => op.conv(g, g.weight('pixels', [1, 3, 5, 5], randn(75, 13)), x.w, undefined, { stride: 2, pad: 0, outShape: [1, 3, 2, 2] }),
  },
  {
    name: 'Unsqueeze and Expand',
    inputs: { a: [3, 2] },
    build: (g, x) => op.mul(g, op.expand(g, op.unsqueeze(g, x.a, [0]), g.ints([4, 1, 1]), [4, 3, 2]), g.weight('w', [4, 3, 2], randn(24, 4))),
  },
];

async function run(g: Graph, feeds: Record<string, Float32Array>, shapes: Record<string, number[]>): Promise<ort.InferenceSession.ReturnType> {
  const session = await ort.InferenceSession.create(g.encode());
  const tensors = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v, shapes[k])]));
  const out = await session.run(tensors);
  await session.release();
  return out;
}

for (const [index, c] of cases.entries()) {
  test(`autodiff: ${c.name} matches finite differences`, async () => {
    // loss = Σ weights ⊙ f(inputs), with fixed random weights, so every output element matters.
    const g = new Graph('check');
    const x = Object.fromEntries(Object.entries(c.inputs).map(([k, shape]) => [k, g.input(k, shape)]));
    const y = c.build(g, x);
    const yShape = y.shape as number[];
    const loss = op.reduceSum(g, op.mul(g, y, g.weight('r', yShape, randn(size(yShape), 100 + index))), [...yShape.keys()], false);
    const grads = gradients(g, loss, Object.values(x));
    g.output(loss, 'loss');
    grads.forEach((d, i) => g.output(d, `grad_${i}`));

    const feeds = Object.fromEntries(Object.entries(c.inputs).map(([k, shape], i) => {
      const v = randn(size(shape), 10 * index + i);
      return [k, c.positive ? v.map(Math.abs) : v];
    }));
    const analytic = await run(g, feeds, c.inputs);

    const eps = 1e-2;
    const names = Object.keys(c.inputs);
    for (const [i, name] of names.entries()) {
      const ad = analytic[`grad_${i}`].data as Float32Array;
      assert.equal(ad.length, feeds[name].length, `${name}: gradient has the input's size`);
      let worst = 0;
      let scale = 0;
      for (let j = 0; j < ad.length; j++) {
        const at = (delta: number) => ({ ...feeds, [name]: feeds[name].map((v, k) => (k === j ? v + delta : v)) });
        const plus = (await run(g, at(eps), c.inputs)).loss.data[0] as number;
        const minus = (await run(g, at(-eps), c.inputs)).loss.data[0] as number;
        const fd = (plus - minus) / (2 * eps);
        worst = Math.max(worst, Math.abs(fd - ad[j]));
        scale = Math.max(scale, Math.abs(ad[j]));
      }
      assert.ok(worst <= 2e-3 * Math.max(scale, 1), `${c.name}, ∂/∂${name}: worst |fd − ad| = ${worst} (largest gradient ${scale})`);
    }
  });
}

// --- the text tower on a real fixture ---------------------------------------

const models: ClipModel[] = [];
after(async () => Promise.all(models.map((m) => m.release())));

async function promptFixture(): Promise<{ model: ClipModel; batch: TextBatch }> {
  const model = await loadClipModel(fixture('clip', 'tiny-vit-hf'));
  models.push(model);
  const rows = [
    [49406, 343, 343, 343, 343, 1929, 269, 49407],
    [49406, 343, 343, 343, 343, 2368, 269, 49407],
    [49406, 343, 343, 343, 343, 1237, 23565, 269, 49407],
  ];
  const ids = rows.flatMap((r) => [...r, ...new Array(77 - r.length).fill(0)]);
  const W = model.config.text.width;
  const prefix = new Float32Array(5 * W);
  prefix.set(model.embedTokens([49406]));
  prefix.set(randn(4 * W, 3).map((v) => v * 0.02), W);
  return { model, batch: model.textBatch(ids, 3, 5, prefix) };
}

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + v * b[i], 0);
const shifted = (t: HostTensor, direction: Float32Array, step: number): HostTensor => ({ shape: t.shape, data: t.data.map((v, i) => v + step * direction[i]) });

/** Random directions for prefix and suffix together, of unit norm. */
function unitDirection(batch: TextBatch, seed: number): { dp: Float32Array; ds: Float32Array } {
  const dp = randn(batch.prefix.data.length, seed);
  const ds = randn(batch.suffix.data.length, seed + 1);
  const norm = Math.sqrt(dot(dp, dp) + dot(ds, ds));
  return { dp: dp.map((v) => v / norm), ds: ds.map((v) => v / norm) };
}

/**
 * d/dt f(batch + t·direction) at 0 by central differences, Richardson-
 * extrapolated: the embeddings are small (≈0.02), so the tower's curvature
 * at their scale is large and plain differences need steps float32 can't resolve.
 */
async function directional(f: (b: TextBatch) => Promise<number>, batch: TextBatch, d: { dp: Float32Array; ds: Float32Array }, h: number): Promise<number> {
  const central = async (step: number): Promise<number> =>
    ((await f({ ...batch, prefix: shifted(batch.prefix, d.dp, step), suffix: shifted(batch.suffix, d.ds, step) }))
      - (await f({ ...batch, prefix: shifted(batch.prefix, d.dp, -step), suffix: shifted(batch.suffix, d.ds, -step) }))) / (2 * step);
  return (4 * (await central(h / 2)) - (await central(h))) / 3;
}

test('text tower VJP matches finite differences along random directions', async () => {
  const { model, batch } = await promptFixture();
  const E = model.config.embedDim;
  const cotangent = { shape: [3, E], data: randn(3 * E, 21) };
  const { prefixGrad, suffixGrad } = await model.textVjp(batch, cotangent);
  const f = async (b: TextBatch): Promise<number> => dot((await model.encodeTextBatch(b)).data, cotangent.data);
  for (const seed of [1, 2, 3]) {
    const d = unitDirection(batch, 40 + 2 * seed);
    const fd = await directional(f, batch, d, 4e-3);
    const ad = dot(prefixGrad.data, d.dp) + dot(suffixGrad.data, d.ds);
    console.log(`VJP direction ${seed}: finite difference ${fd.toFixed(6)}, analytic ${ad.toFixed(6)}`);
    assert.ok(Math.abs(fd - ad) <= 1e-3 * Math.abs(ad) + 1e-4, `direction ${seed}: fd ${fd} vs analytic ${ad}`);
  }
});

test('prompt loss gradient matches finite differences, per context coordinate and along directions', async () => {
  const { model, batch } = await promptFixture();
  const E = model.config.embedDim;
  const images = { shape: [4, E], data: randn(4 * E, 77) };
  const targets = { shape: [4, 3], data: new Float32Array(12) };
  [0, 2, 1, 2].forEach((label, b) => (targets.data[b * 3 + label] = 1 / 4));
  const bias = { shape: [4, 3], data: randn(12, 78) };
  const r = await model.promptLoss(batch, images, targets, bias);
  const loss = async (b: TextBatch): Promise<number> => (await model.promptLoss(b, images, targets, bias)).loss;

  const W = model.config.text.width;
  const eps = 1e-3;
  let worst = 0;
  let largest = 0;
  for (const j of [W, W + 1, 2 * W + 7, 4 * W + W - 1]) { // context vectors only: the start token is not learned
    const e = new Float32Array(batch.prefix.data.length);
    e[j] = 1;
    const fd = ((await loss({ ...batch, prefix: shifted(batch.prefix, e, eps) })) - (await loss({ ...batch, prefix: shifted(batch.prefix, e, -eps) }))) / (2 * eps);
    worst = Math.max(worst, Math.abs(fd - r.prefixGrad.data[j]));
    largest = Math.max(largest, Math.abs(r.prefixGrad.data[j]));
  }
  console.log(`prompt loss, single coordinates: worst |fd − analytic| ${worst.toExponential(2)} (largest gradient ${largest.toExponential(2)})`);
  assert.ok(worst <= 2e-3 * largest + 1e-4);

  const d = unitDirection(batch, 91);
  const fd = await directional(loss, batch, d, 4e-3);
  const ad = dot(r.prefixGrad.data, d.dp) + dot(r.suffixGrad.data, d.ds);
  console.log(`prompt loss, random direction: finite difference ${fd.toFixed(6)}, analytic ${ad.toFixed(6)}`);
  assert.ok(Math.abs(fd - ad) <= 1e-3 * Math.abs(ad) + 1e-4);
});
