// FedOTP (src/methods/fedotp.ts) with the tiny fixture CLIP: the gradient to
// each context through the text tower against finite differences with the
// plan held fixed, and its behaviour as a federated method: only the global
// prompt is uploaded and averaged, the local prompt stays with and differs
// between clients, and it predicts otherwise than PromptFL. The transport
// itself, without a model: fedotp-transport.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { loadTokenizer } from '../src/clip/tokenizer-file.js';
import { sharedModel } from '../src/federation/client-executor.js';
import { emptyFeatureSet, type FeatureSet } from '../src/federation/client-data.js';
import { federatedAverage, type ClientRuntime, type ClientUpload } from '../src/federation/method.js';
import { textTower } from '../src/federation/text-tower.js';
import { classTextFeatures, predictLogits } from '../src/federation/evaluation.js';
import { FEDOTP_DEFAULTS, initialLocalContext, transportLogits, transportLossGradients, unitRows } from '../src/methods/fedotp.js';
import { createMethod, DEFAULT_METHOD_OPTIONS } from '../src/methods/index.js';
import { CoopPrompt } from '../src/prompt/coop-prompt.js';
import { computeFor, hostSetup, localClients, methodWith, MODEL, noTraining, TOKENIZER, useShapesClients } from './method-fixture.js';
import { relativeError } from './shared.js';
import { CLASSNAMES } from './synthetic-dataset.js';

const shapes = useShapesClients();

const SEED = 7;


test('through the text tower: the gradient to each context matches finite differences with the plan held fixed', async () => {
  const model = await sharedModel(MODEL);
  const tokenizer = await loadTokenizer(TOKENIZER);
  const prompt = new CoopPrompt(model, tokenizer, ['dog', 'great crested newt', 'cat'], { contextLength: 4, position: 'end', classSpecific: false });
  const tower = textTower({ model, prompt });
  const C = tower.classes, E = tower.dim, M = 5, b = 3;
  const random = new SeededRandom(21);
  const tokens = unitRows(random.normals(b * M * E), E);
  const labels = Int32Array.from([2, 0, 1]);
  const contexts = [prompt.initialContext(1), prompt.initialContext(2)];
  const options = { ...FEDOTP_DEFAULTS, eps: 0.1 };
  const scale = tower.logitScale;
  const towers = await Promise.all(contexts.map((c) => tower.withGradient(c)));
  const scores = transportLogits(tokens, b, M, towers.map((t) => t.features), C, E, scale, options);
  const { grads } = transportLossGradients(scores, tokens, labels, M, 2, C, E, scale);
  const lossAt = (features: Float32Array[]): number =>
    transportLossGradients(transportLogits(tokens, b, M, features, C, E, scale, options, scores.plans), tokens, labels, M, 2, C, E, scale).loss;
  for (let n = 0; n < 2; n++) {
    const analytic = await towers[n].backward(grads[n]);
    for (const i of [5, contexts[n].length - 1]) {
      const step = 1e-2;
      const lossWith = async (delta: number): Promise<number> => {
        const shifted = contexts[n].slice();
        shifted[i] += delta;
        const features = await Promise.all(contexts.map((c, k) => tower.features(k === n ? shifted : c)));
        return lossAt(features);
      };
      const numeric = ((await lossWith(step)) - (await lossWith(-step))) / (2 * step);
      assert.ok(Math.abs(numeric - analytic[i]) <= 3e-3 * Math.max(1, Math.abs(numeric)) + 1e-4, `context ${n} index ${i}: analytic ${analytic[i]}, numeric ${numeric}`);
    }
  }
});

test('FedOTP uploads its global prompt only and keeps its local prompt: round 2 trains from the client\'s own round-1 local prompt, which differs between clients; the global prompt is the weighted mean of the uploads', async () => {
  const { method, options } = methodWith('fedotp');
  assert.equal(method.readsTokens, true);
  assert.equal(method.trainsPrompt, true);
  assert.deepEqual([method.id, method.label], ['fedotp', 'FedOTP']);
  assert.match(method.trains, /global .* local/);
  assert.match(method.uploads, /global context only/);
  assert.match(method.staysOnClient, /local context/);
  const setup = await hostSetup(method, shapes.clients, SEED, options);
  const federation = setup.settings.federation;
  assert.deepEqual(method.server.uploadSpec(federation), { context: federation.contextSize });
  const { clients, stores } = await localClients(method, setup);
  const round1 = method.server.download(method.server.initialState(federation), 0, federation);
  assert.deepEqual(Object.keys(round1), ['context']);
  const uploads: ClientUpload[] = [];
  for (const client of clients) {
    const reply = await client.fit(1, round1);
    assert.deepEqual(Object.keys(reply.upload), ['context']);
    assert.notDeepEqual(reply.upload.context, round1.context, 'the global prompt did not train');
    uploads.push({ client: reply.client, samples: reply.samples, tensors: reply.upload });
  }
  const start = initialLocalContext(federation);
  assert.notDeepEqual(start, federation.initialContext, 'the local prompt starts where the global one does');
  assert.deepEqual(initialLocalContext(federation), start, 'the local start is not the same on every client');
  const kept = [];
  for (let k = 0; k < clients.length; k++) {
    const state = await stores[k].load();
    assert.deepEqual(Object.keys(state ?? {}), ['local']);
    assert.notDeepEqual(state!.local, start, `client ${k}: its local prompt did not train`);
    for (const u of uploads) assert.notDeepEqual(u.tensors.context, state!.local, 'a local prompt was uploaded');
    kept.push(state!.local);
  }
  assert.notDeepEqual(kept[0], kept[1], 'two clients hold the same local prompt');
  const server = method.server.aggregate(method.server.initialState(federation), uploads, federation);
  assert.deepEqual(server.context, federatedAverage(uploads, 'context', true));
  // Weighted by the clients' training images, by default (here the clients hold as many, so unequal counts by hand).
  const unequal = uploads.map((u, k) => ({ ...u, samples: 1 + 2 * k }));
  const weightedByHand = unequal.reduce((sum, u) => sum + u.samples * u.tensors.context[3], 0) / unequal.reduce((sum, u) => sum + u.samples, 0);
  assert.ok(Math.abs(method.server.aggregate(server, unequal, federation).context[3] - weightedByHand) < 1e-6, 'not weighted by samples');
  const total = uploads.reduce((s, u) => s + u.samples, 0);
  const i = 11;
  const byHand = uploads.reduce((s, u) => s + (u.samples / total) * u.tensors.context[i], 0);
  assert.ok(Math.abs(server.context[i] - byHand) < 1e-6);

  // Round 2 starts from the client's own local prompt: training it again from there gives what the client does.
  const round2 = method.server.download(server, 0, federation);
  const seen: Float32Array[] = [];
  const watching = {
    ...method,
    client: {
      ...method.client,
      fit: (runtime: ClientRuntime, download: typeof round2, personal: Parameters<typeof method.client.fit>[2]) => {
        seen.push(personal!.local);
        return method.client.fit(runtime, download, personal);
      },
    },
  };
  const again = await localClients(watching, setup);
  for (let k = 0; k < clients.length; k++) {
    await again.stores[k].save({ local: kept[k] });
    await again.clients[k].fit(2, round2);
    assert.deepEqual(seen[k], kept[k], `client ${k}: round 2 did not start from its own local prompt`);
    assert.notDeepEqual((await again.stores[k].load())!.local, kept[k], `client ${k}: round 2 did not train its local prompt`);
  }
});

test('FedOTP predicts by transport with both prompts: its logits are not PromptFL\'s under the same global prompt, they depend on the local prompt, and a set without tokens is refused', async () => {
  const { method, options } = methodWith('fedotp');
  const setup = await hostSetup(method, shapes.clients, SEED, options);
  const federation = setup.settings.federation;
  const compute = await computeFor(setup);
  const data = shapes.clients[0];
  const runtime: ClientRuntime = { setup: federation, data, numClasses: CLASSNAMES.length, round: 4, ...noTraining, text: textTower(compute) };
  const download = { context: federation.initialContext };
  const ours = await method.client.predictor(runtime, download, undefined).logits!(data.test);
  assert.equal(ours.length, data.test.count * CLASSNAMES.length);
  const promptFl = predictLogits(data.test, await classTextFeatures(compute, federation.initialContext), compute.model.logitScale);
  assert.ok(relativeError(ours, promptFl) > 0.05, 'FedOTP\'s logits are PromptFL\'s');
  const otherLocal = await method.client.predictor(runtime, download, { local: new SeededRandom(9).normals(federation.contextSize, 0.02) }).logits!(data.test);
  assert.notDeepEqual(otherLocal, ours, 'the local prompt does not enter the prediction');
  // The plans run per chunk of evalBatchSize images; with ε 0.01 every chunk runs all 100 iterations, so chunks change nothing.
  for (const evalBatchSize of [1, data.test.count - 1]) {
    const chunked = await createMethod('fedotp', { ...DEFAULT_METHOD_OPTIONS, fedotp: { ...FEDOTP_DEFAULTS, evalBatchSize } }).client.predictor(runtime, download, undefined).logits!(data.test);
    assert.deepEqual(chunked, ours, `chunks of ${evalBatchSize}`);
  }
  const predict = method.client.predictor(runtime, download, undefined).logits!;
  assert.deepEqual(await predict(emptyFeatureSet(data.test.embedDim, data.test.pooledDim)), new Float32Array(0));
  await assert.rejects(predict({ ...data.test, tokenCount: undefined }), /carry none/);
  const { tokens: _t, tokenCount: _c, ...bare } = data.test;
  await assert.rejects(method.client.predictor(runtime, download, undefined).logits!(bare), /spatial tokens, but these features carry none/);
  assert.throws(() => method.client.predictor(runtime, download, { local: new Float32Array(3) }), /tensor "local" has 3 values/);
});

test('FedOTP refuses to train on features without tokens, naming what is missing', async () => {
  const { method, options } = methodWith('fedotp');
  const strip = ({ tokens: _t, tokenCount: _c, ...set }: FeatureSet): FeatureSet => set;
  const bare = shapes.clients.map((c) => ({ ...c, train: c.train.map(strip) }));
  const setup = await hostSetup(method, bare, SEED, options);
  const { clients } = await localClients(method, setup);
  await assert.rejects(clients[0].fit(1, { context: setup.settings.federation.initialContext }), /spatial tokens, but these features carry none/);
});
