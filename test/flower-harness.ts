// Test-side helpers for the Flower integration tests: TLS material and a logger that keeps
// lines. The SuperLink runner itself is product code (src/federate/superlink.ts), shared
// with `pfedprompt federate`.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from './shared.js';
import type { FlowerLogger } from '../src/flower/index.js';
import { VENV, superLinkMissing } from '../src/federate/superlink.js';

export { SuperLink, delay, freePort, type TlsFiles } from '../src/federate/superlink.js';
export { VENV };
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
