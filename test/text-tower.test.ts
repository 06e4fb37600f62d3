// The text tower as methods with a loss of their own use it: normalised class
// features, and the way back to the context, against finite differences.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ClipModel } from '../src/clip/model.js';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { SeededRandom } from '../src/clip/random.js';
import { type ClipTokenizer } from '../src/clip/tokenizer.js';
import { loadTokenizer } from '../src/clip/tokenizer-file.js';
import { textTower } from '../src/federation/text-tower.js';
import { CoopPrompt } from '../src/prompt/coop-prompt.js';
import { fixture } from './shared.js';

let model: ClipModel;
let tokenizer: ClipTokenizer;
before(async () => {
  model = await loadClipModel(fixture('clip', 'tiny-vit-hf'));
  tokenizer = await loadTokenizer(fixture('clip-tokenizer'));
});
after(() => model.release());

for (const position of ['end', 'middle'] as const) {
  test(`text tower (${position}): features are unit rows, and backward matches finite differences of a loss on them`, async () => {
    const prompt = new CoopPrompt(model, tokenizer, ['dog', 'great crested newt', 'cat'], { contextLength: 4, position, classSpecific: false });
    const tower = textTower({ model, prompt });
    const ctx = prompt.initialContext(11);
    const { features, backward } = await tower.withGradient(ctx);
    assert.equal(features.length, tower.classes * tower.dim);
    for (let c = 0; c < tower.classes; c++) {
      const norm = Math.hypot(...features.subarray(c * tower.dim, (c + 1) * tower.dim));
      assert.ok(Math.abs(norm - 1) < 1e-5, `class ${c} has norm ${norm}`);
    }
    assert.deepEqual(await tower.features(ctx), features);
    // L = Σ g ⊙ w² + Σ h ⊙ w: a loss that is not linear in the features, so the normalisation's Jacobian matters.
    const random = new SeededRandom(5);
    const g = random.normals(features.length);
    const h = random.normals(features.length);
    const lossOf = (w: Float32Array): number => w.reduce((sum, v, i) => sum + g[i] * v * v + h[i] * v, 0);
    const grad = await backward(Float32Array.from(features, (v, i) => 2 * g[i] * v + h[i]));
    assert.equal(grad.length, ctx.length);
    const step = 1e-3;
    for (const i of [0, 7, 64 + 3, ctx.length - 1]) {
      const plus = ctx.slice();
      plus[i] += step;
      const minus = ctx.slice();
      minus[i] -= step;
      const numeric = (lossOf(await tower.features(plus)) - lossOf(await tower.features(minus))) / (2 * step);
      assert.ok(Math.abs(numeric - grad[i]) <= 2e-3 * Math.max(1, Math.abs(numeric)) + 2e-4, `index ${i}: analytic ${grad[i]}, numeric ${numeric}`);
    }
    await assert.rejects(backward(new Float32Array(3)), /text features gradient has 3 values/);
  });
}
