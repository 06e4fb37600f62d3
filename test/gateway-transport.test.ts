// The browser's FleetTransport without a server: what it puts on the wire and how the
// gateway's answers become the failures FleetNode already acts on (its end-to-end run
// through a real gateway and SuperLink is in serve.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FleetClient, FleetCallError, NodeAuthenticationError, NodeKey, parseFlowerApiError, silentLogger } from '../src/flower/index.js';
import { GatewayFleetTransport, decodeTrailers, encodeTrailers } from '../src/flower/gateway-transport.js';

interface Seen { url: string; init: RequestInit }

function fakeFetch(answer: () => Response | Promise<Response>): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  return {
    seen,
    fetch: (async (url: string, init: RequestInit) => {
      seen.push({ url, init });
      return answer();
    }) as typeof fetch,
  };
}

test('a call is POST /fleet/<Method> with the request bytes unchanged, -bin metadata in base64 under its own key, and the timeout', async () => {
  const { fetch, seen } = fakeFetch(() => new Response(new Uint8Array([9, 8, 7]), { headers: { 'fleet-trailers': encodeTrailers(new Map([['flwr-note', 'déprécié']])) } }));
  const transport = new GatewayFleetTransport({ baseUrl: 'http://127.0.0.1:8080/', fetch });
  const request = new Uint8Array([0, 1, 2, 255]);
  const result = await transport.call('SendNodeHeartbeat', request.subarray(1), {
    metadata: [['flwr-public-key-bin', new Uint8Array([0xfb, 0xff])], ['flwr-timestamp', '2026-01-01T00:00:00.000000+00:00']],
    timeoutMs: 5000,
  });
  assert.equal(seen[0].url, 'http://127.0.0.1:8080/fleet/SendNodeHeartbeat');
  assert.equal(seen[0].init.method, 'POST');
  assert.deepEqual(new Uint8Array(seen[0].init.body as ArrayBuffer), new Uint8Array([1, 2, 255]));
  const headers = seen[0].init.headers as Headers;
  assert.equal(headers.get('flwr-public-key-bin'), '+/8=');
  assert.equal(headers.get('flwr-timestamp'), '2026-01-01T00:00:00.000000+00:00');
  assert.equal(headers.get('fleet-timeout-ms'), '5000');
  assert.equal(headers.get('content-type'), 'application/protobuf');
  assert.deepEqual(result.response, new Uint8Array([9, 8, 7]));
  assert.deepEqual(result.trailers, new Map([['flwr-note', 'déprécié']]));
});

test('relative URLs by default (a page resolves them against its own origin)', async () => {
  const { fetch, seen } = fakeFetch(() => new Response(new Uint8Array()));
  await new GatewayFleetTransport({ fetch }).call('PullMessages', new Uint8Array(), { metadata: [] });
  assert.equal(seen[0].url, '/fleet/PullMessages');
  assert.equal((seen[0].init.headers as Headers).get('fleet-timeout-ms'), null, 'no deadline asked, none sent');
  assert.deepEqual(decodeTrailers(null), new Map());
});

async function failure(response: () => Response): Promise<FleetCallError> {
  const transport = new GatewayFleetTransport({ fetch: fakeFetch(response).fetch });
  try {
    await transport.call('ActivateNode', new Uint8Array(), { metadata: [] });
  } catch (err) {
    assert.ok(err instanceof FleetCallError);
    return err;
  }
  assert.fail('the call succeeded');
}

const json = (status: number, body: unknown) => () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

test("the SuperLink's gRPC status comes back as a gRPC node sees it: unauthenticated, unavailable (transient), rejected with Flower's JSON", async () => {
  const unauthenticated = await failure(json(401, { grpcStatus: 16, details: 'Invalid timestamp' }));
  assert.equal(unauthenticated.failure, 'unauthenticated');
  assert.equal(unauthenticated.status, 16);
  assert.equal(unauthenticated.details, 'Invalid timestamp');
  assert.equal(unauthenticated.transient, false);

  const unavailable = await failure(json(503, { grpcStatus: 14, details: 'No connection established' }));
  assert.equal(unavailable.failure, 'unavailable');
  assert.equal(unavailable.transient, true);
  assert.equal((await failure(json(504, { grpcStatus: 4, details: 'Deadline exceeded' }))).failure, 'deadline');

  const flower = '{"code": 2004, "public_message": "Failed to activate node", "public_details": null}';
  const rejected = await failure(json(502, { grpcStatus: 9, details: flower }));
  assert.equal(rejected.failure, 'rejected');
  assert.equal(rejected.status, 9);
  assert.equal(parseFlowerApiError(rejected.details)?.code, 2004);
  assert.equal((await failure(json(502, { grpcStatus: 12, details: 'Method not found' }))).status, 12, 'UNIMPLEMENTED keeps its code (FleetClient reads it as a version mismatch)');
});

test("the gateway's own refusals are rejections naming the gateway; an unreachable gateway or a proxy's 502 is transient", async () => {
  const tooLarge = await failure(json(413, { error: 'request body over 6291456 bytes' }));
  assert.equal(tooLarge.failure, 'rejected');
  assert.equal(tooLarge.status, 413);
  assert.match(tooLarge.details, /^gateway: request body over/);
  const proxy = await failure(() => new Response('<html>Bad Gateway</html>', { status: 502 }));
  assert.equal(proxy.failure, 'unavailable');
  assert.equal(proxy.details, 'gateway: <html>Bad Gateway</html>', 'a body that is not the gateway\'s JSON is passed on as text');
  const down = await failure(() => { throw new TypeError('fetch failed'); });
  assert.equal(down.failure, 'unavailable');
});

test('through FleetClient, a refused signature is a NodeAuthenticationError as over gRPC', async () => {
  const client = new FleetClient(new GatewayFleetTransport({ fetch: fakeFetch(json(401, { grpcStatus: 16, details: 'Invalid signature' })).fetch }), NodeKey.ephemeral(), silentLogger);
  await assert.rejects(client.activateNode(30), (err: Error) => err instanceof NodeAuthenticationError && /Invalid signature/.test(err.message));
});
