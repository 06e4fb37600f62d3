// The training protocol as the field runs it: the learning rate of every
// epoch (warm-up and cosine) against PyTorch under Dassl's scheduler, the
// augmented views (one seeded family per run seed, each view once per cycle
// of epochs, a run's rounds and its fine-tune reading on from each other),
// and PromptFL+FT's fine-tuning schedules, chosen on validation images.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { loadDataset } from '../src/data/load-dataset.js';
import { createPartition } from '../src/data/partitioners/index.js';
import { loadClientData } from '../src/experiment/client-features.js';
import { parseConfig } from '../src/experiment/config.js';
import { selectionField, validationChoices } from '../src/experiment/runner.js';
import { runAugmentSeed } from '../src/features/augment.js';
import { featureKey } from '../src/features/cache.js';
import type { ClientData, FeatureSet } from '../src/federation/client-data.js';
import { sharedModel } from '../src/federation/client-executor.js';
import type { ClientExecutor, EvalJob } from '../src/federation/client-executor.js';
import { runFederation } from '../src/federation/engine.js';
import { accuracy, classTextFeatures, predictLogits } from '../src/federation/evaluation.js';
import { forEachBatch, viewOfEpoch, type TrainingSchedule } from '../src/federation/local-training.js';
import type { Method } from '../src/federation/method.js';
import { createMethod } from '../src/methods/index.js';
import { DEFAULT_FINE_TUNES, FINE_TUNE_SHAPES, fineTuneRates, promptFlFineTuned } from '../src/methods/promptfl-ft.js';
import { learningRate, type SgdOptions } from '../src/prompt/sgd.js';
import { MODEL, computeFor, hostSetup, localClients, useShapesClients } from './method-fixture.js';
import { PROJECT_ROOT } from './shared.js';
import { writeShapesDataset } from './synthetic-dataset.js';

const shapes = useShapesClients();

// ---------------------------------------------------------------- learning rates

interface ScheduleCase {
  readonly lr: number;
  readonly totalEpochs: number;
  readonly warmupEpochs: number;
  readonly extraEpochs: number;
  readonly rates: readonly number[];
}
const GOLDEN = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'test', 'fixtures', 'schedule', 'schedule-golden.json'), 'utf8')) as { cases: ScheduleCase[] };

test('learning rates: every epoch as torch.optim.lr_scheduler.CosineAnnealingLR under Dassl\'s constant warm-up gives it, and the run\'s cosine carried on past its end', () => {
  assert.ok(GOLDEN.cases.some((c) => c.warmupEpochs > 0) && GOLDEN.cases.some((c) => c.warmupEpochs === 0));
  for (const c of GOLDEN.cases) {
    const sgd: SgdOptions = { lr: c.lr, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', warmupEpochs: c.warmupEpochs, warmupLr: 1e-5 };
    const ours = Array.from({ length: c.totalEpochs }, (_, e) => learningRate(sgd, e, c.totalEpochs));
    const carried = fineTuneRates({ shape: 'continued', lrScale: 1 }, c.extraEpochs, sgd, c.totalEpochs);
    [...ours, ...carried].forEach((rate, e) => {
      assert.ok(Math.abs(rate - c.rates[e]) <= 1e-12 + 1e-9 * c.lr, `lr ${c.lr}, ${c.totalEpochs} epochs, warm-up ${c.warmupEpochs}: epoch ${e}: ${rate} vs PyTorch ${c.rates[e]}`);
    });
  }
  // The warm-up is the run's first epoch only, at 1e-5.
  const warm: SgdOptions = { lr: 0.002, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', warmupEpochs: 1 };
  assert.equal(learningRate(warm, 0, 50), 1e-5);
  assert.equal(learningRate(warm, 1, 50), 0.002);
  assert.equal(learningRate({ ...warm, warmupEpochs: 0 }, 0, 50), 0.002);
});

// ---------------------------------------------------------------- augmented views

test('viewOfEpoch: every view once per cycle of V epochs, in an order the seed decides', () => {
  for (const V of [1, 4, 10]) {
    for (let cycle = 0; cycle < 3; cycle++) {
      const seen = Array.from({ length: V }, (_, e) => viewOfEpoch(cycle * V + e, V, 5)).sort((a, b) => a - b);
      assert.deepEqual(seen, Array.from({ length: V }, (_, v) => v + 1), `V = ${V}, cycle ${cycle}`);
    }
  }
  const order = (seed: number, cycle = 0): number[] => Array.from({ length: 10 }, (_, e) => viewOfEpoch(cycle * 10 + e, 10, seed));
  assert.deepEqual(order(5), order(5));
  assert.notDeepEqual(order(5), order(6), 'the order does not depend on the seed');
  assert.notDeepEqual(order(5, 0), order(5, 1), 'every cycle goes through the views in the same order');
  assert.equal(viewOfEpoch(7, 0, 5), 0, 'without augmented views training reads the plain images');
  assert.throws(() => viewOfEpoch(-1, 4, 5), /epoch must be a non-negative integer/);
});

/** A client whose training set has `views` augmented views, each a FeatureSet of its own. */
function clientWithViews(views: number): ClientData {
  const random = new SeededRandom(1);
  const set = (): FeatureSet => ({ count: 5, embedDim: 2, pooledDim: 2, embeds: random.normals(10), pooled: random.normals(10), labels: Int32Array.of(0, 1, 0, 1, 0) });
  return { id: 0, classes: [0, 1], train: Array.from({ length: views + 1 }, set), val: set(), test: set() };
}

test('forEachBatch: every batch of an epoch is read in the view viewOfEpoch gives for the run\'s epoch', async () => {
  const data = clientWithViews(6);
  const schedule: TrainingSchedule = {
    epochs: 3, batchSize: 2, learningRates: [1, 2, 3], seed: 4, firstEpoch: 2, viewSeed: 9,
    sgd: { lr: 1, momentum: 0, weightDecay: 0, schedule: 'constant' },
  };
  const read: [number, number][] = [];
  await forEachBatch(data, schedule, async (batch) => (read.push([batch.epoch, data.train.indexOf(batch.view)]), 0));
  assert.equal(read.length, 9);
  for (const [epoch, view] of read) assert.equal(view, viewOfEpoch(2 + epoch, 6, 9), `epoch ${epoch} read view ${view}`);
});

/** The view each epoch of `schedule` reads, in order. */
async function viewsRead(data: ClientData, schedule: TrainingSchedule): Promise<number[]> {
  const byEpoch: number[] = [];
  await forEachBatch(data, schedule, async ({ epoch, view }) => ((byEpoch[epoch] = data.train.indexOf(view)), 0));
  return byEpoch;
}

test('a client\'s rounds and its finishing step go through its views in one run-wide order: with one view per epoch, each view exactly once; the warm-up is the run\'s first epoch only', async () => {
  const base = await hostSetup(createMethod('promptfl'), shapes.clients, 3);
  const rounds = 3;
  const epochs = base.settings.localEpochs * rounds; // 6
  const data = clientWithViews(epochs);
  const seen: { kind: string; views: number[]; rates: readonly number[] }[] = [];
  const spy: Method = {
    ...createMethod('promptfl'),
    client: {
      async fit(runtime) {
        const schedule = runtime.schedule();
        seen.push({ kind: 'fit', views: await viewsRead(runtime.data, schedule), rates: schedule.learningRates });
        return { upload: {}, personal: {}, loss: 0, steps: 0 };
      },
      async finish(runtime) {
        seen.push({ kind: 'finish', views: await viewsRead(runtime.data, runtime.schedule({ learningRates: [1, 1, 1, 1, 1, 1, 1] })), rates: [] });
        return {};
      },
      predictor: () => ({}),
    },
  };
  const setup = { ...base, settings: { ...base.settings, sgd: { ...base.settings.sgd, warmupEpochs: 1 }, scheduleEpochs: epochs, federation: { ...base.settings.federation, rounds } }, clients: [data] };
  const { clients } = await localClients(spy, setup);
  for (let round = 1; round <= rounds; round++) await clients[0].fit(round, {});
  await clients[0].finish(rounds + 1, {});
  const runViews = seen.filter((s) => s.kind === 'fit').flatMap((s) => s.views);
  assert.deepEqual([...runViews].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6], `the run read views ${runViews.join(', ')}`);
  assert.notDeepEqual(runViews, [1, 2, 3, 4, 5, 6], 'the views are read in their plain order, not a seeded one');
  // The finishing step's 7 epochs start a new cycle: all 6 views, then one again.
  const finish = seen.find((s) => s.kind === 'finish')!.views;
  assert.equal(finish.length, 7);
  assert.deepEqual(finish.slice(0, 6).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
  const rates = seen.filter((s) => s.kind === 'fit').map((s) => s.rates);
  assert.equal(rates[0][0], 1e-5, 'the run does not start with the warm-up rate');
  assert.equal(rates[0][1], base.settings.sgd.lr, 'after the warm-up the cosine does not start at its peak');
  assert.ok(rates[1][0] > 1e-4, 'the second round warms up again');
});

test('each run seed trains on augmented views of its own, keyed apart from the views of old caches; the plain images are shared', async () => {
  const first = runAugmentSeed(0, 1);
  assert.equal(runAugmentSeed(0, 1), first);
  assert.notEqual(runAugmentSeed(0, 2), first);
  assert.notEqual(runAugmentSeed(1, 1), first);
  assert.notEqual(featureKey('a.png|10|5', 1, first), featureKey('a.png|10|5', 1, 0), 'a run seed\'s views read the views cached under augmentation seed 0');
  assert.throws(() => runAugmentSeed(0, -1), /non-negative integers/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-views-'));
  try {
    await writeShapesDataset(path.join(dir, 'shapes'), 4);
    const dataset = await loadDataset(path.join(dir, 'shapes'));
    const partition = createPartition(dataset, { scheme: 'pathological', clients: 2, shots: 2, valShots: 1 });
    const model = await sharedModel(MODEL);
    const load = (seed: number) => loadClientData(model, dataset, partition, { views: 1, augmentSeed: runAugmentSeed(0, seed) });
    const [one, two] = [await load(1), await load(2)];
    assert.deepEqual(one[0].train[0].embeds, two[0].train[0].embeds);
    assert.notDeepEqual(one[0].train[1].embeds, two[0].train[1].embeds, 'two seeds read the same augmented views');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- PromptFL+FT

test('fine-tuning schedules: constant, a fresh cosine from a fraction of the peak, and the run\'s cosine carried on', () => {
  const sgd: SgdOptions = { lr: 0.002, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', warmupEpochs: 0 };
  assert.deepEqual(fineTuneRates({ shape: 'constant', lrScale: 0.1 }, 3, sgd, 50), [0.0002, 0.0002, 0.0002]);
  const cosine = fineTuneRates({ shape: 'cosine', lrScale: 0.5 }, 4, sgd, 50);
  assert.equal(cosine[0], 0.001);
  assert.ok(Math.abs(cosine[2] - 0.0005) < 1e-15);
  const carried = fineTuneRates({ shape: 'continued', lrScale: 1 }, 3, sgd, 50);
  assert.equal(carried[0], 0);
  assert.ok(carried[1] > 0 && carried[1] < 1e-5 && carried[2] > carried[1]);
  assert.throws(() => fineTuneRates({ shape: 'constant', lrScale: -1 }, 3, sgd, 50), /lrScale must be non-negative/);
  assert.throws(() => fineTuneRates({ shape: 'sideways' as 'constant', lrScale: 1 }, 3, sgd, 50), /unknown fine-tune shape "sideways"/);
  assert.throws(() => promptFlFineTuned({ weighted: true, fineTunes: [] }), /at least one schedule/);
  // The config names them as the method does.
  const config = parseConfig({ model: 'm', data: { datasets: ['d'] }, methodOptions: { fineTunes: [{ shape: 'cosine', lrScale: 0.1, epochs: 2 }] } });
  assert.deepEqual(config.methodOptions.fineTunes, [{ shape: 'cosine', lrScale: 0.1, epochs: 2 }]);
  assert.throws(() => parseConfig({ model: 'm', data: { datasets: ['d'] }, methodOptions: { fineTunes: [{ shape: 'up', lrScale: 0.1 }] } }), /methodOptions\.fineTunes\.0\.shape/);
});

test('PromptFL+FT fine-tunes once per candidate schedule and predicts with the copy the choice names', async () => {
  const method = createMethod('promptfl-ft');
  const candidates = method.choices!.candidates;
  assert.equal(candidates.length, DEFAULT_FINE_TUNES.length);
  assert.deepEqual(candidates[1], { candidate: 1, shape: FINE_TUNE_SHAPES.indexOf('cosine'), lrScale: 0.1 });
  const setup = await hostSetup(method, shapes.clients, 5);
  const { clients, stores } = await localClients(method, setup);
  const federation = setup.settings.federation;
  const download = { context: federation.initialContext };
  await clients[0].finish(federation.rounds + 1, download);
  const personal = (await stores[0].load())!;
  const tuned = Object.values(personal);
  assert.equal(tuned.length, candidates.length);
  for (let k = 0; k < tuned.length; k++) {
    for (let j = 0; j < k; j++) assert.notDeepEqual(tuned[k], tuned[j], `candidates ${j} and ${k} fine-tuned to the same prompt`);
  }
  const runtime = { setup: federation, data: shapes.clients[0], numClasses: 6, round: 4 } as Parameters<typeof method.client.predictor>[0];
  candidates.forEach((choice, k) => assert.equal(method.client.predictor(runtime, download, personal, choice).context, tuned[k]));
  assert.equal(method.client.predictor(runtime, download, personal, {}).context, tuned[0], 'without a choice the first candidate is used');
  assert.equal(method.client.predictor(runtime, download, {}).context, download.context, 'before fine-tuning the global prompt is used');
  assert.throws(() => method.client.predictor(runtime, download, personal, { candidate: 99 }), /no fine-tune candidate 99/);
  // Different candidates predict differently: the one chosen is the one used.
  const compute = await computeFor(setup);
  const scores = await Promise.all(tuned.map(async (context) => predictLogits(shapes.clients[0].val, await classTextFeatures(compute, context), compute.model.logitScale)));
  assert.ok(scores.some((s) => s.some((v, i) => v !== scores[0][i])));
});

test('PromptFL+FT\'s schedule is chosen on validation images only, the test uses the chosen candidate\'s fine-tuned prompt', async () => {
  const method = createMethod('promptfl-ft');
  const setup = await hostSetup(method, shapes.clients, 6);
  const { clients, stores } = await localClients(method, setup);
  const jobs: EvalJob[] = [];
  const executor: ClientExecutor = {
    fit: (job) => (job.kind === 'finish' ? clients[job.client].finish(job.round, job.download).then(() => ({ client: job.client, finished: true as const })) : clients[job.client].fit(job.round, job.download)),
    evaluate: (job) => (jobs.push(job), clients[job.client].evaluate(job.split, job.download, job.choices)),
    close: async () => {},
  };
  const config = parseConfig({ model: 'm', data: { datasets: ['d'] } });
  const choices = validationChoices(config, method, 'promptfl-ft', 100);
  assert.equal(choices, method.choices!.candidates);
  assert.deepEqual(validationChoices(config, createMethod('promptfl'), 'promptfl', 100), []);
  assert.equal(validationChoices(config, createMethod('pfedprompt'), 'pfedprompt', 100).length, config.memorySearch.alpha.length * config.memorySearch.beta.length);
  assert.equal(selectionField(method), 'fineTuneSelection');
  assert.equal(selectionField(createMethod('pfedprompt')), 'memorySelection');
  const result = await runFederation(method, setup.settings.federation, executor, { participation: 1, seed: 6, choices, evaluateEachRound: false });
  const selection = result.selection!;
  // Every candidate was scored, on validation images and nothing else.
  const scoring = jobs.filter((j) => (j.choices?.length ?? 0) > 1);
  assert.equal(scoring.length, clients.length);
  for (const job of scoring) assert.equal(job.split, 'val');
  // The server kept the candidate with the best mean validation accuracy, recomputed here from each client's own copies.
  const compute = await computeFor(setup);
  const accuracyOf = async (client: number, split: 'val' | 'test', k: number): Promise<number> => {
    // Read from the client's store, not through the predictor: the copy candidate k's fine-tune left.
    const context = (await stores[client].load())![`context/fine-tune-${k}`];
    const data = shapes.clients[client];
    return accuracy(predictLogits(data[split], await classTextFeatures(compute, context), compute.model.logitScale), data[split].labels, 'all-classes', data.classes);
  };
  const meanOver = async (split: 'val' | 'test', k: number) => (await Promise.all(clients.map((_, c) => accuracyOf(c, split, k)))).reduce((a, b) => a + b, 0) / clients.length;
  const val = await Promise.all(choices.map((_, k) => meanOver('val', k)));
  selection.candidates.forEach((c, k) => assert.ok(Math.abs(c.valAccuracy - val[k]) < 1e-12, `candidate ${k}: ${c.valAccuracy} vs ${val[k]}`));
  const best = val.indexOf(Math.max(...val));
  assert.deepEqual(selection.chosen, choices[best]);
  // The final test used that candidate's fine-tuned prompt on every client.
  const final = jobs.filter((j) => j.split === 'test');
  assert.ok(final.every((j) => j.choices?.length === 1 && j.choices[0] === selection.chosen));
  for (const c of result.clients) assert.equal(c.accuracy, await accuracyOf(c.id, 'test', best));
});
