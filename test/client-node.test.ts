// A pfedprompt node's client side without the transport: the requests of
// flower/PROTOCOL.md answered by ClientNodes, each with its own disk, give
// exactly the simulation's numbers; replies hold the declared upload and
// plain metrics only; state survives a restart; a bad message is refused.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../src/experiment/config.js';
import { runExperiment } from '../src/experiment/runner.js';
import type { ClientExecutor } from '../src/federation/client-executor.js';
import { runFederation } from '../src/federation/engine.js';
import type { Tensors } from '../src/federation/method.js';
import { createMethod, type MethodId } from '../src/methods/index.js';
import { ClientNode, type CellFacts, type NodeRequest } from '../src/node/client-node.js';
import { runConfigFields } from '../src/node/client-core.js';
import { fixture } from './shared.js';
import { writeShapesDataset } from './synthetic-dataset.js';

let workdir: string;
let runConfig: Record<string, unknown>;

before(async () => {
  workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-node-'));
  await writeShapesDataset(path.join(workdir, 'shapes'), 8);
  runConfig = {
    name: 'nodes',
    model: '/the/server/has/another/path',
    data: { datasets: ['/the/server/has/another/dataset'], shots: [2], partition: { scheme: 'pathological', clients: 3 }, views: 1 },
    methods: ['promptfl', 'promptper', 'promptamp', 'pfedprompt', 'promptfl-ft'],
    seeds: [1],
    federation: { rounds: 2, localEpochs: 1, batchSize: 8, workers: 1 },
    prompt: { contextLength: 4 },
    memorySearch: { alpha: [1, 2], beta: [5.5] },
  };
});
after(() => rmSync(workdir, { recursive: true, force: true }));

const node = (client: number, state = `state${client}`) => new ClientNode({
  model: fixture('clip', 'tiny-vit-hf'),
  tokenizer: fixture('clip-tokenizer'),
  data: { dataset: path.join(workdir, 'shapes'), client },
  stateDir: path.join(workdir, state),
  cache: path.join(workdir, 'cache'),
});

/** The engine's jobs as node requests: a stand-in for the Flower transport. */
function nodesAsExecutor(nodes: readonly ClientNode[], method: MethodId, runId: string): ClientExecutor {
  const base = { runId, runConfig: JSON.stringify(runConfig), cell: { method, seed: 1, shots: 2 } };
  return {
    async fit(job) {
      const reply = await nodes[job.client].handle({ ...base, ask: job.kind, round: job.round, arrays: job.download });
      if (job.kind === 'finish') return { client: job.client, finished: true };
      const m = reply.metrics as Record<string, number>;
      return { client: m.client, upload: reply.arrays!, samples: m['num-examples'], loss: m['train-loss'], steps: m.steps };
    },
    async evaluate(job) {
      const reply = await nodes[job.client].handle({ ...base, ask: 'evaluate', split: job.split, arrays: job.download, choices: job.choices });
      const m = reply.metrics as Record<string, number | number[]>;
      return { client: m.client as number, count: m['num-examples'] as number, accuracies: job.choices ? m.accuracies as number[] : [m.accuracy as number] };
    },
    close: async () => {},
  };
}

test('nodes answering the protocol give the simulation\'s per-client accuracies and losses, method by method', async () => {
  const simulated = await runExperiment(parseConfig({
    ...runConfig, model: fixture('clip', 'tiny-vit-hf'), tokenizer: fixture('clip-tokenizer'),
    data: { ...(runConfig.data as object), datasets: [path.join(workdir, 'shapes')] }, output: path.join(workdir, 'sim'), cache: path.join(workdir, 'cache'),
  }));
  const nodes = [0, 1, 2].map((k) => node(k));
  for (const method of runConfig.methods as MethodId[]) {
    const described = await Promise.all(nodes.map((n) => n.handle({ runId: 'run-1', ask: 'describe', runConfig: JSON.stringify(runConfig), cell: { method, seed: 1, shots: 2 }, arrays: {} })));
    const facts = described.map((d) => d.facts!) as CellFacts[];
    assert.deepEqual(facts.map((f) => f.client), [0, 1, 2]);
    // Every node describes the same initial state, and the cell as the simulation names it.
    for (const d of described) assert.deepEqual(d.arrays, described[0].arrays);
    const cell = simulated.results.cells.find((c) => c.method === method)!;
    assert.equal(facts[0].cell.id, cell.id);
    // The cell's config as the run wrote it (the server's paths), whatever this node's own paths are.
    const { [facts[0].selectionField]: _, ...simulatedConfig } = cell.config;
    const json = (v: unknown) => JSON.parse(JSON.stringify(v));
    assert.deepEqual(json(facts[0].cellConfig), json({ ...simulatedConfig, model: runConfig.model, tokenizer: undefined }));

    const federation = { clients: 3, rounds: 2, contextSize: 0, contextRows: 0, contextTokens: 0, width: 0, initialContext: new Float32Array(0) };
    const m = createMethod(method);
    // The server half needs only the initial state the nodes described (and upload sizes, from their facts).
    const server = { ...m, server: { ...m.server, initialState: () => described[0].arrays as Tensors, uploadSpec: () => facts[0].uploadSpec } };
    const result = await runFederation(server, federation, nodesAsExecutor(nodes, method, 'run-1'), {
      participation: 1, seed: 1, choices: facts[0].memoryGrid, evaluateEachRound: true,
    });
    assert.deepEqual(result.clients.map((c) => c.accuracy), cell.clients.map((c) => c.accuracy), `${method}: accuracies differ from the simulation`);
    assert.deepEqual(result.rounds.map((r) => r.trainLoss), cell.rounds.map((r) => r.trainLoss), `${method}: losses differ`);
  }
});

test('a fit reply holds exactly the declared upload and plain metrics; an evaluate reply metrics only', async () => {
  const n = node(1, 'privacy');
  const base = { runId: 'run-2', runConfig: JSON.stringify(runConfig), cell: { method: 'promptper', seed: 1, shots: 2 } };
  const described = await n.handle({ ...base, ask: 'describe', arrays: {} });
  const fit = await n.handle({ ...base, ask: 'fit', round: 1, arrays: described.arrays! });
  assert.deepEqual(Object.keys(fit.arrays!), ['global']);
  assert.equal(fit.arrays!.global.length, described.facts!.uploadSpec.global);
  assert.deepEqual(Object.keys(fit.metrics!).sort(), ['client', 'num-examples', 'steps', 'train-loss']);
  assert.equal(fit.facts, undefined);
  const evaluated = await n.handle({ ...base, ask: 'evaluate', split: 'test', arrays: described.arrays! });
  assert.equal(evaluated.arrays, undefined);
  assert.deepEqual(Object.keys(evaluated.metrics!).sort(), ['accuracy', 'client', 'num-examples']);
});

test("a restarted node keeps its personal state: PromptPer's personal rows come back from its disk", async () => {
  const base = { runId: 'run-3', runConfig: JSON.stringify(runConfig), cell: { method: 'promptper', seed: 1, shots: 2 } };
  const first = node(2, 'restart');
  const described = await first.handle({ ...base, ask: 'describe', arrays: {} });
  const fit = await first.handle({ ...base, ask: 'fit', round: 1, arrays: described.arrays! });
  const before = await first.handle({ ...base, ask: 'evaluate', split: 'test', arrays: fit.arrays! });
  const restarted = node(2, 'restart');
  const after = await restarted.handle({ ...base, ask: 'evaluate', split: 'test', arrays: fit.arrays! });
  assert.deepEqual(after.metrics, before.metrics);
  const stateFile = path.join(workdir, 'restart', 'runs', 'run-3');
  assert.ok(readFileSync(path.join(stateFile, `${described.facts!.cell.id.replaceAll('/', '__')}.safetensors`)).length > 0);
});

test('a wrong-shaped or non-finite array, or an unknown request, is refused with an error naming it', async () => {
  const n = node(0, 'bad');
  const base = { runId: 'run-4', runConfig: JSON.stringify(runConfig), cell: { method: 'promptfl', seed: 1, shots: 2 } };
  const { arrays } = await n.handle({ ...base, ask: 'describe', arrays: {} });
  const context = arrays!.context;
  await assert.rejects(n.handle({ ...base, ask: 'fit', round: 1, arrays: { context: context.subarray(1) } }), /array "context" has \d+ values, PromptFL expects \d+/);
  await assert.rejects(n.handle({ ...base, ask: 'fit', round: 1, arrays: { context: Float32Array.from(context, (v, i) => (i === 3 ? NaN : v)) } }), /array "context" holds non-finite values/);
  await assert.rejects(n.handle({ ...base, ask: 'fit', round: 1, arrays: { context, memory: new Float32Array(1) } }), /sent array "memory"/);
  await assert.rejects(n.handle({ ...base, ask: 'steal' as NodeRequest['ask'], arrays: {} }), /unknown request "steal"/);
  await assert.rejects(n.handle({ ...base, runConfig: '{"federation": {"rounds": -1}}', ask: 'describe', arrays: {} }), /run-config: federation.rounds/);
  // And it keeps serving.
  const ok = await n.handle({ ...base, ask: 'fit', round: 1, arrays: { context } });
  assert.ok(ok.arrays?.context);
});

test('a run config that is not JSON, or not a mapping of fields, is refused naming run-config (the Node node and the browser read it alike)', () => {
  assert.deepEqual(runConfigFields('{"seeds": [1]}'), { seeds: [1] });
  assert.throws(() => runConfigFields('{ seeds'), /^Error: run-config: not JSON \(/);
  for (const text of ['[1, 2]', 'null', '3']) assert.throws(() => runConfigFields(text), /run-config: a config must be a mapping of fields/);
});
