// A whole Flower federation on this machine, for seeing it work and for
// tests: a SuperLink, one `pfedprompt node` process per client (each with its
// own state folder, as on separate machines), the pfedprompt ServerApp
// (flower/) launched with `flwr run`, then the report from the results.json
// the ServerApp wrote. Everything it starts is stopped, also on failure.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExperimentConfig } from '../experiment/config.js';
import { outputDir, tokenizerDirOf } from '../experiment/runner.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeReport } from '../report/index.js';
import { readResults, type ResultsFile } from '../report/results.js';
import { FLOWER_APP, SuperLink, delay, killGroup } from './superlink.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');

export interface LocalFederationEvents {
  readonly log?: (message: string) => void;
  /** Lines of the ServerApp's log, as they come. */
  readonly onServerLine?: (line: string) => void;
}

export interface LocalFederationOutput {
  readonly outDir: string;
  readonly results: ResultsFile;
  readonly files: readonly string[];
}

export async function federateLocally(config: ExperimentConfig, events: LocalFederationEvents = {}): Promise<LocalFederationOutput> {
  const log = events.log ?? (() => {});
  if (config.data.datasets.length !== 1) throw new Error(`a federation holds one dataset on its nodes; the config names ${config.data.datasets.length} (run one federation per dataset)`);
  const outDir = outputDir(config);
  const flowerDir = path.join(outDir, 'flower');
  await mkdir(flowerDir, { recursive: true });
  const configFile = path.join(outDir, 'config.json');
  await writeFileAtomic(configFile, `${JSON.stringify(config, null, 2)}\n`);

  const link = await SuperLink.start({ onOutput: appendTo(path.join(flowerDir, 'superlink.log')) });
  const nodes: ChildProcess[] = [];
  try {
    const clients = config.data.partition.clients;
    log(`SuperLink on ${link.fleetAddress} (Fleet, gRPC) and ${link.httpUrl}; starting ${clients} nodes`);
    const threads = Math.max(1, Math.floor(os.availableParallelism() / clients));
    for (let k = 0; k < clients; k++) {
      nodes.push(spawnNode({
        superlink: link, client: k, stateDir: path.join(flowerDir, 'nodes', String(k)), model: config.model, tokenizer: tokenizerDirOf(config),
        dataset: config.data.datasets[0], root: config.data.root, cache: config.cache, threads, logFile: path.join(flowerDir, `node-${k}.log`),
      }));
    }
    // A node that exits before the run ends fails the run now, not after the ServerApp's wait for nodes.
    const nodeDied = new AbortController();
    let died: number | undefined;
    nodes.forEach((p, k) => p.once('exit', () => {
      if (died === undefined && !nodeDied.signal.aborted) {
        died = k;
        nodeDied.abort();
      }
    }));
    const run = await link.runApp(FLOWER_APP, { config: configFile, output: outDir, 'wait-for-nodes': 300, 'poll-interval': 0.1 }, {
      signal: nodeDied.signal,
      onLine: (line) => { if (line.trim()) events.onServerLine?.(line); },
    });
    if (died !== undefined) {
      const logFile = path.join(flowerDir, `node-${died}.log`);
      throw new Error(`node ${died} exited before the run ended; its log ends:\n${tail(logFile, 10)}`);
    }
    if (run.status !== 0 || !existsSync(path.join(outDir, 'results.json'))) {
      throw new Error(`the Flower run failed; its log ends:\n${run.output.split('\n').slice(-15).join('\n')}`);
    }
  } finally {
    await stopAll(nodes);
    await link.dispose();
  }
  const results = await readResults(path.join(outDir, 'results.json'));
  const { files } = await writeReport(results, outDir);
  return { outDir, results, files: [path.join(outDir, 'results.json'), ...files] };
}

export interface NodeProcessOptions {
  readonly superlink: SuperLink;
  /** Where the node reaches the Fleet API, if not the SuperLink's own address (a proxy, say). */
  readonly fleetAddress?: string;
  readonly client: number;
  /** The node's folder: its key (hence its node id) and personal state. */
  readonly stateDir: string;
  readonly model: string;
  readonly tokenizer?: string;
  readonly dataset: string;
  readonly root?: string;
  readonly cache?: string;
  readonly threads?: number;
  /** Seconds; the SuperLink declares a node dead after two missed beats. */
  readonly heartbeat?: number;
  /** Where the node's output goes (appended). */
  readonly logFile: string;
}

/** One `pfedprompt node` process in its own process group, connected to `superlink` over plaintext gRPC. */
export function spawnNode(o: NodeProcessOptions): ChildProcess {
  const args = [CLI, 'node', '--superlink', o.fleetAddress ?? o.superlink.fleetAddress, '--insecure', '--superlink-api', o.superlink.httpUrl, '--client', String(o.client),
    '--state', o.stateDir, '--model', o.model, '--dataset', o.dataset, '--poll', '200',
    ...(o.tokenizer ? ['--tokenizer', o.tokenizer] : []), ...(o.threads ? ['--threads', String(o.threads)] : []),
    ...(o.heartbeat ? ['--heartbeat', String(o.heartbeat)] : []), ...(o.root ? ['--root', o.root] : []), ...(o.cache ? ['--cache', o.cache] : [])];
  const proc = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  mkdirSync(path.dirname(o.logFile), { recursive: true });
  const sink = appendTo(o.logFile);
  proc.stdout!.on('data', (d: Buffer) => sink(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => sink(d.toString()));
  return proc;
}

/** SIGTERM (a node deactivates at the SuperLink and exits), then SIGKILL for any still running after 5 s. */
export async function stopAll(procs: readonly ChildProcess[]): Promise<void> {
  const running = procs.filter((p) => p.exitCode === null && p.signalCode === null);
  const exits = running.map((p) => new Promise((resolve) => p.once('exit', resolve)));
  for (const p of running) killGroup(p, 'SIGTERM');
  await Promise.race([Promise.all(exits), delay(5000)]);
  for (const p of running) killGroup(p, 'SIGKILL');
}

function tail(file: string, lines: number): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)';
}

function appendTo(file: string): (text: string) => void {
  const stream = createWriteStream(file, { flags: 'a' });
  return (text) => stream.write(text);
}
