// The WebCrypto signer against node:crypto (which the SuperLink's Python `cryptography`
// agrees with, see flower-node.test.ts): the same key gives byte-identical PEM and OpenSSH
// public keys, its signatures verify as DER, and the DER encoder is minimal on the edge
// cases where a hand-written one goes wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { NodeKey, flowerTimestamp, nodeSha256Hex } from '../src/flower/index.js';
import { WebNodeKey, ecdsaRawToDer, spkiPem, webSha256Hex } from '../src/flower/web-crypto.js';

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('DER: minimal INTEGERs — leading zeros dropped, 0x00 put back before a high bit, zero as one byte', () => {
  // r = 0x00 00 7f, s = 0x80 01 00 (3-byte halves keep the expectations readable)
  assert.equal(toHex(ecdsaRawToDer(hex('00007f' + '800100'))), '3009' + '02017f' + '0204' + '00800100');
  // r = 0x00 80 00: the zero that is dropped comes back as the sign byte
  assert.equal(toHex(ecdsaRawToDer(hex('008000' + '000001'))), '3008' + '0203008000' + '020101');
  // all-zero halves stay one 0x00 byte each
  assert.equal(toHex(ecdsaRawToDer(hex('0000' + '0000'))), '3006' + '020100' + '020100');
  // no change where nothing is needed
  assert.equal(toHex(ecdsaRawToDer(hex('7fff' + '0102'))), '3008' + '02027fff' + '02020102');
  assert.throws(() => ecdsaRawToDer(hex('010203')), /even length/);
});

test('DER: long-form lengths past 127 bytes (P-521-sized halves with the high bit set)', () => {
  const half = new Uint8Array(66).fill(0xff);
  const der = ecdsaRawToDer(new Uint8Array([...half, ...half]));
  // each INTEGER: 02 43 00 ff×66 (69 bytes); the SEQUENCE holds 138 bytes: 30 81 8a
  assert.equal(toHex(der.subarray(0, 3)), '30818a');
  assert.equal(der.length, 3 + 138);
  assert.equal(toHex(der.subarray(3, 6)), '024300');
});

test('DER signatures from WebCrypto verify with node:crypto (default DER), including padded INTEGERs', async () => {
  const key = await WebNodeKey.generate();
  const publicKey = createPublicKey(Buffer.from(key.publicKeyPem));
  let padded = 0;
  for (let i = 0; i < 40; i++) {
    const data = new TextEncoder().encode(flowerTimestamp(new Date(Date.UTC(2026, 0, 1, 0, 0, i))));
    const signature = await key.sign(data);
    assert.ok(verify('sha256', data, publicKey, signature), `signature ${i} verifies`);
    assert.ok(!verify('sha256', new TextEncoder().encode('other'), publicKey, signature), 'and only for its data');
    if (signature[4] === 0 || signature[signature[3] + 6] === 0) padded++;
  }
  // each INTEGER has its high bit set with probability ½: 40 signatures without one would be a broken generator
  assert.ok(padded > 0, 'some signature had a 0x00-padded INTEGER');
});

test("a NodeKey's key imported into WebCrypto gives the same PEM and OpenSSH bytes, and node:crypto verifies its signatures", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-webcrypto-'));
  try {
    const { key: nodeKey } = await NodeKey.loadOrCreate(path.join(dir, 'node-key.pem'));
    const jwk = createPrivateKey(readFileSync(path.join(dir, 'node-key.pem'))).export({ format: 'jwk' });
    const webKey = await WebNodeKey.fromPrivateJwk(jwk);
    assert.deepEqual(webKey.publicKeyPem, nodeKey.publicKeyPem);
    assert.equal(webKey.openSshPublicKey(), nodeKey.openSshPublicKey());
    assert.equal(`${webKey.openSshPublicKey()}\n`, readFileSync(path.join(dir, 'node-key.pem.pub'), 'utf8'));
    const data = new TextEncoder().encode(flowerTimestamp());
    assert.ok(verify('sha256', data, createPublicKey(Buffer.from(nodeKey.publicKeyPem)), await webKey.sign(data)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spkiPem wraps at 64 columns exactly as OpenSSL does', () => {
  for (const curve of ['prime256v1', 'secp384r1', 'secp521r1']) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    const der = publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(new TextDecoder().decode(spkiPem(new Uint8Array(der))), publicKey.export({ type: 'spki', format: 'pem' }).toString(), curve);
  }
});

test('a non-extractable key stays so, survives a structured clone (as IndexedDB stores it), and an extractable one round-trips as JWK', async () => {
  const sealed = await WebNodeKey.generate();
  assert.equal(sealed.keyPair.privateKey.extractable, false);
  await assert.rejects(sealed.exportPrivateJwk());
  const restored = await WebNodeKey.fromKeyPair(structuredClone(sealed.keyPair));
  assert.deepEqual(restored.publicKeyPem, sealed.publicKeyPem);
  const data = new TextEncoder().encode('x');
  assert.ok(verify('sha256', data, createPublicKey(Buffer.from(sealed.publicKeyPem)), await restored.sign(data)));

  const open = await WebNodeKey.generate({ extractable: true });
  const again = await WebNodeKey.fromPrivateJwk(await open.exportPrivateJwk(), { extractable: true });
  assert.deepEqual(again.publicKeyPem, open.publicKeyPem);
  assert.equal(again.keyPair.privateKey.extractable, true);
  assert.equal((await WebNodeKey.fromPrivateJwk(await open.exportPrivateJwk())).keyPair.privateKey.extractable, false, 'non-extractable unless asked');
});

test('keys that are not P-384 signing keys are refused, naming what was found', async () => {
  const p256 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  await assert.rejects(WebNodeKey.fromKeyPair(p256), /P-384 key pair, got ECDSA P-256/);
  await assert.rejects(WebNodeKey.fromPrivateJwk(await crypto.subtle.exportKey('jwk', p256.privateKey)), /crv P-256/);
  const p384 = await crypto.subtle.exportKey('jwk', (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])).publicKey);
  await assert.rejects(WebNodeKey.fromPrivateJwk(p384), /without d/);
});

test('webSha256Hex equals node:crypto, on views into a larger buffer too', async () => {
  const buffer = new Uint8Array(1000).map((_, i) => (i * 37) & 0xff);
  for (const bytes of [new Uint8Array(0), buffer, buffer.subarray(3, 517)]) {
    assert.equal(await webSha256Hex(bytes), await nodeSha256Hex(bytes));
  }
  assert.equal(await webSha256Hex(new TextEncoder().encode('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
