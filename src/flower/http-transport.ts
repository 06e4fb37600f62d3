// FleetTransport over Flower's protobuf-over-HTTP Fleet API, which flwr 1.42.0's own
// SuperNode uses (supernode/fleet_http_client.py) and its SuperLink serves by default on
// `--port`: POST /v1/fleet/<kebab-case method>, body and answer `application/protobuf`.
// Only `fetch` is used, so the same transport can run in a browser (given CORS).
//
// Metadata map onto headers as the Python client sends them: a gRPC `-bin` key loses
// the suffix and carries base64 (flwr-public-key, flwr-signature), text keys stay as
// they are. TLS uses the platform's trust store (in Node: add a private CA with
// NODE_EXTRA_CA_CERTS); node authentication is checked on every call as over gRPC.
import { base64 } from '../io/base64.js';
import { FleetCallError, type CallMetadata, type CallOptions, type CallResult, type FleetCallFailure, type FleetMethod, type FleetTransport } from './transport.js';

export interface HttpTransportOptions {
  /** `http(s)://host:port` of the SuperLink's HTTP API. */
  baseUrl: string;
  fetch?: typeof fetch;
}

const PROTOBUF_MEDIA_TYPE = 'application/protobuf';

export function fleetHttpPath(method: FleetMethod): string {
  return `/v1/fleet/${method.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase()}`;
}

export class HttpFleetTransport implements FleetTransport {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HttpTransportOptions) {
    this.baseUrl = options.baseUrl.replace(/\/$/, '');
    this.fetchImpl = options.fetch ?? fetch;
  }

  async call(method: FleetMethod, request: Uint8Array, options: CallOptions): Promise<CallResult> {
    const headers = metadataHeaders(options.metadata, 'drop');
    headers.set('content-type', PROTOBUF_MEDIA_TYPE);
    headers.set('accept', PROTOBUF_MEDIA_TYPE);
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${fleetHttpPath(method)}`, {
        method: 'POST', headers, body: request.slice() /* an ArrayBuffer-backed copy, as BodyInit wants */, signal: callSignal(options),
      });
    } catch (err) {
      throw fetchFailure(method, err);
    }
    const trailers = new Map<string, string>();
    response.headers.forEach((value, key) => trailers.set(key, value));
    if (!response.ok) throw new FleetCallError(method, httpStatusFailure(response.status), await response.text(), response.status);
    return { response: new Uint8Array(await response.arrayBuffer()), trailers };
  }

  close(): void {}
}

// Helpers shared with the gateway transport (gateway-transport.ts), which speaks to the page's own server.

/**
 * Call metadata as HTTP headers: text values as they are, `-bin` values (bytes) as base64,
 * their key either without the suffix (`drop`: Flower's HTTP API) or with it (`keep`: gRPC's
 * own convention, so a gateway can restore the bytes for gRPC).
 */
export function metadataHeaders(metadata: CallMetadata, binSuffix: 'drop' | 'keep'): Headers {
  const headers = new Headers();
  for (const [key, value] of metadata) {
    if (typeof value === 'string') headers.append(key, value);
    else headers.append(binSuffix === 'drop' ? key.replace(/-bin$/, '') : key, base64(value));
  }
  return headers;
}

/** The call's own signal and its timeout, as one fetch signal. */
export function callSignal(options: CallOptions): AbortSignal | undefined {
  const signals = [options.signal, options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs)].filter((s): s is AbortSignal => s !== undefined);
  return signals.length ? AbortSignal.any(signals) : undefined;
}

/** A rejected fetch (no answer at all) as a call failure: timed out, aborted by us, or unreachable. */
export function fetchFailure(method: FleetMethod, err: unknown): FleetCallError {
  const e = err as Error;
  const failure: FleetCallFailure = e.name === 'TimeoutError' ? 'deadline' : e.name === 'AbortError' ? 'aborted' : 'unavailable';
  return new FleetCallError(method, failure, `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}`);
}

/** An HTTP error status as a call failure (502–504: a proxy or server that cannot reach on). */
export function httpStatusFailure(status: number): FleetCallFailure {
  return status === 401 ? 'unauthenticated' : [502, 503, 504].includes(status) ? 'unavailable' : 'rejected';
}

