// The on-disk feature store: image features computed once per (model, image,
// view) and read back by every later run, method and seed.
//
//   <root>/<model fingerprint>/<shard>.safetensors
//
// root: --cache, else $PFEDPROMPT_CACHE, else ~/.cache/pfedprompt/features.
// Model fingerprint: SHA-256 over the model's config, preprocessing and every
// tensor's values (about 0.4 s for ViT-B/16's 600 MB, once per model object),
// so the same weights share features whatever file or layout they came from,
// and any changed weight starts a new folder.
// Feature key: the image's path relative to the dataset root with its size
// and modification time (a stat, not a read, so keying thousands of images is
// instant; an edited file gets new features, a file replaced by one of equal
// size and mtime does not — the rule make and rsync use), then the view:
// view 0 is the test-time preprocessing, views 1 … V the seeded augmentations,
// named with the augmentation recipe and seed.
//
// A shard is one encoded batch, written once and never changed: tensors
// `embeds` [n, E] F32 and `spatial` [n, …] (F16 by default, F32 on request),
// the n keys in the metadata, CRC-32 checksums of the keys and of each tensor.
// writeSafetensors writes it to a temporary file, fsyncs and renames, so a
// killed run leaves complete shards only (and a stray temporary, removed
// later). Readers only see finished shards; a shard that fails any check is
// reported once, set aside as `*.corrupt`, and its items recomputed. Two
// processes never write the same file (names carry time, pid and random
// bytes), so running two at once is safe; at worst both compute an item and
// the index keeps either copy.

import { createHash, randomBytes } from 'node:crypto';
import { open, mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { ImageFeatures } from '../clip/model.js';
import type { ClipWeights } from '../clip/weights.js';
import type { ImageItem } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { float32ToHalfBits, halfBitsToFloat32, writeSafetensors } from '../io/safetensors.js';
import { AUGMENTATION_ID } from './augment.js';

/** Written into every shard; shards of another format are ignored (and recomputed). */
const SHARD_FORMAT = 'pfedprompt-features/1';
const SHARD_SUFFIX = '.safetensors';
const CORRUPT_SUFFIX = '.corrupt';
/** Temporary files older than this were left by a killed writer (a shard takes well under a second to write). */
const STALE_TEMPORARY_MS = 60 * 60 * 1000;
/** Shards open at once while indexing or reading. */
const CONCURRENT_FILES = 8;
/** A shard header holds a batch's keys: anything near this size is not one of ours. */
const MAX_HEADER_BYTES = 16 << 20;

export type SpatialDtype = 'F16' | 'F32';

/** One item's features as stored: the embedding [E], and the spatial features (row-major, `spatialShape`). */
export interface CachedFeatures {
  readonly embed: Float32Array;
  /** Absent when the read asked for embeddings only. */
  readonly spatial?: Float32Array;
  /** Shape of one item's spatial features: ViT [1+HW, W], ResNet [C, h, w]. */
  readonly spatialShape: readonly number[];
}

export interface FeatureCacheOptions {
  /** Cache root; default defaultCacheRoot(). */
  readonly root?: string;
  /** How spatial features are stored. F16 (default) halves the disk and read volume at ~3 significant digits. */
  readonly spatialDtype?: SpatialDtype;
  /** Where problems (corrupt shards) are reported; default console.warn. */
  readonly onWarning?: (message: string) => void;
}

/** ~/.cache/pfedprompt/features, or $PFEDPROMPT_CACHE, or under $XDG_CACHE_HOME. */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PFEDPROMPT_CACHE) return env.PFEDPROMPT_CACHE;
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'pfedprompt', 'features');
}

// ---------------------------------------------------------------- keys

const fingerprints = new WeakMap<ClipWeights, string>();

/** Hex SHA-256 (first 20 digits) of the model's config, preprocessing and tensors; computed once per weights object. */
export function modelFingerprint(weights: ClipWeights): string {
  let fingerprint = fingerprints.get(weights);
  if (!fingerprint) {
    const hash = createHash('sha256');
    hash.update(JSON.stringify({ config: weights.config, preprocess: weights.preprocess }));
    for (const name of [...weights.tensors.keys()].sort()) {
      const t = weights.tensors.get(name)!;
      hash.update(`\n${name} [${t.shape.join(',')}]\n`);
      hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    fingerprint = hash.digest('hex').slice(0, 20);
    fingerprints.set(weights, fingerprint);
  }
  return fingerprint;
}

/** The image's part of a feature key: relative path, size and mtime (ms). Rejects when the file cannot be stat'ed. */
export async function imageKey(item: ImageItem): Promise<string> {
  const s = await stat(item.path);
  if (!s.isFile()) throw new Error(`${item.path}: not a regular file`);
  return `${item.relativePath}|${s.size}|${Math.trunc(s.mtimeMs)}`;
}

/** The key of one view of an image: view 0 un-augmented, views ≥ 1 augmented with `augmentSeed`. */
export function featureKey(image: string, view: number, augmentSeed: number): string {
  if (!Number.isInteger(view) || view < 0) throw new Error(`view must be a non-negative integer, got ${view}`);
  return view === 0 ? `${image}#test` : `${image}#${AUGMENTATION_ID}:${augmentSeed}:${view}`;
}

// ---------------------------------------------------------------- shards

interface TensorPlace {
  readonly dtype: 'F32' | 'F16';
  readonly shape: readonly number[];
  /** Byte range within the file. */
  readonly start: number;
  readonly end: number;
  readonly crc: number;
}

interface Shard {
  readonly file: string;
  readonly keys: readonly string[];
  readonly embeds: TensorPlace;
  readonly spatial: TensorPlace;
}

/** Thrown for a shard that is not what it should be (as opposed to an I/O error). */
class CorruptShardError extends Error {}

/** A tensor's entry in a safetensors header, as parsed: nothing checked yet. */
interface HeaderEntry {
  readonly dtype?: unknown;
  readonly shape?: unknown;
  readonly data_offsets?: unknown;
}

/** The header of a shard, checked against everything it can be checked against without reading the data. */
async function readShardHeader(file: string): Promise<Shard> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const corrupt = (why: string): never => {
      throw new CorruptShardError(why);
    };
    if (size < 8) corrupt(`${size} bytes long`);
    const lengthBytes = Buffer.alloc(8);
    await handle.read(lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength > Math.min(MAX_HEADER_BYTES, size - 8)) corrupt(`header length ${headerLength} does not fit the file's ${size} bytes`);
    const headerBytes = Buffer.alloc(headerLength);
    const { bytesRead } = await handle.read(headerBytes, 0, headerLength, 8);
    if (bytesRead !== headerLength) corrupt('file ended inside the header');
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch {
      return corrupt('header is not JSON');
    }
    if (typeof header !== 'object' || header === null) corrupt('header is not a JSON object');
    const meta = (header.__metadata__ ?? {}) as Record<string, string | undefined>;
    if (meta.format !== SHARD_FORMAT) corrupt(`format ${JSON.stringify(meta.format)}, expected ${SHARD_FORMAT}`);
    const embedsEntry = header.embeds as HeaderEntry | undefined;
    const spatialEntry = header.spatial as HeaderEntry | undefined;
    if (crc32(headerDescriptor(meta.keys, embedsEntry, spatialEntry)) !== Number(meta.header_crc32)) corrupt('header checksum mismatch');
    // The checksum vouches for the keys, dtypes and shapes; the byte offsets are checked below.
    const keys = JSON.parse(meta.keys!) as string[];
    const dataStart = 8 + headerLength;
    const place = (entry: HeaderEntry, name: string): TensorPlace => {
      if (!Array.isArray(entry.data_offsets)) corrupt(`tensor ${name} has no data_offsets`);
      const [begin, end] = entry.data_offsets as [number, number];
      const crc = Number(meta[`${name}_crc32`]);
      return { dtype: entry.dtype as TensorPlace['dtype'], shape: entry.shape as number[], start: dataStart + begin, end: dataStart + end, crc };
    };
    const embeds = place(embedsEntry!, 'embeds');
    const spatial = place(spatialEntry!, 'spatial');
    const bytes = (t: TensorPlace): number => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
    const laidOut =
      embeds.dtype === 'F32' && (spatial.dtype === 'F16' || spatial.dtype === 'F32') &&
      embeds.shape.length === 2 && embeds.shape[0] === keys.length && spatial.shape[0] === keys.length &&
      embeds.start === dataStart && embeds.end - embeds.start === bytes(embeds) &&
      spatial.start === embeds.end && spatial.end - spatial.start === bytes(spatial);
    if (!laidOut) corrupt('tensors are not laid out as a shard');
    if (spatial.end !== size) corrupt(`${size} bytes long, its header describes ${spatial.end} (truncated?)`);
    return { file, keys, embeds, spatial };
  } finally {
    await handle.close();
  }
}

/** What the header checksum covers: the keys exactly as stored, and the tensors' dtypes and shapes. */
function headerDescriptor(keys: unknown, embeds: HeaderEntry | undefined, spatial: HeaderEntry | undefined): string {
  if (typeof keys !== 'string' || !embeds || !spatial) throw new CorruptShardError('header lacks keys or tensors');
  return JSON.stringify([keys, embeds.dtype, embeds.shape, spatial.dtype, spatial.shape]);
}

/** The bytes of a tensor of a shard, checked against its CRC. */
async function readTensor(handle: Awaited<ReturnType<typeof open>>, t: TensorPlace): Promise<Buffer> {
  // Its own ArrayBuffer from offset 0, so typed views of it are aligned.
  const bytes = Buffer.allocUnsafeSlow(t.end - t.start);
  const { bytesRead } = await handle.read(bytes, 0, bytes.length, t.start);
  if (bytesRead !== bytes.length) throw new CorruptShardError('file ended inside the data');
  if (crc32(bytes) !== t.crc) throw new CorruptShardError('data checksum mismatch');
  return bytes;
}

// ---------------------------------------------------------------- the store

/** Where one key's features are: a shard and a row of it. */
interface Place {
  readonly shard: Shard;
  readonly row: number;
}

export class FeatureCache {
  /** Key → copies (several when processes computed the same item). */
  private readonly index = new Map<string, Place[]>();
  /** Shard files already indexed, set aside, or found unreadable. */
  private readonly seen = new Set<string>();
  private readonly bad = new Set<Shard>();
  private readonly warn: (message: string) => void;

  private constructor(
    /** The model's folder under the cache root. */
    readonly dir: string,
    readonly fingerprint: string,
    readonly spatialDtype: SpatialDtype,
    onWarning: ((message: string) => void) | undefined,
  ) {
    this.warn = onWarning ?? ((message) => console.warn(message));
  }

  /** The model's store under the cache root, created if absent and indexed. */
  static async open(weights: ClipWeights, options: FeatureCacheOptions = {}): Promise<FeatureCache> {
    const fingerprint = modelFingerprint(weights);
    const dir = path.join(options.root ?? defaultCacheRoot(), fingerprint);
    await mkdir(dir, { recursive: true });
    const about = path.join(dir, 'model.json');
    if (!(await stat(about).catch(() => undefined))) {
      // For people looking at the cache: which model a folder belongs to.
      const description = { source: weights.source, config: weights.config, preprocess: weights.preprocess, fingerprint };
      await writeFileAtomic(about, `${JSON.stringify(description, null, 2)}\n`);
    }
    const cache = new FeatureCache(dir, fingerprint, options.spatialDtype ?? 'F16', options.onWarning);
    await cache.refresh();
    return cache;
  }

  /** Items with features stored (in the requested spatial dtype). */
  get size(): number {
    let n = 0;
    for (const places of this.index.values()) if (this.usable(places)) n++;
    return n;
  }

  /** Whether `key` has features stored; get() can still find them corrupt. */
  has(key: string): boolean {
    return this.usable(this.index.get(key)) !== undefined;
  }

  /** Indexes the shards written since the last look, by this process or any other. */
  async refresh(): Promise<void> {
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    const fresh = names.filter((n) => n.endsWith(SHARD_SUFFIX) && !n.startsWith('.') && !this.seen.has(n));
    await forEachLimited(fresh, CONCURRENT_FILES, async (name) => {
      this.seen.add(name);
      const file = path.join(this.dir, name);
      try {
        this.add(await readShardHeader(file));
      } catch (err) {
        await this.setAside(file, err as Error);
      }
    });
    await this.removeStaleTemporaries(names);
  }

  /**
   * Features for each key, or undefined where none are stored or the shard
   * holding them fails its checks. Each shard is read once (its embeddings,
   * and its spatial features unless `spatial` is false) whatever the number
   * of keys it serves.
   */
  async get(keys: readonly string[], options: { spatial?: boolean } = {}): Promise<(CachedFeatures | undefined)[]> {
    const wantSpatial = options.spatial ?? true;
    const out: (CachedFeatures | undefined)[] = new Array(keys.length).fill(undefined);
    let pending = keys.map((_, i) => i);
    // A shard that fails is dropped from the index; its keys then try their other copies, if any.
    while (pending.length > 0) {
      const byShard = new Map<Shard, number[]>();
      for (const i of pending) {
        const place = this.usable(this.index.get(keys[i]));
        if (!place) continue;
        const list = byShard.get(place.shard) ?? [];
        list.push(i);
        byShard.set(place.shard, list);
      }
      const failed: number[] = [];
      await forEachLimited([...byShard], CONCURRENT_FILES, async ([shard, wanted]) => {
        const rows = await this.readRows(shard, wanted.map((i) => this.rowOf(shard, keys[i])), wantSpatial);
        if (rows) wanted.forEach((i, r) => (out[i] = rows[r]));
        else failed.push(...wanted);
      });
      pending = failed;
    }
    return out;
  }

  /**
   * Stores one encoded batch as a new shard: `keys[i]` names row i of
   * `features`. Returns the features as the cache gives them back (spatial
   * rounded to F16 unless stored as F32), so fresh and cached runs agree.
   */
  async put(keys: readonly string[], features: ImageFeatures): Promise<ImageFeatures> {
    const { embeds, spatial } = features;
    const n = keys.length;
    if (embeds.shape.length !== 2 || embeds.shape[0] !== n || spatial.shape[0] !== n) {
      throw new Error(`FeatureCache.put: ${n} keys for embeds [${embeds.shape}] and spatial [${spatial.shape}]`);
    }
    const spatialStored = this.spatialDtype === 'F16' ? float32ToHalfBits(spatial.data) : spatial.data;
    const keysJson = JSON.stringify(keys);
    const embedsEntry = { dtype: 'F32', shape: embeds.shape };
    const spatialEntry = { dtype: this.spatialDtype, shape: spatial.shape };
    const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const metadata = {
      format: SHARD_FORMAT,
      keys: keysJson,
      header_crc32: String(crc32(headerDescriptor(keysJson, embedsEntry, spatialEntry))),
      embeds_crc32: String(crc32(bytesOf(embeds.data))),
      spatial_crc32: String(crc32(bytesOf(spatialStored))),
    };
    const name = `${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString('hex')}${SHARD_SUFFIX}`;
    const file = path.join(this.dir, name);
    await writeSafetensors(
      file,
      {
        embeds: { shape: embeds.shape, data: embeds.data, dtype: 'F32' },
        spatial: { shape: spatial.shape, data: spatialStored, dtype: this.spatialDtype },
      },
      metadata,
    );
    this.seen.add(name);
    // Index it from its header, as any other process will.
    this.add(await readShardHeader(file));
    const returned = spatialStored instanceof Uint16Array ? halfBitsToFloat32(spatialStored) : spatial.data;
    return { embeds, spatial: { shape: spatial.shape, data: returned } };
  }

  // ------------------------------------------------------------ internals

  private add(shard: Shard): void {
    shard.keys.forEach((key, row) => {
      const places = this.index.get(key);
      if (places) places.push({ shard, row });
      else this.index.set(key, [{ shard, row }]);
    });
  }

  private usable(places: readonly Place[] | undefined): Place | undefined {
    return places?.find((p) => !this.bad.has(p.shard) && p.shard.spatial.dtype === this.spatialDtype);
  }

  private rowOf(shard: Shard, key: string): number {
    return this.index.get(key)!.find((p) => p.shard === shard)!.row;
  }

  /** Rows of a shard, or undefined (after reporting it) when the shard fails. */
  private async readRows(shard: Shard, rows: readonly number[], wantSpatial: boolean): Promise<CachedFeatures[] | undefined> {
    let embedBytes: Buffer;
    let spatialBytes: Buffer | undefined;
    try {
      const handle = await open(shard.file, 'r');
      try {
        embedBytes = await readTensor(handle, shard.embeds);
        if (wantSpatial) spatialBytes = await readTensor(handle, shard.spatial);
      } finally {
        await handle.close();
      }
    } catch (err) {
      this.bad.add(shard);
      await this.setAside(shard.file, err as Error);
      return undefined;
    }
    const E = shard.embeds.shape[1];
    const spatialShape = shard.spatial.shape.slice(1);
    const perItem = spatialShape.reduce((a, b) => a * b, 1);
    const embeds = new Float32Array(embedBytes.buffer, 0, shard.keys.length * E);
    const spatial =
      spatialBytes === undefined ? undefined
      : shard.spatial.dtype === 'F16' ? new Uint16Array(spatialBytes.buffer, 0, shard.keys.length * perItem)
      : new Float32Array(spatialBytes.buffer, 0, shard.keys.length * perItem);
    return rows.map((row) => ({
      embed: embeds.slice(row * E, (row + 1) * E),
      spatial:
        spatial instanceof Uint16Array ? halfBitsToFloat32(spatial.subarray(row * perItem, (row + 1) * perItem))
        : spatial?.slice(row * perItem, (row + 1) * perItem),
      spatialShape,
    }));
  }

  /**
   * Reports a shard that cannot be used, once. A corrupt one is renamed
   * `*.corrupt` so no run reads it again (shards never change once written,
   * so a failed check is real corruption, not a write in progress); one that
   * merely could not be read now (permissions, I/O) is left in place.
   */
  private async setAside(file: string, err: Error): Promise<void> {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return; // set aside by another process, or the cache was cleared
    if (!(err instanceof CorruptShardError)) {
      this.warn(`feature cache: cannot read ${file} (${err.message}); its items will be recomputed`);
      return;
    }
    this.warn(`feature cache: ${file} is corrupt (${err.message}); set aside as ${path.basename(file)}${CORRUPT_SUFFIX}, its items will be recomputed`);
    await rename(file, file + CORRUPT_SUFFIX).catch(() => undefined);
  }

  /** Removes temporaries (".<shard>.<pid>.<random>.tmp") left by writers killed mid-write. */
  private async removeStaleTemporaries(names: readonly string[]): Promise<void> {
    const now = Date.now();
    for (const name of names) {
      if (!(name.startsWith('.') && name.endsWith('.tmp'))) continue;
      const file = path.join(this.dir, name);
      const s = await stat(file).catch(() => undefined);
      if (s && now - s.mtimeMs > STALE_TEMPORARY_MS) await unlink(file).catch(() => undefined);
    }
  }
}

// ---------------------------------------------------------------- helpers

/** Runs `work` over `items`, at most `limit` at a time. */
async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
}
