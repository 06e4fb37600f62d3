// A Flower SuperNode in TypeScript: it joins a SuperLink's federation, receives the
// messages a ServerApp sends to it, lets a handler answer each, and sends the replies —
// the loop of flwr 1.42.0's `flower-supernode` (supernode/start_client_internal.py and
// fleet_http_connection.py), minus running Python ClientApps: the handler is the app.
//
// Lifecycle, as the Python SuperNode does it:
//   RegisterNode(public key) → ActivateNode(public key, heartbeat interval) → node id
//   heartbeats every ~0.8 × interval (±10 % jitter) while online (the SuperLink marks a
//   node offline after 2 × interval);
//   poll PullMessages every 3 s; for a message: PullObject each object of its tree
//   (retrying while not yet available), check every hash, ConfirmMessageReceived,
//   call the handler, PushMessages(reply without content + its object tree), then
//   PushObject each object the SuperLink asks for, under the push session it names;
//   on exit DeactivateNode, and UnregisterNode only for a throwaway identity (a node
//   with a key on disk keeps its registration, hence its node id across restarts).
import { create } from '@bufbuild/protobuf';
import { mapLimited } from '../io/map-limited.js';
import type { NodeSigner, Sha256Hex } from './crypto.js';
import { ApiErrorCode, NodeAuthenticationError, parseFlowerApiError } from './errors.js';
import { FleetClient } from './fleet-client.js';
import { silentLogger, type FlowerLogger } from './logger.js';
import { ObjectCodec, MAX_ARRAY_CHUNK_SIZE, metadataFromProto, metadataToProto, verifyObject, type FlowerMessage, type MessageError, type MessageMetadata } from './objects.js';
import { ErrorSchema } from './proto/flwr/proto/error_pb.js';
import { MessageSchema as ProtoMessageSchema, type ObjectTree } from './proto/flwr/proto/message_pb.js';
import { RecordDictSchema } from './proto/flwr/proto/recorddict_pb.js';
import type { RecordDict } from './records.js';
import { FleetCallError, type FleetTransport } from './transport.js';
import { checkSuperLinkVersion, FlowerVersionMismatchError } from './version.js';

/** flwr.common.constant: HEARTBEAT_DEFAULT_INTERVAL and its allowed range (seconds). */
export const HEARTBEAT_DEFAULT_INTERVAL = 30;
const HEARTBEAT_MIN_INTERVAL = 10;
const HEARTBEAT_MAX_INTERVAL = 1800;
const HEARTBEAT_BASE_MULTIPLIER = 0.8;
const HEARTBEAT_CALL_TIMEOUT_MS = 5000;
/** Objects pulled or pushed at once, as Python's SuperNode does: each is a round trip, and a message has several. */
const OBJECT_TRANSFERS = 4;
/** ErrorCode.CLIENT_APP_RAISED_EXCEPTION: what Flower sends when the app fails. */
export const CLIENT_APP_RAISED_EXCEPTION = 2;

/** A message as the handler sees it. */
export interface IncomingMessage {
  runId: bigint;
  messageId: string;
  messageType: string;
  /** The ServerApp's grouping (usually the round number, as a string). */
  groupId: string;
  content: RecordDict;
  /** Seconds the ServerApp waits for this message; a reply must come before `expiresAt`. */
  ttl: number;
  createdAt: number;
  /** Unix time (s) after which the SuperLink drops the message and any reply to it. */
  expiresAt: number;
  metadata: MessageMetadata;
}

export interface HandlerContext {
  nodeId: bigint;
  /** Aborted when the node stops. */
  signal: AbortSignal;
}

/** Answers one message; a thrown error becomes a Flower error reply. */
export type MessageHandler = (message: IncomingMessage, context: HandlerContext) => Promise<RecordDict>;

export interface FleetNodeOptions {
  transport: FleetTransport;
  signer: NodeSigner;
  sha256: Sha256Hex;
  handler: MessageHandler;
  logger?: FlowerLogger;
  /** Seconds (10–1800, default 30). */
  heartbeatInterval?: number;
  /** Pause between two empty PullMessages (the Python SuperNode: 3 s). */
  pollIntervalMs?: number;
  /** Deregister on stop: for a throwaway key (NodeKey.ephemeral()), as Python does for its generated keys. */
  unregisterOnStop?: boolean;
  /** The SuperLink's HTTP API (`http(s)://host:port`): checked at start to run the pinned Flower version. */
  superLinkHttpUrl?: string;
  /** How that check reaches the HTTP API (default: global fetch); over TLS with a private CA, one that trusts it. */
  fetch?: typeof fetch;
  /** Backoff while the SuperLink is unreachable. */
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Give up connecting after this long without success (default: never). */
  connectTimeoutMs?: number;
  chunkSize?: number;
  /**
   * The SuperLink's current time (default: the local clock). The SuperLink refuses a
   * signature whose timestamp is more than 5 s ahead or 305 s behind its own clock, so a
   * machine whose clock is off passes `() => new Date(Date.now() + offsetMs)`.
   */
  now?: () => Date;
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

export class FleetNode {
  private readonly client: FleetClient;
  private readonly codec: ObjectCodec;
  private readonly logger: FlowerLogger;
  private readonly heartbeatInterval: number;
  private readonly now: () => Date;
  private readonly abort = new AbortController();
  private state: State = 'idle';
  private nodeIdValue: bigint | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private runPromise: Promise<void> | undefined;
  private readyResolve!: (id: bigint) => void;
  private readyReject!: (err: unknown) => void;
  /** Resolves with the node id once the SuperLink has activated this node. */
  readonly ready: Promise<bigint>;

  constructor(private readonly options: FleetNodeOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => new Date());
    this.client = new FleetClient(options.transport, options.signer, this.logger, this.now);
    this.codec = new ObjectCodec(options.sha256, options.chunkSize ?? MAX_ARRAY_CHUNK_SIZE);
    this.heartbeatInterval = options.heartbeatInterval ?? HEARTBEAT_DEFAULT_INTERVAL;
    if (!(this.heartbeatInterval >= HEARTBEAT_MIN_INTERVAL && this.heartbeatInterval <= HEARTBEAT_MAX_INTERVAL)) {
      throw new RangeError(`heartbeatInterval must be within ${HEARTBEAT_MIN_INTERVAL}–${HEARTBEAT_MAX_INTERVAL} s, got ${this.heartbeatInterval}`);
    }
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => undefined); // observed through run() as well
  }

  get nodeId(): bigint | undefined {
    return this.nodeIdValue;
  }

  /**
   * Serves until `stop()` or `signal` aborts, then deactivates. Rejects on what retrying
   * cannot cure: a refused key (NodeAuthenticationError), another Flower version
   * (FlowerVersionMismatchError). An unreachable SuperLink is waited for.
   */
  run(signal?: AbortSignal): Promise<void> {
    if (this.runPromise) return this.runPromise;
    if (signal?.aborted) this.abort.abort();
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    this.state = 'running';
    this.runPromise = this.serve().finally(() => {
      this.state = 'stopped';
    });
    return this.runPromise;
  }

  /** Stops polling, aborts a running handler, deactivates; resolves when done. */
  async stop(): Promise<void> {
    if (this.state === 'idle') this.state = 'stopped';
    if (this.state === 'running') this.state = 'stopping';
    this.abort.abort();
    await this.runPromise?.catch(() => undefined);
  }

  private get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  private async serve(): Promise<void> {
    try {
      if (this.options.superLinkHttpUrl) {
        const version = await this.retrying('version check', () => checkSuperLinkVersion(this.options.superLinkHttpUrl!, undefined, this.options.fetch), true);
        this.logger.info(`SuperLink runs flwr ${version}`);
      }
      await this.connect();
      this.readyResolve(this.nodeIdValue!);
      await this.pollLoop();
    } catch (err) {
      this.readyReject(err);
      if (!(this.stopping && isAbort(err))) throw err;
    } finally {
      this.stopHeartbeats();
      await this.disconnect();
      this.options.transport.close();
    }
  }

  /** Register (where the SuperLink allows it) and activate; the node id comes from the key. */
  private async connect(): Promise<void> {
    let keyKnown = false;
    await this.retrying('RegisterNode', async () => {
      try {
        const { nodeId } = await this.client.registerNode();
        this.logger.info(`registered as node ${nodeId}`);
      } catch (err) {
        const api = err instanceof FleetCallError ? parseFlowerApiError(err.details) : undefined;
        // Known key (a restarted node), or registration by `flwr supernode register` only
        // (SuperLink --enable-supernode-auth): either way, activation decides.
        keyKnown = api?.code === ApiErrorCode.PUBLIC_KEY_ALREADY_IN_USE;
        if (keyKnown || api?.code === ApiErrorCode.FLEET_SUPERNODE_REGISTRATION_DISABLED) return;
        throw err;
      }
    }, true);
    const { nodeId } = await this.retrying('ActivateNode', async () => {
      for (let waiting = false; ; waiting = true) {
        try {
          return await this.client.activateNode(this.heartbeatInterval);
        } catch (err) {
          const api = err instanceof FleetCallError ? parseFlowerApiError(err.details) : undefined;
          if (api?.code !== ApiErrorCode.FLEET_NODE_ACTIVATION_FAILED) throw err;
          // flwr 1.42 will not activate a key it still counts online: this node's previous process,
          // killed without deactivating, until its heartbeats lapse (2 × their interval). Its error
          // does not say which; with the key known (RegisterNode said so) that is the only cause: wait.
          if (keyKnown) {
            if (!waiting) this.logger.warn('the SuperLink still counts this node online (a previous process that did not stop cleanly?): waiting for it to lapse');
            await sleep(1000, this.abort.signal);
            continue;
          }
          throw new NodeAuthenticationError('The SuperLink does not know this node\'s public key: register it with `flwr supernode register <key>.pub <superlink>` (SuperLink with --enable-supernode-auth).');
        }
      }
    }, true);
    if (this.nodeIdValue !== undefined && this.nodeIdValue !== nodeId) this.logger.warn(`node id changed from ${this.nodeIdValue} to ${nodeId} (the SuperLink lost its state)`);
    this.nodeIdValue = nodeId;
    this.logger.info(`node ${nodeId} active (heartbeat every ${this.heartbeatInterval} s)`);
    this.scheduleHeartbeat(0);
  }

  private async disconnect(): Promise<void> {
    const nodeId = this.nodeIdValue;
    if (nodeId === undefined) return;
    try {
      await this.client.deactivateNode(nodeId, 3000);
      this.logger.info(`node ${nodeId} deactivated`);
      if (this.options.unregisterOnStop) {
        await this.client.unregisterNode(nodeId, 3000);
        this.logger.info(`node ${nodeId} unregistered`);
      }
    } catch (err) {
      this.logger.warn(`leaving the SuperLink failed: ${errorText(err)}`);
    }
  }

  // Heartbeats run on a timer of their own so that a long handler keeps the node online.
  private scheduleHeartbeat(delayMs: number): void {
    if (this.stopping) return;
    this.heartbeatTimer = setTimeout(() => void this.heartbeat(), delayMs);
    this.heartbeatTimer.unref?.();
  }

  private stopHeartbeats(): void {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private async heartbeat(): Promise<void> {
    const jitter = 1 + (Math.random() * 0.2 - 0.1);
    const regular = this.heartbeatInterval * HEARTBEAT_BASE_MULTIPLIER * jitter * 1000;
    try {
      const { success } = await this.client.sendNodeHeartbeat(this.nodeIdValue!, this.heartbeatInterval, HEARTBEAT_CALL_TIMEOUT_MS);
      if (!success) {
        // The SuperLink no longer counts this node as active (e.g. it restarted): activate again.
        this.logger.warn('heartbeat not accepted: activating again');
        await this.client.activateNode(this.heartbeatInterval).catch((err) => this.logger.warn(`re-activation failed: ${errorText(err)}`));
      }
      this.scheduleHeartbeat(regular);
    } catch (err) {
      this.logger.debug(`heartbeat failed: ${errorText(err)}`);
      // Retry sooner than usual, so a short outage does not mark the node offline.
      this.scheduleHeartbeat(Math.min(regular, 2000));
    }
  }

  private async pollLoop(): Promise<void> {
    const poll = this.options.pollIntervalMs ?? 3000;
    while (!this.stopping) {
      const response = await this.retrying('PullMessages', () => this.client.pullMessages(this.nodeIdValue!), false, true);
      if (response === undefined) continue; // reconnected
      const proto = response.messagesList[0];
      const tree = response.messageObjectTrees[0];
      if (proto === undefined || tree === undefined) {
        await sleep(poll, this.abort.signal).catch(() => undefined);
        continue;
      }
      await this.handle(metadataFromProto(proto.metadata!), tree);
    }
  }

  private async handle(metadata: MessageMetadata, tree: ObjectTree): Promise<void> {
    const { runId, messageId } = metadata;
    this.logger.info(`received ${metadata.messageType} message ${messageId} (run ${runId}, group ${metadata.groupId || '-'})`);
    let message: FlowerMessage;
    try {
      const objects = await this.pullTree(runId, tree);
      if (tree.objectId !== messageId) throw new Error(`object tree root ${tree.objectId} is not message ${messageId}`);
      message = this.codec.inflateMessage(messageId, objects, metadata);
      await this.retrying('ConfirmMessageReceived', () => this.client.confirmMessageReceived(this.nodeIdValue!, runId, messageId));
    } catch (err) {
      if (this.stopping && isAbort(err)) return;
      if (isRunOver(err)) return void this.logger.info(`run ${runId} is over: message ${messageId} dropped`);
      // As the Python SuperNode: a message that cannot be received is dropped, not answered.
      this.logger.error(`failed to receive message ${messageId}: ${errorText(err)}`);
      return;
    }

    const started = performance.now();
    let reply: { content?: RecordDict; error?: MessageError };
    if (message.error !== undefined) {
      reply = { error: { code: CLIENT_APP_RAISED_EXCEPTION, reason: 'received a message that carries an error instead of content' } };
    } else {
      try {
        const content = await this.options.handler(toIncoming(message, metadata), { nodeId: this.nodeIdValue!, signal: this.abort.signal });
        reply = { content };
      } catch (err) {
        if (this.stopping) return; // the handler was aborted by stop(): nobody waits for an answer
        const e = err instanceof Error ? err : new Error(String(err));
        this.logger.error(`handler failed on ${metadata.messageType} message ${messageId}: ${e.message}`);
        // The reason in the format Flower's own SuperNode uses: "<class 'Type'>:<'message'>".
        reply = { error: { code: CLIENT_APP_RAISED_EXCEPTION, reason: `<class '${e.name}'>:<'${e.message}'>` } };
      }
    }
    const runtime = (performance.now() - started) / 1000;
    try {
      await this.sendReply(metadata, reply, runtime);
    } catch (err) {
      if (this.stopping && isAbort(err)) return;
      if (isRunOver(err)) return void this.logger.info(`run ${runId} is over: reply to ${messageId} dropped`);
      this.logger.error(`failed to send the reply to ${messageId}: ${errorText(err)}`);
    }
  }

  /** Pulls every object of the tree, retrying those not yet available, checking each hash. */
  private async pullTree(runId: bigint, tree: ObjectTree): Promise<Map<string, Uint8Array>> {
    const objects = new Map<string, Uint8Array>();
    await mapLimited([...new Set(postOrder(tree))], OBJECT_TRANSFERS, async (id) => {
      for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
        const r = await this.retrying('PullObject', () => this.client.pullObject(this.nodeIdValue!, runId, id));
        if (!r.objectFound) throw new Error(`object ${id} not found on the SuperLink`);
        if (r.objectAvailable) {
          await verifyObject(id, r.objectContent, this.options.sha256);
          objects.set(id, r.objectContent);
          return;
        }
        await sleep(delay, this.abort.signal);
      }
    });
    return objects;
  }

  private async sendReply(to: MessageMetadata, reply: { content?: RecordDict; error?: MessageError }, runtime: number): Promise<void> {
    const now = this.now().getTime() / 1000; // the SuperLink's time, as the message's it answers
    // As flwr's Message(reply_to=…): swap ends and tasks, keep run/group/type, and live no
    // longer than what is left of the instruction.
    const metadata: MessageMetadata = {
      runId: to.runId,
      messageId: '',
      srcNodeId: this.nodeIdValue!,
      dstNodeId: to.srcNodeId,
      replyToMessageId: to.messageId,
      groupId: to.groupId,
      createdAt: now,
      ttl: to.createdAt + to.ttl - now,
      messageType: to.messageType,
      srcTaskId: to.dstTaskId,
      dstTaskId: to.srcTaskId,
    };
    const deflated = await this.codec.deflateMessage({ metadata, ...reply });
    // PushMessages carries metadata and error only; content travels as objects (an empty
    // RecordDict stands in for it, as in Python's remove_content_from_message).
    const proto = create(ProtoMessageSchema, {
      metadata: metadataToProto({ ...metadata, messageId: deflated.messageId }),
      content: reply.error === undefined ? create(RecordDictSchema) : undefined,
      error: reply.error === undefined ? undefined : create(ErrorSchema, { code: BigInt(reply.error.code), reason: reply.error.reason }),
    });
    const pushed = await this.retrying('PushMessages', () => this.client.pushMessages(this.nodeIdValue!, proto, deflated.tree, runtime));
    const wanted = new Set(pushed.objectsToPush);
    const toPush = postOrder(deflated.tree).filter((id) => wanted.delete(id));
    if (wanted.size > 0) throw new Error(`the SuperLink asked for objects not in the reply: ${[...wanted].join(', ')}`);
    await mapLimited(toPush, OBJECT_TRANSFERS, async (id) => {
      const { stored } = await this.retrying('PushObject', () => this.client.pushObject(this.nodeIdValue!, to.runId, pushed.sessionId, id, deflated.objects.get(id)!));
      if (!stored) throw new Error(`the SuperLink did not store object ${id} (push session ${pushed.sessionId} expired?)`);
    });
    this.logger.info(`sent ${reply.error ? 'error ' : ''}reply ${deflated.messageId} to ${to.messageId}`);
  }

  /**
   * Runs `call`, waiting out an unreachable SuperLink with exponential backoff (the
   * Python SuperNode's retry invoker does the same). During serving (`reconnectOnAuth`),
   * a refused node id means the SuperLink forgot this node: it connects again and the
   * caller gets undefined.
   */
  private async retrying<T>(what: string, call: () => Promise<T>, connecting?: boolean): Promise<T>;
  private async retrying<T>(what: string, call: () => Promise<T>, connecting: boolean, reconnectOnAuth: true): Promise<T | undefined>;
  private async retrying<T>(what: string, call: () => Promise<T>, connecting = false, reconnectOnAuth = false): Promise<T | undefined> {
    let delay = this.options.reconnectInitialDelayMs ?? 500;
    const maxDelay = this.options.reconnectMaxDelayMs ?? 5000;
    const started = Date.now();
    let outage = false;
    for (;;) {
      if (this.stopping) throw abortError();
      try {
        const result = await call();
        if (outage) this.logger.info(`SuperLink reachable again (${what})`);
        return result;
      } catch (err) {
        if (err instanceof NodeAuthenticationError && reconnectOnAuth && !connecting) {
          this.logger.warn(`${what}: ${err.message}; connecting again`);
          this.stopHeartbeats();
          await this.connect();
          return undefined;
        }
        const transient = (err instanceof FleetCallError && err.transient) || isFetchFailure(err);
        if (!transient || err instanceof FlowerVersionMismatchError) throw err;
        if (connecting && this.options.connectTimeoutMs !== undefined && Date.now() - started > this.options.connectTimeoutMs) {
          throw new Error(`SuperLink unreachable for ${this.options.connectTimeoutMs} ms: ${errorText(err)}`);
        }
        if (!outage) this.logger.warn(`SuperLink unreachable (${what}: ${errorText(err)}); retrying`);
        outage = true;
        await sleep(delay, this.abort.signal);
        delay = Math.min(delay * 2, maxDelay);
      }
    }
  }
}

function toIncoming(message: FlowerMessage, m: MessageMetadata): IncomingMessage {
  return {
    runId: m.runId, messageId: m.messageId, messageType: m.messageType, groupId: m.groupId,
    content: message.content!, ttl: m.ttl, createdAt: m.createdAt, expiresAt: m.createdAt + m.ttl, metadata: m,
  };
}

function postOrder(tree: ObjectTree): string[] {
  return [...tree.children.flatMap(postOrder), tree.objectId];
}

function isRunOver(err: unknown): boolean {
  return err instanceof FleetCallError && parseFlowerApiError(err.details)?.code === ApiErrorCode.FLEET_RUN_STATUS_NOT_ALLOWED;
}

function isFetchFailure(err: unknown): boolean {
  // fetch() (version probe) rejects with a TypeError when the server is unreachable.
  return err instanceof TypeError && /fetch failed/i.test(err.message);
}

function abortError(): Error {
  return Object.assign(new Error('stopped'), { name: 'AbortError' });
}

function isAbort(err: unknown): boolean {
  return (err instanceof Error && err.name === 'AbortError') || (err instanceof FleetCallError && err.failure === 'aborted');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
