// The visual memory's choices on hand-computed cases (synthetic FeatureSets,
// no model): each query and each kind of key, leave-one-out in training,
// Tip-Adapter's keys averaged over augmented views and its grid, the α grid
// scaled to the model's logit scale, and method variants in a config.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../src/experiment/config.js';
import { memoryChoices, methodOfCell } from '../src/experiment/runner.js';
import type { FeatureSet } from '../src/federation/client-data.js';
import type { ClientRuntime, PersonalLogits } from '../src/federation/method.js';
import { createMethod, DEFAULT_METHOD_OPTIONS } from '../src/methods/index.js';
import { localTipAdapter, memoryOnly, TIP_ADAPTER_DEFAULTS, tipAdapterGrid, tipAdapterMemory } from '../src/methods/local-tip-adapter.js';
import { pFedPrompt, PFEDPROMPT_DEFAULTS } from '../src/methods/pfedprompt.js';
import { DEFAULT_MEMORY, memoryReadsTokens, VisualMemory, type MemoryOptions } from '../src/methods/visual-memory.js';
import { noTraining } from './method-fixture.js';

const e = Math.exp;
const R = Math.SQRT1_2; // cos between (1, 0) and (1, 1)/√2

/** Three shots, labels 0, 2, 2, every representation two wide, two tokens each. */
const SHOTS: FeatureSet = {
  count: 3, embedDim: 2, pooledDim: 2, labels: Int32Array.of(0, 2, 2),
  pooled: Float32Array.of(1, 0, 0, 1, 0.6, 0.8),
  embeds: Float32Array.of(0, 1, 1, 0, 1, 1),
  tokenCount: 2,
  // means (1, 0), (0, 2), (0.5, 0.5): directions (1, 0), (0, 1), (1, 1)/√2
  tokens: Float32Array.of(1, 0, 1, 0, /**/ 0, 1, 0, 3, /**/ 1, 0, 0, 1),
};

/** One query image: pooled (1, 0) after normalising, embedding (0, 1), tokens (1, 0) and (0, 1). */
const QUERY: FeatureSet = {
  count: 1, embedDim: 2, pooledDim: 2, labels: Int32Array.of(0),
  pooled: Float32Array.of(2, 0), embeds: Float32Array.of(0, 3), tokenCount: 2, tokens: Float32Array.of(1, 0, 0, 1),
};

const withOptions = (options: Partial<MemoryOptions>): MemoryOptions => ({ ...DEFAULT_MEMORY, ...options });

function assertLogits(actual: Float32Array, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} logits`);
  expected.forEach((v, c) => assert.ok(Math.abs(actual[c] - v) < 1e-6, `${what}, logit ${c}: ${actual[c]}, expected ${v}`));
}

test('each query, shot keys: α · Σ_shots exp(−β(1 − cos)) per class, by hand', () => {
  const alpha = 1.5;
  const beta = 2;
  const logits = (query: MemoryOptions['query']) => VisualMemory.build(SHOTS, 4, withOptions({ query, keys: 'shots', alpha, beta })).logits(QUERY);
  assertLogits(logits('pooled'), [alpha, 0, alpha * (e(-beta) + e(-beta * 0.4)), 0], 'pooled');
  assertLogits(logits('embedding'), [alpha, 0, alpha * (e(-beta) + e(-beta * (1 - R))), 0], 'embedding');
  // The query's tokens averaged, (1, 1)/√2, against the shots' mean tokens.
  assertLogits(logits('projected'), [alpha * e(-beta * (1 - R)), 0, alpha * (e(-beta * (1 - R)) + 1), 0], 'projected');
  // Each token against the same keys, the affinities averaged over the two tokens.
  const perToken = [(1 + e(-beta)) / 2, 0, (e(-beta) + 1 + 2 * e(-beta * (1 - R))) / 2, 0].map((v) => alpha * v);
  assertLogits(logits('tokens'), perToken, 'tokens');
});

test('prototype keys: one key per class, the normalised mean of its shots; rows pick queries', () => {
  const beta = 2;
  const memory = VisualMemory.build(SHOTS, 3, withOptions({ keys: 'prototypes', alpha: 1, beta }));
  const proto2 = 0.6 / Math.hypot(0.6, 1.8); // cos((1, 0), normalise((0, 1) + (0.6, 0.8)))
  assertLogits(memory.logits(QUERY), [1, 0, e(-beta * (1 - proto2))], 'query');
  // Rows of the shots themselves, in the order asked (no leave-one-out outside training).
  const cos1 = 1.8 / Math.hypot(0.6, 1.8);
  assertLogits(memory.logits(SHOTS, [1, 0]), [e(-beta), 0, e(-beta * (1 - cos1)), 1, 0, e(-beta * (1 - proto2))], 'rows 1, 0');
});

test('leave-one-out in training: a training image is never its own key (prototype without it, own shot masked)', () => {
  const beta = 2;
  const protos = VisualMemory.build(SHOTS, 3, withOptions({ keys: 'prototypes', alpha: 1, beta }));
  const proto2 = 0.6 / Math.hypot(0.6, 1.8);
  const training = protos.forTraining();
  // Row 0 is class 0's only shot: class 0 has no key left. Rows 1 and 2 meet class 2's prototype made of the other shot (cos 0.8).
  assertLogits(training.logits(SHOTS), [0, 0, e(-beta * (1 - proto2)), e(-beta), 0, e(-beta * 0.2), e(-beta * 0.4), 0, e(-beta * 0.2)], 'prototypes');
  assertLogits(training.logits(SHOTS, [2]), [e(-beta * 0.4), 0, e(-beta * 0.2)], 'prototypes, row 2');
  // The test fails without it: the plain memory sees the image inside its own prototype.
  assert.ok(protos.logits(SHOTS, [1])[2] > e(-beta * 0.2) + 1e-3);
  const shots = VisualMemory.build(SHOTS, 3, withOptions({ keys: 'shots', alpha: 1, beta })).forTraining();
  assertLogits(shots.logits(SHOTS, [1, 0]), [e(-beta), 0, e(-beta * 0.2), 0, 0, e(-beta) + e(-beta * 0.4)], 'shots');
  // Rows index training images, whatever the view: an augmented view of image 1 still leaves shot 1 out.
  const view: FeatureSet = { ...SHOTS, pooled: Float32Array.of(1, 0, 0.6, 0.8, 0.6, 0.8) };
  assertLogits(shots.logits(view, [1]), [e(-beta * 0.4), 0, 1], 'shots, augmented view');
  // Off: training sees the plain memory.
  const kept = VisualMemory.build(SHOTS, 3, withOptions({ keys: 'shots', alpha: 1, beta, leaveOneOut: false })).forTraining();
  assertLogits(kept.logits(SHOTS, [1]), [e(-beta), 0, 1 + e(-beta * 0.2)], 'leaveOneOut off');
  assert.throws(() => training.logits(QUERY), /rows must index the training images/);
  // A whole set scored in training is never kept as the plain memory's: the same set outside training sees every key.
  assertLogits(protos.logits(SHOTS), [1, 0, e(-beta * (1 - proto2)), e(-beta), 0, e(-beta * (1 - 1.8 / Math.hypot(0.6, 1.8))), e(-beta * 0.4), 0, e(-beta * (1 - (0.36 + 1.44) / Math.hypot(0.6, 1.8)))], 'plain, after training');
});

test('a client builds its keys once for every α and β it scores, and its cosines on a whole set once', () => {
  const views = [SHOTS];
  const runtime = { data: { id: 0, classes: [0, 2], train: views, val: QUERY, test: QUERY }, numClasses: 3 };
  const store = (m: VisualMemory) => (m as unknown as { store: { cosines: WeakMap<FeatureSet, Float64Array> } }).store;
  const a = VisualMemory.ofClient(runtime, withOptions({ alpha: 1 }));
  const b = VisualMemory.ofClient(runtime, withOptions({ alpha: 2, beta: 1 }));
  assert.equal(store(a), store(b));
  assert.notEqual(store(a), store(VisualMemory.ofClient(runtime, withOptions({ keys: 'shots' }))));
  assert.notEqual(store(a), store(VisualMemory.ofClient(runtime, withOptions({ query: 'embedding' }))));
  assert.notEqual(store(a), store(VisualMemory.ofClient(runtime, withOptions({ keyViews: 1 }))));
  a.logits(QUERY);
  assert.ok(store(a).cosines.has(QUERY));
  assert.ok(!store(a).cosines.has(SHOTS));
  a.logits(SHOTS, [0]);
  a.forTraining().logits(SHOTS);
  assert.ok(!store(a).cosines.has(SHOTS), 'rows or leave-one-out: not kept');
  // Scored again from the kept cosines: the same logits for the new α, β.
  assertLogits(b.logits(QUERY), [2, 0, 2 * e(-(1 - 0.6 / Math.hypot(0.6, 1.8)))], 'second choice');
});

test("Tip-Adapter's keys: every shot's embedding, its raw features averaged over min(views, cached) augmented views, then normalised", () => {
  const one = (embeds: number[]): FeatureSet => ({ count: 1, embedDim: 2, pooledDim: 1, labels: Int32Array.of(1), pooled: Float32Array.of(1), embeds: Float32Array.from(embeds) });
  const views = [one([0, 1]), one([3, 0]), one([0, 1]), one([0, 50])]; // plain, then three augmented
  const query = one([1, 0]);
  const beta = 2;
  const logit = (keyViews: number) => VisualMemory.build(views, 2, withOptions({ query: 'embedding', keys: 'shots', alpha: 1, beta, keyViews })).logits(query)[1];
  assert.ok(Math.abs(logit(2) - e(-beta * (1 - 3 / Math.sqrt(10)))) < 1e-6, `two views: ${logit(2)}`); // mean (1.5, 0.5), not the mean of unit vectors
  assert.ok(Math.abs(logit(0) - e(-beta)) < 1e-6, 'no views: the plain image');
  const onlyPlain = VisualMemory.build([views[0]], 2, withOptions({ query: 'embedding', keys: 'shots', alpha: 1, beta, keyViews: 10 })).logits(query)[1];
  assert.ok(Math.abs(onlyPlain - e(-beta)) < 1e-6, `views asked, none cached: the plain image (${onlyPlain})`);
  assert.ok(Math.abs(logit(10) - e(-beta * (1 - 3 / Math.hypot(3, 51)))) < 1e-6, 'ten asked, three cached: all three');
  // The method builds its memory so, with its own α and β from the choice.
  const runtime = { setup: undefined!, data: { id: 0, classes: [1], train: views, val: query, test: query }, numClasses: 2, round: 1, ...noTraining } as ClientRuntime;
  const method = localTipAdapter({ ...TIP_ADAPTER_DEFAULTS, views: 2 });
  const personal = method.client.predictor(runtime, { context: new Float32Array(1) }, undefined, { alpha: 3, beta }).personal as PersonalLogits;
  assert.ok(Math.abs(personal.logits(query)[1] - 3 * e(-beta * (1 - 3 / Math.sqrt(10)))) < 1e-6);
  assert.deepEqual(tipAdapterMemory(TIP_ADAPTER_DEFAULTS), { query: 'embedding', keys: 'shots', keyViews: 10, alpha: 1.17, beta: 1, inTraining: false, leaveOneOut: false });
  assert.equal(method.id, 'local-tip-adapter');
  assert.equal(method.label, 'local Tip-Adapter');
  assert.equal(method.trainsPrompt, false);
  assert.equal(method.readsTokens, false);
  assert.match(method.staysOnClient, /visual memory/);
  assert.match(method.choosesOnValidation ?? '', /α and β/);
  assert.deepEqual(method.server.uploadSpec(undefined!), {});
});

test("Tip-Adapter's grid is its search_hp's: steps values from 0.1 to the scale", () => {
  const grid = tipAdapterGrid({ ...TIP_ADAPTER_DEFAULTS, searchScale: [12, 5], searchSteps: [200, 20] });
  assert.equal(grid.beta.length, 200);
  assert.equal(grid.alpha.length, 20);
  assert.ok(Math.abs(grid.beta[0] - 0.1) < 1e-12 && Math.abs(grid.beta[1] - (11.9 / 200 + 0.1)) < 1e-12 && Math.abs(grid.beta[199] - (199 * 11.9 / 200 + 0.1)) < 1e-12);
  assert.ok(Math.abs(grid.alpha[19] - (19 * 4.9 / 20 + 0.1)) < 1e-12);
});

test('the α grid scales with the model’s logit scale; β does not; local Tip-Adapter gets its own grid', () => {
  const config = parseConfig({ model: 'm', data: { datasets: ['d'] }, methods: ['pfedprompt', 'local-tip-adapter'] });
  const scaled = memoryChoices(config, 'pfedprompt', 27);
  const plain = memoryChoices(config, 'pfedprompt', 100);
  assert.equal(scaled.length, config.memorySearch.alpha.length * config.memorySearch.beta.length);
  scaled.forEach((c, i) => {
    assert.ok(Math.abs(c.alpha - 0.27 * plain[i].alpha) < 1e-12, `choice ${i}: α ${c.alpha} vs ${plain[i].alpha}`);
    assert.equal(c.beta, plain[i].beta);
  });
  assert.deepEqual(plain.map((c) => c.alpha), config.memorySearch.alpha.flatMap((a) => config.memorySearch.beta.map(() => a)));
  const unscaled = memoryChoices(parseConfig({ model: 'm', data: { datasets: ['d'] }, memorySearch: { scaleAlpha: false } }), 'pfedprompt', 27);
  assert.deepEqual(unscaled, plain);
  const tip = memoryChoices(config, 'local-tip-adapter', 50);
  const grid = tipAdapterGrid(TIP_ADAPTER_DEFAULTS);
  assert.equal(tip.length, grid.alpha.length * grid.beta.length);
  assert.deepEqual(tip[0], { alpha: grid.alpha[0] / 2, beta: grid.beta[0] });
  assert.throws(() => memoryChoices(config, 'pfedprompt', 0), /logit scale/);
});

test('variants: one run holds several pFedPrompts with different memories, each under its own name and label', () => {
  const config = parseConfig({
    model: 'm', data: { datasets: ['d'] },
    methods: ['pfedprompt', 'pfp-shots', 'tokens'],
    methodOptions: { memory: { beta: 3 } },
    variants: {
      'pfp-shots': { method: 'pfedprompt', methodOptions: { memory: { keys: 'shots' } } },
      tokens: { method: 'pfedprompt', label: 'pFedPrompt, per-token query', methodOptions: { memory: { query: 'tokens' } } },
    },
  });
  const plain = methodOfCell(config, 'pfedprompt');
  const shots = methodOfCell(config, 'pfp-shots');
  const tokens = methodOfCell(config, 'tokens');
  assert.deepEqual([plain.id, shots.id, tokens.id], ['pfedprompt', 'pfp-shots', 'tokens']);
  assert.deepEqual([plain.label, shots.label, tokens.label], ['pFedPrompt', 'pFedPrompt (pfp-shots)', 'pFedPrompt, per-token query']);
  assert.equal(plain.readsTokens, false);
  assert.equal(tokens.readsTokens, true);
  assert.throws(() => parseConfig({ model: 'm', data: { datasets: ['d'] }, methods: ['nope'] }), /methods\.0: "nope" is neither a method/);
  assert.throws(() => parseConfig({ model: 'm', data: { datasets: ['d'] }, variants: { x: { method: 'pfedprompt', methodOptions: { memory: { query: 'nowhere' } } } } }),
    /variants\.x\.methodOptions\.memory\.query/);
  assert.throws(() => parseConfig({ model: 'm', data: { datasets: ['d'] }, variants: { promptfl: { method: 'pfedprompt' } } }), /variants\.promptfl: a variant cannot take a method's name/);
});

test("pFedPrompt trains with the leave-one-out memory and predicts with the whole one; memory only puts pFedPrompt's memory on the hand prompt", async () => {
  const beta = 2;
  const memory = withOptions({ keys: 'shots', alpha: 1, beta });
  let seen: PersonalLogits | undefined;
  const runtime = {
    setup: { contextSize: 2 } as ClientRuntime["setup"], data: { id: 0, classes: [0, 2], train: [SHOTS], val: QUERY, test: QUERY }, numClasses: 3, round: 1, ...noTraining,
    train: async (start: Float32Array, options: { personal?: PersonalLogits } = {}) => ((seen = options.personal), { context: start, meanLoss: 0, steps: 0 }),
  } as ClientRuntime;
  const download = { context: new Float32Array(2) };
  const fitted = await pFedPrompt({ weighted: true, memory }).client.fit(runtime, download, undefined);
  assertLogits(seen!.logits(SHOTS, [1]), [e(-beta), 0, e(-beta * 0.2)], 'training memory');
  assert.deepEqual(fitted, { upload: { context: download.context }, personal: {}, loss: 0, steps: 0 }, 'uploads the trained context, keeps nothing personal');
  const method = pFedPrompt();
  assert.deepEqual([method.id, method.label], ['pfedprompt', 'pFedPrompt']);
  assert.match(method.trains, /shared/);
  assert.match(method.staysOnClient, /visual memory/);
  assert.match(method.choosesOnValidation ?? '', /α and β/);
  assert.deepEqual(PFEDPROMPT_DEFAULTS, { weighted: true, memory: DEFAULT_MEMORY });
  // FedAvg weighted by samples, or not, as asked.
  const uploads = [{ client: 0, samples: 1, tensors: { context: Float32Array.of(0, 4) } }, { client: 1, samples: 3, tensors: { context: Float32Array.of(4, 0) } }];
  const setup = { contextSize: 2 } as ClientRuntime['setup'];
  assert.deepEqual(method.server.aggregate({}, uploads, setup).context, Float32Array.of(3, 1));
  assert.deepEqual(pFedPrompt({ weighted: false, memory }).server.aggregate({}, uploads, setup).context, Float32Array.of(2, 2));
  seen = undefined;
  await pFedPrompt({ weighted: true, memory: { ...memory, inTraining: false } }).client.fit(runtime, download, undefined);
  assert.equal(seen, undefined);
  const predicted = pFedPrompt({ weighted: true, memory }).client.predictor(runtime, download, undefined, { alpha: 2 }).personal!;
  assertLogits(predicted.logits(SHOTS, [1]), [2 * e(-beta), 0, 2 * (1 + e(-beta * 0.2))], 'predicting memory');
  const only = memoryOnly(memory);
  assert.equal(only.id, 'memory-only');
  assert.equal(only.trainsPrompt, false);
  assertLogits(only.client.predictor(runtime, download, undefined, { beta: 1 }).personal!.logits(QUERY), [1, 0, e(-1) + e(-0.4)], 'memory only');
  assert.equal(createMethod('memory-only', DEFAULT_METHOD_OPTIONS).label, 'memory only (hand prompt)');
});

test('bad memory options and features name what is wrong', () => {
  assert.equal(memoryReadsTokens({ query: 'projected' }), true);
  assert.equal(memoryReadsTokens({ query: 'tokens' }), true);
  assert.equal(memoryReadsTokens({ query: 'pooled' }), false);
  assert.equal(memoryReadsTokens({ query: 'embedding' }), false);
  const noTokens: FeatureSet = { ...SHOTS, tokens: undefined, tokenCount: undefined };
  assert.throws(() => VisualMemory.build(noTokens, 3, withOptions({ query: 'projected' })), /reads spatial tokens, and the features have none/);
  assert.throws(() => VisualMemory.build(SHOTS, 3, withOptions({ query: 'tokens' })).logits(noTokens), /features have none/);
  assert.throws(() => VisualMemory.build({ ...SHOTS, tokens: new Float32Array(5) }, 3, withOptions({ query: 'projected' })), /tokens hold 5 values, expected 3 × 2 × 2/);
  assert.throws(() => VisualMemory.build(SHOTS, 3, withOptions({ query: 'nowhere' as MemoryOptions['query'] })), /memory.query must be one of pooled, projected, tokens, embedding/);
  assert.throws(() => VisualMemory.build(SHOTS, 3, withOptions({ keys: 'all' as MemoryOptions['keys'] })), /memory.keys must be prototypes or shots/);
  assert.throws(() => VisualMemory.build(SHOTS, 3, withOptions({ keyViews: -1 })), /memory.keyViews must be a whole number/);
  assert.throws(() => VisualMemory.build([SHOTS, QUERY], 3, withOptions({ keyViews: 1 })), /a view holds 1 images, the plain set 3/);
  const wide: FeatureSet = { ...QUERY, pooledDim: 3, pooled: Float32Array.of(1, 0, 0) };
  assert.throws(() => VisualMemory.build(SHOTS, 3, DEFAULT_MEMORY).logits(wide), /queries are 3 wide, keys 2/);
});
