// The server side of a federation with stub clients: what a round sends and
// aggregates, and how it survives clients that fail, time out or upload
// something undeclared.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shareOf, type ClientExecutor, type EvalJob, type FitJob, type FitJobReply } from '../src/federation/client-executor.js';
import type { EvaluateReply } from '../src/federation/client.js';
import { checkUpload, runFederation, type ClientFailure } from '../src/federation/engine.js';
import { contextOf, federatedAverage, type FederationSetup, type Tensors } from '../src/federation/method.js';
import { createMethod } from '../src/methods/index.js';

const SETUP: FederationSetup = { clients: 4, rounds: 3, contextSize: 2, contextRows: 1, contextTokens: 1, width: 2, initialContext: Float32Array.of(0, 0) };

/** Client k moves the context by (k + 1) each round and scores 0.5 + k / 10; `misbehave` may replace a reply. */
function stubClients(misbehave: (job: FitJob) => Promise<FitJobReply> | undefined = () => undefined) {
  const seen: { fits: FitJob[]; evals: EvalJob[] } = { fits: [], evals: [] };
  const executor: ClientExecutor = {
    async fit(job) {
      seen.fits.push(job);
      const odd = misbehave(job);
      if (odd) return odd;
      const sent = Object.values(job.download)[0]; // `context`, or PromptAMP's `cloud`
      const context = Float32Array.from(sent, (v) => v + job.client + 1);
      return { client: job.client, upload: { context }, samples: 1, loss: job.client, steps: 1 };
    },
    async evaluate(job): Promise<EvaluateReply> {
      seen.evals.push(job);
      return { client: job.client, accuracies: (job.choices ?? [undefined]).map(() => 0.5 + job.client / 10), count: 10 };
    },
    close: async () => {},
  };
  return { executor, seen };
}

const options = { participation: 1, seed: 1, choices: [], evaluateEachRound: false };

test('a round averages what the clients sent back and sends the average next round', async () => {
  const { executor, seen } = stubClients();
  const result = await runFederation(createMethod('promptfl'), SETUP, executor, options);
  // Every client adds k + 1 to what it was sent: the mean moves by 2.5 per round.
  const round3 = seen.fits.filter((j) => j.round === 3);
  assert.deepEqual([...round3[0].download.context], [5, 5]);
  assert.equal(result.clients.length, 4);
  assert.deepEqual(result.failures, []);
  assert.ok(result.rounds.every((r) => r.bytesUp === 4 * 8 && r.bytesDown === 4 * 8));
});

test('a client that errors is left out of that round, recorded, and the run goes on', async () => {
  const failures: ClientFailure[] = [];
  const { executor, seen } = stubClients((job) => (job.client === 2 && job.round === 2 ? Promise.reject(new Error('out of memory')) : undefined));
  const result = await runFederation(createMethod('promptfl'), SETUP, executor, { ...options, onFailure: (f) => failures.push(f) });
  assert.deepEqual(result.rounds[1].failures, [{ client: 2, stage: 'fit', round: 2, reason: 'out of memory' }]);
  assert.deepEqual(failures, result.failures);
  // Round 2 averages clients 0, 1 and 3: (1 + 2 + 4) / 3 on top of round 1's 2.5.
  const round3 = seen.fits.find((j) => j.round === 3)!;
  assert.ok(Math.abs(round3.download.context[0] - (2.5 + 7 / 3)) < 1e-6, `${round3.download.context[0]}`);
  assert.equal(result.rounds[1].trainLoss, (0 + 1 + 3) / 3);
  assert.equal(result.rounds[1].bytesUp, 3 * 8);
});

test('a client that does not reply in time is left out; fewer than minClients replies stop the run, naming the clients', async () => {
  const silent = () => new Promise<never>(() => {});
  const { executor } = stubClients((job) => (job.client === 0 ? silent() : undefined));
  const result = await runFederation(createMethod('promptfl'), SETUP, executor, { ...options, timeoutSeconds: 0.05 });
  assert.equal(result.rounds.length, 3);
  assert.ok(result.rounds.every((r) => r.failures.length === 1 && /no reply within 0.05 s/.test(r.failures[0].reason)));
  await assert.rejects(
    runFederation(createMethod('promptfl'), SETUP, executor, { ...options, timeoutSeconds: 0.05, minClients: 4 }),
    /round 1: 3 client\(s\) replied, fewer than federation.minClients = 4 \(client 0: no reply within 0.05 s\)/,
  );
});

test('an upload the method does not declare is refused and its client left out, not averaged', async () => {
  const { executor, seen } = stubClients((job) => (job.client === 3
    ? Promise.resolve({ client: 3, upload: { context: Float32Array.of(1e6, 1e6), memory: Float32Array.of(1) } as Tensors, samples: 1, loss: 0, steps: 1 })
    : undefined));
  const result = await runFederation(createMethod('promptfl'), { ...SETUP, rounds: 2 }, executor, options);
  assert.match(result.rounds[0].failures[0].reason, /client 3 tried to upload "memory"/);
  assert.deepEqual([...seen.fits.find((j) => j.round === 2)!.download.context], [2, 2]);
});

test('choices are scored by every client on validation images; the best mean is used for the final test', async () => {
  const { executor, seen } = stubClients();
  const scores = new Map([[2, 0.9], [5, 0.7]]);
  const scoring: ClientExecutor = {
    ...executor,
    async evaluate(job) {
      seen.evals.push(job);
      return { client: job.client, accuracies: (job.choices ?? [{}]).map((c) => (job.split === 'val' ? scores.get(c.alpha)! : 0.5)), count: 3 };
    },
  };
  const result = await runFederation(createMethod('pfedprompt'), SETUP, scoring, { ...options, choices: [{ alpha: 5, beta: 1 }, { alpha: 2, beta: 1 }] });
  assert.deepEqual(result.selection?.chosen, { alpha: 2, beta: 1 });
  assert.deepEqual(result.selection?.candidates.map((c) => c.valAccuracy), [0.7, 0.9]);
  const finals = seen.evals.filter((j) => j.split === 'test');
  assert.ok(finals.length === 4 && finals.every((j) => j.choices?.length === 1 && j.choices[0].alpha === 2));
  const vals = seen.evals.filter((j) => j.split === 'val');
  assert.equal(vals.length, 8, 'one scoring of the candidates, then one validation score of the chosen prediction, per client');
  assert.ok(vals.slice(0, 4).every((j) => j.choices?.length === 2));
  assert.ok(vals.slice(4).every((j) => j.choices?.length === 1 && j.choices[0].alpha === 2));
  assert.deepEqual(result.clients.map((c) => c.valAccuracy), [0.9, 0.9, 0.9, 0.9], 'each client records its validation accuracy under the chosen prediction');
});

test('PromptAMP sends each client its own cloud prompt', async () => {
  const { executor, seen } = stubClients();
  await runFederation(createMethod('promptamp'), { ...SETUP, rounds: 2 }, executor, options);
  const round2 = seen.fits.filter((j) => j.round === 2).map((j) => j.download.cloud[0]);
  assert.equal(new Set(round2).size, 4, `every client gets its own cloud: ${round2}`);
});

test('worker threads split the clients: each client on exactly one worker, so no worker holds another share\'s features', () => {
  const clients = Array.from({ length: 10 }, (_, i) => i);
  const shares = [0, 1, 2].map((k) => shareOf(clients, k, 3));
  assert.deepEqual(shares, [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]);
  assert.deepEqual(shares.flat().sort((a, b) => a - b), clients);
});

test('a round records the participants\' mean loss and, when asked, every client\'s test accuracy and their mean', async () => {
  const { executor } = stubClients();
  const each = await runFederation(createMethod('promptfl'), SETUP, executor, { ...options, evaluateEachRound: true });
  for (const record of each.rounds) {
    assert.equal(record.trainLoss, (0 + 1 + 2 + 3) / 4);
    assert.deepEqual(record.clientAccuracies, [0.5, 0.6, 0.7, 0.8]);
    assert.ok(Math.abs(record.meanAccuracy! - 0.65) < 1e-12);
    const { training, aggregation, evaluation } = record.stageSeconds;
    assert.ok(training >= 0 && aggregation >= 0 && evaluation >= 0 && record.seconds >= training + aggregation + evaluation - 1e-9);
  }
  assert.deepEqual(each.rounds.map((r) => r.round), [1, 2, 3]);
  assert.deepEqual(each.clients, [0, 1, 2, 3].map((id) => ({ id, accuracy: 0.5 + id / 10, testCount: 10, valAccuracy: 0.5 + id / 10 })));
  assert.deepEqual([...each.finalState.context], [7.5, 7.5]);
  const once = await runFederation(createMethod('promptfl'), SETUP, executor, options);
  assert.ok(once.rounds.every((r) => r.clientAccuracies === undefined && r.meanAccuracy === undefined));
});

test('a method that never trains gets no rounds, only the final evaluation; one that uploads nothing is never aggregated and nothing crosses', async () => {
  const { executor, seen } = stubClients();
  const zero = await runFederation(createMethod('zeroshot'), SETUP, executor, options);
  assert.deepEqual(zero.rounds, []);
  assert.equal(seen.fits.length, 0);
  assert.deepEqual(seen.evals.map((j) => [j.client, j.split]).sort(), [0, 1, 2, 3].flatMap((k) => [[k, 'test'], [k, 'val']]));
  const coop = createMethod('local-coop');
  const keepsToItself = stubClients((job) => Promise.resolve({ client: job.client, upload: {}, samples: 1, loss: 0, steps: 1 }));
  const local = await runFederation({ ...coop, server: { ...coop.server, aggregate: () => { throw new Error('aggregated'); } } }, SETUP, keepsToItself.executor, options);
  assert.equal(keepsToItself.seen.fits.length, 4 * 3);
  assert.ok(local.rounds.every((r) => r.bytesUp === 0));
  assert.ok(local.rounds.every((r) => r.bytesDown === 0));
  assert.deepEqual(local.finalState, { context: SETUP.initialContext });
});

test('a method with a finishing step gets one finish job per client after the rounds, carrying rounds + 1 and the final download; a client that fails it is left out', async () => {
  const fl = createMethod('promptfl');
  const finishing = { ...fl, client: { ...fl.client, finish: async () => ({}) } };
  const { executor, seen } = stubClients((job) => (job.kind === 'finish' ? (job.client === 1 ? Promise.reject(new Error('disk full')) : Promise.resolve({ client: job.client, finished: true as const })) : undefined));
  const result = await runFederation(finishing, SETUP, executor, options);
  const finishes = seen.fits.filter((j) => j.kind === 'finish');
  assert.deepEqual(finishes.map((j) => [j.client, j.round]), [[0, 4], [1, 4], [2, 4], [3, 4]]);
  for (const job of finishes) assert.deepEqual(job.download, result.finalState);
  assert.deepEqual(result.failures, [{ client: 1, stage: 'finish', reason: 'disk full' }]);
});

test('a reply to a round without an upload is refused; participation outside (0, 1] is refused by name', async () => {
  const { executor } = stubClients((job) => (job.client === 0 ? Promise.resolve({ client: 0, finished: true as const }) : undefined));
  const result = await runFederation(createMethod('promptfl'), { ...SETUP, rounds: 1 }, executor, options);
  assert.deepEqual(result.rounds[0].failures, [{ client: 0, stage: 'fit', round: 1, reason: 'replied to a round without an upload' }]);
  for (const participation of [0, 1.5, NaN]) {
    await assert.rejects(runFederation(createMethod('promptfl'), SETUP, executor, { ...options, participation }), new RegExp(`participation must be in \\(0, 1\\], got ${participation}`));
  }
});

test('choices: a client without validation images (NaN) does not count; with none anywhere the configured values are kept', async () => {
  const { executor } = stubClients();
  const scoredBy = (val: (client: number, alpha: number) => number): ClientExecutor => ({
    ...executor,
    evaluate: async (job) => ({ client: job.client, accuracies: (job.choices ?? [{}]).map((c) => (job.split === 'val' ? val(job.client, c.alpha) : 0.5)), count: 3 }),
  });
  const choices = [{ alpha: 1 }, { alpha: 2 }, { alpha: 3 }];
  const some = await runFederation(createMethod('pfedprompt'), SETUP, scoredBy((client, alpha) => (client === 0 ? NaN : alpha === 2 ? 0.75 : 0.25)), { ...options, choices });
  assert.deepEqual(some.selection?.candidates.map((c) => c.valAccuracy), [0.25, 0.75, 0.25]);
  assert.deepEqual(some.selection?.chosen, { alpha: 2 });
  const tie = await runFederation(createMethod('pfedprompt'), SETUP, scoredBy(() => 0.5), { ...options, choices });
  assert.deepEqual(tie.selection?.chosen, { alpha: 1 }, 'on a tie the first best is kept');
  const none = await runFederation(createMethod('pfedprompt'), SETUP, scoredBy(() => NaN), { ...options, choices });
  assert.deepEqual(none.selection?.chosen, {});
  assert.match(none.selection!.how, /no client has validation images: the configured values were kept/);
  const noChoices = await runFederation(createMethod('pfedprompt'), SETUP, scoredBy(() => 0.5), options);
  assert.equal(noChoices.selection, undefined);
});

test('FedAvg and contexts refuse what they cannot use: no uploads, uploads without weight, a missing or mis-sized context', () => {
  const upload = (samples: number) => ({ client: 0, samples, tensors: { context: Float32Array.of(1, 2) } });
  assert.throws(() => federatedAverage([], 'context', true), /federated average of no uploads/);
  assert.throws(() => federatedAverage([upload(0), upload(0)], 'context', true), /the uploads carry no weight \(no client has samples\)/);
  assert.deepEqual(federatedAverage([upload(0), upload(0)], 'context', false), Float32Array.of(1, 2));
  assert.throws(() => contextOf({}, 'context', SETUP), /missing tensor "context"/);
  assert.throws(() => contextOf(undefined, 'cloud', SETUP), /missing tensor "cloud"/);
  assert.throws(() => contextOf({ context: Float32Array.of(1) }, 'context', SETUP), /tensor "context" has 1 values, expected 2/);
  assert.deepEqual(contextOf({ context: Float32Array.of(1, 2) }, 'context', SETUP), Float32Array.of(1, 2));
  assert.throws(() => checkUpload(createMethod('local-coop'), SETUP, 2, { context: Float32Array.of(1, 2) }), /client 2 tried to upload "context", which local CoOp does not declare \(it uploads: nothing\)/);
  assert.throws(() => checkUpload(createMethod('promptfl'), SETUP, 1, { context: [1, 2] as unknown as Float32Array }), /client 1: upload "context" is missing or not a Float32Array/);
});
