// The two cryptographic needs of the Fleet protocol, behind interfaces so the protocol
// code runs unchanged on Node (node:crypto, node-crypto.ts) and in a browser (WebCrypto,
// later). Both are async because WebCrypto is.

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
