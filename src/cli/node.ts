// `pfedprompt node`: this machine's client of a federation, as a Flower
// SuperNode. It needs Node.js only: the model, its own images and a
// SuperLink to connect to. What it sends is the method's declared upload and
// plain metrics; its images, features, memory and personal prompt rows stay
// in --state on this machine.

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_WORLD, WORLD_MODEL_DIR, WORLD_PRESETS, prepareWorldDataset } from '../experiment/world-experiment.js';
import { FleetNode, GrpcFleetTransport, HttpFleetTransport, NodeAuthenticationError, NodeKey, fetchTrusting, nodeSha256Hex, type FleetTransport, type FlowerLogger } from '../flower/index.js';
import { ClientNode } from '../node/client-node.js';
import { flowerHandler } from '../node/flower-handler.js';
import { positiveInt } from './options.js';

interface NodeCliOptions {
  superlink: string;
  transport: 'grpc' | 'http';
  superlinkApi?: string;
  insecure?: boolean;
  rootCertificates?: string;
  state: string;
  world: string;
  key?: string;
  model: string;
  tokenizer?: string;
  dataset?: string;
  root?: string;
  partition?: string;
  client: number;
  cache?: string;
  threads?: number;
  heartbeat: number;
  poll: number;
  quiet?: boolean;
}

function transportOption(value: string): 'grpc' | 'http' {
  if (value !== 'grpc' && value !== 'http') throw new InvalidArgumentError(`expected grpc or http, got "${value}"`);
  return value;
}

const nonNegativeInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a client index (0, 1, …), got "${value}"`);
  return n;
};

export function registerNode(program: Command): void {
  program
    .command('node')
    .description("serve as one client of a federation: a Flower SuperNode holding this machine's images, model and personal state")
    .requiredOption('--superlink <host:port>', "the SuperLink's Fleet API: with --transport grpc its --fleet-api-address (9092 by default), with http its --port (8000 by default)")
    .option('--transport <grpc|http>', "gRPC (flwr 1.42 serves it when the SuperLink runs with FLWR_INTERNAL_GRPC_FLEET_API=1) or Flower's protobuf-over-HTTP Fleet API", transportOption, 'grpc')
    .option('--superlink-api <url>', "the SuperLink's HTTP API (http(s)://host:port): its Flower version is checked against the pinned one before joining (with --transport http: the --superlink address)")
    .requiredOption('--client <k>', 'which client of the partition this node is (0-based)', nonNegativeInt)
    .option('--insecure', 'plaintext gRPC (a SuperLink started with --insecure); default is TLS')
    .option('--root-certificates <pem>', "CA certificate that signed the SuperLink's certificate (TLS)")
    .option('--state <dir>', "this node's folder: its key, personal state per run, a drawn world dataset", path.join(os.homedir(), '.local', 'state', 'pfedprompt', 'node'))
    .option('--key <pem>', "this node's ECDSA P-384 key (created if missing; default <state>/node-key.pem; its .pub is what `flwr supernode register` takes)")
    .option('--model <path>', 'CLIP checkpoint: a Hugging Face CLIPModel folder or an OpenAI / open_clip .safetensors file', WORLD_MODEL_DIR)
    .option('--tokenizer <dir>', "tokenizer folder (default: the model's folder)")
    .option('--dataset <spec>', 'CoOp dataset name (with --root), CoOp dataset folder, image folder or world dataset; default: the bundled world, drawn into <state>/data/world')
    .option('--world <name>', `without --dataset, which bundled world to draw (${Object.keys(WORLD_PRESETS).join(', ')})`, DEFAULT_WORLD)
    .option('--root <dir>', "folder holding CoOp's dataset folders")
    .option('--partition <file>', 'partition file from `pfedprompt partition` (default: the run config\'s partition, drawn as `pfedprompt run` draws it)')
    .option('--cache <dir>', 'feature cache root (default $PFEDPROMPT_CACHE or ~/.cache/pfedprompt/features)')
    .option('--threads <n>', 'onnxruntime threads', positiveInt)
    .option('--heartbeat <s>', 'heartbeat interval in seconds (10–1800)', positiveInt, 30)
    .option('--poll <ms>', 'milliseconds between two looks for work while idle', positiveInt, 1000)
    .option('--quiet', 'log errors only')
    .action(async (opts: NodeCliOptions) => {
      const state = path.resolve(opts.state);
      const keyFile = path.resolve(opts.key ?? path.join(state, 'node-key.pem'));
      await mkdir(path.dirname(keyFile), { recursive: true });
      const logger: FlowerLogger = consoleLogger(Boolean(opts.quiet));
      const dataset = opts.dataset ?? (await prepareWorldDataset(path.join(state, 'data', `world-${opts.world}`), (m) => logger.info(m), opts.world));
      const client = new ClientNode({
        model: opts.model,
        tokenizer: opts.tokenizer,
        data: { dataset, root: opts.root, partitionFile: opts.partition, client: opts.client },
        stateDir: state,
        cache: opts.cache,
        threads: opts.threads,
        log: (m) => logger.info(m),
      });
      const { key, created } = await NodeKey.loadOrCreate(keyFile);
      if (created) logger.info(`created this node's key in ${keyFile} (its public half for \`flwr supernode register\`: ${keyFile}.pub)`);
      const scheme = opts.insecure ? 'http' : 'https';
      const transport: FleetTransport = opts.transport === 'http'
        ? new HttpFleetTransport({ baseUrl: `${scheme}://${opts.superlink}` })
        : new GrpcFleetTransport({ address: opts.superlink, insecure: opts.insecure, rootCertificatesPath: opts.rootCertificates });
      const node = new FleetNode({
        transport,
        superLinkHttpUrl: opts.superlinkApi ?? (opts.transport === 'http' ? `${scheme}://${opts.superlink}` : undefined),
        ...(opts.rootCertificates ? { fetch: fetchTrusting(await readFile(opts.rootCertificates)) } : {}),
        signer: key,
        sha256: nodeSha256Hex,
        logger,
        heartbeatInterval: opts.heartbeat,
        pollIntervalMs: opts.poll,
        handler: flowerHandler(client),
      });
      // SIGINT / SIGTERM: deactivate at the SuperLink, then exit.
      const stop = new AbortController();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());
      // ready rejects too when the node stops before joining; run() reports that, so it is not an error here.
      node.ready.then((id) => logger.info(`client ${opts.client} joined ${opts.superlink} as node ${id}`), () => {});
      await node.run(stop.signal).catch((error: unknown) => {
        if (error instanceof NodeAuthenticationError) throw new Error(`${error.message} This node's key: flwr supernode register ${keyFile}.pub <superlink>`);
        throw error;
      });
    });
}

function consoleLogger(quiet: boolean): FlowerLogger {
  const line = (level: string, message: string) => console.error(`${new Date().toISOString()} ${level} ${message}`);
  return {
    debug: () => {},
    info: (m) => { if (!quiet) line('INFO', m); },
    warn: (m) => line('WARN', m),
    error: (m) => line('ERROR', m),
  };
}
