// Real Flower processes for the integration tests: a flwr 1.42.0 SuperLink from
// <repo>/.venv on free ports, the `flwr` CLI with a temporary FLWR_HOME, and TLS material.
// Every process runs in its own process group and is killed with it (the SuperLink
// starts flower-superexec, which starts the ServerApp), also when a test fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from './shared.js';
import type { FlowerLogger } from '../src/flower/index.js';

export const VENV = path.join(PROJECT_ROOT, '.venv');
const BIN = path.join(VENV, 'bin');

/** Why the integration tests cannot run here, or undefined when they can. */
export function skipReason(): string | undefined {
  if (!existsSync(path.join(BIN, 'flower-superlink'))) return `no Flower venv at ${VENV} (create it with flwr==1.42.0 to run the SuperLink tests)`;
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function baseEnv(flwrHome: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${BIN}:${process.env.PATH ?? ''}`,
    FLWR_HOME: flwrHome,
    FLWR_TELEMETRY_ENABLED: '0',
    FLWR_DISABLE_UPDATE_CHECK: '1',
    // flwr 1.42 serves the gRPC Fleet API only when asked (its default Fleet is HTTP).
    FLWR_INTERNAL_GRPC_FLEET_API: '1',
    PYTHONUNBUFFERED: '1',
  };
}

export interface SuperLinkOptions {
  tls?: TlsFiles;
  enableSupernodeAuth?: boolean;
  /** SQLite file, so that a restarted SuperLink remembers nodes. */
  database?: string;
}

export interface TlsFiles { ca: string; cert: string; key: string }

export class SuperLink {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-superlink-'));
  readonly flwrHome = path.join(this.dir, 'flwr-home');
  httpPort = 0;
  fleetPort = 0;
  private proc: ChildProcess | undefined;
  private output: string[] = [];

  private constructor(private readonly options: SuperLinkOptions) {}

  static async start(options: SuperLinkOptions = {}): Promise<SuperLink> {
    const link = new SuperLink(options);
    link.httpPort = await freePort();
    link.fleetPort = await freePort();
    try {
      await link.launch();
      link.writeCliConfig();
    } catch (err) {
      await link.stop();
      throw err;
    }
    return link;
  }

  get fleetAddress(): string {
    return `127.0.0.1:${this.fleetPort}`;
  }
  get httpUrl(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.httpPort}`;
  }
  get logs(): string {
    return this.output.join('');
  }

  private async launch(): Promise<void> {
    mkdirSync(this.flwrHome, { recursive: true });
    const args = ['--port', String(this.httpPort), '--host', '127.0.0.1', '--fleet-api-address', this.fleetAddress];
    const tls = this.options.tls;
    if (tls) args.push('--ssl-ca-certfile', tls.ca, '--ssl-certfile', tls.cert, '--ssl-keyfile', tls.key);
    else args.push('--insecure');
    if (this.options.enableSupernodeAuth) args.push('--enable-supernode-auth');
    if (this.options.database) args.push('--database', this.options.database);
    const proc = spawn(path.join(BIN, 'flower-superlink'), args, { env: baseEnv(this.flwrHome), cwd: this.dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (d: Buffer) => this.output.push(d.toString()));
    proc.stderr!.on('data', (d: Buffer) => this.output.push(d.toString()));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`flower-superlink exited (${proc.exitCode}):\n${this.logs}`);
      if (/Application startup complete/.test(this.logs) && (await tcpOpen(this.fleetPort))) return;
      await delay(200);
    }
    throw new Error(`flower-superlink did not start in 30 s:\n${this.logs}`);
  }

  /** Stops the SuperLink (and everything it started). */
  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      killGroup(proc, 'SIGTERM');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (proc) killGroup(proc, 'SIGKILL'); // stragglers of the group (superexec, ServerApp)
  }

  /** Stops, waits `downMs`, starts again on the same ports. */
  async restart(downMs: number): Promise<void> {
    await this.stop();
    await delay(downMs);
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private writeCliConfig(): void {
    const tls = this.options.tls;
    writeFileSync(path.join(this.flwrHome, 'config.toml'), [
      '[superlink]', 'default = "test"', '',
      '[superlink.test]', `address = "127.0.0.1:${this.httpPort}"`,
      tls ? `root-certificates = "${tls.ca}"` : 'insecure = true', '',
    ].join('\n'));
  }

  /** Runs the `flwr` CLI against this SuperLink. */
  flwr(args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(path.join(BIN, 'flwr'), args, { env: baseEnv(this.flwrHome), cwd: this.dir, timeout: timeoutMs, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** `flwr run <app> test --stream` with run-config overrides; resolves when the run ends. */
  async runApp(appDir: string, runConfig: Record<string, string | number>, timeoutMs = 90_000): Promise<{ status: number | null; output: string }> {
    const overrides = Object.entries(runConfig).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`).join(' ');
    const proc = spawn(path.join(BIN, 'flwr'), ['run', appDir, 'test', '--stream', '--run-config', overrides], {
      env: baseEnv(this.flwrHome), cwd: this.dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), timeoutMs);
    const status = await new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    clearTimeout(timer);
    killGroup(proc, 'SIGKILL');
    return { status, output };
  }
}

function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // already gone
  }
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A CA and a server certificate for 127.0.0.1/localhost, made with the venv's `cryptography`. */
export function makeTlsFiles(dir: string): TlsFiles {
  const script = path.join(PROJECT_ROOT, 'test', 'flower-apps', 'make_test_certs.py');
  const r = spawnSync(path.join(BIN, 'python'), [script, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make_test_certs.py failed: ${r.stderr}`);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

/** A logger that keeps lines, for assertions and for failure reports. */
export function memoryLogger(): FlowerLogger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}
