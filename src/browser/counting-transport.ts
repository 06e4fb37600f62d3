// A FleetTransport that counts what the node sends: each request's protobuf bytes and its
// metadata (the signed identity headers), as they leave for the server. The page shows the
// total; the count is taken here, below the protocol, so nothing sent escapes it.

import type { CallOptions, CallResult, FleetMethod, FleetTransport } from '../flower/transport.js';

export class CountingTransport implements FleetTransport {
  /** Bytes sent since this transport was made. */
  bytesSent = 0;
  /** Bytes of PushObject requests only: the message contents (records, arrays) the node uploaded. */
  objectBytesSent = 0;

  constructor(private readonly inner: FleetTransport, private readonly onSent: (bytes: number, method: FleetMethod) => void = () => {}) {}

  call(method: FleetMethod, request: Uint8Array, options: CallOptions): Promise<CallResult> {
    let bytes = request.byteLength;
    for (const [key, value] of options.metadata) bytes += key.length + (typeof value === 'string' ? value.length : value.byteLength);
    this.bytesSent += bytes;
    if (method === 'PushObject') this.objectBytesSent += request.byteLength;
    this.onSent(bytes, method);
    return this.inner.call(method, request, options);
  }

  close(): void {
    this.inner.close();
  }
}
