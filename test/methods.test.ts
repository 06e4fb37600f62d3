// The methods and the federation engine: penalties and pFedPrompt's loss
// against finite differences, FedAvg and PromptAMP's messages, the privacy
// boundary, and a small end-to-end run of every method on a generated image
// folder with the tiny fixture CLIP.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { spatialPooler, type FeatureSet } from '../src/federation/client-data.js';
import { createExecutor, textFeatureCache, sharedModel, sharedTokenizer, type ClientExecutor } from '../src/federation/client-executor.js';
import { CLIENT_WORKER_ENTRY, methodFromSpec } from '../src/experiment/client-worker.js';
import { checkUpload, runFederation, type FederationResult } from '../src/federation/engine.js';
import { FederatedClient, InMemoryStore } from '../src/federation/client.js';
import { federatedAverage, type ClientUpload, type Method, type Tensors } from '../src/federation/method.js';
import { METHOD_IDS, createMethod, type MethodId } from '../src/methods/index.js';
import { PROMPTAMP_DEFAULTS, cloudPrompts } from '../src/methods/promptamp.js';
import { proximalPenalty } from '../src/methods/promptprox.js';
import { DEFAULT_MEMORY, VisualMemory } from '../src/methods/visual-memory.js';
import { CoopPrompt } from '../src/prompt/coop-prompt.js';
import { MODEL, TOKENIZER, hostSetup, noTraining, useShapesClients } from './method-fixture.js';
import { CLASSNAMES } from './synthetic-dataset.js';

const shapes = useShapesClients();
const executorSetup = (method: Method, seed: number) => hostSetup(method, shapes.clients, seed);

async function run(id: MethodId, seed: number, workers = 1, spy?: (uploads: readonly ClientUpload[]) => void): Promise<FederationResult> {
  const method = createMethod(id);
  const watched: Method = spy
    ? { ...method, server: { ...method.server, aggregate: (s, uploads, setup) => (spy(uploads), method.server.aggregate(s, uploads, setup)) } }
    : method;
  const setup = await executorSetup(method, seed);
  const executor: ClientExecutor = await createExecutor(setup, methodFromSpec, { workers, entry: CLIENT_WORKER_ENTRY });
  try {
    return await runFederation(watched, setup.settings.federation, executor, { participation: 1, seed, choices: [{ alpha: 1, beta: 5.5 }, { alpha: 2, beta: 3 }], evaluateEachRound: true });
  } finally {
    await executor.close();
  }
}

function finiteDifference(f: (x: Float32Array) => number, x: Float32Array, i: number, h: number): number {
  const plus = x.slice();
  plus[i] += h;
  const minus = x.slice();
  minus[i] -= h;
  return (f(plus) - f(minus)) / (2 * h);
}

test('PromptProx / PromptAMP penalty: gradient matches finite differences', () => {
  const random = new SeededRandom(5);
  const anchor = random.normals(40, 0.02);
  const x = random.normals(40, 0.02);
  for (const mu of [0.5, PROMPTAMP_DEFAULTS.lambda / PROMPTAMP_DEFAULTS.alphaK]) {
    const penalty = proximalPenalty(anchor, mu);
    const { grad } = penalty(x);
    for (const i of [0, 7, 39]) {
      const numeric = finiteDifference((p) => penalty(p).value, x, i, 1e-3);
      assert.ok(Math.abs(numeric - grad[i]) < 1e-4 * Math.max(1, Math.abs(numeric)), `μ ${mu}, index ${i}: ${grad[i]} vs ${numeric}`);
    }
    assert.ok(grad.some((g) => g !== 0), 'the penalty must carry a gradient');
  }
});

test("pFedPrompt's loss with the memory's logits: d loss / d ctx matches finite differences", async () => {
  const model = await sharedModel(MODEL);
  const prompt = new CoopPrompt(model, await sharedTokenizer(TOKENIZER), CLASSNAMES, { contextLength: 4, position: 'end', classSpecific: false });
  const data = shapes.clients[0];
  const memory = VisualMemory.build(data.train[0], CLASSNAMES.length, DEFAULT_MEMORY);
  const view = data.train[1];
  const rows = Array.from({ length: view.count }, (_, i) => i);
  const C = CLASSNAMES.length;
  const targets = new Float32Array(view.count * C);
  view.labels.forEach((label, i) => (targets[i * C + label] = 1 / view.count));
  const bias = memory.logits(view, rows);
  assert.ok(bias.some((b) => b > 0));
  const images = { shape: [view.count, view.embedDim], data: view.embeds };
  const lossOf = async (ctx: Float32Array) => model.promptLoss(prompt.textBatch(ctx), images, { shape: [view.count, C], data: targets }, { shape: [view.count, C], data: bias });
  const ctx = prompt.initialContext(1);
  const result = await lossOf(ctx);
  const grad = prompt.contextGradient(result.prefixGrad.data, result.suffixGrad.data);
  for (const i of [0, 17, ctx.length - 1]) {
    const plus = ctx.slice();
    plus[i] += 1e-3;
    const minus = ctx.slice();
    minus[i] -= 1e-3;
    const numeric = ((await lossOf(plus)).loss - (await lossOf(minus)).loss) / 2e-3;
    assert.ok(Math.abs(numeric - grad[i]) <= 2e-3 * Math.max(1, Math.abs(numeric)) + 2e-4, `index ${i}: ${grad[i]} vs ${numeric}`);
  }
});

test('visual memory: A · M_v by hand, prototypes and shots', () => {
  const shots: FeatureSet = {
    count: 3, embedDim: 2, pooledDim: 2, embeds: Float32Array.of(1, 0, 0, 1, 1, 1), pooled: Float32Array.of(1, 0, 0, 1, 0.6, 0.8), labels: Int32Array.of(0, 2, 2),
  };
  const query: FeatureSet = { ...shots, count: 1, embeds: Float32Array.of(1, 0), pooled: Float32Array.of(2, 0), labels: Int32Array.of(0) };
  const beta = 2;
  const shotMemory = VisualMemory.build(shots, 4, { ...DEFAULT_MEMORY, keys: 'shots', alpha: 1.5, beta });
  const expectedShots = [1.5 * Math.exp(0), 0, 1.5 * (Math.exp(-beta * 1) + Math.exp(-beta * (1 - 0.6))), 0];
  shotMemory.logits(query).forEach((v, c) => assert.ok(Math.abs(v - expectedShots[c]) < 1e-6, `shots, class ${c}: ${v}`));
  const protoMemory = VisualMemory.build(shots, 4, { ...DEFAULT_MEMORY, keys: 'prototypes', alpha: 1, beta });
  const proto = [0.6, 1.8].map((v) => v / Math.hypot(0.6, 1.8)); // mean of (0,1) and (0.6,0.8), normalised
  const expectedProto = [1, 0, Math.exp(-beta * (1 - proto[0])), 0];
  protoMemory.logits(query).forEach((v, c) => assert.ok(Math.abs(v - expectedProto[c]) < 1e-6, `prototypes, class ${c}: ${v}`));
});

test('FedAvg of identical prompts is the identity; weights follow sample counts', () => {
  const p = new SeededRandom(2).normals(64, 0.02);
  const uploads = [3, 7, 1].map((samples, client) => ({ client, samples, tensors: { context: p } }));
  assert.deepEqual(federatedAverage(uploads, 'context', true), p);
  assert.deepEqual(federatedAverage(uploads, 'context', false), p);
  const a = { client: 0, samples: 1, tensors: { context: Float32Array.of(0, 4) } };
  const b = { client: 1, samples: 3, tensors: { context: Float32Array.of(4, 0) } };
  assert.deepEqual(federatedAverage([a, b], 'context', true), Float32Array.of(3, 1));
  assert.deepEqual(federatedAverage([a, b], 'context', false), Float32Array.of(2, 2));
});

test("PromptAMP's cloud prompts: non-negative attention, identity on identical prompts, closer peers weigh more", () => {
  const p = Float32Array.of(0.1, -0.2);
  const same = cloudPrompts([0, 1, 2].map((client) => ({ client, samples: 1, tensors: { context: p } })), PROMPTAMP_DEFAULTS);
  for (const u of same.values()) u.forEach((v, i) => assert.ok(Math.abs(v - p[i]) < 1e-7));
  const options = { alphaK: 0.1, sigma: 1, lambda: 1 };
  const uploads = [Float32Array.of(0, 0), Float32Array.of(1, 0), Float32Array.of(0, 3)].map((context, client) => ({ client, samples: 1, tensors: { context } }));
  const u0 = cloudPrompts(uploads, options).get(0)!;
  const xi1 = 0.1 * Math.exp(-1);
  const xi2 = 0.1 * Math.exp(-9);
  assert.ok(Math.abs(u0[0] - xi1) < 1e-6 && Math.abs(u0[1] - 3 * xi2) < 1e-6, `u_0 = ${u0}`);
});

test('an upload that is not what the method declares is refused, naming the client', () => {
  const method = createMethod('promptfl');
  const setup = { clients: 2, rounds: 1, contextSize: 4, contextRows: 1, contextTokens: 1, width: 4, initialContext: new Float32Array(4) };
  assert.throws(() => checkUpload(method, setup, 1, { context: new Float32Array(4), memory: new Float32Array(2) }), /client 1 tried to upload "memory"/);
  assert.throws(() => checkUpload(method, setup, 0, { context: new Float32Array(3) }), /client 0: upload "context" has 3 values, PromptFL declares 4/);
  assert.throws(() => checkUpload(method, setup, 0, { context: Float32Array.of(0, NaN, 0, 0) }), /non-finite/);
  assert.throws(() => checkUpload(method, setup, 0, {}), /missing/);
});

test('nothing personal is uploaded: pFedPrompt sends its shared context only, PromptPer its global half only', async () => {
  for (const id of ['pfedprompt', 'promptper'] as const) {
    const seen: Tensors[] = [];
    const result = await run(id, 1, 1, (uploads) => uploads.forEach((u) => seen.push(u.tensors)));
    assert.equal(seen.length, 3 * 3);
    const setup = await executorSetup(createMethod(id), 1);
    const expected = id === 'pfedprompt' ? { context: setup.settings.federation.contextSize } : { global: 2 * setup.settings.federation.width };
    for (const tensors of seen) assert.deepEqual(Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, v.length])), expected);
    // No client's memory keys (its features) and no personal rows are inside any upload.
    const forbidden = shapes.clients.flatMap((c) => [c.train[0].pooled.subarray(0, 8), c.train[0].embeds.subarray(0, 8)]);
    for (const tensors of seen) {
      for (const t of Object.values(tensors)) for (const f of forbidden) assert.ok(!containsRun(t, f));
    }
    assert.ok(result.rounds.every((r) => r.bytesUp === 3 * 4 * Object.values(expected)[0]));
  }
});

function containsRun(haystack: Float32Array, needle: Float32Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return true;
  }
  return false;
}

test('every method runs end to end; trained methods lower their loss; one seed gives identical results, in parallel too', async () => {
  for (const id of METHOD_IDS) {
    const first = await run(id, 3);
    assert.equal(first.clients.length, 3);
    for (const c of first.clients) assert.ok(c.accuracy >= 0 && c.accuracy <= 1, `${id}: accuracy ${c.accuracy}`);
    const method = createMethod(id);
    if (method.trainsPrompt) {
      assert.equal(first.rounds.length, 3);
      const losses = first.rounds.map((r) => r.trainLoss);
      assert.ok(losses[2] < losses[0], `${id}: training loss ${losses.join(' → ')} did not fall`);
    } else {
      assert.equal(first.rounds.length, 0);
    }
    if (method.choosesOnValidation) assert.ok(first.selection && first.selection.candidates.length === 2);
    const again = await run(id, 3);
    assert.deepEqual(again.clients, first.clients, `${id}: a second run with the same seed differs`);
    assert.deepEqual(again.rounds.map((r) => r.trainLoss), first.rounds.map((r) => r.trainLoss));
  }
  const sequential = await run('promptamp', 4);
  const parallel = await run('promptamp', 4, 2);
  assert.deepEqual(parallel.clients, sequential.clients, 'two worker threads give other numbers than one thread');
  assert.deepEqual(parallel.rounds.map((r) => r.trainLoss), sequential.rounds.map((r) => r.trainLoss));
});

test('PromptFL+FT fine-tunes: the finishing step moves a client off the global prompt, on a schedule of its own', async () => {
  const method = createMethod('promptfl-ft');
  const setup = await executorSetup(method, 5);
  const federation = setup.settings.federation;
  const download = { context: federation.initialContext };
  const store = new InMemoryStore();
  const model = await sharedModel(MODEL);
  const compute = { model, prompt: new CoopPrompt(model, await sharedTokenizer(TOKENIZER), CLASSNAMES, setup.prompt) };
  const client = new FederatedClient(method, compute, setup.settings, shapes.clients[0], store, textFeatureCache(compute));
  // After the last round the run's cosine schedule is at 0: fine-tuning on it would change little (the 'continued' candidate).
  await client.finish(federation.rounds + 1, download);
  const personal = (await store.load())!;
  const first = personal['context/fine-tune-0'];
  assert.ok(first.some((v, i) => v !== download.context[i]), 'fine-tuning left the prompt as it was');
  const runtime = { setup: federation, data: shapes.clients[0], numClasses: CLASSNAMES.length, round: 4, ...noTraining };
  assert.deepEqual(method.client.predictor(runtime, download, personal).context, first);
  assert.deepEqual(method.client.predictor(runtime, download, {}).context, download.context);
});

test("ViT spatial pooling reads tokens through the tower's own ln_post; ResNet maps are averaged", async () => {
  const model = await sharedModel(MODEL);
  const pixels = new SeededRandom(8).normals(3 * 32 * 32);
  const { embeds, spatial } = await model.encodeImages(pixels, 1);
  const [, tokens, width] = spatial.shape;
  // Every patch token replaced by the class token: the pooled vector is ln_post(class token), whose projection is the image embedding.
  const cls = spatial.data.subarray(0, width);
  const same = new Float32Array(tokens * width);
  for (let t = 0; t < tokens; t++) same.set(cls, t * width);
  const pooled = spatialPooler(model.weights)(same, [tokens, width]);
  const proj = model.weights.tensors.get('visual.proj')!;
  const E = proj.shape[1];
  for (let e = 0; e < E; e++) {
    let v = 0;
    for (let k = 0; k < width; k++) v += pooled[k] * proj.data[k * E + e];
    assert.ok(Math.abs(v - embeds.data[e]) < 1e-4 * Math.max(1, Math.abs(embeds.data[e])), `embedding ${e}: ${v} vs ${embeds.data[e]}`);
  }
  const rn = spatialPooler({ ...model.weights, config: { ...model.weights.config, vision: { kind: 'resnet', imageSize: 32, width: 1, layers: [1, 1, 1, 1], heads: 1 } } });
  assert.deepEqual(rn(Float32Array.of(1, 2, 3, 4, 10, 20, 30, 40), [2, 2, 2]), Float32Array.of(2.5, 25));
});

test('a client host holds only the clients it was given: asking it for another is an error', async () => {
  const method = createMethod('pfedprompt');
  const setup = await executorSetup(method, 2);
  const host = await createExecutor({ ...setup, clients: [shapes.clients[0]] }, methodFromSpec, { workers: 1 });
  try {
    const download = { context: setup.settings.federation.initialContext };
    assert.equal((await host.evaluate({ client: 0, split: 'test', download })).client, 0);
    await assert.rejects(host.evaluate({ client: 1, split: 'test', download }), /client 1 is not hosted here \(this host runs 0\)/);
  } finally {
    await host.close();
  }
});

test("PromptAMP's cloud prompt by hand with σ ≠ 1 and no client at the origin: u_i = (1 − Σξ)P_i + Σ ξ_ij P_j, ξ_ij = α_K e^(−‖P_i − P_j‖²/σ)/σ", () => {
  const options = { alphaK: 0.1, sigma: 2, lambda: 1 };
  const P = [[1, 0], [2, 0], [1, 3]];
  const uploads = P.map((p, client) => ({ client, samples: 1, tensors: { context: Float32Array.from(p) } }));
  const xi01 = (0.1 * Math.exp(-1 / 2)) / 2;
  const xi02 = (0.1 * Math.exp(-9 / 2)) / 2;
  const expected = [0, 1].map((k) => (1 - xi01 - xi02) * P[0][k] + xi01 * P[1][k] + xi02 * P[2][k]);
  const u0 = cloudPrompts(uploads, options).get(0)!;
  expected.forEach((v, k) => assert.ok(Math.abs(u0[k] - v) < 1e-6, `u_0[${k}] = ${u0[k]}, expected ${v}`));
});

test('by default the federated methods average weighted by each client\'s training images', () => {
  const a = { client: 0, samples: 1, tensors: { context: Float32Array.of(0, 4) } };
  const b = { client: 1, samples: 3, tensors: { context: Float32Array.of(4, 0) } };
  const setup = { clients: 2, rounds: 1, contextSize: 2, contextRows: 1, contextTokens: 1, width: 2, initialContext: new Float32Array(2) };
  for (const id of ['promptfl', 'promptfl-ft', 'promptprox', 'pfedprompt'] as const) {
    assert.deepEqual(createMethod(id).server.aggregate({}, [a, b], setup).context, Float32Array.of(3, 1), id);
  }
});
