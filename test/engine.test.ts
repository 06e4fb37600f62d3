// The server side of a federation with stub clients: what a round sends and
// aggregates, and how it survives clients that fail, time out or upload
// something undeclared.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shareOf, type ClientExecutor, type EvalJob, type FitJob, type FitJobReply } from '../src/federation/client-executor.js';
import type { EvaluateReply } from '../src/federation/client.js';
import { runFederation, type ClientFailure } from '../src/federation/engine.js';
import type { FederationSetup, Tensors } from '../src/federation/method.js';
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
