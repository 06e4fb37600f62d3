// Safetensors files on disk (Node): the format itself, on bytes, is
// safetensors-format.ts, re-exported here.
import { open } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { writeFileAtomic } from './atomic.js';
import { DTYPE_BYTES, assertLittleEndianHost, numel, parseHeader, tensorViews, type SafetensorsDtype, type SafetensorsFile } from './safetensors-format.js';

export * from './safetensors-format.js';

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** Reads and validates a whole safetensors file. Every error names the file, and the tensor where there is one. */
export async function readSafetensors(filePath: string): Promise<SafetensorsFile> {
  assertLittleEndianHost();
  const fail = (message: string): never => {
    throw new Error(`${filePath}: ${message}`);
  };
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(filePath, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail('no such file');
    throw err;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) fail('not a regular file');
    const size = stats.size;
    if (size < 8) fail(`file is ${size} bytes long, too short for a safetensors file (it starts with an 8-byte header length)`);

    const lengthBytes = new Uint8Array(8);
    await readExactly(handle, lengthBytes, 0, filePath);
    const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (headerLength > BigInt(size - 8)) {
      fail(`header length ${headerLength} exceeds the ${size - 8} bytes that follow it: not a safetensors file, or truncated`);
    }
    const headerBytes = new Uint8Array(Number(headerLength));
    await readExactly(handle, headerBytes, 8, filePath);
    const dataStart = 8 + headerBytes.byteLength;
    const dataLength = size - dataStart;

    const { metadata, layout } = parseHeader(headerBytes, dataLength, fail);

    if (dataLength > bufferConstants.MAX_LENGTH) {
      fail(`data section of ${dataLength} bytes is larger than one buffer can hold (${bufferConstants.MAX_LENGTH}); shard the checkpoint`);
    }
    // Not pooled, so the buffer starts at offset 0 of its own ArrayBuffer: tensor
    // alignment then depends only on the file's own offsets.
    const data = Buffer.allocUnsafeSlow(dataLength);
    await readExactly(handle, data, dataStart, filePath);

    return { path: filePath, metadata, tensors: tensorViews(layout, data, filePath) };
  } finally {
    await handle.close();
  }
}

async function readExactly(
  handle: Awaited<ReturnType<typeof open>>,
  into: Uint8Array,
  position: number,
  filePath: string,
): Promise<void> {
  const maxRead = 1 << 30; // a single read() is capped near 2 GiB
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await handle.read(into, done, Math.min(maxRead, into.byteLength - done), position + done);
    if (bytesRead === 0) throw new Error(`${filePath}: file ended early while reading (was it modified during the read?)`);
    done += bytesRead;
  }
}

// ---------------------------------------------------------------- writing

/**
 * A tensor to write. Without `dtype` it is inferred from the array type
 * (Float32Array → F32, BigInt64Array → I64, Int32Array → I32, ...); with one,
 * `data`'s bytes are written as they are (how to write F16/BF16 bits, BOOL, or
 * an entry read from another file unchanged).
 */
export interface WritableTensor {
  readonly shape: readonly number[];
  readonly data: ArrayBufferView;
  readonly dtype?: SafetensorsDtype;
}

/**
 * Writes `tensors` as a safetensors file, atomically. The header is padded to
 * a multiple of 8 bytes and tensors are laid out widest element first, so every
 * tensor of the result is aligned for a typed-array view.
 */
export async function writeSafetensors(
  filePath: string,
  tensors: ReadonlyMap<string, WritableTensor> | Readonly<Record<string, WritableTensor>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  assertLittleEndianHost();
  const list = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)) as [string, WritableTensor][];
  const prepared = list.map(([name, t]) => {
    if (name === '__metadata__') throw new Error(`${filePath}: "__metadata__" cannot be a tensor name`);
    const dtype = t.dtype ?? inferDtype(t.data, name, filePath);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const needed = numel(t.shape) * DTYPE_BYTES[dtype];
    if (bytes.byteLength !== needed) {
      throw new Error(`${filePath}: tensor "${name}" has ${bytes.byteLength} bytes, but dtype ${dtype} × shape ${formatShape(t.shape)} needs ${needed}`);
    }
    return { name, dtype, shape: [...t.shape], bytes };
  });
  // Stable sort: widest elements first keeps each offset a multiple of its element size.
  prepared.sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype]);

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header['__metadata__'] = { ...metadata };
  let offset = 0;
  for (const t of prepared) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.byteLength));

  await writeFileAtomic(filePath, [lengthBytes, headerBytes, ...prepared.map((t) => t.bytes)]);
}

function inferDtype(data: ArrayBufferView, name: string, filePath: string): SafetensorsDtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof BigUint64Array) return 'U64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Uint32Array) return 'U32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof Uint8Array) return 'U8';
  // Uint16Array could be U16, F16 or BF16 bits: the caller must say which.
  throw new Error(`${filePath}: tensor "${name}": cannot infer a dtype from ${data.constructor.name}; pass dtype explicitly`);
}
