// Writes that never leave a half-written file behind: the bytes go to a
// temporary file beside the target, are flushed to disk, and only then is the
// temporary renamed over the target. A rename within one directory is atomic,
// so readers see either the old file or the new one, never a torn mix.
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

/** The bytes to write: text (UTF-8), one buffer, or a sequence of chunks (so large files need not be concatenated first). */
export type AtomicWriteData = string | Uint8Array | Iterable<Uint8Array>;

/** Options: `mode` sets the file's permission bits from creation on (e.g. 0o600 for a private key). */
export interface AtomicWriteOptions {
  mode?: number;
}

/** Writes `data` to `filePath` atomically: temporary file in the same directory, fsync, rename. */
export async function writeFileAtomic(filePath: string, data: AtomicWriteData, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = path.dirname(filePath);
  // Same directory, so the rename never crosses a file system; a dot name keeps it out of listings.
  const tmp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  // The mode applies from creation, so a secret is never readable by others, not even briefly.
  const handle = await open(tmp, 'wx', options.mode ?? 0o666);
  try {
    try {
      for (const chunk of chunksOf(data)) await writeAll(handle, chunk);
      await handle.sync(); // the data must be on disk before the rename makes it visible
    } finally {
      await handle.close();
    }
    await rename(tmp, filePath);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

function* chunksOf(data: AtomicWriteData): Iterable<Uint8Array> {
  if (typeof data === 'string') yield Buffer.from(data, 'utf8');
  else if (data instanceof Uint8Array) yield data;
  else yield* data;
}

type FileHandle = Awaited<ReturnType<typeof open>>;

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  // One write() call may write fewer bytes than asked (and is capped near 2 GiB).
  const maxWrite = 1 << 30;
  let done = 0;
  while (done < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, done, Math.min(maxWrite, chunk.byteLength - done));
    done += bytesWritten;
  }
}

/** Makes the rename itself durable; best effort, as some platforms cannot open a directory. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Not fatal: the file is complete either way.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
