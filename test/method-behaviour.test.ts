// What each method does differently from PromptFL, observed on real local
// training with the tiny fixture CLIP: PromptProx's pull towards the global
// prompt, PromptAMP's towards the cloud prompt (strength λ/α_K), pFedPrompt's
// memory in training and in prediction, personal state kept between rounds
// (PromptPer, local CoOp), and partial participation on the real engine.
// The method tests compare a method with PromptFL (or with itself) from the same
// start and seed, so a method that silently degrades into PromptFL, or
// forgets its state, fails here rather than only in a paper's numbers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClientExecutor, ClientHostSetup } from '../src/federation/client-executor.js';
import { participants, runFederation, type FederationResult } from '../src/federation/engine.js';
import { classTextFeatures, predictLogits } from '../src/federation/evaluation.js';
import { federatedAverage, type ClientRuntime, type ClientUpload, type Method, type Tensors } from '../src/federation/method.js';
import { DEFAULT_METHOD_OPTIONS, METHOD_IDS, createMethod, type MethodId, type MethodOptions } from '../src/methods/index.js';
import { VisualMemory } from '../src/methods/visual-memory.js';
import { computeFor, hostSetup, localClients, methodWith, noTraining, useShapesClients } from './method-fixture.js';
import { CLASSNAMES } from './synthetic-dataset.js';

const shapes = useShapesClients();
const SEED = 7;

/** Clients of `id` (with `options`) in this thread, each with a store the test reads. */
async function clientsOf(id: MethodId, options: Partial<MethodOptions> = {}, wrap: (m: Method) => Method = (m) => m) {
  const { method, options: merged } = methodWith(id, options);
  const setup = await hostSetup(method, shapes.clients, SEED, merged);
  return { ...(await localClients(wrap(method), setup)), setup, method };
}

/** What a client's training started from, each time it trained. */
interface Start {
  readonly client: number;
  readonly round: number;
  readonly start: Float32Array;
}

/** `method` with every `runtime.train` call's starting context recorded in `starts`. */
function recordingStarts(starts: Start[]) {
  return (method: Method): Method => ({
    ...method,
    client: {
      ...method.client,
      fit: (runtime, download, personal) => method.client.fit(watched(runtime), download, personal),
    },
  });
  function watched(runtime: ClientRuntime): ClientRuntime {
    return {
      ...runtime,
      train: (start, options) => {
        starts.push({ client: runtime.data.id, round: runtime.round, start: start.slice() });
        return runtime.train(start, options);
      },
    };
  }
}

function distance(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum);
}

/** Rows `rows` of a [rows, W] context, concatenated. */
function rowsOf(context: Float32Array, rows: readonly number[], W: number): Float32Array {
  const out = new Float32Array(rows.length * W);
  rows.forEach((r, i) => out.set(context.subarray(r * W, (r + 1) * W), i * W));
  return out;
}

test("PromptProx's proximal term holds a client near the global prompt: its trained context ends nearer the prompt it was sent than PromptFL's, from the same start and seed", async () => {
  const fl = await clientsOf('promptfl');
  const prox = await clientsOf('promptprox', { mu: DEFAULT_METHOD_OPTIONS.mu });
  const download = { context: fl.setup.settings.federation.initialContext };
  for (let k = 0; k < shapes.clients.length; k++) {
    const free = await fl.clients[k].fit(1, download);
    const held = await prox.clients[k].fit(1, download);
    const dFree = distance(free.upload.context, download.context);
    const dHeld = distance(held.upload.context, download.context);
    assert.ok(dHeld < dFree, `client ${k}: PromptProx moved ${dHeld} from the global prompt, PromptFL ${dFree}`);
    // The penalty is added to the reported loss too.
    assert.ok(held.loss > 0 && held.loss !== free.loss, `client ${k}: losses ${held.loss} and ${free.loss}`);
  }
});

test("PromptAMP's pull towards the client's cloud prompt has strength λ/α_K: the same ratio trains identically, a larger one ends nearer the cloud prompt, and λ = 0 trains as PromptFL", async () => {
  const fl = await clientsOf('promptfl');
  const amp = (lambda: number, alphaK: number) => clientsOf('promptamp', { amp: { alphaK, sigma: 1, lambda } });
  const [free, eight, alsoEight, eighty] = await Promise.all([amp(0, 0.1), amp(1, 0.125), amp(0.5, 0.0625), amp(10, 0.125)]);
  const cloud = fl.setup.settings.federation.initialContext;
  for (let k = 0; k < shapes.clients.length; k++) {
    const plain = await fl.clients[k].fit(1, { context: cloud });
    const replies = [];
    for (const clients of [free, eight, alsoEight, eighty]) replies.push(await clients.clients[k].fit(1, { cloud }));
    const [r0, r8, r8again, r80] = replies;
    assert.deepEqual(r0.upload.context, plain.upload.context, `client ${k}: PromptAMP with λ = 0 is not PromptFL's training`);
    assert.equal(r0.loss, plain.loss);
    assert.deepEqual(r8again.upload.context, r8.upload.context, `client ${k}: λ 0.5, α_K 0.0625 trains otherwise than λ 1, α_K 0.125`);
    const [far, near, nearest] = [r0, r8, r80].map((r) => distance(r.upload.context, cloud));
    assert.ok(nearest < near && near < far, `client ${k}: distances to the cloud prompt ${far}, ${near}, ${nearest} for λ/α_K 0, 8, 80`);
  }
});

test("pFedPrompt trains with its visual memory: its local trajectory and loss differ from PromptFL's, and equal them with memory.inTraining off", async () => {
  const fl = await clientsOf('promptfl');
  const withMemory = await clientsOf('pfedprompt');
  const without = await clientsOf('pfedprompt', { memory: { ...DEFAULT_METHOD_OPTIONS.memory, inTraining: false } });
  const download = { context: fl.setup.settings.federation.initialContext };
  for (let k = 0; k < shapes.clients.length; k++) {
    const plain = await fl.clients[k].fit(1, download);
    const trained = await withMemory.clients[k].fit(1, download);
    const untouched = await without.clients[k].fit(1, download);
    assert.notDeepEqual(trained.upload.context, plain.upload.context, `client ${k}: the memory did not change the trained context`);
    // A training image sits in its own memory, which adds to its own class's logit: the cross-entropy is lower.
    assert.ok(trained.loss < plain.loss, `client ${k}: loss ${trained.loss} with the memory, ${plain.loss} without`);
    assert.deepEqual(untouched.upload.context, plain.upload.context, `client ${k}: memory.inTraining off is not PromptFL's training`);
    assert.equal(untouched.loss, plain.loss);
  }
});

test("pFedPrompt predicts with its visual memory: its logits are PromptFL's under the same context plus the client's memory logits, and its accuracy follows α", async () => {
  const fl = await clientsOf('promptfl');
  const pfp = await clientsOf('pfedprompt');
  const federation = fl.setup.settings.federation;
  const download = { context: federation.initialContext };
  const { model, prompt } = await computeFor(pfp.setup);
  const texts = await classTextFeatures({ model, prompt }, download.context);
  for (let k = 0; k < shapes.clients.length; k++) {
    const data = shapes.clients[k];
    const runtime: ClientRuntime = { setup: federation, data, numClasses: prompt.classnames.length, round: federation.rounds, ...noTraining };
    const memory = VisualMemory.ofClient(runtime, DEFAULT_METHOD_OPTIONS.memory).logits(data.test);
    assert.ok(memory.some((v) => v > 0));
    const predictor = pfp.method.client.predictor(runtime, download, undefined);
    assert.deepEqual(predictor.context, download.context);
    const clip = predictLogits(data.test, texts, model.logitScale);
    const personalised = predictLogits(data.test, texts, model.logitScale, predictor.personal);
    personalised.forEach((v, i) => assert.ok(Math.abs(v - (clip[i] + memory[i])) < 1e-4, `client ${k}, logit ${i}: ${v} vs ${clip[i]} + ${memory[i]}`));
    // Through the client: α = 0 is PromptFL's prediction; a large α is the memory's.
    const [plain] = (await fl.clients[k].evaluate('test', download)).accuracies;
    const [none, strong] = (await pfp.clients[k].evaluate('test', download, [{ alpha: 0, beta: 5.5 }, { alpha: 1e4, beta: 5.5 }])).accuracies;
    assert.equal(none, plain);
    assert.ok(strong > plain, `client ${k}: accuracy ${strong} with a dominant memory, ${plain} without it`);
  }
});

test("PromptPer keeps its personal rows between rounds: round 2 trains from round 1's personal rows (kept in the client's store), they differ between clients, and the client predicts with them", async () => {
  const starts: Start[] = [];
  const per = await clientsOf('promptper', {}, recordingStarts(starts));
  const federation = per.setup.settings.federation;
  const W = federation.width;
  const globalRows = [0, 1]; // ⌊M/2⌋ of M = 4 context tokens
  const personalRows = [2, 3];
  const round1 = { global: rowsOf(federation.initialContext, globalRows, W) };
  const uploads: ClientUpload[] = [];
  for (const client of per.clients) {
    const reply = await client.fit(1, round1);
    uploads.push({ client: reply.client, samples: reply.samples, tensors: reply.upload });
  }
  const kept: Float32Array[] = [];
  for (let k = 0; k < per.clients.length; k++) {
    const personal = (await per.stores[k].load())?.personal;
    assert.ok(personal, `client ${k} kept no personal rows after round 1`);
    assert.notDeepEqual(personal, rowsOf(federation.initialContext, personalRows, W), `client ${k}: round 1 did not train its personal rows`);
    kept.push(personal);
  }
  assert.notDeepEqual(kept[0], kept[1], 'two clients hold the same personal rows');
  const round2 = { global: federatedAverage(uploads, 'global', true) };
  for (let k = 0; k < per.clients.length; k++) {
    await per.clients[k].fit(2, round2);
    const [start] = starts.filter((s) => s.client === k && s.round === 2);
    assert.deepEqual(rowsOf(start.start, personalRows, W), kept[k], `client ${k}: round 2 did not start from its own round-1 personal rows`);
    assert.deepEqual(rowsOf(start.start, globalRows, W), round2.global, `client ${k}: round 2 did not start from the global rows it was sent`);
    const personal = await per.stores[k].load();
    const runtime: ClientRuntime = { setup: federation, data: shapes.clients[k], numClasses: CLASSNAMES.length, round: 3, ...noTraining };
    const { context } = per.method.client.predictor(runtime, round2, personal);
    assert.deepEqual(rowsOf(context!, personalRows, W), personal!.personal, `client ${k} does not predict with its personal rows`);
  }
});

test('local CoOp continues from its own context: round 2 trains from the context round 1 left in the client\'s store, not from the seeded start it is sent again', async () => {
  const starts: Start[] = [];
  const coop = await clientsOf('local-coop', {}, recordingStarts(starts));
  const download = { context: coop.setup.settings.federation.initialContext };
  for (let k = 0; k < coop.clients.length; k++) {
    await coop.clients[k].fit(1, download);
    const kept = (await coop.stores[k].load())?.context;
    assert.ok(kept && kept.some((v, i) => v !== download.context[i]), `client ${k} kept no trained context after round 1`);
    await coop.clients[k].fit(2, download);
    const [start] = starts.filter((s) => s.client === k && s.round === 2);
    assert.deepEqual(start.start, kept, `client ${k}: round 2 did not continue from its own context`);
  }
});

test('the engine trains every prompt learner (local CoOp included) and no training-free method: zero-shot CLIP, local Tip-Adapter and memory only', () => {
  const trainingFree = METHOD_IDS.filter((id) => !createMethod(id).trainsPrompt);
  assert.deepEqual(trainingFree, ['zeroshot', 'local-tip-adapter', 'memory-only']);
});

test('participants: a seeded draw of max(1, round(f·N)) distinct clients per round, the same for the same seed and round, varying across rounds and seeds', () => {
  const draws = (seed: number) => Array.from({ length: 6 }, (_, r) => participants(10, 0.3, seed, r + 1));
  for (const round of draws(1)) {
    assert.equal(round.length, 3);
    assert.equal(new Set(round).size, 3);
    assert.ok(round.every((c, i) => Number.isInteger(c) && c >= 0 && c < 10 && (i === 0 || round[i - 1] < c)), `${round}`);
  }
  assert.deepEqual(draws(1), draws(1));
  assert.ok(new Set(draws(1).map(String)).size > 1, 'every round draws the same clients');
  assert.notDeepEqual(draws(1), draws(2));
  assert.deepEqual(participants(10, 1, 1, 1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(participants(10, 0.01, 1, 1).length, 1);
});

interface PartialRun {
  readonly result: FederationResult;
  /** Every fit job the engine sent, as (round, client), whether or not it succeeded. */
  readonly asked: readonly (readonly [number, number])[];
  readonly fits: readonly { readonly round: number; readonly client: number; readonly download: Tensors; readonly upload: ClientUpload }[];
  readonly starts: readonly Start[];
  /** Every client's stored state before the run and after each round. */
  readonly states: readonly (readonly (Tensors | undefined)[])[];
  readonly setup: ClientHostSetup;
}

/** PromptPer for 4 rounds on the real engine with `participation`, clients in this thread; what each round sent, trained and left in the stores. */
async function runPartially(seed: number, participation: number): Promise<PartialRun> {
  const starts: Start[] = [];
  const { method, options } = methodWith('promptper');
  const base = await hostSetup(method, shapes.clients, seed, options);
  const setup = { ...base, settings: { ...base.settings, federation: { ...base.settings.federation, rounds: 4 }, scheduleEpochs: 8 } };
  const { clients, stores } = await localClients(recordingStarts(starts)(method), setup);
  const asked: [number, number][] = [];
  const fits: { round: number; client: number; download: Tensors; upload: ClientUpload }[] = [];
  const executor: ClientExecutor = {
    async fit(job) {
      asked.push([job.round, job.client]);
      const reply = await clients[job.client].fit(job.round, job.download);
      fits.push({ round: job.round, client: job.client, download: job.download, upload: { client: reply.client, samples: reply.samples, tensors: reply.upload } });
      return reply;
    },
    evaluate: (job) => clients[job.client].evaluate(job.split, job.download, job.choices),
    close: async () => {},
  };
  // A store's load resolves to its state when called: one snapshot of every store before the run and after each round.
  const snapshots: Promise<(Tensors | undefined)[]>[] = [Promise.all(stores.map((s) => s.load()))];
  const result = await runFederation(method, setup.settings.federation, executor, { participation, seed, choices: [], evaluateEachRound: false },
    () => snapshots.push(Promise.all(stores.map((s) => s.load()))));
  return { result, asked, fits, starts, states: await Promise.all(snapshots), setup };
}

test('partial participation: only the drawn clients train each round, the others keep their state, the aggregate is of the participants\' uploads only, and one seed gives the same run', async () => {
  const seed = 9; // draws {1,2} {0,2} {1,2} {0,1}: clients sit out and come back
  const participation = 0.6;
  const { result, asked, fits, starts, states, setup } = await runPartially(seed, participation);
  const { width: W, initialContext, clients: N } = setup.settings.federation;
  const personalRows = [2, 3];
  const cameBack = new Set<number>();
  result.rounds.forEach((record, i) => {
    const round = i + 1;
    assert.deepEqual(record.participants, participants(N, participation, seed, round));
    assert.equal(record.participants.length, 2);
    const trained = fits.filter((f) => f.round === round);
    assert.deepEqual(asked.filter(([r]) => r === round).map(([, k]) => k).sort(), record.participants, `round ${round}: other clients than the drawn ones were asked to train`);
    assert.deepEqual(trained.map((f) => f.client).sort(), record.participants);
    for (let k = 0; k < N; k++) {
      if (record.participants.includes(k)) {
        assert.notEqual(states[round][k], states[round - 1][k], `round ${round}: participant ${k} saved no new state`);
        // A participant trains from the personal rows it kept last time it took part (the seeded ones the first time).
        const kept: Float32Array = states[round - 1][k]?.personal ?? rowsOf(initialContext, personalRows, W);
        const began: Float32Array = starts.find((s) => s.client === k && s.round === round)!.start;
        assert.deepEqual(rowsOf(began, personalRows, W), kept, `round ${round}: client ${k} did not start from its own kept rows`);
        if (round > 1 && !result.rounds[round - 2].participants.includes(k) && states[round - 1][k]) cameBack.add(k);
      } else {
        assert.equal(states[round][k], states[round - 1][k], `round ${round}: client ${k} did not take part, yet its state changed`);
      }
    }
    // What the server sends next (or keeps at the end) is the weighted average of this round's participants' uploads.
    const next = round < result.rounds.length ? fits.find((f) => f.round === round + 1)!.download : result.finalState;
    assert.deepEqual(next.global, federatedAverage(trained.map((f) => f.upload), 'global', true), `round ${round}: the aggregate is not of the participants' uploads`);
  });
  assert.deepEqual(result.failures, []);
  assert.ok(cameBack.size > 0, 'no client sat a round out and came back: the draw no longer tests that');
  const again = await runPartially(seed, participation);
  assert.deepEqual(again.result.rounds.map((r) => r.participants), result.rounds.map((r) => r.participants));
  assert.deepEqual(again.result.finalState, result.finalState);
});
