// pFedMoAP (src/methods/pfedmoap.ts) on real local training with the tiny
// fixture CLIP: the prompt's gradient through the mixture and the text tower
// against finite differences, and what clients keep, upload and predict.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { normalizeRows } from '../src/clip/similarity.js';
import { predictLogits } from '../src/federation/evaluation.js';
import { textTower } from '../src/federation/text-tower.js';
import type { ClientRuntime, Tensors } from '../src/federation/method.js';
import { GATING_TENSORS, PFEDMOAP_DEFAULTS, initialGating, mixtureGradients, strided, mixtureLogits, type Gating, type MixtureInput, type MixtureSettings } from '../src/methods/pfedmoap.js';
import { computeFor, hostSetup, localClients, methodWith, useShapesClients } from './method-fixture.js';
import { close, lossOf, unitRows } from './pfedmoap-fixture.js';
import { CLASSNAMES } from './synthetic-dataset.js';

const shapes = useShapesClients();
const SEED = 7;
const C = CLASSNAMES.length;

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
  const { method, setup, federation, history } = await federate(3);
  assert.deepEqual(method.server.uploadSpec(federation), { context: federation.contextSize });
  // What a client keeps of its experts: their class features under the prompts it was sent, strided to d (here the whole 48).
  const tower = textTower(await computeFor(setup));
  for (const k of [0, 1, 2]) {
    const sent = history[1].downloads[k].experts;
    const size = federation.contextSize;
    const expected = [0, 1].map(async (e) => Array.from(strided(await tower.features(sent.slice(e * size, (e + 1) * size)), C, 48, 48)));
    assert.deepEqual(Array.from(history[1].personal[k].experts), (await Promise.all(expected)).flat(), `client ${k}: kept expert features`);
  }
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

test('clients: a round without experts trains the prompt alone and keeps the gating network as it was', async () => {
  const { method, setup, history } = await federate(2);
  const { clients, stores } = await localClients(method, setup);
  const [r1, r2] = history;
  await stores[0].save(r2.personal[0]);
  await clients[0].fit(3, r1.downloads[0]);
  const after = (await stores[0].load())!;
  for (const name of GATING_TENSORS) assert.deepEqual(after[`gating/${name}`], r2.personal[0][`gating/${name}`], name);
  assert.ok(after.context.some((v, i) => v !== r2.personal[0].context[i]), 'the prompt did not train');
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
  // Gating but no experts kept: the own prompt.
  const { experts: _experts, ...noExperts } = r2.personal[0];
  assert.deepEqual(method.client.predictor(runtime(0), r2.downloads[0], noExperts).context, r2.personal[0].context);
  // More images than one chunk of the prediction: the same logits as one pass.
  const many = 150;
  const rows = Array.from({ length: many }, (_, i) => i % set.count);
  const big = { ...set, count: many, embeds: Float32Array.from(rows.flatMap((r) => Array.from(set.embeds.subarray(r * set.embedDim, (r + 1) * set.embedDim)))), labels: Int32Array.from(rows, (r) => set.labels[r]) };
  const bigLogits = await predictor.logits(big);
  assert.equal(bigLogits.length, many * C);
  rows.forEach((r, i) => { for (let c = 0; c < C; c++) assert.ok(Math.abs(bigLogits[i * C + c] - mixed[r * C + c]) < 1e-4, `image ${i}, class ${c}`); });
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
