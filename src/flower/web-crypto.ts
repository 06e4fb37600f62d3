// WebCrypto implementations of crypto.ts, for a node in a browser (or anywhere
// `globalThis.crypto.subtle` exists, Node 20 included): SHA-256 object ids and the node's
// ECDSA P-384 identity. Two conversions make WebCrypto speak Flower's formats:
// signatures come out as raw r‖s and Python's `cryptography` verifies DER, and the public
// key exports as SPKI DER, which Flower knows as PEM with 64-column lines.
import { base64 } from '../io/base64.js';
import type { NodeSigner, Sha256Hex } from './crypto.js';
import { openSshEcdsaPublicKey } from './crypto.js';

const ALGORITHM: EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-384' };
const SIGNATURE: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (s === undefined) throw new Error('WebCrypto is unavailable here (crypto.subtle needs a secure context: https or http://127.0.0.1 / localhost)');
  return s;
}

export const webSha256Hex: Sha256Hex = async (bytes) => {
  const digest = new Uint8Array(await subtle().digest('SHA-256', bytes.slice() /* ArrayBuffer-backed, as BufferSource wants */));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
};

/**
 * The node's identity as a WebCrypto key pair. Generated non-extractable by default, so
 * the private key never leaves the browser's key store: keep `keyPair` itself (IndexedDB
 * stores CryptoKey objects) and rebuild with `fromKeyPair`. An extractable key can also
 * travel as JWK (`exportPrivateJwk` / `fromPrivateJwk`).
 */
export class WebNodeKey implements NodeSigner {
  private constructor(
    readonly keyPair: CryptoKeyPair,
    readonly publicKeyPem: Uint8Array,
    /** The public point (x, y) as JWK, for OpenSSH export. */
    private readonly publicJwk: JsonWebKey,
  ) {}

  static async generate(options: { extractable?: boolean } = {}): Promise<WebNodeKey> {
    const pair = await subtle().generateKey(ALGORITHM, options.extractable ?? false, ['sign', 'verify']);
    return WebNodeKey.fromKeyPair(pair);
  }

  /** A pair kept earlier (e.g. read back from IndexedDB); its public key is always exportable. */
  static async fromKeyPair(pair: CryptoKeyPair): Promise<WebNodeKey> {
    const algorithm = pair.privateKey.algorithm as EcKeyAlgorithm;
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-384') {
      throw new Error(`node key: expected an ECDSA P-384 key pair, got ${algorithm.name} ${algorithm.namedCurve ?? ''}`);
    }
    if (!pair.privateKey.usages.includes('sign')) throw new Error('node key: the private key is not usable for signing');
    const spki = new Uint8Array(await subtle().exportKey('spki', pair.publicKey));
    const jwk = await subtle().exportKey('jwk', pair.publicKey);
    return new WebNodeKey(pair, spkiPem(spki), jwk);
  }

  /** A private key as JWK (`d`, `x`, `y` on P-384); `extractable` says whether it may be exported again. */
  static async fromPrivateJwk(jwk: JsonWebKey, options: { extractable?: boolean } = {}): Promise<WebNodeKey> {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-384' || !jwk.d || !jwk.x || !jwk.y) {
      throw new Error(`node key: expected a private EC P-384 JWK (kty EC, crv P-384, d, x, y), got kty ${jwk.kty} crv ${jwk.crv}${jwk.d ? '' : ' without d'}`);
    }
    const privateKey = await subtle().importKey('jwk', { kty: 'EC', crv: 'P-384', d: jwk.d, x: jwk.x, y: jwk.y }, ALGORITHM, options.extractable ?? false, ['sign']);
    const publicKey = await subtle().importKey('jwk', { kty: 'EC', crv: 'P-384', x: jwk.x, y: jwk.y }, ALGORITHM, true, ['verify']);
    return WebNodeKey.fromKeyPair({ privateKey, publicKey });
  }

  /** The private key as JWK; refused for a non-extractable key (WebCrypto's own error). */
  async exportPrivateJwk(): Promise<JsonWebKey> {
    return subtle().exportKey('jwk', this.keyPair.privateKey);
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    const raw = new Uint8Array(await subtle().sign(SIGNATURE, this.keyPair.privateKey, data.slice()));
    return ecdsaRawToDer(raw);
  }

  /** `ecdsa-sha2-nistp384 <base64>`: what `flwr supernode register` reads. */
  openSshPublicKey(): string {
    return openSshEcdsaPublicKey(this.publicJwk);
  }
}

/**
 * WebCrypto's ECDSA signature (IEEE P1363: r and s, each the curve's size, big-endian)
 * as DER: SEQUENCE { INTEGER r, INTEGER s }, each INTEGER minimal and non-negative
 * (leading zero bytes dropped, one 0x00 put back where the high bit is set).
 */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Error(`ECDSA signature: expected r‖s of even length, got ${raw.length} bytes`);
  const half = raw.length / 2;
  const r = derInteger(raw.subarray(0, half));
  const s = derInteger(raw.subarray(half));
  return concat([Uint8Array.of(0x30), derLength(r.length + s.length), r, s]);
}

function derInteger(unsigned: Uint8Array): Uint8Array {
  let start = 0;
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++;
  const body = unsigned.subarray(start);
  const pad = body[0] & 0x80 ? Uint8Array.of(0) : new Uint8Array(0);
  return concat([Uint8Array.of(0x02), derLength(body.length + pad.length), pad, body]);
}

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** SPKI DER → PEM exactly as OpenSSL (and so Node and Python's `cryptography`) writes it. */
export function spkiPem(spki: Uint8Array): Uint8Array {
  const lines = base64(spki).match(/.{1,64}/g) ?? [];
  return new TextEncoder().encode(`-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
