// FleetTransport over Flower's protobuf-over-HTTP Fleet API, which flwr 1.42.0's own
// SuperNode uses (supernode/fleet_http_client.py) and its SuperLink serves by default on
// `--port`: POST /v1/fleet/<kebab-case method>, body and answer `application/protobuf`.
// Only `fetch` is used, so the same transport can run in a browser (given CORS).
//
// Metadata map onto headers as the Python client sends them: a gRPC `-bin` key loses
// the suffix and carries base64 (flwr-public-key, flwr-signature), text keys stay as
// they are. TLS uses the platform's trust store (in Node: add a private CA with
// NODE_EXTRA_CA_CERTS); node authentication is checked on every call as over gRPC.
import { FleetCallError, type CallOptions, type CallResult, type FleetCallFailure, type FleetMethod, type FleetTransport } from './transport.js';

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
    const headers = new Headers({ 'content-type': PROTOBUF_MEDIA_TYPE, accept: PROTOBUF_MEDIA_TYPE });
    for (const [key, value] of options.metadata) {
      if (typeof value === 'string') headers.set(key, value);
      else headers.set(key.replace(/-bin$/, ''), base64(value));
    }
    const signals = [options.signal, options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs)].filter((s): s is AbortSignal => s !== undefined);
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${fleetHttpPath(method)}`, {
        method: 'POST', headers, body: request.slice() /* an ArrayBuffer-backed copy, as BodyInit wants */, signal: signals.length ? AbortSignal.any(signals) : undefined,
      });
    } catch (err) {
      const e = err as Error;
      const failure: FleetCallFailure = e.name === 'TimeoutError' ? 'deadline' : e.name === 'AbortError' ? 'aborted' : 'unavailable';
      throw new FleetCallError(method, failure, `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}`);
    }
    const trailers = new Map<string, string>();
    response.headers.forEach((value, key) => trailers.set(key, value));
    if (!response.ok) {
      const failure: FleetCallFailure = response.status === 401 ? 'unauthenticated' : [502, 503, 504].includes(response.status) ? 'unavailable' : 'rejected';
      throw new FleetCallError(method, failure, await response.text(), response.status);
    }
    return { response: new Uint8Array(await response.arrayBuffer()), trailers };
  }

  close(): void {}
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
