// CLIP on onnxruntime against the PyTorch reference's goldens, for all four
// shared fixtures (ViT and ResNet, OpenAI and Hugging Face layouts, fp16).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type ClipModel } from '../src/clip/model.js';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { verifyGoldens } from '../src/clip/verify.js';
import { fixture } from './shared.js';

// The shared README: fp32 implementations match to about 1e-5; the issue asks for 1e-4 at most.
const TOLERANCE = 1e-5;
const FIXTURES = ['tiny-vit-openai', 'tiny-rn-openai', 'tiny-vit-hf', 'tiny-vit-hf-fp16'];
const models: ClipModel[] = [];
after(async () => Promise.all(models.map((m) => m.release())));

for (const name of FIXTURES) {
  test(`${name}: every golden output and coop.grad_ctx within ${TOLERANCE} relative`, async () => {
    const model = await loadClipModel(fixture('clip', name));
    models.push(model);
    const { errors, skipped } = await verifyGoldens(model, fixture('clip', name, 'goldens.safetensors'));
    assert.deepEqual(skipped, []);
    const expected = ['output.image_embeds', 'output.text_embeds', 'output.logits_per_image',
      model.config.vision.kind === 'vit' ? 'output.vision_tokens' : 'output.vision_feature_map',
      'coop.text_embeds', 'coop.logits', 'coop.loss', 'coop.grad_ctx'];
    assert.deepEqual(errors.map((e) => e.key).sort(), expected.sort());
    for (const e of errors) {
      console.log(`${name} ${e.key}: max abs ${e.maxAbs.toExponential(2)}, relative ${e.relative.toExponential(2)}`);
      assert.ok(e.relative <= TOLERANCE, `${name} ${e.key}: relative error ${e.relative} > ${TOLERANCE}`);
    }
  });
}

test('text features do not depend on how texts are split into shared prefix and suffix', async () => {
  const model = await loadClipModel(fixture('clip', 'tiny-vit-openai'));
  models.push(model);
  // Three prompts sharing their first four tokens ("<start> a photo of").
  const rows = [
    [49406, 320, 1125, 539, 320, 1929, 269, 49407],
    [49406, 320, 1125, 539, 320, 2368, 269, 49407],
    [49406, 320, 1125, 539, 1237, 49407, 0, 0],
  ];
  const ids = rows.flatMap((r) => [...r, ...new Array(77 - r.length).fill(0)]);
  const whole = await model.encodeTextBatch(model.textBatch(ids, 3, 1));
  const shared = await model.encodeTextBatch(model.textBatch(ids, 3, 4));
  let worst = 0;
  whole.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - shared.data[i]))));
  assert.ok(worst < 1e-5, `max difference ${worst}`);
  assert.throws(() => model.textBatch(ids, 3, 5), /differs from text 0/);
});
