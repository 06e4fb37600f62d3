// The browser node's Worker, as a function of what it computes with: it joins the
// federation as a FleetNode (src/flower/node.ts, the protocol code the Node.js node runs)
// over the page server's gateway, signs with the node key kept in IndexedDB at the
// server's clock, answers every message through `flowerHandler` (the same checks on what
// leaves as `pfedprompt node`), and reports progress to the page.
// worker.ts wires it to onnxruntime-web's client and the gateway transport; tests can give
// it other parts.

import { FleetNode, type IncomingMessage, type MessageHandler } from '../flower/node.js';
import type { FlowerLogger } from '../flower/logger.js';
import type { FleetTransport } from '../flower/transport.js';
import { WebNodeKey, webSha256Hex } from '../flower/web-crypto.js';
import type { NodeReply, NodeRequest, PersonalStateStore } from '../node/client-core.js';
import { NODE_METRICS, flowerHandler } from '../node/flower-handler.js';
import { CountingTransport } from './counting-transport.js';
import type { DataSource, Disclosure, PageToWorker, Progress, WorkerToPage } from './protocol.js';
import { NodeStorage } from './storage.js';

/** What answers a node's requests: the portable client half (ClientNode's core). */
export interface NodeCompute {
  handle(request: NodeRequest): Promise<NodeReply>;
}

/** A method's texts, for the page's disclosure. */
export interface MethodTexts {
  readonly id: string;
  readonly label: string;
  readonly trains: string;
  readonly uploads: string;
  readonly staysOnClient: string;
}

export interface NodeWorkerParts {
  /** Every method a browser node runs. */
  readonly methods: readonly MethodTexts[];
  /** The client for a data source; its personal state goes to `store` (IndexedDB). */
  createCompute(source: DataSource, context: { store: PersonalStateStore; status: (text: string) => void }): Promise<NodeCompute>;
  /** The Fleet transport to the page's own server (the gateway). */
  transport(origin: string): FleetTransport;
  /** Milliseconds to add to the local clock to read the server's. */
  clockOffset(origin: string): Promise<number>;
}

interface WorkerScope {
  postMessage(message: WorkerToPage): void;
  onmessage: ((event: MessageEvent<PageToWorker>) => void) | null;
  readonly location: { readonly origin: string };
}

/** Serves the page's requests in the Worker `scope` until it is closed. */
export function serveNodeWorker(scope: WorkerScope, parts: NodeWorkerParts): void {
  const post = (message: WorkerToPage): void => scope.postMessage(message);
  const status = (text: string): void => post({ type: 'status', text });
  let session: NodeSession | undefined;

  const disclose = (id: string, uploadSpec?: Readonly<Record<string, number>>): void => {
    const method = parts.methods.find((m) => m.id === id);
    if (!method) {
      post({ type: 'error', message: `unknown method "${id}" (a browser node runs ${parts.methods.map((m) => m.id).join(', ')})` });
      return;
    }
    const disclosure: Disclosure = { method: method.id, label: method.label, trains: method.trains, uploads: method.uploads, staysOnClient: method.staysOnClient, metrics: Object.keys(NODE_METRICS), ...(uploadSpec ? { uploadSpec } : {}) };
    post({ type: 'disclosure', disclosure, methods: parts.methods.map(({ id: mid, label }) => ({ id: mid, label })) });
  };

  scope.onmessage = (event) => {
    const m = event.data;
    switch (m.type) {
      case 'disclose':
        disclose(m.method);
        break;
      case 'join':
        if (session) {
          post({ type: 'error', message: 'already joined' });
          break;
        }
        session = new NodeSession(scope.location.origin, parts, post, status, disclose);
        session.start(m.source, m.heartbeatInterval).catch((error: Error) => {
          post({ type: 'error', message: error.message });
          session = undefined;
          post({ type: 'left' });
        });
        break;
      case 'leave': {
        const leaving = session;
        session = undefined;
        void (leaving?.stop() ?? Promise.resolve()).then(() => post({ type: 'left' }));
        break;
      }
    }
  };
}

class NodeSession {
  private node?: FleetNode;
  private storage?: NodeStorage;
  private transport?: CountingTransport;
  private progress: Progress = { bytesSent: 0, messages: 0 };

  constructor(
    private readonly origin: string,
    private readonly parts: NodeWorkerParts,
    private readonly post: (m: WorkerToPage) => void,
    private readonly status: (text: string) => void,
    private readonly disclose: (method: string, uploadSpec?: Readonly<Record<string, number>>) => void,
  ) {}

  async start(source: DataSource, heartbeatInterval?: number): Promise<void> {
    const storage = (this.storage = await NodeStorage.open());
    const { pair, created } = await storage.keyPair(() => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']));
    const key = await WebNodeKey.fromKeyPair(pair);
    const personalStates = await storage.personalStates();
    this.status('Loading the model and your images…');
    const compute = await this.parts.createCompute(source, { store: storage, status: this.status });
    const offset = await this.parts.clockOffset(this.origin);
    if (Math.abs(offset) > 2000) this.status(`This device's clock is ${(offset / 1000).toFixed(1)} s off the server's: signing at the server's time`);
    this.transport = new CountingTransport(this.parts.transport(this.origin), () => {
      this.update({ bytesSent: this.transport!.bytesSent });
    });
    const handle = flowerHandler(compute);
    const handler: MessageHandler = async (message, context) => {
      const asked = describeMessage(message);
      this.update({ ...asked, messages: this.progress.messages + 1 });
      const verb = { describe: 'Preparing your data for the run', fit: 'Training on your images', finish: 'Fine-tuning', evaluate: 'Testing on your images' }[asked.ask ?? ''] ?? 'Answering the server';
      this.status(`${verb}${asked.round !== undefined && asked.ask === 'fit' ? ` (round ${asked.round})` : ''}…`);
      const reply = await handle(message, context);
      this.status('Waiting for the server');
      if (reply.get('facts')) {
        const facts = JSON.parse(reply.configRecord('facts').string('json')) as { uploadSpec: Record<string, number>; cell: { method: string }; rounds: number };
        this.disclose(facts.cell.method, facts.uploadSpec);
        this.update({ rounds: facts.rounds });
      }
      if (reply.get('metrics')) {
        const metrics = reply.metricRecord('metrics').values;
        const loss = metrics.get('train-loss');
        const accuracy = metrics.get('accuracy');
        this.update({
          ...(typeof loss === 'number' ? { trainLoss: loss } : {}),
          ...(typeof accuracy === 'number' ? { accuracy } : {}),
        });
      }
      return reply;
    };
    this.node = new FleetNode({
      transport: this.transport,
      signer: key,
      sha256: webSha256Hex,
      handler,
      logger: workerLogger((text) => this.post({ type: 'log', text }), this.status),
      heartbeatInterval: heartbeatInterval ?? 10,
      pollIntervalMs: 500,
      now: () => new Date(Date.now() + offset),
    });
    const running = this.node.run();
    const nodeId = await this.node.ready;
    this.post({ type: 'joined', nodeId: String(nodeId), restored: !created, personalStates });
    await running;
  }

  private update(change: Partial<Progress>): void {
    this.progress = { ...this.progress, ...change };
    this.post({ type: 'progress', progress: this.progress });
  }

  async stop(): Promise<void> {
    await this.node?.stop();
    this.storage?.close();
  }
}

/** What the page shows of an incoming message: its step, round, run and method (never its arrays). */
function describeMessage(message: IncomingMessage): Partial<Progress> {
  const config = message.content.get('config') ? message.content.configRecord('config') : undefined;
  const value = (key: string) => config?.get(key);
  const ask = value('pfedprompt');
  const round = value('server-round');
  let method: string | undefined;
  try {
    method = (JSON.parse(String(value('cell'))) as { method?: string }).method;
  } catch {
    method = undefined;
  }
  return {
    runId: String(message.runId),
    ...(typeof ask === 'string' ? { ask } : {}),
    ...(typeof round === 'bigint' || typeof round === 'number' ? { round: Number(round) } : {}),
    ...(method ? { method } : {}),
  };
}

/** FleetNode's lines: routine ones to the page's log, warnings and errors to its status too. */
function workerLogger(log: (text: string) => void, status: (text: string) => void): FlowerLogger {
  return {
    debug: () => undefined,
    info: (m) => log(m),
    warn: (m) => status(`warning: ${m}`),
    error: (m) => status(`error: ${m}`),
  };
}
