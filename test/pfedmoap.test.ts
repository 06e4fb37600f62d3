// pFedMoAP (src/methods/pfedmoap.ts): the gating network's hand-written
// gradient and the prompt's gradient through the mixture against finite
// differences, the server's nearest-expert choice on a hand-made case, and
// what a client does with it on real local training with the tiny fixture CLIP.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { normalizeRows } from '../src/clip/similarity.js';
import { predictLogits } from '../src/federation/evaluation.js';
import { textTower } from '../src/federation/text-tower.js';
import type { ClientRuntime, FederationSetup, Tensors } from '../src/federation/method.js';
import {
  GATING_TENSORS, PFEDMOAP_DEFAULTS, expertSlots, expertsOf, initialGating, mixtureGradients, mixtureLogits, nearestExperts, pFedMoAp, strided,
  type Gating, type MixtureInput, type MixtureSettings,
} from '../src/methods/pfedmoap.js';
import { computeFor, hostSetup, localClients, methodWith, useShapesClients } from './method-fixture.js';
import { CLASSNAMES } from './synthetic-dataset.js';

const C = CLASSNAMES.length;

const shapes = useShapesClients();
const SEED = 7;

function unitRows(random: SeededRandom, rows: number, cols: number): Float32Array {
  return normalizeRows({ shape: [rows, cols], data: random.normals(rows * cols) });
}

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

function lossOf(input: MixtureInput, gating: Gating, settings: MixtureSettings, labels: readonly number[]): number {
  const logits = mixtureLogits(input, gating, settings);
  const C = input.classes;
  let loss = 0;
  labels.forEach((label, b) => {
    const row = Array.from(logits.subarray(b * C, (b + 1) * C));
    const max = Math.max(...row);
    loss += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[label];
  });
  return loss / labels.length;
}

function close(analytic: number, numeric: number, what: string, rel = 2e-3, abs = 2e-4): void {
  assert.ok(Math.abs(analytic - numeric) <= rel * Math.max(1, Math.abs(numeric)) + abs, `${what}: analytic ${analytic}, numeric ${numeric}`);
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

test('prompt gradient through the mixture (text tower VJP included) matches finite differences', async () => {
  const { method, options } = methodWith('pfedmoap');
  const setup = await hostSetup(method, shapes.clients, SEED, options);
  const tower = textTower(await computeFor(setup));
  const random = new SeededRandom(9);
  const C = tower.classes, E = tower.dim, d = E / 2;
  const settings: MixtureSettings = { dim: d, heads: 4, lambda: 0.5, scaling: 10 };
  const experts = Float32Array.from(await tower.features(random.normals(setup.settings.federation.contextSize, 0.02)));
  const input = (local: Float32Array): MixtureInput => ({
    images: unitRows(new SeededRandom(3), 4, E), local, experts: strided(experts, C, E, d), classes: C, embedDim: E, logitScale: tower.logitScale,
  });
  const gating = initialGating(d, random);
  const labels = [0, 1, 2, 1];
  const context = setup.settings.federation.initialContext;
  const { features, backward } = await tower.withGradient(context);
  const grad = await backward(mixtureGradients(input(features), gating, settings, labels).local);
  const h = 1e-3;
  for (const i of [0, 5, 70, context.length - 1]) {
    const at = async (delta: number) => lossOf(input(await tower.features(Float32Array.from(context, (v, k) => (k === i ? v + delta : v)))), gating, settings, labels);
    close(grad[i], ((await at(h)) - (await at(-h))) / (2 * h), `context[${i}]`, 5e-3, 5e-4);
  }
  assert.ok(grad.some((g) => Math.abs(g) > 1e-4), 'no gradient reaches the prompt');
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
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, lambda: -1 }), /λ must be non-negative/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, scaling: 0 }), /scaling/);
  assert.throws(() => pFedMoAp({ ...PFEDMOAP_DEFAULTS, gatingLr: 0 }), /gating learning rate/);
});

/** Three real clients of pFedMoAP run round by round through the server half, as the engine does. */
async function federate(rounds: number, extra: Partial<typeof PFEDMOAP_DEFAULTS> = {}) {
  const { method, options } = methodWith('pfedmoap', { moap: { ...PFEDMOAP_DEFAULTS, heads: 4, ...extra } });
  const setup = await hostSetup(method, shapes.clients, SEED, options);
  const federation = setup.settings.federation;
  const { clients, stores } = await localClients(method, setup);
  let server = method.server.initialState(federation);
  const history: { downloads: Tensors[]; uploads: Tensors[]; personal: Tensors[] }[] = [];
  for (let round = 1; round <= rounds; round++) {
    const downloads = clients.map((_, k) => method.server.download(server, k, federation));
    const replies = [];
    for (const [k, client] of clients.entries()) replies.push(await client.fit(round, downloads[k]));
    server = method.server.aggregate(server, replies.map((r) => ({ client: r.client, samples: r.samples, tensors: r.upload })), federation);
    history.push({ downloads, uploads: replies.map((r) => r.upload), personal: await Promise.all(stores.map((s) => s.load() as Promise<Tensors>)) });
  }
  return { method, setup, federation, clients, stores, server, history };
}

function containsRun(haystack: Float32Array, needle: Float32Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return true;
  }
  return false;
}

test('clients: round 1 trains the prompt alone from the initial context; later rounds start from the FedAvg prompt and train a gating network that persists per client and never leaves', async () => {
  const { method, federation, history } = await federate(3);
  assert.deepEqual(method.server.uploadSpec(federation), { context: federation.contextSize });
  const [r1, r2, r3] = history;
  for (const k of [0, 1, 2]) {
    assert.deepEqual(r1.downloads[k].expertCount, Float32Array.of(0));
    assert.deepEqual(r1.downloads[k].global, federation.initialContext);
    assert.deepEqual(Object.keys(r1.personal[k]), ['context'], 'round 1 has no experts, so no gating network');
    assert.deepEqual(r2.downloads[k].expertCount, Float32Array.of(2), 'both other clients are experts from round 2');
    for (const round of history) {
      // Only the local prompt leaves the client.
      assert.deepEqual(Object.keys(round.uploads[k]), ['context']);
    }
    assert.deepEqual(r2.uploads[k].context, r2.personal[k].context);
    for (const name of GATING_TENSORS) {
      const g2 = r2.personal[k][`gating/${name}`];
      const g3 = r3.personal[k][`gating/${name}`];
      assert.ok(g2 && g3, `client ${k} keeps gating/${name}`);
      assert.ok(g3.some((v, i) => v !== g2[i]), `client ${k}: gating/${name} did not train in round 3`);
      assert.ok(!containsRun(r3.uploads[k].context, g3.subarray(0, 4)), 'gating values in the upload');
    }
    assert.equal(r2.personal[k].experts.length, 2 * C * 48, 'the two experts\' pooled features, [n, C, d]');
  }
  // Round 2 starts from the FedAvg of round 1's prompts (what the server sends as global).
  const expected = federation.initialContext.map((_, i) => {
    const samples = shapes.clients.map((c) => c.train[0].count);
    return r1.uploads.reduce((s, u, k) => s + samples[k] * u.context[i], 0) / samples.reduce((a, b) => a + b, 0);
  });
  r2.downloads[0].global.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `global[${i}]`));
  // The expert of client 0 in round 2 is another client's round-1 prompt, never its own.
  const sent = r2.downloads[0].experts;
  assert.ok(containsRun(sent, r1.uploads[1].context) && containsRun(sent, r1.uploads[2].context) && !containsRun(sent, r1.uploads[0].context));
  // Gating networks are personal: they differ between clients.
  assert.ok(r3.personal[0]['gating/wq'].some((v, i) => v !== r3.personal[1]['gating/wq'][i]));
});

test('clients: round 3 continues the gating network kept from round 2 (a client without it ends elsewhere)', async () => {
  const { method, setup, history } = await federate(2);
  const { clients, stores } = await localClients(method, setup);
  const [, r2] = history;
  const download = r2.downloads[0];
  await stores[0].save(r2.personal[0]);
  await clients[0].fit(3, download);
  const kept = (await stores[0].load())!;
  const { context, ...rest } = r2.personal[0];
  void rest;
  await stores[0].save({ context });
  await clients[0].fit(3, download);
  const fresh = (await stores[0].load())!;
  assert.ok(kept['gating/wo'].some((v, i) => v !== fresh['gating/wo'][i]), 'the kept gating network made no difference');
});

test('prediction: the mixture of the kept experts, which differs from the client\'s own prompt and from PromptFL; before any expert, the own or the global prompt', async () => {
  const { method, setup, federation, clients, history } = await federate(2);
  const [r1, r2] = history;
  const compute = await computeFor(setup);
  const tower = textTower(compute);
  const runtime = (k: number): ClientRuntime => ({
    setup: federation, data: shapes.clients[k], numClasses: C, round: 3, text: tower,
    train: () => { throw new Error('no training'); }, schedule: () => { throw new Error('no training'); },
  });
  const set = shapes.clients[0].test;
  const predictor = method.client.predictor(runtime(0), r2.downloads[0], r2.personal[0]);
  assert.ok(predictor.logits && !predictor.context);
  const mixed = await predictor.logits(set);
  assert.equal(mixed.length, set.count * C);
  const own = predictLogits(set, await tower.features(r2.personal[0].context), tower.logitScale);
  assert.ok(mixed.some((v, i) => Math.abs(v - own[i]) > 1e-3), 'the mixture predicts as the own prompt does');
  // PromptFL after the same two rounds.
  const promptfl = methodWith('promptfl');
  const flSetup = await hostSetup(promptfl.method, shapes.clients, SEED, promptfl.options);
  const fl = await localClients(promptfl.method, flSetup);
  let global = flSetup.settings.federation.initialContext;
  for (let round = 1; round <= 2; round++) {
    const replies = [];
    for (const c of fl.clients) replies.push(await c.fit(round, { context: global }));
    global = promptfl.method.server.aggregate({}, replies.map((r) => ({ client: r.client, samples: r.samples, tensors: r.upload })), flSetup.settings.federation).context;
  }
  const flLogits = predictLogits(set, await tower.features(global), tower.logitScale);
  assert.ok(mixed.some((v, i) => Math.abs(v - flLogits[i]) > 1e-3), 'pFedMoAP predicts as PromptFL does');
  // The mixture as mixtureLogits computes it from the kept state.
  const d = 48;
  const gating = Object.fromEntries(GATING_TENSORS.map((n) => [n, r2.personal[0][`gating/${n}`]])) as Gating;
  const direct = mixtureLogits({
    images: normalizeRows({ shape: [set.count, set.embedDim], data: set.embeds }), local: await tower.features(r2.personal[0].context),
    experts: r2.personal[0].experts, classes: C, embedDim: set.embedDim, logitScale: tower.logitScale,
  }, gating, { dim: d, heads: 4, lambda: 0.5, scaling: 10 });
  direct.forEach((v, i) => assert.ok(Math.abs(v - mixed[i]) < 1e-4, `logit ${i}`));
  // Accuracy through the client (the engine's path) uses the same logits.
  assert.ok((await clients[0].evaluate('test', r2.downloads[0])).accuracies[0] >= 0);
  // Without experts yet: the own prompt; without any state: the global prompt.
  assert.deepEqual(method.client.predictor(runtime(0), r1.downloads[0], r1.personal[0]).context, r1.personal[0].context);
  assert.deepEqual(method.client.predictor(runtime(0), r2.downloads[0], undefined).context, r2.downloads[0].global);
  // A kept state of the wrong shape is refused by name.
  assert.throws(() => method.client.predictor(runtime(0), r2.downloads[0], { ...r2.personal[0], 'gating/wq': new Float32Array(3) }), /personal "gating\/wq" has 3 values, expected 2304/);
  const { ['gating/bo']: _bo, ...noBo } = r2.personal[0];
  assert.throws(() => method.client.predictor(runtime(0), r2.downloads[0], noBo), /personal state lacks "gating\/bo"/);
  assert.throws(() => method.client.predictor(runtime(0), r2.downloads[0], { ...r2.personal[0], experts: new Float32Array(7) }), new RegExp(`personal "experts" has 7 values, not \\[n, ${C}, 48\\]`));
  // A fit with a download of the wrong shape is refused before training.
  await assert.rejects(clients[0].fit(3, { ...r2.downloads[0], experts: new Float32Array(5) }), /"experts" has 5 values, expected 2 expert slots/);
  await assert.rejects(clients[0].fit(3, { ...r2.downloads[0], global: new Float32Array(5) }), /tensor "global" has 5 values/);
});

test('clients: the gating network learns at its own constant rate (further at a higher one), and λ changes the training', async () => {
  const start = (await federate(2, { gatingLr: 1e-12 })).history[1].personal[0]['gating/wq'];
  const moved = async (gatingLr: number) => {
    const wq = (await federate(2, { gatingLr })).history[1].personal[0]['gating/wq'];
    return Math.sqrt(wq.reduce((s, v, i) => s + (v - start[i]) ** 2, 0));
  };
  const slow = await moved(0.01);
  const fast = await moved(0.05);
  assert.ok(slow > 0 && fast > 2 * slow, `gating moved ${slow} at lr 0.01 and ${fast} at lr 0.05`);
  const base = await federate(2);
  const other = await federate(2, { lambda: 2 });
  assert.ok(other.history[1].uploads[0].context.some((v, i) => v !== base.history[1].uploads[0].context[i]), 'λ makes no difference to training');
  assert.deepEqual(other.history[0].uploads[0].context, base.history[0].uploads[0].context, 'round 1 (no experts) must not depend on λ');
});
