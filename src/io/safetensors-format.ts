// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape
// and [begin, end) byte range in the data section, then the data section.
//
// A file is held in one buffer and every tensor is a view of it, so loading
// costs the file's size once; conversions (F16 → F32, unaligned copies) make
// new arrays only for the tensors asked for. This module works on bytes and
// runs anywhere (a browser fetches the model's file); safetensors.ts reads
// and writes files in Node.

/** Bytes per element of every dtype this reader understands. */
export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

export const isFloatDtype = (dtype: SafetensorsDtype): boolean =>
  dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';

/** One tensor of a file, its bytes still raw. */
export interface SafetensorsEntry {
  readonly name: string;
  /** The file it came from, for error messages. */
  readonly file: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Raw little-endian bytes: a view into the file's buffer, not a copy. */
  readonly data: Uint8Array;
}

export interface SafetensorsFile {
  readonly path: string;
  /** The header's `__metadata__` (string → string), empty when absent. */
  readonly metadata: Record<string, string>;
  /** Tensors in header order. */
  readonly tensors: Map<string, SafetensorsEntry>;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

// ---------------------------------------------------------------- reading

/**
 * Parses a whole safetensors file held in memory (fetched, or read by
 * readSafetensors). Tensors are views of `bytes`; `label` names it in errors.
 */
export function parseSafetensors(bytes: Uint8Array, label: string): SafetensorsFile {
  assertLittleEndianHost();
  const fail = (message: string): never => {
    throw new Error(`${label}: ${message}`);
  };
  const size = bytes.byteLength;
  if (size < 8) fail(`file is ${size} bytes long, too short for a safetensors file (it starts with an 8-byte header length)`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(size - 8)) {
    fail(`header length ${headerLength} exceeds the ${size - 8} bytes that follow it: not a safetensors file, or truncated`);
  }
  const dataStart = 8 + Number(headerLength);
  const { metadata, layout } = parseHeader(bytes.subarray(8, dataStart), size - dataStart, fail);
  return { path: label, metadata, tensors: tensorViews(layout, bytes.subarray(dataStart), label) };
}

/** Each tensor of `layout` as a view of the data section `data`. */
export function tensorViews(layout: readonly TensorLayout[], data: Uint8Array, label: string): Map<string, SafetensorsEntry> {
  const tensors = new Map<string, SafetensorsEntry>();
  for (const t of layout) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset + t.begin, t.end - t.begin);
    tensors.set(t.name, { name: t.name, file: label, dtype: t.dtype, shape: t.shape, data: bytes });
  }
  return tensors;
}

export interface TensorLayout {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export function parseHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  fail: (message: string) => never,
): { metadata: Record<string, string>; layout: TensorLayout[] } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(header)) fail('header is not a JSON object');
  const entries = header as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  const rawMetadata = entries['__metadata__'];
  if (rawMetadata !== undefined && rawMetadata !== null) {
    if (!isPlainObject(rawMetadata)) fail('"__metadata__" is not a JSON object');
    for (const [key, value] of Object.entries(rawMetadata as Record<string, unknown>)) {
      metadata[key] = typeof value === 'string' ? value : JSON.stringify(value);
    }
  }

  const layout: TensorLayout[] = [];
  for (const [name, raw] of Object.entries(entries)) {
    if (name === '__metadata__') continue;
    const where = `tensor "${name}"`;
    if (!isPlainObject(raw)) fail(`${where}: header entry is not a JSON object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      fail(`${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      fail(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger) || offsets[0] > offsets[1]) {
      fail(`${where}: data_offsets ${JSON.stringify(offsets)} are not a [begin, end] pair of byte offsets`);
    }
    const knownDtype = dtype as SafetensorsDtype;
    const [begin, end] = offsets as [number, number];
    const needed = numel(shape as number[]) * DTYPE_BYTES[knownDtype];
    if (end - begin !== needed) {
      fail(`${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but dtype ${knownDtype} × shape ${formatShape(shape as number[])} needs ${needed}`);
    }
    if (end > dataLength) {
      fail(`${where} ends at byte ${end} of the data section, which holds only ${dataLength} bytes: the file is truncated`);
    }
    layout.push({ name, dtype: knownDtype, shape: shape as number[], begin, end });
  }
  return { metadata, layout };
}

const isPlainObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNonNegativeInteger = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function assertLittleEndianHost(): void {
  // Typed-array views use the host's byte order; safetensors is little-endian.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors: big-endian hosts are not supported');
}

// ---------------------------------------------------------------- typed access

export type TensorArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

/**
 * The entry's elements as the matching typed array: a view when the bytes are
 * aligned, a copy otherwise. F16 and BF16 come back as their raw Uint16 bits
 * (see toFloat32 for values); BOOL as Uint8 0/1.
 */
export function toTypedArray(entry: SafetensorsEntry): TensorArray {
  const n = numel(entry.shape);
  switch (entry.dtype) {
    case 'F64': return new Float64Array(alignedBuffer(entry, 8), alignedOffset(entry, 8), n);
    case 'F32': return new Float32Array(alignedBuffer(entry, 4), alignedOffset(entry, 4), n);
    case 'F16':
    case 'BF16':
    case 'U16': return new Uint16Array(alignedBuffer(entry, 2), alignedOffset(entry, 2), n);
    case 'I64': return new BigInt64Array(alignedBuffer(entry, 8), alignedOffset(entry, 8), n);
    case 'U64': return new BigUint64Array(alignedBuffer(entry, 8), alignedOffset(entry, 8), n);
    case 'I32': return new Int32Array(alignedBuffer(entry, 4), alignedOffset(entry, 4), n);
    case 'U32': return new Uint32Array(alignedBuffer(entry, 4), alignedOffset(entry, 4), n);
    case 'I16': return new Int16Array(alignedBuffer(entry, 2), alignedOffset(entry, 2), n);
    case 'I8': return new Int8Array(entry.data.buffer, entry.data.byteOffset, n);
    case 'U8':
    case 'BOOL': return new Uint8Array(entry.data.buffer, entry.data.byteOffset, n);
  }
}

// A typed view must start at a multiple of its element size; bytes that do not
// are copied into a fresh (aligned) buffer. These two go together: the buffer
// to view and the offset within it.
const isAligned = (entry: SafetensorsEntry, bytes: number): boolean => entry.data.byteOffset % bytes === 0;
const alignedBuffer = (entry: SafetensorsEntry, bytes: number): ArrayBufferLike =>
  isAligned(entry, bytes) ? entry.data.buffer : entry.data.slice().buffer;
const alignedOffset = (entry: SafetensorsEntry, bytes: number): number =>
  isAligned(entry, bytes) ? entry.data.byteOffset : 0;

/**
 * The entry's values as float32. F32 with aligned bytes is a view into the
 * file's buffer (no copy); F64, F16 and BF16 are converted into a new array.
 * Integer dtypes are refused: a float32 cannot hold every int64, and no
 * weight is stored as one.
 */
export function toFloat32(entry: SafetensorsEntry): Float32Array {
  switch (entry.dtype) {
    case 'F32': return toTypedArray(entry) as Float32Array;
    case 'F64': return Float32Array.from(toTypedArray(entry) as Float64Array);
    case 'F16': return halfBitsToFloat32(toTypedArray(entry) as Uint16Array);
    case 'BF16': return bfloat16BitsToFloat32(toTypedArray(entry) as Uint16Array);
    default:
      throw new Error(`${entry.file}: tensor "${entry.name}" has dtype ${entry.dtype}, expected a floating-point dtype (F32, F16, BF16 or F64)`);
  }
}

let halfTable: Float32Array | undefined;

/**
 * float32 → IEEE binary16 bits, rounding to nearest, ties to even (as
 * numpy's and torch's .half()); overflow gives ±infinity, NaN stays NaN.
 */
export function float32ToHalfBits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exponent = ((x >>> 23) & 0xff) - 127 + 15;
    const mantissa = x & 0x7fffff;
    if (exponent === 0xff - 127 + 15) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0); // infinity, or a quiet NaN
    } else if (exponent >= 0x1f) {
      out[i] = sign | 0x7c00; // too large: infinity
    } else if (exponent <= 0) {
      // A subnormal half (or zero): the full significand shifted into place, rounded.
      if (exponent < -10) {
        out[i] = sign;
        continue;
      }
      const significand = mantissa | 0x800000;
      const shift = 14 - exponent;
      out[i] = sign | roundShift(significand, shift);
    } else {
      // Rounding may carry into the exponent, which is correct (and reaches infinity at the top).
      out[i] = sign | (((exponent << 10) | (mantissa >>> 13)) + roundingCarry(mantissa, 13, mantissa >>> 13));
    }
  }
  return out;
}

/** value >> shift, rounded to nearest, ties to even. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  return kept + roundingCarry(value, shift, kept);
}

/** 1 when the bits shifted out round `kept` up (more than half, or exactly half and `kept` odd). */
function roundingCarry(value: number, shift: number, kept: number): number {
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && kept & 1) ? 1 : 0;
}

/** IEEE 754 binary16 bits → float32 values, through a 64 K-entry table (exact for every pattern, NaN payloads aside). */
export function halfBitsToFloat32(bits: Uint16Array): Float32Array {
  halfTable ??= buildHalfTable();
  const table = halfTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24; // zero and subnormals
    else if (exponent === 0x1f) table[h] = mantissa ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return table;
}

/** bfloat16 bits → float32: bfloat16 is the top half of a float32, so this is exact. */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

