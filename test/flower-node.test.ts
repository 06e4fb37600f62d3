// The TypeScript node against a real flwr 1.42.0 SuperLink (never a mock): a Python
// ServerApp (test/flower-apps/echo) sends `train` messages with arrays and config, the
// node answers through its handler, the ServerApp checks values and reply metadata.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { SuperLink, assertDoubled, doubling, makeTlsFiles, memoryLogger, runEcho, skipReason, waitFor } from './flower-harness.js';
import {
  FleetNode, GrpcFleetTransport, HttpFleetTransport, NodeKey, PINNED_FLOWER_VERSION,
  FlowerVersionMismatchError, NodeAuthenticationError, checkSuperLinkVersion, nodeSha256Hex, offsetClock,
} from '../src/flower/index.js';

const skip = skipReason();

function startNode(link: SuperLink, key: NodeKey, logger = memoryLogger(), extra: Partial<ConstructorParameters<typeof FleetNode>[0]> = {}) {
  const node = new FleetNode({
    transport: new GrpcFleetTransport({ address: link.fleetAddress, insecure: true }),
    signer: key, sha256: nodeSha256Hex, handler: doubling, logger,
    pollIntervalMs: 200, heartbeatInterval: 10, reconnectMaxDelayMs: 1000, ...extra,
  });
  const running = node.run();
  running.catch(() => undefined);
  return { node, running, logger };
}

test('a train message round trip through a real SuperLink; the version probe names both versions on a mismatch', { skip, timeout: 60_000 }, async () => {
  const link = await SuperLink.start();
  const { node, running, logger } = startNode(link, NodeKey.ephemeral());
  try {
    assert.equal(await checkSuperLinkVersion(link.httpUrl), PINNED_FLOWER_VERSION);
    await assert.rejects(checkSuperLinkVersion(link.httpUrl, '1.41.0'), (err: Error) =>
      err instanceof FlowerVersionMismatchError && err.message.includes('1.41.0') && err.message.includes(PINNED_FLOWER_VERSION));
    const nodeId = await node.ready;
    const result = await runEcho(link, { scenario: 'double' });
    assert.deepEqual(result.nodes, [String(nodeId)]);
    assertDoubled(result.results[0], nodeId);
  } catch (err) {
    console.error(logger.lines.join('\n'));
    throw err;
  } finally {
    await node.stop();
    await running.catch(() => undefined);
    await link.dispose();
  }
});

test('an error thrown by the handler arrives as a Flower error reply, and the node keeps serving', { skip, timeout: 60_000 }, async () => {
  const link = await SuperLink.start();
  const { node, running, logger } = startNode(link, NodeKey.ephemeral());
  try {
    const nodeId = await node.ready;
    const result = await runEcho(link, { scenario: 'error-then-double' });
    const [failed, served] = result.results;
    assert.equal(failed.action, 'fail');
    assert.equal(failed.error?.code, 2, 'ErrorCode.CLIENT_APP_RAISED_EXCEPTION');
    assert.match(failed.error!.reason, /asked to fail/);
    assert.equal(failed.src_node_id, String(nodeId));
    assert.equal(failed.reply_to_ok, true);
    assert.equal(served.action, 'double');
    assertDoubled(served, nodeId);
  } catch (err) {
    console.error(logger.lines.join('\n'));
    throw err;
  } finally {
    await node.stop();
    await running.catch(() => undefined);
    await link.dispose();
  }
});

test('a restarted node keeps its key and node id; stop() deactivates it', { skip, timeout: 60_000 }, async () => {
  const link = await SuperLink.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-node-'));
  const keyPath = path.join(dir, 'node-key.pem');
  let current: ReturnType<typeof startNode> | undefined;
  try {
    const first = await NodeKey.loadOrCreate(keyPath);
    assert.equal(first.created, true);
    assert.equal(statSync(keyPath).mode & 0o777, 0o600, 'the private key is readable by its owner only');
    assert.match(readFileSync(`${keyPath}.pub`, 'utf8'), /^ecdsa-sha2-nistp384 [A-Za-z0-9+/=]+\n$/);
    current = startNode(link, first.key);
    const id1 = await current.node.ready;
    await current.node.stop();
    await current.running;
    await waitFor(() => link.logs.includes(`Deactivated node_id=${id1}`), 5000, 'the SuperLink logs the deactivation');

    const second = await NodeKey.loadOrCreate(keyPath);
    assert.equal(second.created, false);
    assert.deepEqual(second.key.publicKeyPem, first.key.publicKeyPem);
    current = startNode(link, second.key);
    assert.equal(await current.node.ready, id1, 'same node id after restart');
    const result = await runEcho(link, { scenario: 'double' });
    assertDoubled(result.results[0], id1);
  } catch (err) {
    if (current) console.error(current.logger.lines.join('\n'));
    throw err;
  } finally {
    await current?.node.stop();
    await current?.running.catch(() => undefined);
    await link.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the node survives 10 s of SuperLink downtime and serves again', { skip, timeout: 90_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-node-'));
  // A database file, so the restarted SuperLink still knows the node (as in production).
  const link = await SuperLink.start({ database: path.join(dir, 'state.db') });
  const { node, running, logger } = startNode(link, NodeKey.ephemeral());
  try {
    const nodeId = await node.ready;
    await link.restart(10_000);
    const result = await runEcho(link, { scenario: 'double' });
    assertDoubled(result.results[0], nodeId);
    assert.ok(logger.lines.some((l) => /unreachable/.test(l)), 'the outage was noticed');
  } catch (err) {
    console.error(logger.lines.join('\n'));
    throw err;
  } finally {
    await node.stop();
    await running.catch(() => undefined);
    await link.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('node authentication over TLS: an unregistered key is refused, a key registered with `flwr supernode register` is served', { skip, timeout: 90_000 }, async () => {
  const certDir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-tls-'));
  const tls = makeTlsFiles(certDir);
  const link = await SuperLink.start({ tls, enableSupernodeAuth: true });
  const tlsTransport = () => new GrpcFleetTransport({ address: link.fleetAddress, rootCertificatesPath: tls.ca });
  let current: ReturnType<typeof startNode> | undefined;
  try {
    const { key } = await NodeKey.loadOrCreate(path.join(certDir, 'node-key.pem'));
    current = startNode(link, key, memoryLogger(), { transport: tlsTransport() });
    await assert.rejects(current.running, (err: Error) => err instanceof NodeAuthenticationError && /flwr supernode register/.test(err.message));

    const reg = link.flwr(['supernode', 'register', path.join(certDir, 'node-key.pem.pub'), 'local', '--format', 'json']);
    assert.equal(reg.status, 0, `flwr supernode register failed:\n${reg.stdout}\n${reg.stderr}`);
    const registeredId = BigInt(/"node-id":\s*(\d+)/.exec(reg.stdout)![1]);

    current = startNode(link, key, memoryLogger(), { transport: tlsTransport() });
    assert.equal(await current.node.ready, registeredId);
    const result = await runEcho(link, { scenario: 'double' });
    assertDoubled(result.results[0], registeredId);
  } catch (err) {
    if (current) console.error(current.logger.lines.join('\n'));
    throw err;
  } finally {
    await current?.node.stop();
    await current?.running.catch(() => undefined);
    await link.dispose();
    rmSync(certDir, { recursive: true, force: true });
  }
});

test('the same node over the HTTP Fleet API (flwr 1.42\'s default transport)', { skip, timeout: 60_000 }, async () => {
  const link = await SuperLink.start();
  const { node, running, logger } = startNode(link, NodeKey.ephemeral(), memoryLogger(), {
    transport: new HttpFleetTransport({ baseUrl: link.httpUrl }),
    superLinkHttpUrl: link.httpUrl,
    unregisterOnStop: true,
  });
  try {
    const nodeId = await node.ready;
    const result = await runEcho(link, { scenario: 'error-then-double' });
    assert.equal(result.results[0].error?.code, 2);
    assertDoubled(result.results[1], nodeId);
    await node.stop();
    await running;
    await waitFor(() => link.logs.includes(`Unregistered node_id=${nodeId}`) || link.logs.includes('unregister-node HTTP/1.1" 200'), 5000, 'the throwaway identity is unregistered');
  } catch (err) {
    console.error(logger.lines.join('\n'));
    throw err;
  } finally {
    await node.stop();
    await running.catch(() => undefined);
    await link.dispose();
  }
});

test('a node whose clock is an hour slow is refused ("Invalid timestamp"), and signs valid requests with its offset', { skip, timeout: 60_000 }, async () => {
  const link = await SuperLink.start();
  const slowClock = () => Date.now() - 3_600_000;
  let current: ReturnType<typeof startNode> | undefined;
  try {
    current = startNode(link, NodeKey.ephemeral(), memoryLogger(), { now: () => new Date(slowClock()) });
    await assert.rejects(current.running, (err: Error) => err instanceof NodeAuthenticationError && /Invalid timestamp/.test(err.message));
    current = startNode(link, NodeKey.ephemeral(), memoryLogger(), { now: offsetClock(3_600_000, slowClock) });
    const nodeId = await current.node.ready;
    const result = await runEcho(link, { scenario: 'double' });
    assertDoubled(result.results[0], nodeId);
  } catch (err) {
    if (current) console.error(current.logger.lines.join('\n'));
    throw err;
  } finally {
    await current?.node.stop();
    await current?.running.catch(() => undefined);
    await link.dispose();
  }
});

