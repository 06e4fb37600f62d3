// Typed Fleet API calls: protobuf encoding, the signed identity metadata the SuperLink
// verifies on every call, Flower's runtime metadata, and translation of the SuperLink's
// answers into errors a node can act on. One object per connection; no retries here
// (the node decides what is worth retrying).
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { NodeSigner } from './crypto.js';
import { ApiErrorCode, NodeAuthenticationError, parseFlowerApiError } from './errors.js';
import type { FlowerLogger } from './logger.js';
import * as fleet from './proto/flwr/proto/fleet_pb.js';
import * as heartbeat from './proto/flwr/proto/heartbeat_pb.js';
import * as message from './proto/flwr/proto/message_pb.js';
import * as run from './proto/flwr/proto/run_pb.js';
import { FleetCallError, type CallMetadata, type FleetMethod, type FleetTransport } from './transport.js';
import { FlowerVersionMismatchError, RUNTIME_METADATA, VERSION_INCOMPATIBILITY_TRAILER } from './version.js';

// Metadata keys checked by the SuperLink's NodeAuthServerInterceptor (flwr.common.constant).
export const PUBLIC_KEY_HEADER = 'flwr-public-key-bin';
export const SIGNATURE_HEADER = 'flwr-signature-bin';
export const TIMESTAMP_HEADER = 'flwr-timestamp';

/**
 * Python's `datetime.now(timezone.utc).isoformat()`: microseconds and `+00:00`. The
 * SuperLink parses it with `datetime.fromisoformat`, which before Python 3.11 accepts
 * nothing else, and accepts it from 5 s in the future to 305 s in the past.
 */
export function flowerTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000+00:00');
}

export class FleetClient {
  private warnedTrailers = new Set<string>();

  constructor(
    private readonly transport: FleetTransport,
    private readonly signer: NodeSigner,
    private readonly logger: FlowerLogger,
    /** The clock the signed timestamp reads: the SuperLink's time where the local clock is off (a browser takes its offset from the gateway's /clock). */
    private readonly now: () => Date = () => new Date(),
  ) {}

  private async metadata(): Promise<CallMetadata> {
    const timestamp = flowerTimestamp(this.now());
    const signature = await this.signer.sign(new TextEncoder().encode(timestamp));
    return [
      [PUBLIC_KEY_HEADER, this.signer.publicKeyPem],
      [TIMESTAMP_HEADER, timestamp],
      [SIGNATURE_HEADER, signature],
      ...RUNTIME_METADATA,
    ];
  }

  private async call<I extends DescMessage, O extends DescMessage>(
    method: FleetMethod, input: I, output: O, request: MessageInitShape<I>, options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<MessageShape<O>> {
    const bytes = toBinary(input, create(input, request));
    let result;
    try {
      result = await this.transport.call(method, bytes, { metadata: await this.metadata(), ...options });
    } catch (err) {
      throw this.translate(err);
    }
    this.checkTrailers(result.trailers);
    return fromBinary(output, result.response);
  }

  /** Version errors and authentication failures become their own errors; the rest pass. */
  private translate(err: unknown): unknown {
    if (!(err instanceof FleetCallError)) return err;
    const api = parseFlowerApiError(err.details);
    if (api?.code === ApiErrorCode.RUNTIME_VERSION_INCOMPATIBLE) {
      return new FlowerVersionMismatchError(undefined, `The SuperLink says: ${api.details ?? api.message}`);
    }
    if (err.status === 12 /* gRPC UNIMPLEMENTED */) {
      return new FlowerVersionMismatchError(undefined, `Its Fleet API does not implement ${err.method} (${err.details}); a flwr 1.42 SuperLink serves gRPC Fleet only with FLWR_INTERNAL_GRPC_FLEET_API=1.`);
    }
    if (err.failure === 'unauthenticated') {
      return new NodeAuthenticationError(`The SuperLink refused this node's credentials on ${err.method}: ${err.details}`);
    }
    return err;
  }

  private checkTrailers(trailers: Map<string, string>): void {
    const note = trailers.get(VERSION_INCOMPATIBILITY_TRAILER);
    if (note === undefined) return;
    if (/version mismatch/i.test(note)) throw new FlowerVersionMismatchError(/received \S+ version (\S+?)\.?$/.exec(note)?.[1], `The SuperLink says: ${note}`);
    // flwr 1.42 sends a notice that gRPC Fleet is deprecated with every heartbeat: say it once.
    if (!this.warnedTrailers.has(note)) {
      this.warnedTrailers.add(note);
      this.logger.info(`SuperLink notice: ${note}`);
    }
  }

  registerNode() {
    return this.call('RegisterNode', fleet.RegisterNodeFleetRequestSchema, fleet.RegisterNodeFleetResponseSchema, { publicKey: this.signer.publicKeyPem });
  }
  activateNode(heartbeatInterval: number) {
    return this.call('ActivateNode', fleet.ActivateNodeRequestSchema, fleet.ActivateNodeResponseSchema, { publicKey: this.signer.publicKeyPem, heartbeatInterval });
  }
  deactivateNode(nodeId: bigint, timeoutMs?: number) {
    return this.call('DeactivateNode', fleet.DeactivateNodeRequestSchema, fleet.DeactivateNodeResponseSchema, { nodeId }, { timeoutMs });
  }
  unregisterNode(nodeId: bigint, timeoutMs?: number) {
    return this.call('UnregisterNode', fleet.UnregisterNodeFleetRequestSchema, fleet.UnregisterNodeFleetResponseSchema, { nodeId }, { timeoutMs });
  }
  sendNodeHeartbeat(nodeId: bigint, heartbeatInterval: number, timeoutMs: number) {
    return this.call('SendNodeHeartbeat', heartbeat.SendNodeHeartbeatRequestSchema, heartbeat.SendNodeHeartbeatResponseSchema, { node: { nodeId }, heartbeatInterval }, { timeoutMs });
  }
  pullMessages(nodeId: bigint) {
    return this.call('PullMessages', fleet.PullMessagesRequestSchema, fleet.PullMessagesResponseSchema, { node: { nodeId } });
  }
  pushMessages(nodeId: bigint, msg: message.Message, tree: message.ObjectTree, clientappRuntime: number) {
    return this.call('PushMessages', fleet.PushMessagesRequestSchema, fleet.PushMessagesResponseSchema, {
      node: { nodeId }, messagesList: [msg], messageObjectTrees: [tree], clientappRuntimeList: [clientappRuntime],
    });
  }
  getRun(nodeId: bigint, runId: bigint) {
    return this.call('GetRun', run.GetRunRequestSchema, run.GetRunResponseSchema, { node: { nodeId }, runId });
  }
  pullObject(nodeId: bigint, runId: bigint, objectId: string) {
    return this.call('PullObject', message.PullObjectRequestSchema, message.PullObjectResponseSchema, { node: { nodeId }, runId, objectId });
  }
  pushObject(nodeId: bigint, runId: bigint, sessionId: string, objectId: string, objectContent: Uint8Array) {
    return this.call('PushObject', message.PushObjectRequestSchema, message.PushObjectResponseSchema, { node: { nodeId }, runId, objectId, objectContent, sessionId });
  }
  confirmMessageReceived(nodeId: bigint, runId: bigint, messageObjectId: string) {
    return this.call('ConfirmMessageReceived', message.ConfirmMessageReceivedRequestSchema, message.ConfirmMessageReceivedResponseSchema, { node: { nodeId }, runId, messageObjectId });
  }
}
