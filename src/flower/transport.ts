// How Fleet calls reach the SuperLink, kept apart from the protocol so the same node
// code runs over gRPC in Node (grpc-transport.ts) and, later, over an HTTP gateway in a
// browser. A transport moves opaque protobuf bytes; it knows nothing of Flower.

/** The Fleet service's methods (service flwr.proto.Fleet in flwr 1.42.0). */
export type FleetMethod =
  | 'RegisterNode' | 'ActivateNode' | 'DeactivateNode' | 'UnregisterNode' | 'SendNodeHeartbeat'
  | 'PullMessages' | 'PushMessages' | 'GetRun' | 'GetFab' | 'PushObject' | 'PullObject' | 'ConfirmMessageReceived';

/** Request metadata: gRPC keys ending in `-bin` carry bytes, all others ASCII text. */
export type CallMetadata = Array<[key: string, value: string | Uint8Array]>;

export interface CallOptions {
  metadata: CallMetadata;
  /** Give up after this long (the Python SuperNode uses 5 s for heartbeats). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface CallResult {
  response: Uint8Array;
  /** Trailing metadata (the SuperLink puts version warnings there). */
  trailers: Map<string, string>;
}

export interface FleetTransport {
  call(method: FleetMethod, request: Uint8Array, options: CallOptions): Promise<CallResult>;
  close(): void;
}

/** Why a call failed, in transport-neutral terms. */
export type FleetCallFailure =
  | 'unavailable'      // SuperLink unreachable or restarting: retry later
  | 'deadline'         // timed out: retry later
  | 'unauthenticated'  // node authentication refused the call
  | 'aborted'          // our own AbortSignal
  | 'rejected';        // the SuperLink answered with an error

export class FleetCallError extends Error {
  override name = 'FleetCallError';
  constructor(
    readonly method: FleetMethod,
    readonly failure: FleetCallFailure,
    /** The SuperLink's error text (for Flower errors, JSON: see errors.ts). */
    readonly details: string,
    /** Transport-specific status (gRPC status code or HTTP status), for logs. */
    readonly status?: number,
  ) {
    super(`Fleet.${method} failed (${failure}${status === undefined ? '' : ` ${status}`}): ${details}`);
  }
  /** Failures that a later retry can cure. */
  get transient(): boolean {
    return this.failure === 'unavailable' || this.failure === 'deadline';
  }
}
