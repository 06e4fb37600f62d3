// Spatial tokens in the joint space (FeatureSet.tokens), as FedOTP's image
// encoder gives them, against scripts/goldens/spatial_tokens.py: the golden
// images of the tiny fixture CLIPs encoded by onnxruntime, their spatial
// features turned into tokens, compared with a transcription of FedOTP's
// clip/model.py on the PyTorch reference's own spatial outputs.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import { type ClipModel } from '../src/clip/model.js';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { FeatureSetBuilder, selectRows, spatialTokenizer } from '../src/federation/client-data.js';
import { readSafetensors, toFloat32 } from '../src/io/safetensors.js';
import { fixture, PROJECT_ROOT } from './shared.js';

const GOLDEN = path.join(PROJECT_ROOT, 'test', 'fixtures', 'fedotp', 'spatial-tokens.safetensors');
const models: ClipModel[] = [];
after(async () => Promise.all(models.map((m) => m.release())));

for (const name of ['tiny-rn-openai', 'tiny-vit-openai']) {
  test(`${name}: spatial tokens match FedOTP's image encoder (PyTorch golden) within 1e-5 relative`, async () => {
    const model = await loadClipModel(fixture('clip', name));
    models.push(model);
    const inputs = await readSafetensors(fixture('clip', name, 'goldens.safetensors'));
    const pixels = inputs.tensors.get('input.pixel_values')!;
    const n = pixels.shape[0];
    const { spatial } = await model.encodeImages(toFloat32(pixels), n);
    const golden = (await readSafetensors(GOLDEN)).tensors.get(`${name}.tokens`)!;
    const expected = toFloat32(golden);
    const tokenizer = spatialTokenizer(model.weights);
    const E = model.config.embedDim;
    assert.deepEqual(golden.shape, [n, tokenizer.tokenCount, E]);
    const perItem = spatial.data.length / n;
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < n; i++) {
      const tokens = tokenizer.tokens(spatial.data.subarray(i * perItem, (i + 1) * perItem), spatial.shape.slice(1));
      assert.equal(tokens.length, tokenizer.tokenCount * E);
      tokens.forEach((v, k) => {
        const want = expected[i * tokens.length + k];
        worst = Math.max(worst, Math.abs(v - want));
        scale = Math.max(scale, Math.abs(want));
      });
    }
    console.log(`${name}: tokens max abs error ${worst.toExponential(2)} (largest value ${scale.toFixed(3)})`);
    assert.ok(worst <= 1e-5 * scale, `max abs error ${worst} > 1e-5 × ${scale}`);
  });
}

test('a spatial map of the wrong shape is refused, naming the shape expected', async () => {
  const model = await loadClipModel(fixture('clip', 'tiny-rn-openai'));
  models.push(model);
  assert.throws(() => spatialTokenizer(model.weights).tokens(new Float32Array(512 * 9), [512, 3, 3]), /must be \[512, 2, 2\]/);
});

test('FeatureSetBuilder and selectRows carry tokens row by row, and refuse ones of the wrong size', () => {
  const builder = new FeatureSetBuilder(2, 1, 3);
  const row = (base: number): Float32Array => Float32Array.from({ length: 6 }, (_, k) => base + k);
  builder.add(new Float32Array([1, 2]), new Float32Array([0]), 0, row(0));
  builder.add(new Float32Array([3, 4]), new Float32Array([0]), 1, row(100));
  const set = builder.build();
  assert.equal(set.tokenCount, 3);
  const picked = selectRows(set, [1, 0]);
  assert.deepEqual(picked.tokens!.shape, [2, 3, 2]);
  assert.deepEqual(Array.from(picked.tokens!.data), [...row(100), ...row(0)]);
  assert.throws(() => builder.add(new Float32Array(2), new Float32Array(1), 0, new Float32Array(5)), /3×2 values, got 5/);
  assert.throws(() => builder.add(new Float32Array(2), new Float32Array(1), 0), /got none/);
  assert.throws(() => new FeatureSetBuilder(2, 1).add(new Float32Array(2), new Float32Array(1), 0, row(0)), /built without them/);
  assert.equal(selectRows(new FeatureSetBuilder(2, 1).build(), []).tokens, undefined);
});
