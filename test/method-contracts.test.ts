// Each method's two halves checked by hand, without CLIP: what the server
// starts from, sends and makes of uploads (partial participation included),
// what a client trains from, with which penalty, what it uploads and keeps,
// what it predicts with before and after it has state of its own, and the
// errors on bad options. The client runs on a fake runtime that records what
// the method asks of the shared training loop, so a method that passes the
// wrong start, the wrong penalty strength or the wrong tensors fails here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClientData, FeatureSet } from '../src/federation/client-data.js';
import type { LocalTrainingResult, Penalty } from '../src/federation/local-training.js';
import type { ClientRuntime, ClientUpload, FederationSetup, Method, Tensors } from '../src/federation/method.js';
import { DEFAULT_METHOD_OPTIONS, METHOD_IDS, createMethod, isMethodId, type MethodId, type MethodOptions } from '../src/methods/index.js';
import { FEDOTP_DEFAULTS } from '../src/methods/fedotp.js';
import { promptAmp } from '../src/methods/promptamp.js';
import { promptFl } from '../src/methods/promptfl.js';
import { fineTuneRates, promptFlFineTuned } from '../src/methods/promptfl-ft.js';
import { promptPer } from '../src/methods/promptper.js';
import { promptProx } from '../src/methods/promptprox.js';
import { HAND_PROMPT_WORDS } from '../src/methods/zero-shot.js';

/** A [rows, width] context whose value k is `offset + k`, so every row is recognisable. */
const ramp = (length: number, offset: number): Float32Array => Float32Array.from({ length }, (_, k) => offset + k);

/** M = 4 context tokens of width 2, one shared context (4 rows) or one per class of 2 (8 rows). */
function setupOf(rows: 4 | 8, clients = 3): FederationSetup {
  return { clients, rounds: 2, contextSize: rows * 2, contextRows: rows, contextTokens: 4, width: 2, initialContext: ramp(rows * 2, 100) };
}

const emptySet: FeatureSet = { count: 0, embedDim: 1, pooledDim: 1, embeds: new Float32Array(0), pooled: new Float32Array(0), labels: new Int32Array(0) };
const clientData = (id: number): ClientData => ({ id, classes: [0], train: [emptySet], val: emptySet, test: emptySet });

interface TrainCall {
  readonly start: Float32Array;
  readonly penalty?: Penalty;
}

/** A runtime whose training loop only records what it was asked and returns `trained` (loss 0.75, 6 steps). */
function fakeRuntime(setup: FederationSetup, trained: Float32Array, calls: TrainCall[] = []): ClientRuntime {
  const unused = () => { throw new Error('not used by this method'); };
  return {
    setup, data: clientData(1), numClasses: 2, round: 1,
    train: async (start, options): Promise<LocalTrainingResult> => {
      calls.push({ start: start.slice(), penalty: options?.penalty });
      return { context: trained, meanLoss: 0.75, steps: 6 };
    },
    schedule: unused,
    text: { logitScale: NaN, classes: 0, dim: 0, features: unused, withGradient: unused },
  };
}

/** The penalty's value and gradient at `at` against (μ/2)‖at − anchor‖² and μ(at − anchor), by hand. */
function assertProximal(penalty: Penalty | undefined, at: Float32Array, anchor: Float32Array, mu: number, what: string): void {
  assert.ok(penalty, `${what}: no penalty`);
  const { value, grad } = penalty(at);
  let sum = 0;
  for (let k = 0; k < at.length; k++) sum += (at[k] - anchor[k]) ** 2;
  assert.ok(Math.abs(value - 0.5 * mu * sum) < 1e-9 * Math.max(1, value), `${what}: value ${value}, expected ${0.5 * mu * sum} (μ = ${mu})`);
  grad.forEach((g, k) => assert.ok(Math.abs(g - mu * (at[k] - anchor[k])) < 1e-5, `${what}: gradient ${k} is ${g}, expected ${mu * (at[k] - anchor[k])}`));
}

const upload = (client: number, samples: number, tensors: Tensors): ClientUpload => ({ client, samples, tensors });
const methodOf = (id: MethodId, options: Partial<MethodOptions> = {}): Method => createMethod(id, { ...DEFAULT_METHOD_OPTIONS, ...options });

test('every method answers to its config id, and has a label of its own (tables and charts group results by label); an unknown id is refused by name', () => {
  const labels = new Set<string>();
  for (const id of METHOD_IDS) {
    const method = createMethod(id);
    assert.equal(method.id, id);
    assert.ok(isMethodId(id));
    assert.ok(method.label.length > 0 && !labels.has(method.label), `${id}: label "${method.label}" is empty or taken`);
    labels.add(method.label);
  }
  assert.equal(labels.size, METHOD_IDS.length);
  assert.equal(isMethodId('fedavg'), false);
  assert.throws(() => createMethod('fedavg' as MethodId), new RegExp(`unknown method "fedavg" \\(known: ${METHOD_IDS.join(', ')}\\)$`));
});

test('DEFAULT_METHOD_OPTIONS, as the package exports it, holds FedOTP\'s published transport settings (its weighting is the run\'s)', () => {
  const { weighted: _weighted, ...transport } = FEDOTP_DEFAULTS;
  assert.deepEqual(DEFAULT_METHOD_OPTIONS.fedotp, transport);
  assert.ok(Object.keys(transport).length > 0);
});

test('PromptAMP: the server keeps one cloud prompt per client (the seeded start at first), sends client i its own, and replaces only the cloud prompts of the clients that took part', () => {
  const setup = setupOf(4);
  const method = promptAmp();
  assert.deepEqual(method.server.uploadSpec(setup), { context: 8 });
  const server = method.server.initialState(setup);
  assert.deepEqual(Object.keys(server).sort(), ['cloud/0', 'cloud/1', 'cloud/2']);
  for (const u of Object.values(server)) assert.deepEqual(u, setup.initialContext);
  const next = method.server.aggregate({ ...server, 'cloud/1': ramp(8, 7) }, [upload(0, 1, { context: ramp(8, 0) }), upload(2, 1, { context: ramp(8, 50) })], setup);
  assert.deepEqual(next['cloud/1'], ramp(8, 7), 'client 1 sat the round out, yet its cloud prompt changed');
  for (const client of [0, 2]) {
    assert.notDeepEqual(next[`cloud/${client}`], server[`cloud/${client}`]);
    assert.deepEqual(method.server.download(next, client, setup), { cloud: next[`cloud/${client}`] });
  }
  // Far apart, each barely attends to the other: u_0 stays near P_0.
  assert.ok(next['cloud/0'].every((v, k) => Math.abs(v - k) < 1e-6), `u_0 = ${next['cloud/0']}`);
});

test('PromptAMP: a client trains from its own context (the cloud prompt before it has one), held towards its cloud prompt by (λ/2α_K)‖P − u_i‖², and uploads and keeps what it trained', async () => {
  const setup = setupOf(4);
  const cloud = ramp(8, 10);
  const own = ramp(8, 20);
  const trained = ramp(8, 30);
  for (const [lambda, alphaK] of [[0.3, 0.2], [2, 0.5]]) {
    const method = promptAmp({ alphaK, sigma: 1, lambda });
    const calls: TrainCall[] = [];
    const first = await method.client.fit(fakeRuntime(setup, trained, calls), { cloud }, undefined);
    const later = await method.client.fit(fakeRuntime(setup, trained, calls), { cloud }, { context: own });
    assert.deepEqual(calls.map((c) => c.start), [cloud, own]);
    for (const call of calls) assertProximal(call.penalty, ramp(8, -3), cloud, lambda / alphaK, `λ ${lambda}, α_K ${alphaK}`);
    for (const result of [first, later]) assert.deepEqual(result, { upload: { context: trained }, personal: { context: trained }, loss: 0.75, steps: 6 });
  }
});

test('PromptAMP and local CoOp predict with the client\'s own context, and with what they are sent while a client has none (never drawn under partial participation)', () => {
  const setup = setupOf(4);
  const runtime = fakeRuntime(setup, ramp(8, 0));
  const own = { context: ramp(8, 20) };
  const amp = promptAmp();
  assert.deepEqual(amp.client.predictor(runtime, { cloud: ramp(8, 10) }, own).context, own.context);
  assert.deepEqual(amp.client.predictor(runtime, { cloud: ramp(8, 10) }, undefined).context, ramp(8, 10));
  assert.deepEqual(amp.client.predictor(runtime, { cloud: ramp(8, 10) }, {}).context, ramp(8, 10));
  const coop = createMethod('local-coop');
  assert.deepEqual(coop.client.predictor(runtime, { context: ramp(8, 10) }, own).context, own.context);
  assert.deepEqual(coop.client.predictor(runtime, { context: ramp(8, 10) }, undefined).context, ramp(8, 10));
  assert.throws(() => amp.client.predictor(runtime, { cloud: ramp(6, 10) }, undefined), /tensor "context" has 6 values, expected 8/);
});

test('local CoOp: nothing is uploaded, the server only hands out the seeded start, and a client trains from its own context once it has one', async () => {
  const setup = setupOf(4);
  const method = createMethod('local-coop');
  assert.deepEqual(method.server.uploadSpec(setup), {});
  const server = method.server.initialState(setup);
  assert.deepEqual(server, { context: setup.initialContext });
  assert.deepEqual(method.server.download(server, 2, setup), server);
  assert.deepEqual(method.server.aggregate(server, [], setup), server);
  const calls: TrainCall[] = [];
  const first = await method.client.fit(fakeRuntime(setup, ramp(8, 30), calls), server, undefined);
  await method.client.fit(fakeRuntime(setup, ramp(8, 30), calls), server, { context: ramp(8, 20) });
  assert.deepEqual(calls.map((c) => c.start), [setup.initialContext, ramp(8, 20)]);
  assert.equal(calls[0].penalty, undefined);
  assert.deepEqual(first, { upload: {}, personal: { context: ramp(8, 30) }, loss: 0.75, steps: 6 });
});

test('PromptAMP refuses α_K ≤ 0, σ ≤ 0 and λ < 0 (and NaN), naming the options; λ = 0 is allowed', () => {
  const bad = [{ alphaK: 0 }, { alphaK: -0.1 }, { sigma: 0 }, { sigma: -1 }, { lambda: -0.5 }, { alphaK: NaN }, { sigma: NaN }, { lambda: NaN }];
  for (const change of bad) {
    const amp = { ...DEFAULT_METHOD_OPTIONS.amp, ...change };
    assert.throws(() => createMethod('promptamp', { ...DEFAULT_METHOD_OPTIONS, amp }), /PromptAMP: α_K and σ must be positive and λ non-negative/, JSON.stringify(change));
  }
  assert.equal(promptAmp({ alphaK: 0.1, sigma: 1, lambda: 0 }).id, 'promptamp');
  assert.equal(promptAmp({ alphaK: 1e-9, sigma: 1e-9, lambda: 1e-9 }).id, 'promptamp');
});

test('PromptFL and PromptProx: FedAvg weighted by training images by default, a plain mean with weighted off; every client trains from and predicts with the global context', async () => {
  const setup = setupOf(4);
  const a = upload(0, 1, { context: ramp(8, 0) });
  const b = upload(1, 3, { context: ramp(8, 4) });
  for (const id of ['promptfl', 'promptprox'] as const) {
    const weighted = methodOf(id);
    const plain = methodOf(id, { weighted: false });
    assert.deepEqual(weighted.server.uploadSpec(setup), { context: 8 });
    assert.deepEqual(weighted.server.initialState(setup), { context: setup.initialContext });
    assert.deepEqual(weighted.server.aggregate({}, [a, b], setup), { context: ramp(8, 3) }, id);
    assert.deepEqual(plain.server.aggregate({}, [a, b], setup), { context: ramp(8, 2) }, id);
    const sent = { context: ramp(8, 10) };
    assert.deepEqual(weighted.server.download(sent, 1, setup), sent);
    const calls: TrainCall[] = [];
    const result = await weighted.client.fit(fakeRuntime(setup, ramp(8, 30), calls), sent, { context: ramp(8, 20) });
    assert.deepEqual(calls[0].start, sent.context, `${id} did not train from the global context`);
    assert.deepEqual(result, { upload: { context: ramp(8, 30) }, personal: {}, loss: 0.75, steps: 6 });
    assert.deepEqual(weighted.client.predictor(fakeRuntime(setup, sent.context), sent, undefined).context, sent.context);
  }
});

test('built without options, PromptFL, PromptProx and PromptPer average weighted by training images, as the config\'s default does', () => {
  const setup = setupOf(4);
  const a = upload(0, 1, { context: ramp(8, 0), global: ramp(4, 0) });
  const b = upload(1, 3, { context: ramp(8, 4), global: ramp(4, 4) });
  assert.equal(DEFAULT_METHOD_OPTIONS.weighted, true);
  assert.deepEqual(promptFl().server.aggregate({}, [a, b], setup), { context: ramp(8, 3) });
  assert.deepEqual(promptProx().server.aggregate({}, [a, b], setup), { context: ramp(8, 3) });
  assert.deepEqual(promptPer().server.aggregate({}, [a, b], setup), { global: ramp(4, 3) });
});

test("PromptProx's client is held towards the context it was sent by (μ/2)‖P − P_global‖² with the configured μ; PromptFL trains without a penalty", async () => {
  const setup = setupOf(4);
  const sent = { context: ramp(8, 10) };
  for (const mu of [0.5, 0.125]) {
    const calls: TrainCall[] = [];
    await methodOf('promptprox', { mu }).client.fit(fakeRuntime(setup, ramp(8, 30), calls), sent, undefined);
    assertProximal(calls[0].penalty, ramp(8, -3), sent.context, mu, `μ ${mu}`);
  }
  const calls: TrainCall[] = [];
  await methodOf('promptfl').client.fit(fakeRuntime(setup, ramp(8, 30), calls), sent, undefined);
  assert.equal(calls[0].penalty, undefined);
});

test('PromptPer splits the context by token: with class-specific contexts the first globalTokens of every class are global, the rest personal; the client assembles, trains, uploads and keeps each part', async () => {
  const setup = setupOf(8); // 2 classes × M = 4 tokens, width 2
  const W = 2;
  const rowsOf = (context: Float32Array, rows: number[]) => Float32Array.from(rows.flatMap((r) => [...context.subarray(r * W, (r + 1) * W)]));
  for (const [globalTokens, global, personal] of [[undefined, [0, 1, 4, 5], [2, 3, 6, 7]], [1, [0, 4], [1, 2, 3, 5, 6, 7]]] as const) {
    const method = methodOf('promptper', { globalTokens });
    assert.deepEqual(method.server.uploadSpec(setup), { global: global.length * W });
    assert.deepEqual(method.server.initialState(setup), { global: rowsOf(setup.initialContext, [...global]) });
    const sent = { global: ramp(global.length * W, 10) };
    assert.deepEqual(method.server.download(sent, 0, setup), sent);
    const kept = { personal: ramp(personal.length * W, 50) };
    // The context a client starts from: the global rows sent, its personal rows (the seeded ones before it has any).
    const expected = (own: Float32Array) => {
      const context = new Float32Array(16);
      [...global].forEach((r, i) => context.set(sent.global.subarray(i * W, (i + 1) * W), r * W));
      [...personal].forEach((r, i) => context.set(own.subarray(i * W, (i + 1) * W), r * W));
      return context;
    };
    const seeded = rowsOf(setup.initialContext, [...personal]);
    const runtime = fakeRuntime(setup, ramp(16, 30));
    assert.deepEqual(method.client.predictor(runtime, sent, kept).context, expected(kept.personal));
    assert.deepEqual(method.client.predictor(runtime, sent, undefined).context, expected(seeded));
    const calls: TrainCall[] = [];
    const result = await method.client.fit(fakeRuntime(setup, ramp(16, 30), calls), sent, kept);
    assert.deepEqual(calls[0].start, expected(kept.personal));
    assert.equal(calls[0].penalty, undefined);
    assert.deepEqual(result, { upload: { global: rowsOf(ramp(16, 30), [...global]) }, personal: { personal: rowsOf(ramp(16, 30), [...personal]) }, loss: 0.75, steps: 6 });
    const a = upload(0, 1, { global: ramp(global.length * W, 0) });
    const b = upload(1, 3, { global: ramp(global.length * W, 4) });
    assert.deepEqual(method.server.aggregate(sent, [a, b], setup), { global: ramp(global.length * W, 3) });
    assert.deepEqual(methodOf('promptper', { globalTokens, weighted: false }).server.aggregate(sent, [a, b], setup), { global: ramp(global.length * W, 2) });
  }
});

test('PromptPer: globalTokens 0 keeps everything personal, M shares everything; outside 0 … M or fractional is refused, naming the range', () => {
  const setup = setupOf(4);
  assert.deepEqual(promptPer({ weighted: true, globalTokens: 0 }).server.uploadSpec(setup), { global: 0 });
  assert.deepEqual(promptPer({ weighted: true, globalTokens: 4 }).server.uploadSpec(setup), { global: 8 });
  for (const globalTokens of [-1, 5, 1.5]) {
    assert.throws(() => promptPer({ weighted: true, globalTokens }).server.uploadSpec(setup), new RegExp(`PromptPer: global tokens must be in 0 … 4, got ${globalTokens}`));
  }
});

test('zero-shot CLIP is the hand prompt "a photo of a {class}." at the end, unlearned: it never trains, uploads nothing and predicts with the seeded (hand) context', async () => {
  const setup = setupOf(4);
  const method = createMethod('zeroshot');
  assert.equal(HAND_PROMPT_WORDS, 'a photo of a');
  assert.deepEqual(method.prompt, { initWords: 'a photo of a', position: 'end', classSpecific: false });
  assert.equal(method.trainsPrompt, false);
  assert.deepEqual(method.server.uploadSpec(setup), {});
  const server = method.server.initialState(setup);
  assert.deepEqual(method.server.aggregate(server, [], setup), server);
  assert.deepEqual(method.client.predictor(fakeRuntime(setup, ramp(8, 0)), method.server.download(server, 0, setup), undefined).context, setup.initialContext);
  await assert.rejects(method.client.fit(fakeRuntime(setup, ramp(8, 0)), server, undefined), /zero-shot CLIP does not train/);
});

test('PromptFL+FT: one fine-tune per candidate from the global prompt, each with its own rates (the carried-on cosine knows the run\'s length); candidates as the clients score them; bad candidates and shapes refused by name', async () => {
  const setup = setupOf(4);
  const sgd = { lr: 0.002, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine' as const };
  const rates: (readonly number[] | undefined)[] = [];
  const runtime: ClientRuntime = {
    ...fakeRuntime(setup, ramp(8, 7)),
    schedule: () => ({ epochs: 5, batchSize: 32, sgd, learningRates: [0, 0, 0, 0, 0], seed: 1 }),
    train: async (start, options): Promise<LocalTrainingResult> => {
      rates.push(options?.learningRates);
      return { context: Float32Array.from(start, (v) => v + rates.length), meanLoss: 0.5, steps: 1 };
    },
  };
  const method = promptFlFineTuned({
    weighted: true,
    fineTunes: [{ shape: 'constant', lrScale: 0.1, epochs: 2 }, { shape: 'continued', lrScale: 1 }],
  });
  assert.deepEqual(method.choices?.candidates, [{ candidate: 0, epochs: 2, shape: 0, lrScale: 0.1 }, { candidate: 1, shape: 2, lrScale: 1 }]);
  assert.deepEqual(promptFlFineTuned({ weighted: true, fineTuneEpochs: 3, fineTunes: [{ shape: 'cosine', lrScale: 1 }] }).choices?.candidates,
    [{ candidate: 0, epochs: 3, shape: 1, lrScale: 1 }]);
  const download = { context: ramp(8, 100) };
  const personal = await method.client.finish!(runtime, download, undefined);
  assert.deepEqual(Object.keys(personal).sort(), ['context/fine-tune-0', 'context/fine-tune-1']);
  assert.deepEqual(rates[0], [0.0002, 0.0002]);
  // Carried on past the run's rounds × local epochs = 10 epochs: the cosine rises again from 0.
  assert.deepEqual(rates[1], Array.from({ length: 5 }, (_, e) => 0.5 * 0.002 * (1 + Math.cos((Math.PI * (10 + e)) / 10))));
  assert.deepEqual(method.client.predictor(runtime, download, personal, { candidate: 1 }).context, personal['context/fine-tune-1']);
  assert.deepEqual(method.client.predictor(runtime, download, personal).context, personal['context/fine-tune-0']);
  assert.deepEqual(method.client.predictor(runtime, download, {}).context, download.context, 'before its finishing step a client predicts with the global prompt');
  for (const bad of [-1, 0.5, 2]) {
    assert.throws(() => method.client.predictor(runtime, download, personal, { candidate: bad }), new RegExp(`PromptFL\\+FT: no fine-tune candidate ${bad} \\(there are 2\\)`));
  }
  assert.throws(() => promptFlFineTuned({ weighted: true, fineTunes: [{ shape: 'sideways' as 'constant', lrScale: 1 }] }),
    /PromptFL\+FT: unknown fine-tune shape "sideways" \(known: constant, cosine, continued\)/);
  assert.throws(() => fineTuneRates({ shape: 'constant', lrScale: 1 }, 1.5, sgd, 10), /fine-tune epochs must be a non-negative integer, got 1.5/);
  assert.throws(() => fineTuneRates({ shape: 'constant', lrScale: 1 }, -1, sgd, 10), /got -1/);
  assert.throws(() => fineTuneRates({ shape: 'constant', lrScale: NaN }, 1, sgd, 10), /lrScale must be non-negative, got NaN/);
  assert.deepEqual(fineTuneRates({ shape: 'constant', lrScale: 0 }, 0, sgd, 10), []);
});
