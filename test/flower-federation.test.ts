// Whole federations over a real flwr 1.42.0 SuperLink (never a mock): `pfedprompt node`
// processes as clients, the pfedprompt ServerApp (flower/) or a small test ServerApp as
// the server. The model is the tiny fixture CLIP and the data a small synthetic image
// folder (test/synthetic-dataset.ts), split iid (a pathological split of its 6 classes
// leaves a 4th client without images): the world model and dataset would cost minutes of
// feature extraction per test for no added coverage of the Flower path.
//
// Every test starts its own SuperLink and stops it and every node in `finally`.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fromBinary } from '@bufbuild/protobuf';
import { connect, createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig, type ExperimentConfig } from '../src/experiment/config.js';
import { runExperiment } from '../src/experiment/runner.js';
import { federateLocally, spawnNode, stopAll } from '../src/federate/local-federation.js';
import { FLOWER_APP, SuperLink, delay, freePort, superLinkMissing } from '../src/federate/superlink.js';
import type { CellResult, ResultsFile } from '../src/report/results.js';
import { readSafetensors, toFloat32 } from '../src/io/safetensors.js';
import { FleetNode, GrpcFleetTransport, NodeKey, nodeSha256Hex, type FleetTransport, type RecordDict } from '../src/flower/index.js';
import { parseObject } from '../src/flower/objects.js';
import { PushObjectRequestSchema } from '../src/flower/proto/flwr/proto/message_pb.js';
import { ClientNode } from '../src/node/client-node.js';
import { flowerHandler } from '../src/node/flower-handler.js';
import { makeTlsFiles } from './flower-harness.js';
import { PROJECT_ROOT, fixture } from './shared.js';
import { writeShapesDataset } from './synthetic-dataset.js';

const skip = superLinkMissing();
const CLI = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = fixture('clip', 'tiny-vit-hf');
const TOKENIZER = fixture('clip-tokenizer');

let workdir: string;
let shapes: string;
let cache: string;

before(async () => {
  workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-federation-'));
  shapes = path.join(workdir, 'shapes');
  cache = path.join(workdir, 'cache');
  if (!skip) await writeShapesDataset(shapes, 8);
});
after(() => rmSync(workdir, { recursive: true, force: true }));

/** The experiment config of a test: 4 clients, 2 shots, the tiny model; `federation` and the rest override. */
function experiment(name: string, fields: { methods: string[]; federation?: Record<string, unknown>; [key: string]: unknown }): ExperimentConfig {
  const { federation, ...rest } = fields;
  return parseConfig({
    name,
    model: MODEL,
    tokenizer: TOKENIZER,
    data: { datasets: [shapes], shots: [2], partition: { scheme: 'iid', clients: 4 }, views: 1 },
    seeds: [1],
    federation: { rounds: 3, localEpochs: 1, batchSize: 8, workers: 1, ...federation },
    prompt: { contextLength: 4 },
    memorySearch: { alpha: [1, 2], beta: [5.5] },
    cache,
    output: path.join(workdir, name),
    ...rest,
  }, name);
}

function writeConfig(config: ExperimentConfig, file: string): string {
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

const cellOf = (results: ResultsFile, method: string): CellResult => {
  const cell = results.cells.find((c) => c.method === method);
  assert.ok(cell, `a ${method} cell in the results`);
  return cell;
};

function assertClose(actual: number | undefined, expected: number | undefined, rel: number, what: string): void {
  assert.ok(actual !== undefined && expected !== undefined, `${what}: both sides have a value (${actual}, ${expected})`);
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(Math.abs(expected), 1e-12), `${what}: ${actual} vs ${expected} (relative tolerance ${rel})`);
}

/** A SuperLink and the nodes a test starts; `dispose` stops them all, whatever happened. */
class Federation {
  readonly nodes = new Map<number, ChildProcess>();
  readonly dir: string;
  private constructor(readonly link: SuperLink, name: string) {
    this.dir = path.join(workdir, name);
  }

  static async start(name: string, options: Parameters<typeof SuperLink.start>[0] = {}): Promise<Federation> {
    return new Federation(await SuperLink.start(options), name);
  }

  stateOf(client: number): string {
    return path.join(this.dir, 'nodes', String(client));
  }
  logOf(client: number): string {
    return path.join(this.dir, `node-${client}.log`);
  }

  startNode(client: number, extra: { heartbeat?: number; dataset?: string; fleetAddress?: string } = {}): ChildProcess {
    const proc = spawnNode({
      superlink: this.link, fleetAddress: extra.fleetAddress, client, stateDir: this.stateOf(client), model: MODEL, tokenizer: TOKENIZER, dataset: extra.dataset ?? shapes,
      cache, threads: 2, heartbeat: extra.heartbeat, logFile: this.logOf(client),
    });
    this.nodes.set(client, proc);
    return proc;
  }

  /** The node ids the node of `client` logged on joining, in order. */
  joinedIds(client: number): string[] {
    const log = existsSync(this.logOf(client)) ? readFileSync(this.logOf(client), 'utf8') : '';
    return [...log.matchAll(/joined \S+ as node (\d+)/g)].map((m) => m[1]);
  }

  async dispose(): Promise<void> {
    await stopAll([...this.nodes.values()]);
    await this.link.dispose();
  }

  /** For a failing test: the end of every log. */
  report(): string {
    const parts = [`--- SuperLink:\n${this.link.logs.slice(-3000)}`];
    for (const client of this.nodes.keys()) {
      const log = existsSync(this.logOf(client)) ? readFileSync(this.logOf(client), 'utf8') : '(no log)';
      parts.push(`--- node ${client}:\n${log.split('\n').slice(-15).join('\n')}`);
    }
    return parts.join('\n');
  }
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms: ${what}`);
    await delay(100);
  }
}

test('parity: PromptFL, pFedPrompt, PromptAMP, FedOTP and pFedMoAP over Flower (`pfedprompt federate`) give the simulation\'s accuracies and losses', { skip, timeout: 120_000 }, async () => {
  const methods = ['promptfl', 'pfedprompt', 'promptamp', 'fedotp', 'pfedmoap'];
  const simulated = await runExperiment(experiment('parity-sim', { methods }));
  const federated = await federateLocally(experiment('parity-flower', { methods }));
  for (const method of methods) {
    const sim = cellOf(simulated.results, method);
    const fed = cellOf(federated.results, method);
    assert.equal(fed.id, sim.id);
    assert.equal((fed as CellResult & { failures?: unknown }).failures, undefined, `${method}: no node was left out`);
    assert.deepEqual(fed.clients, sim.clients, `${method}: per-client accuracies, test counts and classes`);
    assert.equal(fed.rounds.length, sim.rounds.length);
    fed.rounds.forEach((r, i) => {
      assertClose(r.trainLoss, sim.rounds[i].trainLoss, 1e-5, `${method} round ${r.round} train loss`);
      assertClose(r.meanAccuracy, sim.rounds[i].meanAccuracy, 1e-9, `${method} round ${r.round} mean accuracy`);
      assert.equal(r.bytesUp, sim.rounds[i].bytesUp, `${method} round ${r.round} bytes up`);
      assert.equal(r.bytesDown, sim.rounds[i].bytesDown, `${method} round ${r.round} bytes down`);
    });
    // The final server state (the prompt to deploy) each side saved for the cell.
    const promptFile = (outDir: string) => path.join(outDir, 'prompts', `${sim.id.replaceAll('/', '__')}.safetensors`);
    const [simPrompt, fedPrompt] = await Promise.all([simulated.outDir, federated.outDir].map(async (dir) => {
      assert.ok(existsSync(promptFile(dir)), `${method}: ${promptFile(dir)} exists`);
      return (await readSafetensors(promptFile(dir))).tensors;
    }));
    assert.deepEqual([...fedPrompt.keys()].sort(), [...simPrompt.keys()].sort(), `${method}: the same tensors in the final prompts`);
    for (const [name, entry] of simPrompt) {
      const a = toFloat32(fedPrompt.get(name)!);
      const b = toFloat32(entry);
      assert.equal(a.length, b.length, `${method} ${name}: length`);
      const scale = Math.max(...b.map(Math.abs), 1e-12);
      for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * scale, `${method} ${name}[${i}]: ${a[i]} vs ${b[i]} (within 1e-5 of the largest value)`);
    }
  }
});

test('a malformed `fit` (short, NaN, float64, an undeclared array) gets an error reply naming it, and the node then serves a good one', { skip, timeout: 90_000 }, async () => {
  const fed = await Federation.start('badfit');
  try {
    const configFile = writeConfig(experiment('badfit', { methods: ['promptfl'] }), path.join(workdir, 'badfit.json'));
    fed.startNode(0);
    const resultPath = path.join(workdir, 'badfit-result.json');
    const run = await fed.link.runApp(path.join(PROJECT_ROOT, 'test', 'flower-apps', 'badfit'), { config: configFile, method: 'promptfl', 'result-path': resultPath, timeout: 60 }, { timeoutMs: 80_000 });
    assert.ok(existsSync(resultPath), `the test ServerApp wrote no result (flwr run exit ${run.status}):\n${run.output.slice(-3000)}\n${fed.report()}`);
    const r = JSON.parse(readFileSync(resultPath, 'utf8')) as Record<string, { error?: { code: number; reason: string }; arrays?: Record<string, [string, number[]]>; metrics?: Record<string, number> }> & { array: string };
    const reason = (name: string): string => {
      assert.ok(r[name].error, `${name}: an error reply, got ${JSON.stringify(r[name])}`);
      assert.equal(r[name].error!.code, 2, 'ErrorCode.CLIENT_APP_RAISED_EXCEPTION');
      return r[name].error!.reason;
    };
    assert.match(reason('short'), new RegExp(`array "${r.array}" has \\d+ values, PromptFL expects \\d+`));
    assert.match(reason('nan'), new RegExp(`array "${r.array}" holds non-finite values`));
    assert.match(reason('float64'), new RegExp(`array "${r.array}" is float64, expected float32`));
    assert.match(reason('extra'), /the server sent array "smuggled"/);
    assert.equal(r.good.error, undefined, `the good fit is served: ${JSON.stringify(r.good)}`);
    assert.deepEqual(Object.keys(r.good.arrays!), [r.array]);
    assert.equal(r.good.arrays![r.array][0], 'float32');
    assert.equal(r.good.metrics!.client, 0);
    assert.ok(r.good.metrics!['num-examples'] > 0);
    assert.equal(fed.nodes.get(0)!.exitCode, null, 'the node is still running');
  } finally {
    await fed.dispose();
  }
});

test('`pfedprompt node` over TLS with a key the SuperLink does not know exits 1 at once, naming the key file to register', { skip, timeout: 60_000 }, async () => {
  const certDir = mkdtempSync(path.join(workdir, 'tls-'));
  const tls = makeTlsFiles(certDir);
  const link = await SuperLink.start({ tls, enableSupernodeAuth: true });
  try {
    const state = path.join(certDir, 'node');
    const started = Date.now();
    // --superlink-api too: the version check must trust the same CA as the Fleet API.
    const r = spawnSync(process.execPath, [CLI, 'node', '--superlink', link.fleetAddress, '--root-certificates', tls.ca, '--superlink-api', link.httpUrl,
      '--client', '0', '--state', state, '--model', MODEL, '--tokenizer', TOKENIZER, '--dataset', shapes], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null, `the node exits by itself (it was killed after 30 s); stderr:\n${r.stderr}`);
    assert.equal(r.status, 1, `exit code 1; stderr:\n${r.stderr}`);
    assert.ok(Date.now() - started < 20_000, 'refused at once, not after retries');
    const pub = path.join(state, 'node-key.pem.pub');
    assert.ok(existsSync(pub), 'the key was created, with its public half');
    const error = r.stderr.split('\n').find((l) => l.startsWith('pfedprompt: ')) ?? '';
    assert.match(error, /does not know this node's public key/, `the error line:\n${r.stderr}`);
    assert.ok(error.includes(`flwr supernode register ${pub}`), `the error names the command with ${pub}:\n${error}`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'a message, not a stack trace');
  } finally {
    await link.dispose();
  }
});

test('`pfedprompt node` stopped (SIGTERM) while the SuperLink is unreachable exits 0, without a stack trace', { skip, timeout: 30_000 }, async () => {
  const port = await freePort(); // nothing listens there
  const proc = spawn(process.execPath, [CLI, 'node', '--superlink', `127.0.0.1:${port}`, '--insecure', '--superlink-api', `http://127.0.0.1:${port}`,
    '--client', '0', '--state', path.join(workdir, 'unreachable'), '--model', MODEL, '--dataset', shapes], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => /unreachable/.test(stderr), 15_000, 'the node reports the SuperLink unreachable');
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, `exit code 0; stderr:\n${stderr}`);
    assert.doesNotMatch(stderr, /^\s+at /m, `no stack trace:\n${stderr}`);
  } finally {
    proc.kill('SIGKILL');
  }
});

/** `flwr run` of the pfedprompt ServerApp on `fed`'s SuperLink; resolves with its exit status and output. */
function runServerApp(fed: Federation, configFile: string, outDir: string, onLine: (line: string) => void = () => {}) {
  return fed.link.runApp(FLOWER_APP, { config: configFile, output: outDir, 'wait-for-nodes': 60, 'poll-interval': 0.1 }, { timeoutMs: 100_000, onLine });
}

test('a node killed (SIGKILL) mid-round is left out of that round; restarted on its state folder it rejoins as the same node and the run completes', { skip, timeout: 120_000 }, async () => {
  const fed = await Federation.start('kill');
  const victim = 2;
  try {
    // PromptPer keeps personal rows on each node's disk; long local training makes a round last seconds.
    const config = experiment('kill', { methods: ['promptper'], federation: { rounds: 4, localEpochs: 400, minClients: 3, timeoutSeconds: 30 } });
    const configFile = writeConfig(config, path.join(workdir, 'kill.json'));
    for (let k = 0; k < 4; k++) fed.startNode(k, { heartbeat: 10 });
    await waitFor(() => [0, 1, 2, 3].every((k) => fed.joinedIds(k).length === 1), 30_000, 'four nodes joined');
    const firstId = fed.joinedIds(victim)[0];
    const lines: string[] = [];
    const run = runServerApp(fed, configFile, path.join(workdir, 'kill-out'), (line) => lines.push(line));
    // Killed once it has taken round 2's train message, i.e. while it trains.
    const round2 = /received train message .*\/round 2\)/;
    await waitFor(() => round2.test(readFileSync(fed.logOf(victim), 'utf8')), 60_000, `node ${victim} receives round 2`);
    fed.nodes.get(victim)!.kill('SIGKILL');
    const killedAt = Date.now();
    await delay(500);
    assert.ok(!lines.some((l) => /round 2: \d of 4 clients answered/.test(l)), 'round 2 was still running when the node died');
    fed.startNode(victim, { heartbeat: 10 }); // as a supervisor would, on the same state folder
    const { status, output } = await run;
    assert.equal(status, 0, `the run completes:\n${output.slice(-3000)}\n${fed.report()}`);
    console.error(`round 2 waited ${(Date.now() - killedAt) / 1000} s after the kill`);
    assert.deepEqual(fed.joinedIds(victim), [firstId, firstId], 'the restarted node has the same node id (its key on disk)');
    const results = JSON.parse(readFileSync(path.join(workdir, 'kill-out', 'results.json'), 'utf8')) as ResultsFile;
    const cell = cellOf(results, 'promptper') as CellResult & { failures?: { stage: string; client: number | null; reason: string }[] };
    const failures = cell.failures ?? [];
    assert.ok(failures.some((f) => f.stage === 'round 2' && f.client === victim), `round 2 records client ${victim} as a failure: ${JSON.stringify(failures)}`);
    // The node is back once the SuperLink lets its old heartbeats lapse (2 × 10 s), about when round 2 gives up on it:
    // round 2's evaluation or round 3 may still miss it, never the last round or the final evaluation.
    assert.deepEqual(failures.filter((f) => f.client !== victim), [], `only the killed node was left out: ${JSON.stringify(failures)}`);
    assert.deepEqual(failures.filter((f) => f.stage === 'round 4' || f.stage === 'final evaluation'), [], `it is back for round 4: ${JSON.stringify(failures)}`);
    assert.ok(lines.some((l) => /round 4: 4 of 4 clients answered/.test(l)), 'the restarted node trains in round 4');
    assert.deepEqual(cell.clients.map((c) => c.id), [0, 1, 2, 3], 'every client has a final accuracy');
    // Its personal rows are on its own disk, under the run; the same file before and after the restart.
    const personal = path.join(fed.stateOf(victim), 'runs');
    assert.ok(existsSync(personal), 'personal state on the node\'s disk');
  } catch (err) {
    console.error(fed.report());
    throw err;
  } finally {
    await fed.dispose();
  }
});

test('privacy: every byte a node sends in a pFedPrompt and a PromptPer cell is declared arrays and metrics; no features, personal rows or image paths', { skip, timeout: 120_000 }, async () => {
  const fed = await Federation.start('privacy');
  const sent: Uint8Array[] = [];
  const pushed: Uint8Array[] = [];
  const personal: Float32Array[] = [];
  const allowed = new Map<string, number>(); // array name → length, from describe (initial state, uploadSpec)
  const replied: RecordDict[] = [];
  const state = fed.stateOf(0);
  const client = new ClientNode({ model: MODEL, tokenizer: TOKENIZER, data: { dataset: shapes, client: 0 }, stateDir: state, cache, threads: 2 });
  const handle = flowerHandler(client);
  const grpc = new GrpcFleetTransport({ address: fed.link.fleetAddress, insecure: true });
  // The interceptor: the node's transport, recording each request and its metadata before it leaves.
  const transport: FleetTransport = {
    call(method, request, options) {
      sent.push(request);
      for (const [, value] of options.metadata) sent.push(typeof value === 'string' ? Buffer.from(value) : value);
      if (method === 'PushObject') pushed.push(fromBinary(PushObjectRequestSchema, request).objectContent);
      return grpc.call(method, request, options);
    },
    close: () => grpc.close(),
  };
  const node = new FleetNode({
    transport, signer: NodeKey.ephemeral(), sha256: nodeSha256Hex, pollIntervalMs: 200, heartbeatInterval: 10,
    handler: async (message, context) => {
      const reply = await handle(message, context);
      replied.push(reply);
      const facts = reply.get('facts') ? JSON.parse(reply.configRecord('facts').string('json')) as { uploadSpec: Record<string, number> } : undefined;
      if (facts) {
        for (const [name, length] of Object.entries(facts.uploadSpec)) allowed.set(name, length);
        for (const [name, a] of reply.arrayRecord('arrays').arrays) allowed.set(name, a.data.length);
      }
      // What the node keeps to itself after each step: its personal state files.
      const runs = path.join(state, 'runs');
      if (existsSync(runs)) {
        for (const file of readdirSync(runs, { recursive: true }) as string[]) {
          if (!file.endsWith('.safetensors')) continue;
          for (const entry of (await readSafetensors(path.join(runs, file))).tensors.values()) personal.push(toFloat32(entry));
        }
      }
      return reply;
    },
  });
  const running = node.run();
  running.catch(() => undefined);
  try {
    // The server's config names another dataset path than the nodes': none of theirs may travel.
    const config = experiment('privacy', { methods: ['pfedprompt', 'promptper'], federation: { rounds: 2 } });
    const configFile = writeConfig({ ...config, data: { ...config.data, datasets: ['/server/side/dataset'] } }, path.join(workdir, 'privacy.json'));
    for (let k = 1; k < 4; k++) fed.startNode(k);
    await node.ready;
    const { status, output } = await runServerApp(fed, configFile, path.join(workdir, 'privacy-out'));
    assert.equal(status, 0, `the run completes:\n${output.slice(-3000)}\n${fed.report()}`);
    assert.ok(personal.length > 0, 'the node kept personal state');

    // Every pushed object decodes; ArrayRecords hold only declared names, Arrays only declared sizes.
    const sizes = new Set(allowed.values());
    for (const bytes of pushed) {
      const object = parseObject(bytes);
      if (object.type === 'ArrayRecord') {
        for (const name of Object.keys(JSON.parse(Buffer.from(object.body).toString()) as object)) assert.ok(allowed.has(name), `array "${name}" is declared`);
      } else if (object.type === 'Array') {
        const { shape, dtype } = JSON.parse(Buffer.from(object.body).toString()) as { shape: number[]; dtype: string };
        assert.equal(dtype, 'float32');
        assert.ok(sizes.has(shape.reduce((a, b) => a * b, 1)), `an array of shape [${shape}] is of a declared size (${[...sizes]})`);
      } else if (object.type === 'ConfigRecord') {
        // Only describe's facts (checked below through the replies).
      }
    }
    for (const reply of replied) {
      for (const [name] of reply.records) assert.ok(['arrays', 'metrics', 'facts'].includes(name), `record "${name}"`);
      const metrics = reply.get('metrics') ? [...reply.metricRecord('metrics').values.keys()] : [];
      for (const key of metrics) assert.ok(['num-examples', 'client', 'steps', 'train-loss', 'accuracy', 'accuracies'].includes(key), `metric "${key}"`);
    }

    // No bytes of what the node holds, anywhere in what it sent.
    const wire = Buffer.concat(sent);
    const absent = (needle: Buffer, what: string) => assert.equal(wire.indexOf(needle), -1, `${what} is not in what the node sent`);
    // A 16-byte window of float32 values every 64 bytes: unique enough, cheap enough.
    const windows = (values: Float32Array, what: string) => {
      const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
      for (let i = 0; i + 16 <= bytes.length; i += 64) {
        const w = bytes.subarray(i, i + 16);
        if (w.some((b) => b !== 0)) absent(w, `${what} (bytes ${i}…${i + 16})`);
      }
    };
    // The node's loaded cell: its own features (a test reaching into the node on purpose).
    const cell = await (client as unknown as { core: { cell: Promise<{ data: { train: { embeds: Float32Array; pooled: Float32Array }[]; test: { embeds: Float32Array; pooled: Float32Array } } }> } }).core.cell;
    for (const set of [...cell.data.train, cell.data.test]) {
      windows(set.embeds, 'a feature embedding');
      windows(set.pooled, 'a pooled feature');
    }
    personal.forEach((rows, i) => windows(rows, `personal state ${i}`));
    // The search does find what was sent: an uploaded array's bytes are there.
    const upload = replied.filter((r) => r.get('arrays') && r.get('metrics')).flatMap((r) => [...r.arrayRecord('arrays').arrays.values()]).at(-1)!;
    assert.ok(pushed.length > 0 && upload, 'objects were pushed, an array was uploaded');
    assert.notEqual(wire.indexOf(Buffer.from(upload.data.buffer, upload.data.byteOffset, 16)), -1, 'an uploaded array is found on the wire');
    absent(Buffer.from(shapes), 'the dataset\'s path');
    absent(Buffer.from(state), 'the state folder');
    for (const name of readdirSync(shapes)) absent(Buffer.from(`${name}/0.png`), `the image ${name}/0.png`);
  } catch (err) {
    console.error(fed.report());
    throw err;
  } finally {
    await node.stop();
    await running.catch(() => undefined);
    await fed.dispose();
  }
});

/** A TCP relay to the SuperLink's Fleet port that can go down (every connection cut, nothing accepted) and come back on the same port. */
class Outage {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private constructor(readonly port: number, private readonly target: number) {}

  static async start(target: number): Promise<Outage> {
    const relay = new Outage(await freePort(), target);
    await relay.up();
    return relay;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  up(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    this.server = server;
    return new Promise((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
  }

  down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}

test('the SuperLink unreachable for 10 s mid-run: nodes reconnect with backoff and the run completes with every client', { skip, timeout: 120_000 }, async () => {
  const fed = await Federation.start('outage');
  const relay = await Outage.start(fed.link.fleetPort);
  try {
    const config = experiment('outage', { methods: ['promptfl'], federation: { rounds: 4, localEpochs: 100 } });
    const configFile = writeConfig(config, path.join(workdir, 'outage.json'));
    for (let k = 0; k < 4; k++) fed.startNode(k, { fleetAddress: relay.address });
    await waitFor(() => [0, 1, 2, 3].every((k) => fed.joinedIds(k).length === 1), 30_000, 'four nodes joined');
    const lines: string[] = [];
    const run = runServerApp(fed, configFile, path.join(workdir, 'outage-out'), (line) => lines.push(line));
    await waitFor(() => lines.some((l) => /round 1: 4 of 4 clients answered/.test(l)), 60_000, 'round 1 done');
    await relay.down();
    await delay(10_000);
    await relay.up();
    const { status, output } = await run;
    assert.equal(status, 0, `the run completes:\n${output.slice(-3000)}\n${fed.report()}`);
    for (let k = 0; k < 4; k++) {
      const log = readFileSync(fed.logOf(k), 'utf8');
      assert.match(log, /SuperLink unreachable/, `node ${k} noticed the outage`);
      assert.match(log, /SuperLink reachable again/, `node ${k} reconnected`);
      assert.equal(fed.joinedIds(k).length, 1, `node ${k} kept its node id: it never had to join again`);
    }
    const results = JSON.parse(readFileSync(path.join(workdir, 'outage-out', 'results.json'), 'utf8')) as ResultsFile;
    const cell = cellOf(results, 'promptfl') as CellResult & { failures?: unknown[] };
    assert.deepEqual(cell.failures ?? [], [], 'nobody was left out: the outage was shorter than two heartbeats');
    assert.equal(cell.rounds.length, 4);
    assert.deepEqual(cell.clients.map((c) => c.id), [0, 1, 2, 3]);
  } catch (err) {
    console.error(fed.report());
    throw err;
  } finally {
    await relay.down();
    await fed.dispose();
  }
});
