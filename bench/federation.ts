// npm run bench:federation — what running over Flower costs, on this machine:
//
//  (a) scale: N stub nodes (100 by default; real TypeScript Flower nodes, in
//      this process, answering with the array they were sent) through a real
//      SuperLink, rounds of Flower's own FedAvg with a ViT-B/16 prompt's array
//      (8,192 values): each round's latency, and memory per node;
//  (b) overhead: a real pfedprompt cell (the bundled world CLIP, PromptFL, one
//      client holding every class, so that both sides do exactly the same
//      computation one step after another) over Flower — the ServerApp of
//      flower/ and a ClientNode behind a Fleet node in this process — against
//      the in-process simulation of the same cell: median round time, the
//      ratio (goal: Flower ≤ 1.05 × in-process);
//  (c) bytes on the wire per round and node (Fleet calls' protobuf bodies and
//      their signed metadata, counted at the transport) against the prompt's
//      size.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { positiveInt } from '../src/cli/options.js';
import { parseConfig, type ConfigInput } from '../src/experiment/config.js';
import { runExperiment } from '../src/experiment/runner.js';
import { WORLD_MODEL_DIR, prepareWorldDataset } from '../src/experiment/world-experiment.js';
import { FLOWER_APP, SuperLink, superLinkMissing } from '../src/federate/superlink.js';
import {
  ArrayRecord, FleetNode, GrpcFleetTransport, MetricRecord, NodeKey, RecordDict, nodeSha256Hex,
  type CallOptions, type FleetMethod, type FleetTransport,
} from '../src/flower/index.js';
import { ClientNode } from '../src/node/client-node.js';
import { flowerHandler } from '../src/node/flower-handler.js';
import { readResults, type CellResult } from '../src/report/results.js';
import { mb, median, startInterferenceMeter } from './measure.js';

const ROUNDS_APP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'flower-apps', 'rounds');
const PROMPT_VALUES = 16 * 512; // a ViT-B/16 CoOp context: 16 vectors of width 512

interface Options { nodes: number; rounds: number; runs: number; epochs: number }

/** A transport that counts what crosses it, each way (message bodies and metadata). */
class CountingTransport implements FleetTransport {
  sent = 0;
  received = 0;
  constructor(private readonly inner: FleetTransport) {}
  async call(method: FleetMethod, request: Uint8Array, options: CallOptions) {
    this.sent += request.byteLength + options.metadata.reduce((n, [k, v]) => n + k.length + (typeof v === 'string' ? v.length : v.byteLength), 0);
    const result = await this.inner.call(method, request, options);
    this.received += result.response.byteLength;
    return result;
  }
  close(): void {
    this.inner.close();
  }
}

function startNodes(link: SuperLink, count: number, handlerFor: (k: number) => ConstructorParameters<typeof FleetNode>[0]['handler']) {
  const transports: CountingTransport[] = [];
  const nodes = Array.from({ length: count }, (_, k) => {
    const transport = new CountingTransport(new GrpcFleetTransport({ address: link.fleetAddress, insecure: true }));
    transports.push(transport);
    const node = new FleetNode({ transport, signer: NodeKey.ephemeral(), sha256: nodeSha256Hex, handler: handlerFor(k), pollIntervalMs: 100, heartbeatInterval: 30, unregisterOnStop: true });
    const running = node.run();
    running.catch((error) => console.error(`node ${k}: ${(error as Error).message}`));
    return { node, running };
  });
  return {
    transports,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.node.stop()));
      await Promise.allSettled(nodes.map((n) => n.running));
    },
  };
}

/** (a) N stub nodes, rounds of FedAvg. */
async function scale(options: Options, log: (m: string) => void) {
  const link = await SuperLink.start();
  const before = process.memoryUsage().rss;
  const stub = async (message: Parameters<ConstructorParameters<typeof FleetNode>[0]['handler']>[0]) => new RecordDict({
    arrays: message.content.arrayRecord('arrays') as ArrayRecord,
    metrics: new MetricRecord({ 'num-examples': 1n }),
  });
  const nodes = startNodes(link, options.nodes, () => stub);
  try {
    const resultPath = path.join(link.dir, 'rounds.json');
    const run = await link.runApp(ROUNDS_APP, { 'expected-nodes': options.nodes, rounds: options.rounds, values: PROMPT_VALUES, 'result-path': resultPath, timeout: 300 });
    if (run.status !== 0) throw new Error(`the bench ServerApp failed:\n${run.output.slice(-3000)}`);
    const result = JSON.parse(readFileSync(resultPath, 'utf8')) as { rounds: { round: number; seconds: number; replies: number }[] };
    const rss = process.memoryUsage().rss;
    for (const r of result.rounds) log(`  round ${r.round}: ${r.seconds.toFixed(2)} s, ${r.replies}/${options.nodes} replies`);
    return { rounds: result.rounds, perNodeBytes: (rss - before) / options.nodes, rss };
  } finally {
    await nodes.stop();
    await link.dispose();
  }
}

/** (b, c) one real cell over Flower against the same cell in-process. */
async function overhead(options: Options, work: string, log: (m: string) => void) {
  const dataset = await prepareWorldDataset(path.join(work, 'world'), log);
  const clients = 1;
  const input: ConfigInput = {
    name: 'bench-federation', model: WORLD_MODEL_DIR, backbone: 'world-ViT (bundled)', cache: path.join(work, 'cache'),
    data: { datasets: [dataset], shots: [4], partition: { scheme: 'pathological', clients }, views: 4 },
    methods: ['promptfl'], seeds: [1],
    federation: { rounds: options.rounds, localEpochs: options.epochs, batchSize: 32, workers: 1 },
  };
  const simulated: number[] = [];
  const flower: number[] = [];
  const bytes: { up: number; down: number }[] = [];
  let contextValues = 0;
  for (let run = 0; run < options.runs; run++) {
    const sim = await runExperiment(parseConfig({ ...input, output: path.join(work, `sim${run}`) }));
    const simCell = sim.results.cells[0];
    simulated.push(...simCell.rounds.map((r) => r.seconds));

    const link = await SuperLink.start();
    const nodes = startNodes(link, clients, (k) => flowerHandler(new ClientNode({
      model: WORLD_MODEL_DIR, data: { dataset, client: k }, stateDir: path.join(work, `node${run}-${k}`), cache: path.join(work, 'cache'),
    })));
    try {
      const out = path.join(work, `flower${run}`);
      const config = path.join(work, `config${run}.json`);
      writeFileSync(config, JSON.stringify(input));
      const result = await link.runApp(FLOWER_APP, { config, output: out, 'poll-interval': 0.1 });
      if (result.status !== 0) throw new Error(`the ServerApp failed:\n${result.output.slice(-3000)}`);
      const cell: CellResult = (await readResults(path.join(out, 'results.json'))).cells[0];
      flower.push(...cell.rounds.map((r) => r.seconds));
      contextValues = cell.rounds[0].bytesUp / 4 / clients;
      // Everything a node's transport moved, spread over the rounds (describe and the final test included).
      for (const t of nodes.transports) bytes.push({ up: t.sent / options.rounds, down: t.received / options.rounds });
      log(`  run ${run + 1}: in-process ${simCell.rounds.map((r) => r.seconds.toFixed(2)).join(', ')} s; Flower ${cell.rounds.map((r) => r.seconds.toFixed(2)).join(', ')} s`);
    } finally {
      await nodes.stop();
      await link.dispose();
    }
  }
  return { simulated, flower, bytes, promptBytes: contextValues * 4 };
}

async function main(): Promise<void> {
  const program = new Command('bench:federation')
    .option('--nodes <n>', 'stub nodes in the scale test', positiveInt, 100)
    .option('--rounds <n>', 'rounds in each test', positiveInt, 3)
    .option('--runs <n>', 'repetitions of the overhead test', positiveInt, 3)
    .option('--epochs <n>', 'local epochs per round in the overhead test (more: a longer, more realistic round)', positiveInt, 20)
    .parse();
  const options = program.opts<Options>();
  const missing = superLinkMissing();
  if (missing) throw new Error(missing);
  const log = (m: string) => console.error(m);
  const work = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-bench-federation-'));
  const others = startInterferenceMeter();
  try {
    log(`(a) ${options.nodes} stub nodes, ${options.rounds} FedAvg rounds of ${PROMPT_VALUES} float32 values`);
    const a = await scale(options, log);
    log(`(b, c) PromptFL on the bundled world, 1 client, ${options.rounds} rounds × ${options.epochs} local epochs, ${options.runs} runs each way`);
    const b = await overhead(options, work, log);
    const simMedian = median(b.simulated);
    const flowerMedian = median(b.flower);
    console.log(`\nbench:federation (${os.availableParallelism()} cores; others used ${((others() ?? NaN) * 100).toFixed(0)} % of the machine meanwhile)`);
    console.log(`(a) ${options.nodes} nodes × ${options.rounds} rounds: round latency median ${median(a.rounds.map((r) => r.seconds)).toFixed(2)} s `
      + `(${a.rounds.map((r) => r.seconds.toFixed(2)).join(', ')}); memory ${mb(a.perNodeBytes)} per node (process RSS ${mb(a.rss)} with every node)`);
    console.log(`(b) round, median of ${b.simulated.length}: in-process ${simMedian.toFixed(3)} s, over Flower ${flowerMedian.toFixed(3)} s: `
      + `ratio ${(flowerMedian / simMedian).toFixed(3)} (overhead ${(100 * (flowerMedian / simMedian - 1)).toFixed(1)} %; goal ≤ 5 %)`);
    const up = median(b.bytes.map((x) => x.up));
    const down = median(b.bytes.map((x) => x.down));
    console.log(`(c) per node and round: ${(up / 1024).toFixed(1)} KiB sent, ${(down / 1024).toFixed(1)} KiB received; the prompt is ${(b.promptBytes / 1024).toFixed(1)} KiB `
      + `(sent ${(up / b.promptBytes).toFixed(2)}×, received ${(down / b.promptBytes).toFixed(2)}× its size)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
