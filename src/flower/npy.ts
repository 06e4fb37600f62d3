// NumPy's .npy format, which Flower uses as the bytes of every Array
// (`Array.stype == "numpy.ndarray"`, data = `np.save(arr, allow_pickle=False)`).
// The encoder writes the header exactly as NumPy 2 does (sorted dict, growth-axis
// padding, 64-byte alignment) so an array made here has the same bytes, and therefore
// the same Flower object id, as the same array made in Python.
import type { DType, DTypeData, NdArray } from './records.js';

// No Buffer here: this module must also run in a browser.
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;

/** dtype → .npy "descr" (little-endian, as NumPy writes on every platform pfedprompt runs on). */
const DESCR: Record<DType, string> = {
  float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', int16: '<i2', int8: '|i1', uint8: '|u1', bool: '|b1',
};
const DTYPE_OF_DESCR = new Map(Object.entries(DESCR).map(([d, s]) => [s, d as DType]));

const ELEMENT_BYTES: Record<DType, number> = {
  float32: 4, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** Element size of a dtype, in bytes. */
export function elementBytes(dtype: DType): number {
  return ELEMENT_BYTES[dtype];
}

/** `repr(tuple(shape))` as Python prints it. */
function pythonShape(shape: number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

export function encodeNpy(array: NdArray): Uint8Array {
  const descr = DESCR[array.dtype];
  if (descr === undefined) throw new Error(`dtype ${array.dtype} cannot be written as .npy`);
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${pythonShape(array.shape)}, }`;
  // NumPy leaves room to grow the first axis in place.
  if (array.shape.length > 0) header += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(array.shape[0]).length);
  let version = 1;
  let prefixLength = MAGIC.length + 2 + 2;
  if (header.length + 1 + prefixLength > 0xffff) {
    version = 2;
    prefixLength = MAGIC.length + 2 + 4;
  }
  // Note the quirk kept from NumPy: an already aligned header still gets a full 64 spaces.
  const padding = ARRAY_ALIGN - ((prefixLength + header.length + 1) % ARRAY_ALIGN);
  header += ' '.repeat(padding) + '\n';

  const body = littleEndianBytes(array);
  const out = new Uint8Array(prefixLength + header.length + body.byteLength);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), prefixLength); // the header is ASCII
  out.set(body, prefixLength + header.length);
  return out;
}

function littleEndianBytes(array: NdArray): Uint8Array {
  const data = array.data;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (isLittleEndianHost) return bytes;
  throw new Error('big-endian hosts are not supported');
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function decodeNpy(bytes: Uint8Array): NdArray {
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new Error('not a .npy file (bad magic)');
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new Error(`unsupported .npy version ${major}`);
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`malformed .npy header: ${header.trim()}`);
  }
  const dtype = DTYPE_OF_DESCR.get(descr);
  if (dtype === undefined) throw new Error(`unsupported .npy dtype ${descr} (supported: ${[...DTYPE_OF_DESCR.keys()].join(' ')})`);
  if (fortran === 'True') throw new Error('Fortran-ordered .npy arrays are not supported');
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => Number(s.replace(/L$/, '')));
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  const byteLength = count * ELEMENT_BYTES[dtype];
  if (bytes.byteLength - dataStart !== byteLength) {
    throw new Error(`.npy data is ${bytes.byteLength - dataStart} bytes, shape [${shape}] of ${dtype} needs ${byteLength}`);
  }
  // Copy: the typed array must be aligned and must not alias the transport's buffer.
  const copy = bytes.slice(dataStart, dataStart + byteLength);
  return { dtype, shape, data: typedView(dtype, copy.buffer) } as NdArray;
}

function typedView<D extends DType>(dtype: D, buffer: ArrayBuffer): DTypeData[D] {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer) as DTypeData[D];
    case 'float64': return new Float64Array(buffer) as DTypeData[D];
    case 'int64': return new BigInt64Array(buffer) as DTypeData[D];
    case 'int32': return new Int32Array(buffer) as DTypeData[D];
    case 'int16': return new Int16Array(buffer) as DTypeData[D];
    case 'int8': return new Int8Array(buffer) as DTypeData[D];
    default: return new Uint8Array(buffer) as DTypeData[D];
  }
}
