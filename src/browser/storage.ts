// What a browser node keeps between visits, in the browser's own storage, so a reload
// rejoins as the same node with the same memory:
//   IndexedDB "pfedprompt-node": the node's key pair (CryptoKey objects are stored as they
//     are, so a non-extractable private key never leaves the browser's key store), its
//     personal state per run and cell (the PersonalStore a client keeps between rounds),
//     and the local dataset the person chose (their photos stay in the browser);
//   Cache Storage "pfedprompt-model": the model's files, fetched once.
// Nothing here is sent anywhere.

import type { Tensors } from '../federation/method.js';
import type { PersonalStateStore } from '../node/client-core.js';
import type { DataSource } from './protocol.js';

export const DATABASE = 'pfedprompt-node';
export const MODEL_CACHE = 'pfedprompt-model';
const VERSION = 1;
const IDENTITY = 'identity';
const PERSONAL = 'personal';
const DATA = 'data';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

/** The node's IndexedDB database; as a PersonalStateStore, the personal state of each run's cell (client-core.ts). */
export class NodeStorage implements PersonalStateStore {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(name: string = DATABASE): Promise<NodeStorage> {
    if (typeof indexedDB === 'undefined') throw new Error('IndexedDB is unavailable here: a browser node keeps its key and memory in it');
    const open = indexedDB.open(name, VERSION);
    open.onupgradeneeded = () => {
      for (const store of [IDENTITY, PERSONAL, DATA]) if (!open.result.objectStoreNames.contains(store)) open.result.createObjectStore(store);
    };
    return new NodeStorage(await request(open));
  }

  close(): void {
    this.db.close();
  }

  private async read<T>(store: string, key: string): Promise<T | undefined> {
    return (await request(this.db.transaction(store, 'readonly').objectStore(store).get(key))) as T | undefined;
  }

  private write(store: string, key: string, value: unknown): Promise<void> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(store, 'readwrite');
      tx.objectStore(store).put(value, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error(`IndexedDB: writing ${store}/${key} failed`));
      tx.onabort = () => reject(tx.error ?? new Error(`IndexedDB: writing ${store}/${key} was aborted (storage full?)`));
    });
  }

  private delete(store: string, key: string): Promise<void> {
    return request(this.db.transaction(store, 'readwrite').objectStore(store).delete(key)).then(() => undefined);
  }

  /** The node's key pair, made by `generate` on first use and kept: the same node id on every visit. */
  async keyPair(generate: () => Promise<CryptoKeyPair>): Promise<{ pair: CryptoKeyPair; created: boolean }> {
    const kept = await this.read<CryptoKeyPair>(IDENTITY, 'node');
    if (kept) {
      if (!(kept.privateKey instanceof CryptoKey) || !(kept.publicKey instanceof CryptoKey)) throw new Error(`IndexedDB ${DATABASE}/${IDENTITY}/node holds no key pair`);
      return { pair: kept, created: false };
    }
    const pair = await generate();
    await this.write(IDENTITY, 'node', pair);
    return { pair, created: true };
  }

  /** The personal state of one run's cell, kept between rounds and visits. */
  get(runId: string, cell: string): Promise<Tensors | undefined> {
    return this.loadPersonal(personalKey(runId, cell));
  }

  put(runId: string, cell: string, state: Tensors): Promise<void> {
    return this.savePersonal(personalKey(runId, cell), state);
  }

  /** How many runs' cells have personal state here. */
  async personalStates(): Promise<number> {
    return request(this.db.transaction(PERSONAL, 'readonly').objectStore(PERSONAL).count());
  }

  private async loadPersonal(key: string): Promise<Tensors | undefined> {
    const kept = await this.read<Record<string, unknown>>(PERSONAL, key);
    if (kept === undefined) return undefined;
    for (const [name, value] of Object.entries(kept)) {
      if (!(value instanceof Float32Array)) throw new Error(`personal state ${key}: tensor "${name}" is not a Float32Array`);
    }
    return kept as Tensors;
  }

  private async savePersonal(key: string, state: Tensors): Promise<void> {
    for (const [name, value] of Object.entries(state)) {
      if (!(value instanceof Float32Array)) throw new Error(`personal state ${key}: tensor "${name}" is not a Float32Array`);
    }
    // Structured clone copies the arrays: later changes by the client do not reach the stored state.
    await this.write(PERSONAL, key, state);
  }

  /** The dataset the person chose last (their photos, or a world draw), for rejoining after a reload. */
  async dataSource(): Promise<DataSource | undefined> {
    return this.read<DataSource>(DATA, 'source');
  }

  saveDataSource(source: DataSource): Promise<void> {
    return this.write(DATA, 'source', source);
  }

  forgetDataSource(): Promise<void> {
    return this.delete(DATA, 'source');
  }
}

const personalKey = (runId: string, cell: string): string => `${runId}/${cell}`;

/**
 * A model file's bytes, from Cache Storage when fetched before; otherwise fetched and kept.
 * `onProgress` hears of a download (never of a cache hit).
 */
export async function cachedFetch(url: string, options: { cacheName?: string; onDownload?: (url: string) => void } = {}): Promise<ArrayBuffer> {
  const cache = typeof caches === 'undefined' ? undefined : await caches.open(options.cacheName ?? MODEL_CACHE);
  const hit = await cache?.match(url);
  if (hit) return hit.arrayBuffer();
  options.onDownload?.(url);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  if (cache) await cache.put(url, response.clone());
  return response.arrayBuffer();
}
