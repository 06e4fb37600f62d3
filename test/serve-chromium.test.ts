// The gateway with a real browser on one side and a real flwr 1.42.0 SuperLink (TLS,
// node authentication) on the other: a page served by `pfedprompt serve`'s server is
// cross-origin isolated, and a node in it — Chromium's WebCrypto key, fetch to /fleet,
// the server's clock — answers the echo ServerApp. The page itself: browser-page.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { browserSkip, bundleForBrowser, launchChromium, pageErrors } from './browser-harness.js';
import { SuperLink, assertDoubled, makeTlsFiles, runEcho, skipReason } from './flower-harness.js';
import { GrpcFleetTransport } from '../src/flower/grpc-transport.js';
import { GatewayServer } from '../src/serve/server.js';

const skip = browserSkip() || skipReason();

interface GatewayNodeApi { gatewayNode: { makeKey(): Promise<string>; join(): Promise<{ nodeId: string; offsetMs: number }>; leave(): Promise<void> } }

test('a node in Chromium joins a real SuperLink with node authentication through the gateway and answers the ServerApp', { skip, timeout: 180_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-serve-chromium-'));
  const webDir = path.join(dir, 'web');
  await bundleForBrowser({ node: 'test/browser-gateway-entry.ts' }, webDir);
  writeFileSync(path.join(webDir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>gateway node</title><script type="module" src="/node.js"></script>');
  const tls = makeTlsFiles(dir);
  const link = await SuperLink.start({ tls, enableSupernodeAuth: true });
  const gateway = await GatewayServer.start({ fleet: new GrpcFleetTransport({ address: link.fleetAddress, rootCertificatesPath: tls.ca }), webDir, port: 0 });
  const browser = await launchChromium();
  const page = await browser.newPage();
  const errors = pageErrors(page);
  try {
    await page.goto(gateway.url);
    await page.waitForFunction(() => 'gatewayNode' in globalThis);
    assert.equal(await page.evaluate(() => crossOriginIsolated), true, "the gateway's headers make the page cross-origin isolated");

    const publicKey = await page.evaluate(() => (globalThis as unknown as GatewayNodeApi).gatewayNode.makeKey());
    writeFileSync(path.join(dir, 'browser-node.pub'), `${publicKey}\n`);
    const reg = link.flwr(['supernode', 'register', path.join(dir, 'browser-node.pub'), 'local', '--format', 'json']);
    assert.equal(reg.status, 0, `flwr supernode register failed:\n${reg.stdout}\n${reg.stderr}`);
    const registeredId = /"node-id":\s*(\d+)/.exec(reg.stdout)![1];

    const joined = await page.evaluate(() => (globalThis as unknown as GatewayNodeApi).gatewayNode.join());
    assert.equal(joined.nodeId, registeredId);
    assert.ok(Math.abs(joined.offsetMs) < 1000, `same machine, same clock: offset ${joined.offsetMs} ms`);
    const result = await runEcho(link, { scenario: 'double' });
    assertDoubled(result.results[0], BigInt(registeredId));
    await page.evaluate(() => (globalThis as unknown as GatewayNodeApi).gatewayNode.leave());
    assert.ok(link.logs.includes(`Deactivated node_id=${registeredId}`) || (await waitForLog(link, `Deactivated node_id=${registeredId}`)), 'the browser node deactivated on leaving');
    // Chromium logs every non-2xx fetch: the favicon, and RegisterNode, which the SuperLink refuses under node authentication (the node then activates).
    assert.deepEqual(errors.filter((e) => !/Failed to load resource: the server responded with a status of (404|502)/.test(e)), []);
  } catch (err) {
    console.error(errors.join('\n'));
    console.error(link.logs.slice(-3000));
    throw err;
  } finally {
    await browser.close();
    await gateway.close();
    await link.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function waitForLog(link: SuperLink, text: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (link.logs.includes(text)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
