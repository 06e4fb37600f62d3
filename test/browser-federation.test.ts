// A browser joins the federation: a real flwr 1.42.0 SuperLink (gRPC Fleet API, every call
// signed and checked), `pfedprompt serve` in front of it, two browser nodes (Chromium pages
// running the page and its Worker with onnxruntime-web) and two `pfedprompt node` processes,
// the bundled world CLIP, and the pfedprompt ServerApp running a short pFedPrompt cell.
//
//   - the run completes, every client has a final accuracy;
//   - a browser node's round-1 update equals what the Node.js ClientNode computes from the
//     same message on the same client's data, within 1e-4;
//   - one page is reloaded mid-run: it rejoins as the same node id, with the personal
//     memory it had kept in IndexedDB, and the run still completes;
//   - everything the browsers sent (captured with Playwright, objects decoded with
//     src/flower/objects.ts) is Fleet calls to the page's own server whose records hold
//     only the method's declared upload, the listed metrics and the describe facts.
// With PFEDPROMPT_SCREENSHOT=1 it saves the page to docs/browser-node.png (README).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fromBinary } from '@bufbuild/protobuf';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { parseConfig, type ExperimentConfig } from '../src/experiment/config.js';
import { WORLD_MODEL_DIR, prepareWorldDataset } from '../src/experiment/world-experiment.js';
import { spawnNode, stopAll } from '../src/federate/local-federation.js';
import { FLOWER_APP, SuperLink, delay, superLinkMissing } from '../src/federate/superlink.js';
import { GrpcFleetTransport } from '../src/flower/grpc-transport.js';
import { nodeSha256Hex } from '../src/flower/node-crypto.js';
import type { IncomingMessage } from '../src/flower/node.js';
import { ObjectCodec, metadataFromProto, parseObject, type MessageMetadata } from '../src/flower/objects.js';
import { PullMessagesResponseSchema, PushMessagesRequestSchema } from '../src/flower/proto/flwr/proto/fleet_pb.js';
import { PullObjectRequestSchema, PullObjectResponseSchema, PushObjectRequestSchema } from '../src/flower/proto/flwr/proto/message_pb.js';
import { MetricRecordSchema, ConfigRecordSchema } from '../src/flower/proto/flwr/proto/recorddict_pb.js';
import type { CellResult, ResultsFile } from '../src/report/results.js';
import { ClientNode } from '../src/node/client-node.js';
import { NODE_METRICS, nodeRequest } from '../src/node/flower-handler.js';
import { GatewayServer } from '../src/serve/server.js';
import { browserSkip, launchChromium, pageErrors } from './browser-harness.js';
import { webBundle } from './browser-web.js';
import { PROJECT_ROOT } from './shared.js';

const skip = browserSkip() || superLinkMissing() || (existsSync(path.join(WORLD_MODEL_DIR, 'config.json')) ? false : `no world CLIP in ${WORLD_MODEL_DIR}`);
const SCREENSHOT = path.join(PROJECT_ROOT, 'docs', 'browser-node.png');
const BROWSER_CLIENTS = [2, 3] as const;
const NODE_CLIENTS = [0, 1] as const;
const WORLD_SEED = 1;

let workdir: string;
let world: string;
let browser: Browser;

before(async () => {
  if (skip) return;
  workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-browser-federation-'));
  world = await prepareWorldDataset(path.join(workdir, 'world'));
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

/** A short pFedPrompt cell on the world, 4 clients: fits CI and still trains. */
function experiment(): ExperimentConfig {
  return parseConfig({
    name: 'browser-federation',
    model: WORLD_MODEL_DIR,
    data: { datasets: [world], shots: [2], partition: { scheme: 'pathological', clients: 4 }, views: 1 },
    methods: ['pfedprompt'],
    seeds: [1],
    federation: { rounds: 3, localEpochs: 2, batchSize: 16, minClients: 3, timeoutSeconds: 90 },
    prompt: { contextLength: 4 },
    memorySearch: { alpha: [1, 2], beta: [5.5] },
    cache: path.join(workdir, 'cache'),
    output: path.join(workdir, 'out'),
  }, 'browser-federation');
}

/** What a browser sent and received, from Playwright's view of its requests (the Worker's included). */
class Capture {
  readonly requests: { method: string; url: string; body?: Buffer }[] = [];
  /** Objects the node pulled (what the server sent it) and pushed, by id. */
  readonly pulled = new Map<string, Uint8Array>();
  readonly pushed = new Map<string, Uint8Array>();
  /** Messages the node received, and the replies it pushed (metadata and object tree root). */
  readonly received: { metadata: MessageMetadata; root: string }[] = [];
  readonly replies: { metadata: MessageMetadata; root: string }[] = [];
  private readonly pending: Promise<void>[] = [];

  constructor(page: Page) {
    page.on('request', (r) => this.onRequest(r));
    page.on('requestfinished', (r) => this.pending.push(this.onFinished(r).catch(() => undefined)));
  }

  private onRequest(r: Request): void {
    const body = r.postDataBuffer() ?? undefined;
    this.requests.push({ method: r.method(), url: r.url(), body });
    const fleet = new URL(r.url()).pathname.match(/^\/fleet\/(\w+)$/)?.[1];
    if (!body) return;
    if (fleet === 'PushObject') {
      const push = fromBinary(PushObjectRequestSchema, body);
      this.pushed.set(push.objectId, push.objectContent);
    } else if (fleet === 'PushMessages') {
      const push = fromBinary(PushMessagesRequestSchema, body);
      push.messagesList.forEach((m, i) => this.replies.push({ metadata: metadataFromProto(m.metadata!), root: push.messageObjectTrees[i].objectId }));
    }
  }

  private async onFinished(r: Request): Promise<void> {
    const fleet = new URL(r.url()).pathname.match(/^\/fleet\/(\w+)$/)?.[1];
    if (fleet !== 'PullObject' && fleet !== 'PullMessages') return;
    const response = await r.response();
    if (!response?.ok()) return;
    const body = await response.body();
    if (fleet === 'PullObject') {
      const { objectId } = fromBinary(PullObjectRequestSchema, r.postDataBuffer()!);
      const pulled = fromBinary(PullObjectResponseSchema, body);
      if (pulled.objectFound && pulled.objectAvailable) this.pulled.set(objectId, pulled.objectContent);
    } else {
      const pulled = fromBinary(PullMessagesResponseSchema, body);
      pulled.messagesList.forEach((m, i) => this.received.push({ metadata: metadataFromProto(m.metadata!), root: pulled.messageObjectTrees[i].objectId }));
    }
  }

  async settled(): Promise<void> {
    await Promise.all(this.pending);
  }

  /** The reply this node sent to a train message of round `round`, if any. */
  trainReply(round: number): { message: { metadata: MessageMetadata; root: string }; reply: { metadata: MessageMetadata; root: string } } | undefined {
    for (const message of this.received) {
      // The ServerApp's group id: `<cell id>/round <n>` (flower/pfedprompt_server/exchange.py).
      if (message.metadata.messageType !== 'train' || !message.metadata.groupId.endsWith(`/round ${round}`)) continue;
      const reply = this.replies.find((r) => r.metadata.replyToMessageId === message.metadata.messageId);
      if (reply) return { message, reply };
    }
    return undefined;
  }
}

interface BrowserNode {
  readonly client: number;
  readonly context: BrowserContext;
  page: Page;
  capture: Capture;
  readonly errors: string[];
}

async function openBrowserNode(url: string, client: number): Promise<BrowserNode> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1400 } });
  const page = await context.newPage();
  const node: BrowserNode = { client, context, page, capture: new Capture(page), errors: pageErrors(page) };
  await page.goto(url);
  await page.locator('#method option').first().waitFor({ state: 'attached' });
  await page.locator('#source-world').check();
  await page.locator('#client').fill(String(client));
  await page.locator('#seed').fill(String(WORLD_SEED));
  await page.locator('#join').click();
  return node;
}

async function nodeIdOf(node: BrowserNode, timeoutMs: number): Promise<string> {
  await node.page.waitForFunction(() => /^\d+$/.test(document.getElementById('node-id')!.textContent!), undefined, { timeout: timeoutMs });
  return (await node.page.locator('#node-id').textContent())!;
}

/** The personal state the page's origin keeps in IndexedDB, read directly (not through the page's code). */
function keptPersonalState(page: Page): Promise<Record<string, Record<string, number[]>>> {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const open = indexedDB.open('pfedprompt-node');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('personal')) return resolve({});
      const store = db.transaction('personal', 'readonly').objectStore('personal');
      const out: Record<string, Record<string, number[]>> = {};
      const cursor = store.openCursor();
      cursor.onerror = () => reject(cursor.error);
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (!c) {
          db.close();
          return resolve(out);
        }
        out[String(c.key)] = Object.fromEntries(Object.entries(c.value as Record<string, Float32Array>).map(([k, v]) => [k, Array.from(v)]));
        c.continue();
      };
    };
  }));
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms: ${what}`);
    await delay(200);
  }
}

function assertCloseArrays(actual: Float32Array, expected: Float32Array, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(1, ...expected.map(Math.abs));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= tolerance * scale, `${what}: largest difference ${worst} (tolerance ${tolerance} × ${scale})`);
}

test('2 browser nodes and 2 Node.js nodes run pFedPrompt on a real SuperLink through `pfedprompt serve`: the run completes, a browser\'s update equals the Node client\'s, a reloaded page rejoins as the same node with its memory, and the browsers send only the declared upload and metrics', { skip, timeout: 900_000 }, async () => {
  const config = experiment();
  const configFile = path.join(workdir, 'config.json');
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const link = await SuperLink.start();
  const gateway = await GatewayServer.start({
    fleet: new GrpcFleetTransport({ address: link.fleetAddress, insecure: true }), model: WORLD_MODEL_DIR, webDir: await webBundle(workdir), port: 0,
  });
  const procs = NODE_CLIENTS.map((client) => spawnNode({
    superlink: link, client, stateDir: path.join(workdir, 'nodes', String(client)), model: WORLD_MODEL_DIR, dataset: world,
    cache: config.cache, threads: 1, heartbeat: 10, logFile: path.join(workdir, `node-${client}.log`),
  }));
  const nodes: BrowserNode[] = [];
  const lines: string[] = [];
  const pageLogs: string[] = [];
  const report = () => [
    `--- ServerApp:\n${lines.slice(-40).join('\n')}`,
    ...pageLogs,
    `--- SuperLink:\n${link.logs.slice(-3000)}`,
    ...NODE_CLIENTS.map((c) => `--- node ${c}:\n${readFileSync(path.join(workdir, `node-${c}.log`), 'utf8').split('\n').slice(-12).join('\n')}`),
    ...nodes.map((n) => `--- browser node ${n.client}: ${n.errors.join('\n')}`),
  ].join('\n');
  try {
    for (const client of BROWSER_CLIENTS) nodes.push(await openBrowserNode(gateway.url, client));
    const ids = await Promise.all(nodes.map((n) => nodeIdOf(n, 180_000)));
    assert.notEqual(ids[0], ids[1], 'two browser profiles, two node ids');

    const run = link.runApp(FLOWER_APP, { config: configFile, output: config.output!, 'wait-for-nodes': 120, 'poll-interval': 0.1 }, { timeoutMs: 800_000, onLine: (l) => lines.push(l) });
    let runOver = false;
    void run.then(() => { runOver = true; });

    // Reload the second browser once it has answered round 1's training and its next message has come (so the
    // reply was delivered whole, every object pushed): its memory is in IndexedDB by then.
    const reloaded = nodes[1];
    await waitFor(() => {
      if (runOver) assert.fail(`the run ended before browser node ${reloaded.client} answered round 1`);
      const answered = reloaded.capture.trainReply(1);
      return answered !== undefined && reloaded.capture.received.at(-1) !== answered.message;
    }, 400_000, `browser node ${reloaded.client} answers round 1 and gets its next message`);
    const memoryBefore = await keptPersonalState(reloaded.page);
    assert.ok(Object.keys(memoryBefore).length > 0, 'the browser kept personal state after round 1');
    await reloaded.capture.settled();
    const firstCapture = reloaded.capture;
    reloaded.capture = new Capture(reloaded.page);
    await reloaded.page.reload();
    const memoryAfter = await keptPersonalState(reloaded.page);
    assert.deepEqual(memoryAfter, memoryBefore, 'the same personal memory after the reload');
    const idAfter = await nodeIdOf(reloaded, 180_000);
    assert.equal(idAfter, ids[1], 'the reloaded page rejoins as the same node');
    assert.match((await reloaded.page.locator('#log').textContent())!, /key kept in this browser; [1-9]\d* personal state/);

    const { status, output } = await run;
    assert.equal(status, 0, `the run completes:\n${output.slice(-3000)}\n${report()}`);
    const results = JSON.parse(readFileSync(path.join(config.output!, 'results.json'), 'utf8')) as ResultsFile;
    const cell = results.cells.find((c) => c.method === 'pfedprompt') as CellResult & { failures?: { stage: string; client: number | null }[] };
    assert.ok(cell, 'a pFedPrompt cell');
    assert.deepEqual(cell.clients.map((c) => c.id), [0, 1, 2, 3], 'every client has a final accuracy');
    const failures = cell.failures ?? [];
    assert.deepEqual(failures.filter((f) => f.client !== reloaded.client), [], `only the reloaded node may miss a step: ${JSON.stringify(failures)}`);
    assert.deepEqual(failures.filter((f) => f.stage === 'final evaluation'), [], 'the reloaded node is back for the final evaluation');
    for (const n of nodes) await n.capture.settled();
    await firstCapture.settled();

    // The update: the first browser's reply to round 1's train message, against the Node ClientNode on the same message and client.
    const first = nodes[0];
    const exchange = first.capture.trainReply(1);
    assert.ok(exchange, 'the first browser answered round 1');
    const codec = new ObjectCodec(nodeSha256Hex);
    const message = codec.inflateMessage(exchange.message.root, first.capture.pulled, exchange.message.metadata);
    const incoming: IncomingMessage = {
      runId: message.metadata.runId, messageId: message.metadata.messageId, messageType: message.metadata.messageType, groupId: message.metadata.groupId,
      content: message.content!, ttl: message.metadata.ttl, createdAt: message.metadata.createdAt, expiresAt: message.metadata.createdAt + message.metadata.ttl, metadata: message.metadata,
    };
    const browserReply = codec.inflateMessage(exchange.reply.root, first.capture.pushed, exchange.reply.metadata).content!;
    const nodeClient = new ClientNode({ model: WORLD_MODEL_DIR, data: { dataset: world, client: first.client }, stateDir: path.join(workdir, 'compare'), cache: config.cache, threads: 2 });
    const nodeReply = await nodeClient.handle(nodeRequest(incoming));
    const uploaded = browserReply.arrayRecord('arrays');
    assert.deepEqual([...uploaded.arrays.keys()].sort(), Object.keys(nodeReply.arrays!).sort(), 'the same arrays uploaded');
    const download = nodeRequest(incoming).arrays;
    for (const [name, expected] of Object.entries(nodeReply.arrays!)) {
      const got = uploaded.arrays.get(name)!.data as Float32Array;
      assertCloseArrays(got, expected, 1e-4, `round-1 upload "${name}"`);
      // Not trivially equal: training moved the context away from what the server sent.
      const moved = Math.max(...got.map((v, i) => Math.abs(v - download[name][i])));
      const gap = Math.max(...got.map((v, i) => Math.abs(v - expected[i])));
      console.error(`round-1 upload "${name}": browser vs Node ${gap.toExponential(2)}, training moved it by ${moved.toExponential(2)}`);
      assert.ok(moved > 100 * gap && moved > 1e-4, `"${name}" trained (moved ${moved} from the download)`);
    }
    const metrics = browserReply.metricRecord('metrics').values;
    assert.equal(metrics.get('num-examples'), BigInt(nodeReply.metrics!['num-examples'] as number));
    assert.ok(Math.abs((metrics.get('train-loss') as number) - (nodeReply.metrics!['train-loss'] as number)) <= 1e-4, `train loss ${metrics.get('train-loss')} vs ${nodeReply.metrics!['train-loss']}`);

    // What the browsers sent: Fleet calls to their own server, and objects holding only what is declared.
    const origin = new URL(gateway.url).origin;
    for (const capture of [firstCapture, ...nodes.map((n) => n.capture)]) {
      for (const r of capture.requests) {
        assert.equal(new URL(r.url).origin, origin, `${r.url}: only the page's own server`);
        if (r.method !== 'GET') assert.match(new URL(r.url).pathname, /^\/fleet\/\w+$/, `${r.method} ${r.url}: only Fleet calls carry a body`);
      }
      assertOnlyDeclared(capture, Object.keys(nodeReply.arrays!), Object.values(nodeReply.arrays!).map((a) => a.length));
    }

    // The page shows the run.
    const shown = async (id: string) => (await first.page.locator(`#${id}`).textContent())!;
    assert.equal(await shown('node-id'), ids[0]);
    assert.equal(await shown('run-method'), 'pfedprompt');
    assert.match(await shown('loss'), /^\d+\.\d{4}$/);
    assert.match(await shown('accuracy'), /^\d+\.\d %$/);
    const bytesShown = Number(await first.page.locator('#bytes').getAttribute('data-bytes'));
    const bytesCaptured = firstCaptureBytes(nodes[0].capture);
    assert.ok(bytesShown > 0 && bytesShown >= bytesCaptured, `bytes sent shown (${bytesShown}) count at least the request bodies captured (${bytesCaptured})`);
    if (process.env.PFEDPROMPT_SCREENSHOT) {
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await first.page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
    for (const n of nodes) assert.deepEqual(n.errors.filter((e) => !/Failed to load resource/.test(e)), [], `browser node ${n.client}: no page errors`);
  } catch (err) {
    for (const n of nodes) pageLogs.push(`--- browser node ${n.client}'s page log:\n${await n.page.locator('#log').textContent({ timeout: 2000 }).catch(() => '(page gone)')}`);
    console.error(report());
    throw err;
  } finally {
    for (const n of nodes) await n.context.close().catch(() => undefined);
    await stopAll(procs);
    await gateway.close();
    await link.dispose();
  }
});

function firstCaptureBytes(capture: Capture): number {
  return capture.requests.reduce((n, r) => n + (r.body?.length ?? 0), 0);
}

/** Every object a browser pushed: records named arrays/metrics/facts, arrays of the declared names and sizes, listed metrics. */
function assertOnlyDeclared(capture: Capture, uploadNames: readonly string[], uploadSizes: readonly number[]): void {
  // describe's reply also carries the server's initial state (same names, same sizes as what the method uploads or is sent).
  const decoder = new TextDecoder();
  for (const [id, bytes] of capture.pushed) {
    const object = parseObject(bytes);
    switch (object.type) {
      case 'RecordDict':
        for (const name of Object.keys(JSON.parse(decoder.decode(object.body)) as object)) assert.ok(['arrays', 'metrics', 'facts'].includes(name), `record "${name}" (object ${id})`);
        break;
      case 'ArrayRecord':
        for (const name of Object.keys(JSON.parse(decoder.decode(object.body)) as object)) assert.ok(uploadNames.includes(name), `array "${name}" is the declared upload (${uploadNames})`);
        break;
      case 'Array': {
        const { shape, dtype } = JSON.parse(decoder.decode(object.body)) as { shape: number[]; dtype: string };
        assert.equal(dtype, 'float32');
        const size = shape.reduce((a, b) => a * b, 1);
        assert.ok(uploadSizes.includes(size), `an array of shape [${shape}] is of the declared size (${uploadSizes})`);
        break;
      }
      case 'MetricRecord':
        for (const item of fromBinary(MetricRecordSchema, object.body).items) assert.ok(item.key in NODE_METRICS, `metric "${item.key}" is listed`);
        break;
      case 'ConfigRecord':
        assert.deepEqual(fromBinary(ConfigRecordSchema, object.body).items.map((i) => i.key), ['json'], 'a ConfigRecord is describe\'s facts only');
        break;
      case 'Message':
      case 'ArrayChunk':
        break;
    }
  }
}

