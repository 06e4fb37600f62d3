// A test page's node: the browser's parts of a Flower node (WebCrypto key, the gateway
// transport, the server's clock) answering the echo ServerApp, with nothing of the page
// around it. serve-chromium.test.ts drives it through `window.gatewayNode`.
import { GatewayFleetTransport } from '../src/flower/gateway-transport.js';
import { FleetNode } from '../src/flower/node.js';
import { measureClockOffset, offsetClock } from '../src/flower/server-clock.js';
import { WebNodeKey, webSha256Hex } from '../src/flower/web-crypto.js';
import { doubling } from './echo-handler.js';

let key: WebNodeKey | undefined;
let node: FleetNode | undefined;

const gatewayNode = {
  /** Makes the node's non-extractable key; returns its OpenSSH public key, for `flwr supernode register`. */
  async makeKey(): Promise<string> {
    key = await WebNodeKey.generate();
    return key.openSshPublicKey();
  },
  /** Joins through the page's own server; resolves with the node id and the clock offset used. */
  async join(): Promise<{ nodeId: string; offsetMs: number }> {
    const offsetMs = await measureClockOffset(location.origin);
    node = new FleetNode({
      transport: new GatewayFleetTransport(), signer: key!, sha256: webSha256Hex, handler: doubling,
      now: offsetClock(offsetMs), heartbeatInterval: 10, pollIntervalMs: 200,
    });
    void node.run().catch((err: Error) => console.error(`node stopped: ${err.message}`));
    return { nodeId: String(await node.ready), offsetMs };
  },
  async leave(): Promise<void> {
    await node?.stop();
  },
};
(globalThis as unknown as { gatewayNode: typeof gatewayNode }).gatewayNode = gatewayNode;
