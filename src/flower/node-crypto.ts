// Node implementations of crypto.ts: hashing with node:crypto and the node's persistent
// ECDSA P-384 identity on disk.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { writeFileAtomic } from '../io/atomic.js';
import { openSshEcdsaPublicKey, type NodeSigner, type Sha256Hex } from './crypto.js';

export const nodeSha256Hex: Sha256Hex = async (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A node key loaded from (or created at) a PEM file; the SuperLink knows a node by it. */
export class NodeKey implements NodeSigner {
  readonly publicKeyPem: Uint8Array;
  private constructor(private readonly privateKey: KeyObject) {
    this.publicKeyPem = new TextEncoder().encode(
      createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString(),
    );
  }

  /** A fresh key kept only in memory: the node gets a new identity on every start. */
  static ephemeral(): NodeKey {
    return new NodeKey(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey);
  }

  /**
   * Loads the PKCS#8 PEM private key at `path`, or creates a P-384 key there if there is
   * none. Written atomically and readable only by its owner, so a crash never leaves a
   * torn key and a restarted node keeps its identity (and thus its node id).
   * Beside it, `<path>.pub` holds the public key in OpenSSH format, which is what
   * `flwr supernode register <key> <superlink>` reads when the SuperLink runs with
   * `--enable-supernode-auth`.
   */
  static async loadOrCreate(path: string): Promise<{ key: NodeKey; created: boolean }> {
    let pem: string | undefined;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (pem !== undefined) {
      const key = new NodeKey(createPrivateKey(pem));
      key.checkCurve(path);
      return { key, created: false };
    }
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const key = new NodeKey(privateKey);
    await writeFileAtomic(path, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    await writeFileAtomic(`${path}.pub`, `${key.openSshPublicKey()}\n`);
    return { key, created: true };
  }

  private checkCurve(path: string): void {
    const curve = this.privateKey.asymmetricKeyDetails?.namedCurve;
    if (this.privateKey.asymmetricKeyType !== 'ec' || !['secp384r1', 'prime256v1', 'secp521r1'].includes(curve ?? '')) {
      throw new Error(`${path}: expected an EC private key on a NIST curve (P-384 preferred), got ${this.privateKey.asymmetricKeyType} ${curve ?? ''}`);
    }
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    // node:crypto's default ECDSA encoding is DER, as the SuperLink expects.
    return new Uint8Array(sign('sha256', data, this.privateKey));
  }

  /** `ecdsa-sha2-nistpNNN <base64>`: RFC 5656's public key blob, for `flwr supernode register`. */
  openSshPublicKey(): string {
    return openSshEcdsaPublicKey(createPublicKey(this.privateKey).export({ format: 'jwk' }));
  }
}

/**
 * A GET-only fetch over HTTPS that trusts `caPem` (the SuperLink's --ssl-ca-certfile), for the
 * version check: Node's global fetch trusts only the system CAs, so a SuperLink with a private
 * CA would stay "unreachable" forever.
 */
export function fetchTrusting(caPem: Buffer | string): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) => new Promise<Response>((resolve, reject) => {
    const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
    if (!url.startsWith('https:')) {
      fetch(input, init).then(resolve, reject);
      return;
    }
    const req = request(url, { method: 'GET', ca: caPem, signal: init?.signal ?? undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500 })));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  })) as typeof fetch;
}
