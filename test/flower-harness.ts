// Test-side helpers for the Flower integration tests: TLS material and a logger that keeps
// lines. The SuperLink runner itself is product code (src/federate/superlink.ts), shared
// with `pfedprompt federate`.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from './shared.js';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { FlowerLogger } from '../src/flower/index.js';
import { VENV, delay, superLinkMissing, type SuperLink } from '../src/federate/superlink.js';

export { SuperLink, delay, freePort, type TlsFiles } from '../src/federate/superlink.js';
export { VENV };
export { doubling } from './echo-handler.js';
const BIN = path.join(VENV, 'bin');

/** Why the integration tests cannot run here, or undefined when they can. */
export function skipReason(): string | undefined {
  return superLinkMissing();
}

/** A CA and a server certificate for 127.0.0.1/localhost, made with the venv's `cryptography`. */
export function makeTlsFiles(dir: string): import('../src/federate/superlink.js').TlsFiles {
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

// The echo ServerApp (test/flower-apps/echo) and the handler it expects: the node doubles the arrays.
const ECHO_APP = path.join(PROJECT_ROOT, 'test', 'flower-apps', 'echo');


export interface EchoResult {
  nodes: string[];
  results: Array<Record<string, unknown> & { node: string; action: string; error?: { code: number; reason: string } }>;
}

export async function runEcho(link: SuperLink, config: Record<string, string | number>): Promise<EchoResult> {
  const resultPath = path.join(link.dir, `result-${Date.now()}.json`);
  const run = await link.runApp(ECHO_APP, { ...config, 'result-path': resultPath, timeout: 40 });
  assert.ok(existsSync(resultPath), `the ServerApp wrote no result (flwr run exit ${run.status}):\n${run.output}\n--- SuperLink:\n${link.logs.slice(-4000)}`);
  return JSON.parse(readFileSync(resultPath, 'utf8')) as EchoResult;
}

export function assertDoubled(r: EchoResult['results'][number], nodeId: bigint) {
  assert.equal(r.missing, undefined, 'a reply arrived');
  assert.equal(r.error, undefined, `no error: ${JSON.stringify(r.error)}`);
  assert.equal(r.arrays_ok, true);
  assert.equal(r.src_node_id, String(nodeId));
  assert.equal(r.dst_node_id, '1', 'replies go to the SuperLink (node 1)');
  assert.equal(r.message_type, 'train');
  assert.equal(r.reply_to_ok, true);
  assert.equal(r.ttl_ok, true);
  assert.deepEqual(r.metrics, { 'num-examples': 12, 'train-loss': 0.5, accuracies: [0.25, 0.75], 'server-round': 1 });
  assert.deepEqual(r.metric_types, { 'num-examples': 'int', 'train-loss': 'float', accuracies: 'list', 'server-round': 'int' });
}

export async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out: ${what}`);
    await delay(100);
  }
}
