// CoOp's prompt layout against the PyTorch goldens, against literal texts, and
// its gradient against finite differences in every layout.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ClipModel } from '../src/clip/model.js';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { SeededRandom } from '../src/clip/random.js';
import { type ClipTokenizer } from '../src/clip/tokenizer.js';
import { loadTokenizer } from '../src/clip/tokenizer-file.js';
import { readSafetensors, toFloat32, toTypedArray } from '../src/io/safetensors.js';
import { CoopPrompt, type ClassTokenPosition } from '../src/prompt/coop-prompt.js';
import { Sgd, learningRate } from '../src/prompt/sgd.js';
import { fixture, relativeError } from './shared.js';

let model: ClipModel;
let tokenizer: ClipTokenizer;
before(async () => {
  model = await loadClipModel(fixture('clip', 'tiny-vit-hf'));
  tokenizer = await loadTokenizer(fixture('clip-tokenizer'));
});
after(() => model.release());

test('unified context at the end: text features and d loss / d ctx match the PyTorch goldens', async () => {
  const goldens = await readSafetensors(fixture('clip', 'tiny-vit-hf', 'goldens.safetensors'));
  const get = (key: string): Float32Array => toFloat32(goldens.tensors.get(key)!);
  const classnames = JSON.parse(goldens.metadata.classnames) as string[];
  const prompt = new CoopPrompt(model, tokenizer, classnames, { contextLength: 4, position: 'end', classSpecific: false });
  assert.equal(prompt.sharedPrefix, true);
  const ctx = get('coop.ctx');
  const texts = await model.encodeTextBatch(prompt.textBatch(ctx));
  assert.ok(relativeError(texts.data, get('coop.text_embeds')) < 1e-5);

  const { embeds } = await model.encodeImages(get('input.pixel_values'), 4);
  const labels = toTypedArray(goldens.tensors.get('coop.labels')!);
  const targets = new Float32Array(4 * 3);
  for (let i = 0; i < 4; i++) targets[i * 3 + Number(labels[i])] = 1 / 4;
  const result = await model.promptLoss(prompt.textBatch(ctx), embeds, { shape: [4, 3], data: targets });
  const grad = prompt.contextGradient(result.prefixGrad.data, result.suffixGrad.data);
  const relative = relativeError(grad, get('coop.grad_ctx'));
  console.log(`coop grad_ctx through CoopPrompt: relative error ${relative.toExponential(2)}`);
  assert.ok(relative < 1e-5);
  assert.ok(Math.abs(result.loss - get('coop.loss')[0]) < 1e-5);
});

const LITERAL: Record<ClassTokenPosition, (name: string) => string> = {
  end: (name) => `a photo of a ${name}.`,
  middle: (name) => `a photo ${name} of a.`,
  front: (name) => `${name} a photo of a.`,
};

for (const position of ['end', 'middle', 'front'] as const) {
  for (const classSpecific of [false, true]) {
    test(`${position}, ${classSpecific ? 'class-specific' : 'unified'}: context from words equals the literal text`, async () => {
      const names = ['dog', 'great crested newt', 'cat'];
      const prompt = new CoopPrompt(model, tokenizer, names, { contextLength: 16, initWords: 'a photo of a', position, classSpecific });
      assert.equal(prompt.contextTokens, 4);
      assert.equal(prompt.rows, classSpecific ? 12 : 4);
      const ours = await model.encodeTextBatch(prompt.textBatch(prompt.initialContext(0)));
      const tokens = tokenizer.tokenizeBatch(names.map(LITERAL[position]), 77);
      const reference = await model.encodeTokens(tokens.ids, tokens.count);
      assert.ok(relativeError(ours.data, reference.data) < 1e-5);
    });

    test(`${position}, ${classSpecific ? 'class-specific' : 'unified'}: context gradient matches finite differences`, async () => {
      const names = ['dog', 'great crested newt', 'cat'];
      const prompt = new CoopPrompt(model, tokenizer, names, { contextLength: 4, position, classSpecific });
      const ctx = prompt.initialContext(7);
      const random = new SeededRandom(3);
      const images = { shape: [5, 48], data: random.normals(5 * 48) };
      const targets = new Float32Array(5 * 3);
      for (let i = 0; i < 5; i++) targets[i * 3 + (i % 3)] = 1 / 5;
      const bias = { shape: [5, 3], data: random.normals(15) };
      const loss = async (c: Float32Array): Promise<number> =>
        (await model.promptLoss(prompt.textBatch(c), images, { shape: [5, 3], data: targets }, bias)).loss;
      const result = await model.promptLoss(prompt.textBatch(ctx), images, { shape: [5, 3], data: targets }, bias);
      const grad = prompt.contextGradient(result.prefixGrad.data, result.suffixGrad.data);
      const h = 1e-3; // the context is N(0, 0.02²): a larger step leaves the linear range of the first layer norm
      for (const i of [0, 5, 64 + 3, ctx.length - 1]) {
        const plus = ctx.slice();
        plus[i] += h;
        const minus = ctx.slice();
        minus[i] -= h;
        const numeric = ((await loss(plus)) - (await loss(minus))) / (2 * h);
        assert.ok(Math.abs(numeric - grad[i]) <= 2e-3 * Math.max(1, Math.abs(numeric)) + 2e-4, `index ${i}: analytic ${grad[i]}, numeric ${numeric}`);
      }
    });
  }
}

test('a class name too long for the text tower is refused by name', () => {
  const long = Array.from({ length: 70 }, () => 'newt').join(' ');
  assert.throws(() => new CoopPrompt(model, tokenizer, ['dog', long], { contextLength: 16, position: 'end', classSpecific: false }), /class "newt newt.*needs 89 tokens/);
});

test('SGD: PyTorch momentum and weight decay; cosine schedule', () => {
  const params = Float32Array.of(1, -2);
  const sgd = new Sgd({ lr: 0.1, momentum: 0.9, weightDecay: 0.01, schedule: 'constant' });
  sgd.step(params, Float32Array.of(0.5, 0.5), 0.1);
  // d = g + wd·p = (0.51, 0.48); buffer = d; p -= 0.1·d
  assert.ok(Math.abs(params[0] - (1 - 0.051)) < 1e-7 && Math.abs(params[1] - (-2 - 0.048)) < 1e-6);
  sgd.step(params, Float32Array.of(0.5, 0.5), 0.1);
  const d0 = 0.5 + 0.01 * (1 - 0.051);
  assert.ok(Math.abs(params[0] - (1 - 0.051 - 0.1 * (0.9 * 0.51 + d0))) < 1e-6);
  const cosine = { lr: 1, momentum: 0, weightDecay: 0, schedule: 'cosine' as const };
  assert.equal(learningRate(cosine, 0, 10), 1);
  assert.ok(Math.abs(learningRate(cosine, 5, 10) - 0.5) < 1e-12);
  assert.equal(learningRate({ ...cosine, schedule: 'constant' }, 7, 10), 1);
});

test('SGD without momentum keeps no buffer (each step is −lr·(g + wd·p)); a gradient of the wrong size is refused; the cosine schedule reaches 0 at the run\'s end', () => {
  const params = Float32Array.of(1, -2);
  const sgd = new Sgd({ lr: 0.1, momentum: 0, weightDecay: 0.5, schedule: 'constant' });
  for (let step = 0; step < 2; step++) {
    const before = [...params];
    sgd.step(params, Float32Array.of(1, 1), 0.1);
    before.forEach((p, i) => assert.ok(Math.abs(params[i] - (p - 0.1 * (1 + 0.5 * p))) < 1e-6, `step ${step}, parameter ${i}: ${params[i]}`));
  }
  assert.throws(() => sgd.step(params, Float32Array.of(1), 0.1), /SGD: gradient of 1 values for 2 parameters/);
  const cosine = { lr: 2, momentum: 0, weightDecay: 0, schedule: 'cosine' as const };
  assert.ok(Math.abs(learningRate(cosine, 10, 10)) < 1e-12);
  assert.ok(Math.abs(learningRate(cosine, 2.5, 10) - (1 + Math.cos(Math.PI / 4))) < 1e-12);
  assert.equal(learningRate(cosine, 3, 0), 2);
});
