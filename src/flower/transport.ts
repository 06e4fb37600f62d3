// How Fleet calls reach the SuperLink, kept apart from the protocol so the same node
// code runs over gRPC in Node (grpc-transport.ts) and, later, over an HTTP gateway in a
// browser. A transport moves opaque protobuf bytes; it knows nothing of Flower.

/** The Fleet service's methods (service flwr.proto.Fleet in flwr 1.42.0). */
export const FLEET_METHODS = [
  'RegisterNode', 'ActivateNode', 'DeactivateNode', 'UnregisterNode', 'SendNodeHeartbeat',
  'PullMessages', 'PushMessages', 'GetRun', 'GetFab', 'PushObject', 'PullObject', 'ConfirmMessageReceived',
] as const;
export type FleetMethod = (typeof FLEET_METHODS)[number];

export function isFleetMethod(name: string): name is FleetMethod {
  return (FLEET_METHODS as readonly string[]).includes(name);
}

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

/** gRPC status codes as failures (the numbers are gRPC's, so browser code needs no gRPC library). */
export function grpcStatusFailure(code: number): FleetCallFailure {
  switch (code) {
    case 14: return 'unavailable';     // UNAVAILABLE
    case 4: return 'deadline';         // DEADLINE_EXCEEDED
    case 16: return 'unauthenticated'; // UNAUTHENTICATED
    case 1: return 'aborted';          // CANCELLED
    default: return 'rejected';
  }
}
