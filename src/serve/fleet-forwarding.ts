// POST /fleet/<Method>: a browser node's Fleet call, forwarded to the SuperLink's gRPC
// Fleet API with the request bytes and the flwr-* metadata exactly as the node sent them,
// so the SuperLink verifies the node's own signature and the gateway never reads (or can
// alter unseen) what a node sends. It decodes no protobuf: nothing here imports the types.
// The wire format is the browser side's (src/flower/gateway-transport.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TIMEOUT_HEADER, TRAILERS_HEADER, encodeTrailers, type GatewayErrorBody } from '../flower/gateway-transport.js';
import { fromBase64 } from '../io/base64.js';
import { FleetCallError, isFleetMethod, type CallMetadata, type FleetTransport } from '../flower/transport.js';

/**
 * Flower sends arrays in chunks of at most 5 MiB (FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE,
 * objects.ts MAX_ARRAY_CHUNK_SIZE): the largest request is one chunk's PushObject. 1 MiB
 * more leaves room for the object header, the protobuf fields, and a large ConfigRecord.
 */
export const MAX_FLEET_REQUEST_BYTES = 6 * 1024 * 1024;
/** Longest deadline a node may ask for (the node's own calls ask for seconds). */
const MAX_TIMEOUT_MS = 10 * 60 * 1000;

export interface FleetForwarderOptions {
  /** The SuperLink's gRPC Fleet API (a GrpcFleetTransport): its failures carry gRPC status codes. */
  transport: FleetTransport;
  maxRequestBytes?: number;
}

/** HTTP status for a gRPC status (the body carries the gRPC code itself). */
function httpStatusOf(grpcStatus: number): number {
  switch (grpcStatus) {
    case 16: return 401; // UNAUTHENTICATED
    case 14: return 503; // UNAVAILABLE
    case 4: return 504;  // DEADLINE_EXCEEDED
    default: return 502; // the SuperLink refused the call
  }
}

export class FleetForwarder {
  private readonly maxRequestBytes: number;

  constructor(private readonly options: FleetForwarderOptions) {
    this.maxRequestBytes = options.maxRequestBytes ?? MAX_FLEET_REQUEST_BYTES;
  }

  /** Handles `POST /fleet/<methodName>`. */
  async forward(req: IncomingMessage, res: ServerResponse, methodName: string): Promise<void> {
    if (!isFleetMethod(methodName)) return sendError(res, 404, `unknown Fleet method "${methodName}"`);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return sendError(res, 405, `Fleet calls are POST requests, got ${req.method}`);
    }
    const metadata = callMetadata(req);
    if (typeof metadata === 'string') return sendError(res, 400, metadata);
    const timeoutMs = timeoutOf(req.headers[TIMEOUT_HEADER]);
    if (typeof timeoutMs === 'string') return sendError(res, 400, timeoutMs);
    const body = await readBody(req, this.maxRequestBytes);
    if (typeof body === 'string') {
      // Stop reading an oversized upload, and tell the client why before closing.
      res.setHeader('connection', 'close');
      return sendError(res, 413, body);
    }

    // A node that goes away (page closed) cancels its call at the SuperLink too.
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) gone.abort();
    });
    try {
      const result = await this.options.transport.call(methodName, body, { metadata, timeoutMs, signal: gone.signal });
      res.writeHead(200, {
        'content-type': 'application/protobuf',
        'content-length': result.response.byteLength,
        'cache-control': 'no-store',
        ...(result.trailers.size ? { [TRAILERS_HEADER]: encodeTrailers(result.trailers) } : {}),
      });
      res.end(result.response);
    } catch (err) {
      if (gone.signal.aborted) return;
      if (!(err instanceof FleetCallError)) return sendError(res, 500, `forwarding ${methodName} failed: ${(err as Error).message}`);
      const grpcStatus = err.status ?? 2 /* UNKNOWN */;
      sendJson(res, httpStatusOf(grpcStatus), { grpcStatus, details: err.details });
    }
  }
}

/**
 * The flwr-* headers as gRPC metadata, in the order they came: `-bin` values back to bytes.
 * Nothing else is forwarded (cookies, the browser's own headers). A string is an error.
 */
function callMetadata(req: IncomingMessage): CallMetadata | string {
  const metadata: CallMetadata = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const key = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    if (!key.startsWith('flwr-')) continue;
    if (!key.endsWith('-bin')) {
      metadata.push([key, value]);
      continue;
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return `header ${key}: not base64`;
    metadata.push([key, fromBase64(value)]);
  }
  return metadata;
}

function timeoutOf(header: string | string[] | undefined): number | undefined | string {
  if (header === undefined) return undefined;
  const ms = Number(header);
  if (typeof header !== 'string' || !Number.isInteger(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) {
    return `header ${TIMEOUT_HEADER}: expected milliseconds from 1 to ${MAX_TIMEOUT_MS}, got ${String(header)}`;
  }
  return ms;
}

/** The request body, or a string saying it is over `limit` bytes (the rest is then discarded). */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array | string> {
  const tooLarge = `request body over ${limit} bytes (Flower sends arrays in 5 MiB chunks)`;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(tooLarge);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return;
      size += chunk.length;
      if (size > limit) resolve(tooLarge);
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return;
      const body = Buffer.concat(chunks, size);
      resolve(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    });
    req.on('error', reject);
  });
}

export function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { error: message });
}

function sendJson(res: ServerResponse, status: number, body: GatewayErrorBody): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
