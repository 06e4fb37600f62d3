// FleetTransport over gRPC with @grpc/grpc-js: generic unary calls on
// /flwr.proto.Fleet/<Method> with identity (de)serializers, since the protocol layer
// encodes and decodes the protobuf itself.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { FleetCallError, grpcStatusFailure, type CallOptions, type CallResult, type FleetMethod, type FleetTransport } from './transport.js';

export interface GrpcTransportOptions {
  /** `host:port` of the SuperLink's Fleet API. */
  address: string;
  /** Plaintext, as `flower-supernode --insecure` (the SuperLink must run `--insecure`). */
  insecure?: boolean;
  /** PEM file of the CA that signed the SuperLink's certificate (else the system roots). */
  rootCertificatesPath?: string;
  /** Flower's GRPC_MAX_MESSAGE_LENGTH is 2 GiB − 1; objects are ≤ 5 MiB chunks anyway. */
  maxMessageBytes?: number;
}

const identity = (b: Buffer): Buffer => b;

export class GrpcFleetTransport implements FleetTransport {
  private readonly client: grpc.Client;

  constructor(options: GrpcTransportOptions) {
    const credentials = options.insecure
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(options.rootCertificatesPath ? readFileSync(options.rootCertificatesPath) : null);
    const max = options.maxMessageBytes ?? 2_147_483_647;
    this.client = new grpc.Client(options.address, credentials, {
      'grpc.max_send_message_length': max,
      'grpc.max_receive_message_length': max,
      // Reconnect quickly after a SuperLink restart instead of grpc's long default backoff.
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  call(method: FleetMethod, request: Uint8Array, options: CallOptions): Promise<CallResult> {
    const metadata = new grpc.Metadata();
    for (const [key, value] of options.metadata) metadata.add(key, typeof value === 'string' ? value : Buffer.from(value));
    const callOptions: grpc.CallOptions = {};
    if (options.timeoutMs !== undefined) callOptions.deadline = new Date(Date.now() + options.timeoutMs);
    return new Promise((resolve, reject) => {
      let trailers = new Map<string, string>();
      const call = this.client.makeUnaryRequest<Buffer, Buffer>(
        `/flwr.proto.Fleet/${method}`, identity, identity, Buffer.from(request.buffer, request.byteOffset, request.byteLength),
        metadata, callOptions,
        (err, response) => {
          options.signal?.removeEventListener('abort', onAbort);
          if (err) reject(new FleetCallError(method, grpcStatusFailure(err.code), err.details || err.message, err.code));
          else resolve({ response: new Uint8Array(response!), trailers });
        },
      );
      call.on('status', (status: grpc.StatusObject) => {
        trailers = new Map(Object.entries(status.metadata.getMap()).map(([k, v]) => [k, v.toString()]));
      });
      const onAbort = () => call.cancel();
      if (options.signal?.aborted) call.cancel();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    this.client.close();
  }
}
