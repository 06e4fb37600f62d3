// The two cryptographic needs of the Fleet protocol, behind interfaces so the protocol
// code runs unchanged on Node (node:crypto, node-crypto.ts) and in a browser (WebCrypto,
// web-crypto.ts). Both are async because WebCrypto is.

import { base64, fromBase64Url } from '../io/base64.js';

/** SHA-256 as lowercase hex: Flower's object id function. */
export type Sha256Hex = (bytes: Uint8Array) => Promise<string>;

/** The node's key pair, as the SuperLink sees it. */
export interface NodeSigner {
  /** The public key exactly as Flower serializes it (SubjectPublicKeyInfo PEM, 64-column
   * lines): the SuperLink looks nodes up by these exact bytes. */
  readonly publicKeyPem: Uint8Array;
  /** ECDSA-with-SHA-256 signature of `data`, DER-encoded (what Python's `cryptography`
   * verifies; WebCrypto's raw r‖s must be converted). */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * `ecdsa-sha2-nistpNNN <base64>` (RFC 5656's public key blob) from an EC public JWK: the
 * form `flwr supernode register <key> <superlink>` reads.
 */
export function openSshEcdsaPublicKey(jwk: { crv?: string; x?: string; y?: string }): string {
  const curve = ({ 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' } as Record<string, string>)[jwk.crv ?? ''];
  if (curve === undefined || !jwk.x || !jwk.y) throw new Error(`no OpenSSH name for an EC public key on curve ${jwk.crv}`);
  const type = `ecdsa-sha2-${curve}`;
  const point = [4, ...fromBase64Url(jwk.x), ...fromBase64Url(jwk.y)];
  const sshString = (bytes: ArrayLike<number>) => [(bytes.length >>> 24) & 0xff, (bytes.length >>> 16) & 0xff, (bytes.length >>> 8) & 0xff, bytes.length & 0xff, ...Array.from(bytes)];
  const text = (s: string) => Array.from(new TextEncoder().encode(s));
  const blob = [...sshString(text(type)), ...sshString(text(curve)), ...sshString(point)];
  return `${type} ${base64(Uint8Array.from(blob))}`;
}
