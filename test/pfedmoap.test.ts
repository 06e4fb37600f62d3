// pFedMoAP (src/methods/pfedmoap.ts) without a model: the gating network's
// hand-written gradient against finite differences, the mixture's logits by
// hand, and the server's nearest-expert choice on a hand-made case. The
// clients on real local training are in pfedmoap-clients.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { predictLogits } from '../src/federation/evaluation.js';
import type { FederationSetup } from '../src/federation/method.js';
import {
  GATING_TENSORS, PFEDMOAP_DEFAULTS, expertSlots, expertsOf, initialGating, mixtureGradients, mixtureLogits, nearestExperts, pFedMoAp, strided,
  type MixtureInput, type MixtureSettings,
} from '../src/methods/pfedmoap.js';
import { close, lossOf, unitRows } from './pfedmoap-fixture.js';

/** A small mixture: B 3 images, C 4 classes, E 8 wide, d 4 (a stride of 2), 2 heads, 2 non-local experts. */
function smallCase(seed: number) {
  const random = new SeededRandom(seed);
  const C = 4, E = 8, d = 4;
  const settings: MixtureSettings = { dim: d, heads: 2, lambda: 0.5, scaling: 10 };
  const input: MixtureInput = {
    images: unitRows(random, 3, E), local: unitRows(random, C, E),
    experts: strided(unitRows(random, 2 * C, E), 2 * C, E, d), classes: C, embedDim: E, logitScale: 5,
  };
  const gating = initialGating(d, random);
  return { input, gating, settings, labels: [2, 0, 3] };
}

test('gating network: the gradient of every parameter tensor and of the local features matches finite differences', () => {
  for (const seed of [1, 2]) {
    const { input, gating, settings, labels } = smallCase(seed);
    const result = mixtureGradients(input, gating, settings, labels);
    close(result.loss, lossOf(input, gating, settings, labels), 'loss', 1e-5, 1e-6);
    const h = 1e-2;
    for (const name of GATING_TENSORS) {
      const grad = result.gating[name];
      assert.equal(grad.length, gating[name].length);
      // b_k shifts every expert's score by the same q · b_k (the softmax ignores it), b_v and b_o every class's
      // logit by the same amount (the cross-entropy ignores it): their gradient is 0, which the differences confirm.
      if (['bk', 'bv', 'bo'].includes(name)) assert.ok(grad.every((g) => g === 0), `${name} has a gradient`);
      else assert.ok(grad.some((g) => Math.abs(g) > 1e-6), `${name}: no gradient`);
      for (let i = 0; i < grad.length; i++) {
        const at = (delta: number) => lossOf(input, { ...gating, [name]: Float32Array.from(gating[name], (v, k) => (k === i ? v + delta : v)) }, settings, labels);
        close(grad[i], (at(h) - at(-h)) / (2 * h), `seed ${seed}, ${name}[${i}]`);
      }
    }
    // The local features reach the loss through the λ-weighted logits and, on the strided coordinates, as the first expert's key and value.
    for (let i = 0; i < input.local.length; i++) {
      const at = (delta: number) => lossOf({ ...input, local: Float32Array.from(input.local, (v, k) => (k === i ? v + delta : v)) }, gating, settings, labels);
      close(result.local[i], (at(h) - at(-h)) / (2 * h), `seed ${seed}, local[${i}]`);
    }
  }
});

test('mixture: λ weighs only the local logits, the gated term adds s · pool(x) · gated; with no expert but the local one the attention is trivially 1', () => {
  const { input, gating, settings } = smallCase(3);
  const C = input.classes, E = input.embedDim;
  const plain = predictLogits({ count: 3, embedDim: E, pooledDim: 1, embeds: input.images, pooled: new Float32Array(3), labels: new Int32Array(3) }, input.local, input.logitScale);
  const mixed = mixtureLogits(input, gating, settings);
  const gatedOnly = mixtureLogits(input, gating, { ...settings, lambda: 0 });
  for (let k = 0; k < mixed.length; k++) close(mixed[k] - gatedOnly[k], settings.lambda * plain[k], `logit ${k}`, 1e-5, 1e-5);
  // Local expert alone: softmax over one expert is 1, so gated_c = W_o (W_v t_c + b_v) + b_o exactly.
  const alone = mixtureLogits({ ...input, experts: new Float32Array(0) }, gating, { ...settings, lambda: 0 });
  const d = settings.dim;
  const p = strided(input.images, 3, E, d);
  const t = strided(input.local, C, E, d);
  for (let b = 0; b < 3; b++) {
    for (let c = 0; c < C; c++) {
      const v = Array.from({ length: d }, (_, i) => gating.bv[i] + Array.from({ length: d }, (_, j) => gating.wv[i * d + j] * t[c * d + j]).reduce((a, x) => a + x, 0));
      const z = Array.from({ length: d }, (_, i) => gating.bo[i] + v.reduce((a, x, j) => a + gating.wo[i * d + j] * x, 0));
      const expected = input.logitScale * z.reduce((a, x, i) => a + x * p[b * d + i], 0);
      close(alone[b * C + c], expected, `alone ${b},${c}`, 1e-5, 1e-5);
    }
  }
  assert.throws(() => mixtureLogits({ ...input, experts: new Float32Array(5) }, gating, settings), /expert features of 5 values are not \[n, 4, 4\]/);
  assert.throws(() => mixtureLogits(input, gating, { ...settings, heads: 3 }), /d_gating 4 is not a multiple of the 3 heads/);
  assert.throws(() => strided(input.local, C, E, 3), /joint width 8 is not a multiple of d_gating 3/);
  assert.throws(() => mixtureGradients(input, gating, settings, [0, 1]), /2 labels for 3 images/);
});

test('gating initialisation is nn.Linear\'s: weights d×d and biases d, all within ±1/√d, seeded', () => {
  const g = initialGating(16, new SeededRandom(4));
  for (const name of GATING_TENSORS) {
    assert.equal(g[name].length, name.startsWith('w') ? 256 : 16, name);
    assert.ok(g[name].every((v) => Math.abs(v) <= 0.25), name);
    assert.ok(Math.max(...g[name].map(Math.abs)) > 0.2, `${name} does not fill ±1/√d`);
  }
  assert.deepEqual(initialGating(16, new SeededRandom(4)), g);
  assert.notDeepEqual(initialGating(16, new SeededRandom(5)).wq, g.wq);
});

const tinySetup = (clients: number): FederationSetup => ({ clients, rounds: 3, contextSize: 2, contextRows: 1, contextTokens: 1, width: 2, initialContext: Float32Array.of(0.5, 0.5) });

test('server: each client gets its K nearest other prompts (never its own), nearest first, ties to the lower id; none before it has uploaded', () => {
  const method = pFedMoAp({ ...PFEDMOAP_DEFAULTS, experts: 3 });
  const setup = tinySetup(5);
  assert.equal(expertSlots({ ...PFEDMOAP_DEFAULTS, experts: 3 }, setup), 2);
  assert.equal(expertSlots(PFEDMOAP_DEFAULTS, setup), 4, 'at most every other client');
  const P = [[0, 0], [3, 0], [0, 1], [-1, 0], [10, 10]];
  const uploads = P.map((p, client) => ({ client, samples: client + 1, tensors: { context: Float32Array.from(p) } }));
  const initial = method.server.initialState(setup);
  assert.deepEqual(Object.keys(initial), ['global']);
  // Before any upload: no expert, the run's initial context to start from.
  const first = method.server.download(initial, 0, setup);
  assert.deepEqual(first.global, setup.initialContext);
  assert.deepEqual(first.expertCount, Float32Array.of(0));
  assert.deepEqual(first.experts, new Float32Array(4));
  const server = method.server.aggregate(initial, uploads, setup);
  // ‖P0 − P2‖ = 1 = ‖P0 − P3‖ (tie: 2 before 3), ‖P0 − P1‖ = 3.
  assert.deepEqual(nearestExperts(server, 0, 2), [2, 3]);
  assert.deepEqual(nearestExperts(server, 0, 4), [2, 3, 1, 4]);
  assert.deepEqual(nearestExperts(server, 4, 2), [1, 2]);
  assert.deepEqual(nearestExperts(server, 1, 1), [0]);
  for (let c = 0; c < 5; c++) assert.ok(!nearestExperts(server, c, 4).includes(c), `client ${c} was sent its own prompt`);
  // The tie is broken by id, not by the order the prompts were stored in.
  const reversed = method.server.aggregate(initial, [...uploads].reverse(), setup);
  assert.deepEqual(nearestExperts(reversed, 0, 2), [2, 3]);
  const down = method.server.download(server, 0, setup);
  assert.deepEqual(down.expertCount, Float32Array.of(2));
  assert.deepEqual(down.experts, Float32Array.of(0, 1, -1, 0));
  // global: FedAvg weighted by training images, Σ w P / Σ w with w = 1…5.
  const total = 15;
  assert.deepEqual(down.global, Float32Array.of((3 * 2 - 1 * 4 + 10 * 5) / total, (1 * 3 + 10 * 5) / total));
  const plain = pFedMoAp({ ...PFEDMOAP_DEFAULTS, weighted: false }).server.aggregate(initial, uploads, setup);
  assert.deepEqual(plain.global, Float32Array.of(12 / 5, 11 / 5));
});

test('server: a client that did not upload this round keeps its stored prompt; one with none stored gets no experts', () => {
  const method = pFedMoAp({ ...PFEDMOAP_DEFAULTS, experts: 3 });
  const setup = tinySetup(3);
  const s1 = method.server.aggregate(method.server.initialState(setup), [0, 1].map((client) => ({ client, samples: 1, tensors: { context: Float32Array.of(client, 0) } })), setup);
  const s2 = method.server.aggregate(s1, [{ client: 0, samples: 1, tensors: { context: Float32Array.of(5, 5) } }], setup);
  assert.deepEqual(s2['prompt/1'], Float32Array.of(1, 0));
  assert.deepEqual(s2['prompt/0'], Float32Array.of(5, 5));
  assert.deepEqual(s2.global, Float32Array.of(5, 5), 'the global prompt averages only this round\'s uploads');
  assert.deepEqual(method.server.download(s2, 2, setup).expertCount, Float32Array.of(0));
  const one = method.server.download(s2, 1, setup);
  assert.deepEqual(one.expertCount, Float32Array.of(1));
  assert.deepEqual(one.experts, Float32Array.of(5, 5, 0, 0));
});

test('client: a download with the wrong expert slots, count or shape is refused by name', () => {
  const setup = tinySetup(4);
  const slots = 2;
  const ok = { global: Float32Array.of(0, 0), experts: Float32Array.of(1, 2, 3, 4), expertCount: Float32Array.of(2) };
  assert.deepEqual(expertsOf(ok, setup, slots).map((e) => Array.from(e)), [[1, 2], [3, 4]]);
  assert.deepEqual(expertsOf({ ...ok, expertCount: Float32Array.of(1) }, setup, slots).map((e) => Array.from(e)), [[1, 2]]);
  assert.throws(() => expertsOf({ ...ok, experts: Float32Array.of(1, 2, 3) }, setup, slots), /"experts" has 3 values, expected 2 expert slots × 2/);
  assert.throws(() => expertsOf({ ...ok, experts: Float32Array.of(1, 2, 3, 4, 5, 6) }, setup, slots), /"experts" has 6 values/);
  assert.throws(() => expertsOf({ ...ok, expertCount: Float32Array.of(3) }, setup, slots), /"expertCount" is 3, expected an integer from 0 to 2/);
  assert.throws(() => expertsOf({ ...ok, expertCount: Float32Array.of(-1) }, setup, slots), /"expertCount" is -1/);
  assert.throws(() => expertsOf({ ...ok, expertCount: Float32Array.of(0.5) }, setup, slots), /"expertCount" is 0.5/);
  assert.throws(() => expertsOf({ ...ok, expertCount: Float32Array.of(1, 1) }, setup, slots), /lacks tensor "expertCount" \(one value\)/);
  const { experts: _e, ...noExperts } = ok;
  assert.throws(() => expertsOf(noExperts, setup, slots), /lacks tensor "experts"/);
  const { expertCount: _c, ...noCount } = ok;
  assert.throws(() => expertsOf(noCount, setup, slots), /lacks tensor "expertCount"/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, experts: 0 }), /experts must be a positive integer, got 0/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, experts: 2.5 }), /experts must be a positive integer/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingDim: 100, heads: 8 }), /d_gating \(100\) must be a positive multiple of the heads \(8\)/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, heads: 0 }), /d_gating/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingDim: 4, heads: 8 }), /d_gating/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingDim: 0, heads: 8 }), /d_gating \(0\)/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingDim: 8, heads: -2 }), /heads \(-2\)/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingDim: 3, heads: 1.5 }), /heads \(1.5\)/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, lambda: -1 }), /λ must be non-negative/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, scaling: 0 }), /scaling/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingLr: 0 }), /gating learning rate/);
});


test('the method names itself and what it trains, uploads and keeps; its edge options are valid', () => {
  const method = pFedMoAp();
  assert.equal(method.id, 'pfedmoap');
  assert.equal(method.label, 'pFedMoAP');
  assert.ok(method.trainsPrompt);
  for (const text of [method.trains, method.uploads, method.staysOnClient]) assert.ok(text.length > 10, text);
  assert.match(method.staysOnClient, /gating/);
  for (const edge of [{ experts: 1 }, { gatingDim: 8, heads: 8 }, { heads: 1 }, { lambda: 0 }]) assert.doesNotThrow(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, ...edge }), JSON.stringify(edge));
  assert.equal(expertSlots({ ...PFEDMOAP_DEFAULTS, experts: 1 }, tinySetup(5)), 0);
  assert.equal(expertSlots(PFEDMOAP_DEFAULTS, tinySetup(1)), 0);
  // No slot at all: an empty experts tensor and a count of 0.
  const lone = pFedMoAp({ ...PFEDMOAP_DEFAULTS, experts: 1 });
  const setup = tinySetup(3);
  const server = lone.server.aggregate(lone.server.initialState(setup), [0, 1].map((client) => ({ client, samples: 1, tensors: { context: Float32Array.of(client, 1) } })), setup);
  assert.deepEqual(lone.server.download(server, 0, setup), { global: Float32Array.of(0.5, 1), experts: new Float32Array(0), expertCount: Float32Array.of(0) });
});
