// A Flower SuperLink of the pinned version on this machine, from the
// project's Python environment (<package>/.venv, made by npm run
// setup:python), and the `flwr` CLI pointed at it: what `pfedprompt
// federate` and the Flower tests start. Every process runs in its own
// process group and is killed with it (the SuperLink starts
// flower-superexec, which starts the ServerApp).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../io/package-root.js';

export const VENV = path.join(PACKAGE_ROOT, '.venv');
export const FLOWER_APP = path.join(PACKAGE_ROOT, 'flower');
const BIN = path.join(VENV, 'bin');

/** What is missing to run a SuperLink here, with how to get it; undefined when everything is there. */
export function superLinkMissing(): string | undefined {
  if (existsSync(path.join(BIN, 'flower-superlink')) && existsSync(path.join(BIN, 'flwr'))) return undefined;
  return `the Flower server side is not set up (no ${path.join(BIN, 'flower-superlink')}): it needs Python ≥ 3.11 with venv `
    + '(Debian/Ubuntu: apt-get install python3 python3-venv), then `npm run setup:python` in the pfedprompt folder';
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

function flowerEnv(flwrHome: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${BIN}:${process.env.PATH ?? ''}`, // flower-superexec must be on PATH
    FLWR_HOME: flwrHome,
    FLWR_TELEMETRY_ENABLED: '0',
    FLWR_DISABLE_UPDATE_CHECK: '1',
    // flwr 1.42 serves the gRPC Fleet API only when asked (its default Fleet API is protobuf over HTTP).
    FLWR_INTERNAL_GRPC_FLEET_API: '1',
    PYTHONUNBUFFERED: '1',
  };
}

export interface TlsFiles { ca: string; cert: string; key: string }

export interface SuperLinkOptions {
  tls?: TlsFiles;
  enableSupernodeAuth?: boolean;
  /** SQLite file, so that a restarted SuperLink remembers nodes. */
  database?: string;
  /** Told of every line the SuperLink prints. */
  onOutput?: (text: string) => void;
}

export class SuperLink {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-superlink-'));
  readonly flwrHome = path.join(this.dir, 'flwr-home');
  /** The HTTP API (Fleet over HTTP, Control for the `flwr` CLI). */
  httpPort = 0;
  /** The gRPC Fleet API. */
  fleetPort = 0;
  private proc: ChildProcess | undefined;
  private output: string[] = [];

  private constructor(private readonly options: SuperLinkOptions) {}

  static async start(options: SuperLinkOptions = {}): Promise<SuperLink> {
    const missing = superLinkMissing();
    if (missing) throw new Error(missing);
    const link = new SuperLink(options);
    link.httpPort = await freePort();
    link.fleetPort = await freePort();
    try {
      await link.launch();
      link.writeCliConfig();
    } catch (err) {
      await link.dispose();
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
    const args = ['--port', String(this.httpPort), '--host', '127.0.0.1', '--fleet-api-address', this.fleetAddress,
      // The app's dependencies are in this venv already; without this flag every run would build an environment of its own.
      '--disable-runtime-dependency-installation'];
    const tls = this.options.tls;
    if (tls) args.push('--ssl-ca-certfile', tls.ca, '--ssl-certfile', tls.cert, '--ssl-keyfile', tls.key);
    else args.push('--insecure');
    if (this.options.enableSupernodeAuth) args.push('--enable-supernode-auth');
    if (this.options.database) args.push('--database', this.options.database);
    const proc = spawn(path.join(BIN, 'flower-superlink'), args, { env: flowerEnv(this.flwrHome), cwd: this.dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const keep = (d: Buffer) => {
      this.output.push(d.toString());
      this.options.onOutput?.(d.toString());
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`flower-superlink exited (${proc.exitCode}):\n${this.logs}`);
      if (/Application startup complete/.test(this.logs) && (await tcpOpen(this.fleetPort))) return;
      await delay(200);
    }
    throw new Error(`flower-superlink did not start in 60 s:\n${this.logs}`);
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
      '[superlink]', 'default = "local"', '',
      '[superlink.local]', `address = "127.0.0.1:${this.httpPort}"`,
      tls ? `root-certificates = "${tls.ca}"` : 'insecure = true', '',
    ].join('\n'));
  }

  /** Runs the `flwr` CLI against this SuperLink. */
  flwr(args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(path.join(BIN, 'flwr'), args, { env: flowerEnv(this.flwrHome), cwd: this.dir, timeout: timeoutMs, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** `flwr run <app> local --stream` with run-config values; resolves when the run ends (its output streamed to `onLine`, a line at a time). */
  async runApp(
    appDir: string, runConfig: Record<string, string | number>,
    options: { timeoutMs?: number; onLine?: (line: string) => void; signal?: AbortSignal } = {},
  ): Promise<{ status: number | null; output: string }> {
    const overrides = Object.entries(runConfig).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`).join(' ');
    const proc = spawn(path.join(BIN, 'flwr'), ['run', appDir, 'local', '--stream', '--run-config', overrides], {
      env: flowerEnv(this.flwrHome), cwd: this.dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let partial = ''; // the end of the output after its last newline
    const keep = (d: Buffer) => {
      output += d.toString();
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) options.onLine?.(line);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const timer = options.timeoutMs ? setTimeout(() => killGroup(proc, 'SIGKILL'), options.timeoutMs) : undefined;
    const abort = () => killGroup(proc, 'SIGTERM');
    options.signal?.addEventListener('abort', abort, { once: true });
    const status = await new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', abort);
    killGroup(proc, 'SIGKILL');
    return { status, output };
  }
}

export function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
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
