// `pfedprompt serve`: the files it serves and refuses, its clock, its Fleet gateway's
// errors, and — against a real flwr 1.42.0 SuperLink with TLS and node authentication — a
// FleetNode on the browser's parts (GatewayFleetTransport, WebCrypto key) that joins
// through it, with what the gateway forwards byte-identical to what the node sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { PROJECT_ROOT } from './shared.js';
import { SuperLink, assertDoubled, doubling, makeTlsFiles, memoryLogger, runEcho, skipReason } from './flower-harness.js';
import {
  FleetCallError, FleetNode, GrpcFleetTransport, MAX_ARRAY_CHUNK_SIZE, NodeAuthenticationError, parseFlowerApiError,
  type CallMetadata, type CallOptions, type CallResult, type FleetMethod, type FleetTransport,
} from '../src/flower/index.js';
import { GatewayFleetTransport } from '../src/flower/gateway-transport.js';
import { measureClockOffset, offsetClock } from '../src/flower/server-clock.js';
import { WebNodeKey, webSha256Hex } from '../src/flower/web-crypto.js';
import { MAX_FLEET_REQUEST_BYTES } from '../src/serve/fleet-forwarding.js';
import { GatewayServer, onnxruntimeWebDir } from '../src/serve/server.js';

const MODEL = path.join(PROJECT_ROOT, 'models', 'world-clip');
const HOUR = 3_600_000;

interface Recorded { method: FleetMethod; request: Uint8Array; metadata: CallMetadata; options: CallOptions; error?: unknown }

/** A transport that records every call it is given, then passes it on (or answers itself). */
function recording(inner: FleetTransport | ((call: Recorded) => Promise<CallResult>), calls: Recorded[]): FleetTransport {
  return {
    async call(method, request, options) {
      const call: Recorded = { method, request: request.slice(), metadata: options.metadata.map(([k, v]) => [k, typeof v === 'string' ? v : v.slice()]), options };
      calls.push(call);
      try {
        return await (typeof inner === 'function' ? inner(call) : inner.call(method, request, options));
      } catch (err) {
        call.error = err;
        throw err;
      }
    },
    close() {
      if (typeof inner !== 'function') inner.close();
    },
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const canonical = (calls: Recorded[]) => calls.map((c) => `${c.method} ${hex(c.request)} ${c.metadata.map(([k, v]) => `${k}=${typeof v === 'string' ? v : `0x${hex(v)}`}`).join(' ')}`).sort();

/** A GET with the path sent as written (fetch would resolve `..` before sending). */
function rawGet(base: string, rawPath: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: rawPath, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function withGateway(fleet: FleetTransport, body: (gateway: GatewayServer, webDir: string) => Promise<void>, extra: { maxRequestBytes?: number } = {}): Promise<void> {
  const webDir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-web-'));
  writeFileSync(path.join(webDir, 'index.html'), '<!doctype html><title>pfedprompt</title>');
  writeFileSync(path.join(webDir, 'page.js'), 'export {};\n');
  mkdirSync(path.join(webDir, 'assets'));
  writeFileSync(path.join(webDir, 'assets', 'style.css'), 'body{}');
  const gateway = await GatewayServer.start({ fleet, model: MODEL, webDir, port: 0, ...extra });
  try {
    await body(gateway, webDir);
  } finally {
    await gateway.close();
    rmSync(webDir, { recursive: true, force: true });
  }
}

const unused: FleetTransport = { call: () => Promise.reject(new Error('no Fleet calls expected')), close() {} };

function assertIsolated(headers: Headers | Record<string, unknown>, what: string) {
  const get = (name: string) => (headers instanceof Headers ? headers.get(name) : headers[name]);
  assert.equal(get('cross-origin-opener-policy'), 'same-origin', `${what}: COOP`);
  assert.equal(get('cross-origin-embedder-policy'), 'require-corp', `${what}: COEP`);
}

test('the page, onnxruntime-web and the model are served cross-origin isolated, with their content types', async () => {
  await withGateway(unused, async (gateway) => {
    const index = await fetch(gateway.url);
    assert.equal(index.status, 200);
    assert.equal(await index.text(), '<!doctype html><title>pfedprompt</title>');
    assert.match(index.headers.get('content-type')!, /^text\/html/);
    assertIsolated(index.headers, '/');
    assert.equal(index.headers.get('cross-origin-resource-policy'), 'same-origin');

    const js = await fetch(new URL('page.js', gateway.url));
    assert.match(js.headers.get('content-type')!, /^text\/javascript/);
    assert.equal((await fetch(new URL('assets/style.css', gateway.url))).status, 200, 'sub-folders of the bundle');

    const ortDir = onnxruntimeWebDir();
    const wasm = readdirSync(ortDir).find((f) => f.endsWith('.wasm'))!;
    const mjs = readdirSync(ortDir).find((f) => f.endsWith('.mjs'))!;
    const wasmResponse = await fetch(new URL(`ort/${wasm}`, gateway.url));
    assert.equal(wasmResponse.headers.get('content-type'), 'application/wasm');
    assertIsolated(wasmResponse.headers, wasm);
    assert.equal(wasmResponse.headers.get('cross-origin-resource-policy'), 'same-origin');
    assert.deepEqual(Buffer.from(await wasmResponse.arrayBuffer()), readFileSync(path.join(ortDir, wasm)));
    assert.match((await fetch(new URL(`ort/${mjs}`, gateway.url))).headers.get('content-type')!, /^text\/javascript/);

    const listing = (await (await fetch(new URL('model/', gateway.url))).json()) as { files: string[] };
    assert.deepEqual(listing.files, ['config.json', 'merges.txt', 'model.safetensors', 'preprocessor_config.json', 'special_tokens_map.json', 'tokenizer_config.json', 'vocab.json']);
    for (const file of listing.files) {
      const response = await fetch(new URL(`model/${file}`, gateway.url));
      assert.equal(response.status, 200, file);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), readFileSync(path.join(MODEL, file)), file);
    }
    const head = await fetch(new URL('model/model.safetensors', gateway.url), { method: 'HEAD' });
    assert.equal(Number(head.headers.get('content-length')), readFileSync(path.join(MODEL, 'model.safetensors')).length);
  });
});

test('paths outside the served folders and model files off the allow-list are refused', async () => {
  await withGateway(unused, async (gateway) => {
    const secret = readFileSync(path.join(PROJECT_ROOT, 'package.json'));
    for (const p of [
      '/model/../package.json', '/model/%2e%2e/package.json', '/model/..%2f..%2fpackage.json', '/model/..%5c..%5cpackage.json',
      '/ort/../../package.json', '/ort/..%2F..%2F..%2Fpackage.json', '/%2e%2e/%2e%2e/package.json', '/../package.json', '/./index.html',
      '/model/%00config.json', '/model/%zz',
    ]) {
      const r = await rawGet(gateway.url, p);
      assert.equal(r.status, 400, `${p} is a bad path`);
      assert.ok(!r.body.includes(secret), p);
      assertIsolated(r.headers, p);
    }
    for (const p of ['/model/README.md', '/model/training.log', '/model/config.json/x', '/model/sub/config.json', '/package.json', '/ort/', '/nothing.js']) {
      const r = await rawGet(gateway.url, p);
      assert.equal(r.status, 404, `${p} is not served`);
      assert.match(JSON.parse(r.body.toString()).error, /not found|not one of the model's public files/);
    }
    const put = await fetch(new URL('clock', gateway.url), { method: 'PUT' });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'GET, HEAD');
  });
});

test("/clock gives the server's time; a device an hour slow measures its offset from it", async () => {
  await withGateway(unused, async (gateway) => {
    const before = Date.now();
    const response = await fetch(new URL('clock', gateway.url));
    const { serverTimeMs } = (await response.json()) as { serverTimeMs: number };
    assert.ok(serverTimeMs >= before && serverTimeMs <= Date.now(), 'the server time is now');
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assertIsolated(response.headers, '/clock');
    const slow = () => Date.now() - HOUR;
    const offset = await measureClockOffset(gateway.url, { localNow: slow });
    assert.ok(Math.abs(offset - HOUR) < 500, `offset ${offset} ms ≈ 1 h`);
    assert.ok(Math.abs(offsetClock(offset, slow)().getTime() - Date.now()) < 500);
  });
});

test('Fleet calls: bytes and flwr-* metadata forwarded unchanged (nothing else), gRPC failures carried back, bad calls refused with a 4xx', async () => {
  const forwarded: Recorded[] = [];
  let answer: (call: Recorded) => Promise<CallResult> = async () => ({ response: new Uint8Array([7, 0, 7]), trailers: new Map([['flwr-version-incompatibility-message', 'gRPC Fleet is deprecated']]) });
  await withGateway(recording((call) => answer(call), forwarded), async (gateway) => {
    const transport = new GatewayFleetTransport({ baseUrl: gateway.url });
    const request = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    const metadata: CallMetadata = [['flwr-public-key-bin', new Uint8Array([0, 255, 10, 13])], ['flwr-timestamp', '2026-01-01T00:00:00.000000+00:00'], ['flwr-signature-bin', new Uint8Array([0x30, 1, 2])], ['flwr-package-name', 'flwr']];
    const result = await transport.call('PushObject', request, { metadata, timeoutMs: 4000 });
    assert.deepEqual(result.response, new Uint8Array([7, 0, 7]));
    assert.equal(result.trailers.get('flwr-version-incompatibility-message'), 'gRPC Fleet is deprecated');
    assert.equal(forwarded[0].method, 'PushObject');
    assert.deepEqual(forwarded[0].request, request);
    assert.deepEqual(forwarded[0].metadata, metadata, 'the flwr-* metadata only, in order, bytes restored');
    assert.equal(forwarded[0].options.timeoutMs, 4000);

    // The SuperLink's refusals reach the node as they would over gRPC.
    const flowerError = '{"code": 2001, "public_message": "SuperNode registration is disabled.", "public_details": null}';
    for (const [status, failure, details] of [[16, 'unauthenticated', 'Invalid signature'], [14, 'unavailable', 'connection refused'], [9, 'rejected', flowerError]] as const) {
      answer = async () => { throw new FleetCallError('RegisterNode', 'rejected', details, status); };
      await assert.rejects(transport.call('RegisterNode', request, { metadata }), (err: FleetCallError) =>
        err instanceof FleetCallError && err.failure === failure && err.status === status && err.details === details);
    }

    const callsBefore = forwarded.length;
    const post = (p: string, init: RequestInit = {}) => fetch(new URL(p, gateway.url), { method: 'POST', body: new Uint8Array(1), ...init });
    assert.equal((await post('fleet/DeleteEverything')).status, 404);
    assert.match(((await (await post('fleet/DeleteEverything')).json()) as { error: string }).error, /unknown Fleet method "DeleteEverything"/);
    assert.equal((await post('fleet/PullMessages/x')).status, 405, 'not a Fleet method path: only GET/HEAD for files');
    assert.equal((await fetch(new URL('fleet/PullMessages', gateway.url))).status, 405);
    assert.equal((await post('fleet/PullMessages', { headers: { 'flwr-signature-bin': 'not base64!' } })).status, 400);
    assert.equal((await post('fleet/PullMessages', { headers: { 'fleet-timeout-ms': '-5' } })).status, 400);
    const tooLarge = await post('fleet/PushObject', { body: new Uint8Array(MAX_FLEET_REQUEST_BYTES + 1) });
    assert.equal(tooLarge.status, 413);
    assert.match(((await tooLarge.json()) as { error: string }).error, /over 6291456 bytes/);
    answer = async () => ({ response: new Uint8Array(), trailers: new Map() });
    assert.equal((await post('fleet/PushObject', { body: new Uint8Array(MAX_FLEET_REQUEST_BYTES) })).status, 200, 'the limit itself passes');
    assert.equal(forwarded.length, callsBefore + 1, 'refused requests never reached the SuperLink');
  });
  assert.ok(MAX_FLEET_REQUEST_BYTES >= MAX_ARRAY_CHUNK_SIZE + 64 * 1024, "room for one of Flower's array chunks and its framing");
});

test('a node that goes away cancels its call at the SuperLink; deadlines are bounded; an undeclared body over the limit is refused while streaming', async () => {
  let seenSignal: AbortSignal | undefined;
  let started!: () => void;
  const callStarted = new Promise<void>((resolve) => (started = resolve));
  const hanging = recording((call) => new Promise<CallResult>((_, reject) => {
    seenSignal = call.options.signal;
    started();
    call.options.signal?.addEventListener('abort', () => reject(new FleetCallError(call.method, 'aborted', 'cancelled', 1)));
  }), []);
  await withGateway(hanging, async (gateway) => {
    const leaving = new AbortController();
    const pending = fetch(new URL('fleet/PullMessages', gateway.url), { method: 'POST', body: new Uint8Array(3), signal: leaving.signal }).catch((err: Error) => err);
    await callStarted;
    assert.equal(seenSignal?.aborted, false);
    leaving.abort();
    assert.equal(((await pending) as Error).name, 'AbortError');
    for (let i = 0; i < 50 && !seenSignal!.aborted; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(seenSignal!.aborted, true, 'the forwarded call was cancelled');

    const withTimeout = (ms: string) => fetch(new URL('fleet/GetRun', gateway.url), { method: 'POST', body: new Uint8Array(1), headers: { 'fleet-timeout-ms': ms } });
    for (const bad of ['0', '1.5', '600001', 'soon']) assert.equal((await withTimeout(bad)).status, 400, `timeout ${bad}`);

    // A chunked upload declares no length: the limit holds while reading.
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL('fleet/PushObject', gateway.url);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write(new Uint8Array(700));
      req.end(new Uint8Array(700));
    });
    assert.equal(status, 413);
  }, { maxRequestBytes: 1000 });
});

test('the gateway decodes no protobuf: src/serve imports none of the Fleet types, directly or through its imports', () => {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const [, spec] of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)) {
      assert.ok(!spec.includes('/proto/') && !spec.startsWith('@bufbuild'), `${path.relative(PROJECT_ROOT, file)} imports ${spec}`);
      if (spec.startsWith('.')) visit(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
    }
  };
  const serveDir = path.join(PROJECT_ROOT, 'src', 'serve');
  // The server and what `pfedprompt serve` gives it to forward with.
  for (const f of readdirSync(serveDir)) visit(path.join(serveDir, f));
  visit(path.join(PROJECT_ROOT, 'src', 'flower', 'grpc-transport.ts'));
  assert.ok([...seen].some((f) => f.endsWith('gateway-transport.ts')), 'the walk followed imports');
});

test('`pfedprompt serve` prints the URL to open, serves /clock, answers 503 while the SuperLink is unreachable, and stops on SIGTERM', { timeout: 30_000 }, async () => {
  const cli = spawn(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--superlink', '127.0.0.1:1', '--insecure', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  cli.stdout.on('data', (d: Buffer) => (output += d.toString()));
  cli.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    const deadline = Date.now() + 20_000;
    while (!/open (http:\/\/127\.0\.0\.1:\d+\/)/.test(output)) {
      assert.ok(Date.now() < deadline && cli.exitCode === null, `no URL printed:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)![1];
    assert.equal((await fetch(new URL('clock', url))).status, 200);
    const unreachable = await fetch(new URL('fleet/PullMessages', url), { method: 'POST', body: new Uint8Array() });
    assert.equal(unreachable.status, 503);
    assert.equal(((await unreachable.json()) as { grpcStatus: number }).grpcStatus, 14);
    const exited = new Promise<number | null>((resolve) => cli.once('exit', resolve));
    cli.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (cli.exitCode === null) cli.kill('SIGKILL');
  }
});

const skip = skipReason();

test('a WebCrypto node joins a real SuperLink (TLS, node authentication) through the gateway; an hour-slow clock is refused, then served with the /clock offset; forwarded bytes equal the sent ones', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-serve-'));
  const tls = makeTlsFiles(dir);
  const link = await SuperLink.start({ tls, enableSupernodeAuth: true });
  const forwarded: Recorded[] = [];
  const sent: Recorded[] = [];
  const gateway = await GatewayServer.start({ fleet: recording(new GrpcFleetTransport({ address: link.fleetAddress, rootCertificatesPath: tls.ca }), forwarded), model: MODEL, port: 0 });
  const logger = memoryLogger();
  let node: FleetNode | undefined;
  let running: Promise<void> | undefined;
  const start = (now: () => Date) => {
    node = new FleetNode({
      transport: recording(new GatewayFleetTransport({ baseUrl: gateway.url }), sent),
      signer: key, sha256: webSha256Hex, handler: doubling, logger, now,
      pollIntervalMs: 200, heartbeatInterval: 10, reconnectMaxDelayMs: 1000,
    });
    running = node.run();
    running.catch(() => undefined);
    return { node, running };
  };
  const key = await WebNodeKey.generate();
  try {
    writeFileSync(path.join(dir, 'node-key.pub'), `${key.openSshPublicKey()}\n`);
    const reg = link.flwr(['supernode', 'register', path.join(dir, 'node-key.pub'), 'local', '--format', 'json']);
    assert.equal(reg.status, 0, `flwr supernode register failed:\n${reg.stdout}\n${reg.stderr}`);
    const registeredId = BigInt(/"node-id":\s*(\d+)/.exec(reg.stdout)![1]);

    const slowClock = () => Date.now() - HOUR;
    await assert.rejects(start(() => new Date(slowClock())).running, (err: Error) => err instanceof NodeAuthenticationError && /Invalid timestamp/.test(err.message));

    const offset = await measureClockOffset(gateway.url, { localNow: slowClock });
    const joined = start(offsetClock(offset, slowClock));
    assert.equal(await joined.node.ready, registeredId, 'activated under the id `flwr supernode register` gave the key');
    const result = await runEcho(link, { scenario: 'double' });
    assertDoubled(result.results[0], registeredId);
    await joined.node.stop();
    await joined.running;

    const methods = new Set(sent.map((c) => c.method));
    for (const m of ['RegisterNode', 'ActivateNode', 'SendNodeHeartbeat', 'PullMessages', 'PullObject', 'ConfirmMessageReceived', 'PushMessages', 'PushObject', 'DeactivateNode'] as const) {
      assert.ok(methods.has(m), `the node called ${m} through the gateway`);
    }
    // RegisterNode is disabled under --enable-supernode-auth: Flower's JSON error came back intact, and the node went on to activate.
    const register = sent.find((c) => c.method === 'RegisterNode' && c.error instanceof FleetCallError && c.error.failure === 'rejected');
    assert.equal(parseFlowerApiError((register?.error as FleetCallError).details)?.code, 2001);
    assert.ok(sent.length > 10);
    assert.deepEqual(canonical(forwarded), canonical(sent), 'every forwarded request (bytes and flwr-* metadata) is one the node sent, and every sent one was forwarded');
  } catch (err) {
    console.error(logger.lines.join('\n'));
    console.error(link.logs.slice(-3000));
    throw err;
  } finally {
    await node?.stop();
    await running?.catch(() => undefined);
    await gateway.close();
    await link.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
