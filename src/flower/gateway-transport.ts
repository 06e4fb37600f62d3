// FleetTransport for a node in a browser: each Fleet call goes to the page's own server
// (`pfedprompt serve`, src/serve/fleet-forwarding.ts), which forwards it unchanged to the
// SuperLink's gRPC Fleet API. A browser cannot speak gRPC, and Flower's HTTP Fleet API
// neither sends CORS headers nor checks node authentication; through the gateway the
// request bytes and the signed flwr-* metadata reach the SuperLink as a gRPC node sends them.
//
// Wire format (same origin, so every header is readable):
//   POST /fleet/<Method>  body: the protobuf request   headers: the call metadata, `-bin`
//     keys kept and their bytes base64 (gRPC's convention), `fleet-timeout-ms` if any
//   200  body: the protobuf response; `fleet-trailers`: base64 of the JSON object of the
//     gRPC trailing metadata
//   4xx/5xx  JSON `{"grpcStatus", "details"}` when the SuperLink refused the call (its gRPC
//     status and details: Flower's JSON errors travel there), or `{"error"}` when the
//     gateway itself refused it.
// Portable: fetch, btoa/atob, TextDecoder.
import { base64, fromBase64 } from '../io/base64.js';
import { callSignal, fetchFailure, httpStatusFailure, metadataHeaders } from './http-transport.js';
import { FleetCallError, grpcStatusFailure, type CallOptions, type CallResult, type FleetMethod, type FleetTransport } from './transport.js';

export const FLEET_GATEWAY_PATH = '/fleet/';
export const TIMEOUT_HEADER = 'fleet-timeout-ms';
export const TRAILERS_HEADER = 'fleet-trailers';
const PROTOBUF_MEDIA_TYPE = 'application/protobuf';

/** The gateway's answer when a call fails. */
export type GatewayErrorBody = { grpcStatus: number; details: string } | { error: string };

export interface GatewayTransportOptions {
  /** The page's server, e.g. `location.origin` (default: relative URLs, which a page resolves against its origin). */
  baseUrl?: string;
  fetch?: typeof fetch;
}

export class GatewayFleetTransport implements FleetTransport {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(options: GatewayTransportOptions = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/$/, '');
    // A bare `fetch` called as a method of this object throws "Illegal invocation" in browsers.
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  async call(method: FleetMethod, request: Uint8Array, options: CallOptions): Promise<CallResult> {
    const headers = metadataHeaders(options.metadata, 'keep');
    headers.set('content-type', PROTOBUF_MEDIA_TYPE);
    if (options.timeoutMs !== undefined) headers.set(TIMEOUT_HEADER, String(Math.ceil(options.timeoutMs)));
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${FLEET_GATEWAY_PATH}${method}`, {
        method: 'POST', headers, body: request.slice() /* ArrayBuffer-backed, as BodyInit wants */, signal: callSignal(options),
      });
    } catch (err) {
      throw fetchFailure(method, err);
    }
    if (!response.ok) throw await gatewayFailure(method, response);
    return { response: new Uint8Array(await response.arrayBuffer()), trailers: decodeTrailers(response.headers.get(TRAILERS_HEADER)) };
  }

  close(): void {}
}

async function gatewayFailure(method: FleetMethod, response: Response): Promise<FleetCallError> {
  const text = await response.text();
  let body: Partial<{ grpcStatus: unknown; details: unknown; error: unknown }> | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  // The SuperLink's own refusal: the same failure, details and status a gRPC node sees.
  if (typeof body?.grpcStatus === 'number') {
    return new FleetCallError(method, grpcStatusFailure(body.grpcStatus), typeof body.details === 'string' ? body.details : '', body.grpcStatus);
  }
  const details = typeof body?.error === 'string' ? body.error : text || response.statusText;
  return new FleetCallError(method, httpStatusFailure(response.status), `gateway: ${details}`, response.status);
}

export function encodeTrailers(trailers: Map<string, string>): string {
  return base64(new TextEncoder().encode(JSON.stringify(Object.fromEntries(trailers))));
}

export function decodeTrailers(header: string | null): Map<string, string> {
  if (!header) return new Map();
  const object = JSON.parse(new TextDecoder().decode(fromBase64(header))) as Record<string, string>;
  return new Map(Object.entries(object));
}
