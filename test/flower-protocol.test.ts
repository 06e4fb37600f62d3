// Small protocol details the SuperLink is strict about, checked without a SuperLink.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';

import { NodeKey, fleetHttpPath, flowerTimestamp, parseFlowerApiError, FleetNode, nodeSha256Hex, type FleetTransport } from '../src/flower/index.js';

test('timestamps are what Python\'s datetime.isoformat() writes (microseconds, +00:00)', () => {
  assert.equal(flowerTimestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 67))), '2026-01-02T03:04:05.067000+00:00');
});

test('the public key is SPKI PEM with 64-column lines and signatures are DER ECDSA-SHA256', async () => {
  const key = NodeKey.ephemeral();
  const pem = new TextDecoder().decode(key.publicKeyPem);
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END PUBLIC KEY-----\n$/);
  const data = new TextEncoder().encode(flowerTimestamp());
  const signature = await key.sign(data);
  assert.equal(signature[0], 0x30, 'DER SEQUENCE');
  assert.ok(verify('sha256', data, createPublicKey(pem), signature));
  assert.match(key.openSshPublicKey(), /^ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQ/);
});

test('HTTP Fleet paths and Flower error payloads', () => {
  assert.equal(fleetHttpPath('SendNodeHeartbeat'), '/v1/fleet/send-node-heartbeat');
  assert.equal(fleetHttpPath('ConfirmMessageReceived'), '/v1/fleet/confirm-message-received');
  assert.deepEqual(parseFlowerApiError('{"code": 23, "public_message": "Public key already in use", "public_details": null}'), { code: 23, message: 'Public key already in use', details: undefined });
  assert.deepEqual(parseFlowerApiError('{"code": 1001, "detail": "x", "extra": "SuperLink version 1.43.0"}'), { code: 1001, message: 'x', details: 'SuperLink version 1.43.0' });
  assert.equal(parseFlowerApiError('Invalid signature'), undefined);
});

test('a heartbeat interval outside Flower\'s 10–1800 s is refused up front', () => {
  const transport: FleetTransport = { call: () => Promise.reject(new Error('unused')), close() {} };
  assert.throws(() => new FleetNode({ transport, signer: NodeKey.ephemeral(), sha256: nodeSha256Hex, handler: async () => { throw new Error(); }, heartbeatInterval: 5 }), /10–1800/);
});
