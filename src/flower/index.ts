// pfedprompt as a Flower SuperNode (flwr 1.42.0, Fleet API). Typical use in Node:
//
//   const { key } = await NodeKey.loadOrCreate('state/node-key.pem');
//   const node = new FleetNode({
//     transport: new GrpcFleetTransport({ address: 'superlink:9092', rootCertificatesPath: 'ca.pem' }),
//     signer: key, sha256: nodeSha256Hex, logger,
//     handler: async (message) => new RecordDict({ metrics: new MetricRecord({ 'num-examples': 10n }) }),
//   });
//   await node.run(abortSignal);   // SIGINT/SIGTERM → abort → DeactivateNode
export { FleetNode, HEARTBEAT_DEFAULT_INTERVAL, CLIENT_APP_RAISED_EXCEPTION } from './node.js';
export type { FleetNodeOptions, HandlerContext, IncomingMessage, MessageHandler } from './node.js';
export { ArrayRecord, ConfigRecord, MetricRecord, RecordDict, float32Array, int, ndarray } from './records.js';
export type { ConfigValue, DType, DTypeData, FlowerRecord, MetricValue, NdArray } from './records.js';
export { ObjectCodec, ObjectFormatError, MAX_ARRAY_CHUNK_SIZE, parseObject, verifyObject } from './objects.js';
export type { DeflatedMessage, FlowerMessage, MessageError, MessageMetadata } from './objects.js';
export { decodeNpy, encodeNpy } from './npy.js';
export type { NodeSigner, Sha256Hex } from './crypto.js';
export { NodeKey, fetchTrusting, nodeSha256Hex } from './node-crypto.js';
export type { CallMetadata, CallOptions, CallResult, FleetCallFailure, FleetMethod, FleetTransport } from './transport.js';
export { FLEET_METHODS, FleetCallError, grpcStatusFailure, isFleetMethod } from './transport.js';
export { GrpcFleetTransport } from './grpc-transport.js';
export { HttpFleetTransport, fleetHttpPath } from './http-transport.js';
export type { HttpTransportOptions } from './http-transport.js';
export { abortOnSignals } from './signals.js';
export type { GrpcTransportOptions } from './grpc-transport.js';
export { FleetClient, flowerTimestamp } from './fleet-client.js';
export { ApiErrorCode, NodeAuthenticationError, parseFlowerApiError } from './errors.js';
export { FlowerVersionMismatchError, PINNED_FLOWER_VERSION, checkSuperLinkVersion, probeSuperLinkVersion } from './version.js';
export type { FlowerLogger } from './logger.js';
export { silentLogger } from './logger.js';
export { WebNodeKey, ecdsaRawToDer, spkiPem, webSha256Hex } from './web-crypto.js';
export { CLOCK_PATH, measureClockOffset, offsetClock } from './server-clock.js';
export type { ClockOptions } from './server-clock.js';
export { GatewayFleetTransport, FLEET_GATEWAY_PATH } from './gateway-transport.js';
export type { GatewayTransportOptions } from './gateway-transport.js';
