// FedOTP (src/methods/fedotp.ts): its transport plans and logits against a
// transcription of its own code (scripts/goldens/fedotp_transport.py), the
// gradient to each prompt against finite differences with the plan held
// fixed, and its behaviour as a federated method: only the global prompt is
// uploaded and averaged, the local prompt stays with and differs between
// clients, and it predicts otherwise than PromptFL.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import { sharedModel } from '../src/federation/client-executor.js';
import { federatedAverage, type ClientRuntime, type ClientUpload } from '../src/federation/method.js';
import { textTower } from '../src/federation/text-tower.js';
import { classTextFeatures, predictLogits } from '../src/federation/evaluation.js';
import { parseConfig } from '../src/experiment/config.js';
import {
  checkFedOtpOptions, fedOtp, FEDOTP_DEFAULTS, initialLocalContext, transportLogits, transportLossGradients, transportPlans, unitRows, type FedOtpOptions,
} from '../src/methods/fedotp.js';
import { createMethod, DEFAULT_METHOD_OPTIONS } from '../src/methods/index.js';
import { CoopPrompt } from '../src/prompt/coop-prompt.js';
import { readSafetensors, toFloat32 } from '../src/io/safetensors.js';
import { computeFor, hostSetup, localClients, methodWith, MODEL, noTraining, TOKENIZER, useShapesClients } from './method-fixture.js';
import { PROJECT_ROOT } from './shared.js';
import { CLASSNAMES } from './synthetic-dataset.js';

const GOLDEN = path.join(PROJECT_ROOT, 'test', 'fixtures', 'fedotp', 'transport.safetensors');
const shapes = useShapesClients();
const SEED = 7;

/** Largest |a − b| over the largest |b|. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}

test('transport plans and logits match FedOTP\'s GLP_OT.py (COT and Sinkhorn, iterations to the thresh stop or to max_iter)', async () => {
  const file = await readSafetensors(GOLDEN);
  const meta = JSON.parse(file.metadata.meta) as { b: number; M: number; C: number; E: number; N: number; logit_scale: number; cases: { key: string; transport: 'cot' | 'sinkhorn'; eps: number; iterations: number }[] };
  const { b, M, C, E, N } = meta;
  const get = (name: string): Float32Array => toFloat32(file.tensors.get(name)!);
  const tokens = unitRows(get('input.tokens'), E);
  const text = get('input.text');
  const prompts = Array.from({ length: N }, (_, n) => text.subarray(n * C * E, (n + 1) * C * E));
  assert.equal(meta.cases.length, 4);
  const iterations = new Set<number>();
  for (const c of meta.cases) {
    const options: FedOtpOptions = { ...FEDOTP_DEFAULTS, transport: c.transport, eps: c.eps };
    const scores = transportLogits(tokens, b, M, prompts, C, E, meta.logit_scale, options);
    assert.equal(scores.iterations, c.iterations, `${c.key}: iterations`);
    iterations.add(c.iterations);
    const planError = relativeError(scores.plans, toFloat32(file.tensors.get(`${c.key}.plans`)!));
    const logitError = relativeError(scores.logits, get(`${c.key}.logits`));
    console.log(`${c.key}: ${c.iterations} iterations, plans relative error ${planError.toExponential(2)}, logits ${logitError.toExponential(2)}`);
    assert.ok(planError < 2e-5, `${c.key}: plans relative error ${planError}`);
    assert.ok(logitError < 1e-5, `${c.key}: logits relative error ${logitError}`);
  }
  assert.ok(iterations.has(100) && [...iterations].some((i) => i < 100), 'the cases cover both ways the iterations end');
});

test('COT plans: each token carries at most 1/M, each prompt exactly top_percent/N; Sinkhorn plans have both marginals exact', () => {
  const B = 4, M = 6, N = 2;
  const random = new SeededRandom(3);
  const K = Float64Array.from(random.normals(B * M * N), (s) => Math.exp(-(1 - 0.3 * s) / 0.1));
  for (const transport of ['cot', 'sinkhorn'] as const) {
    const options = { ...FEDOTP_DEFAULTS, transport, thresh: 0, maxIter: 1000 };
    const { plans, iterations } = transportPlans(K, B, M, N, options);
    assert.equal(iterations, 1000);
    const columnMass = transport === 'cot' ? 0.8 / N : 1 / N;
    for (let p = 0; p < B; p++) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let m = 0; m < M; m++) sum += plans[p * M * N + m * N + n];
        assert.ok(Math.abs(sum - columnMass) < 1e-9, `${transport} problem ${p} prompt ${n}: mass ${sum}, expected ${columnMass}`);
      }
      let saturated = 0;
      for (let m = 0; m < M; m++) {
        let sum = 0;
        for (let n = 0; n < N; n++) sum += plans[p * M * N + m * N + n];
        if (transport === 'sinkhorn') assert.ok(Math.abs(sum - 1 / M) < 1e-6, `sinkhorn problem ${p} token ${m}: mass ${sum}`);
        else assert.ok(sum <= 1 / M + 1e-12, `cot problem ${p} token ${m}: mass ${sum} above 1/M`);
        if (Math.abs(sum - 1 / M) < 1e-9) saturated++;
      }
      if (transport === 'cot') assert.ok(saturated < M, `cot problem ${p}: every token fully transported, the mass constraint did nothing`);
    }
  }
});

test('the plans stop early once the batch\'s mean change is below thresh, and a plan that underflows is an error', () => {
  const K = new Float64Array(2 * 3 * 2).fill(0.5);
  K[0] = 0.9;
  const loose = transportPlans(K, 2, 3, 2, { ...FEDOTP_DEFAULTS, thresh: 1e-3 });
  const tight = transportPlans(K, 2, 3, 2, { ...FEDOTP_DEFAULTS, thresh: 1e-12 });
  assert.ok(loose.iterations < tight.iterations && tight.iterations < 100, `${loose.iterations} vs ${tight.iterations}`);
  assert.throws(() => transportPlans(new Float64Array(12), 2, 3, 2, FEDOTP_DEFAULTS), /not finite \(ε 0\.01 too small/);
  assert.throws(() => transportPlans(new Float64Array(5), 2, 3, 2, FEDOTP_DEFAULTS), /5 values, expected 2×3×2/);
});

test('the loss gradient to each prompt\'s class features, and through the text tower to each context, matches finite differences with the plan held fixed', async () => {
  const model = await sharedModel(MODEL);
  const tokenizer = await ClipTokenizer.fromDirectory(TOKENIZER);
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
  const { loss, grads } = transportLossGradients(scores, tokens, labels, M, 2, C, E, scale);
  const lossAt = (features: Float32Array[]): number =>
    transportLossGradients(transportLogits(tokens, b, M, features, C, E, scale, options, scores.plans), tokens, labels, M, 2, C, E, scale).loss;
  assert.ok(Math.abs(lossAt(towers.map((t) => t.features)) - loss) < 1e-12);
  // With respect to the features: every entry (the loss is exact in float64 but for the features' own rounding).
  for (let n = 0; n < 2; n++) {
    for (let i = 0; i < C * E; i += 7) {
      const h = 1e-3;
      const shifted = (delta: number): Float32Array[] => towers.map((t, k) => (k === n ? Float32Array.from(t.features, (v, j) => (j === i ? v + delta : v)) : t.features));
      const numeric = (lossAt(shifted(h)) - lossAt(shifted(-h))) / (2 * h);
      assert.ok(Math.abs(numeric - grads[n][i]) < 1e-4 * Math.max(1, Math.abs(numeric)), `prompt ${n} feature ${i}: analytic ${grads[n][i]}, numeric ${numeric}`);
    }
  }
  // With respect to each context, through the text tower.
  for (let n = 0; n < 2; n++) {
    const analytic = await towers[n].backward(grads[n]);
    for (const i of [0, 5, 64 + 3, contexts[n].length - 1]) {
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

test('bad options and inputs are refused, naming what is wrong', () => {
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, eps: 0 }), /eps must be positive/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, topPercent: 1.5 }), /topPercent must be in \(0, 1\]/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, maxIter: 0 }), /maxIter must be a positive integer/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, evalBatchSize: 2.5 }), /evalBatchSize must be a positive integer/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, thresh: -1 }), /thresh must be non-negative/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, transport: 'emd' as 'cot' }), /transport must be "cot" or "sinkhorn"/);
  assert.throws(() => fedOtp({ ...FEDOTP_DEFAULTS, eps: -1 }), /FedOTP: eps/);
  assert.throws(() => transportLogits(new Float32Array(5), 1, 2, [new Float32Array(6)], 3, 2, 1, FEDOTP_DEFAULTS), /tokens have 5 values, expected 1×2×2/);
  assert.throws(() => transportLogits(new Float32Array(4), 1, 2, [new Float32Array(5)], 3, 2, 1, FEDOTP_DEFAULTS), /class features have 5 values, expected 3×2/);
  assert.throws(() => transportLogits(new Float32Array(4), 1, 2, [new Float32Array(6)], 3, 2, 1, FEDOTP_DEFAULTS, new Float64Array(2)), /2 plan values/);
  const config = parseConfig({ model: 'm', data: { datasets: ['d'] }, methodOptions: { fedotp: { eps: 0.1 } } }, 'test');
  const { weighted: _weighted, ...transportDefaults } = FEDOTP_DEFAULTS;
  assert.deepEqual(config.methodOptions.fedotp, { ...transportDefaults, eps: 0.1 });
  assert.throws(() => parseConfig({ model: 'm', data: { datasets: ['d'] }, methodOptions: { fedotp: { topPercent: 2 } } }, 'test'), /topPercent/);
});

test('FedOTP uploads its global prompt only and keeps its local prompt: round 2 trains from the client\'s own round-1 local prompt, which differs between clients; the global prompt is the weighted mean of the uploads', async () => {
  const { method, options } = methodWith('fedotp');
  assert.equal(method.readsTokens, true);
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
  const chunked = await createMethod('fedotp', { ...DEFAULT_METHOD_OPTIONS, fedotp: { ...FEDOTP_DEFAULTS, evalBatchSize: 1 } }).client.predictor(runtime, download, undefined).logits!(data.test);
  assert.deepEqual(chunked, ours);
  const { tokens: _t, tokenCount: _c, ...bare } = data.test;
  await assert.rejects(method.client.predictor(runtime, download, undefined).logits!(bare), /spatial tokens, but these features carry none/);
  assert.throws(() => method.client.predictor(runtime, download, { local: new Float32Array(3) }), /tensor "local" has 3 values/);
});
