// The content Flower messages carry, as the rest of pfedprompt sees it: a RecordDict of
// named ArrayRecords (tensors), MetricRecords (numbers to aggregate) and ConfigRecords
// (instructions). It mirrors flwr.app's classes closely enough that every value
// survives a round trip through a Python ServerApp unchanged.
//
// Why Maps and not plain objects: Flower derives object ids from JSON listings in
// insertion order, and a JS object would silently reorder integer-like keys ("0", "1",
// …, which is what ArrayRecord(list_of_arrays) uses). A Map keeps the order given.
//
// Why bigint for integers: Flower types ints and floats apart on the wire (sint64 vs
// double) and a JS number cannot tell 2 from 2.0. So: `bigint` = Python int,
// `number` = Python float. `int(…)` converts.

/** NumPy dtypes this node can carry (the ones Flower's numpy arrays commonly use). */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** The typed array that holds the elements of each dtype (bool: one byte 0/1 per element). */
export interface DTypeData {
  float32: Float32Array;
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** One tensor: dtype, shape (row-major) and elements. */
export interface NdArray<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: DTypeData[D];
}

/** A 1-D float32 array, the shape pfedprompt's prompt tensors travel in. */
export function float32Array(values: ArrayLike<number>, shape: number[] = [values.length]): NdArray<'float32'> {
  return checkedArray({ dtype: 'float32', shape, data: Float32Array.from(values) });
}

/** Any dtype; checks that the element count matches the shape. */
export function ndarray<D extends DType>(dtype: D, shape: number[], data: DTypeData[D]): NdArray<D> {
  return checkedArray({ dtype, shape, data });
}

function checkedArray<D extends DType>(array: NdArray<D>): NdArray<D> {
  const count = array.shape.reduce((a, b) => a * b, 1);
  if (array.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`invalid shape [${array.shape}]`);
  if (count !== array.data.length) {
    throw new Error(`shape [${array.shape}] needs ${count} elements, got ${array.data.length}`);
  }
  return array;
}

/** A Python int: what Flower sends as sint64 (or uint64 when above int64's range). */
export function int(value: number | bigint): bigint {
  if (typeof value === 'number' && !Number.isInteger(value)) throw new Error(`${value} is not an integer`);
  return BigInt(value);
}

/** MetricRecord values: float, int, and lists of either. */
export type MetricValue = number | bigint | number[] | bigint[];
/** ConfigRecord values: float, int, bool, str, bytes, and lists of each. */
export type ConfigValue =
  | number | bigint | boolean | string | Uint8Array
  | number[] | bigint[] | boolean[] | string[] | Uint8Array[];

type Entries<V> = Map<string, V> | Record<string, V> | Iterable<[string, V]>;

function toMap<V>(entries: Entries<V> | undefined): Map<string, V> {
  if (entries === undefined) return new Map();
  if (entries instanceof Map) return new Map(entries);
  if (Symbol.iterator in Object(entries)) return new Map(entries as Iterable<[string, V]>);
  return new Map(Object.entries(entries as Record<string, V>));
}

export class ArrayRecord {
  readonly kind = 'array';
  readonly arrays: Map<string, NdArray>;
  constructor(arrays?: Entries<NdArray>) {
    this.arrays = toMap(arrays);
  }
  get(name: string): NdArray | undefined {
    return this.arrays.get(name);
  }
}

export class MetricRecord {
  readonly kind = 'metric';
  readonly values: Map<string, MetricValue>;
  constructor(values?: Entries<MetricValue>) {
    this.values = toMap(values);
  }
  get(key: string): MetricValue | undefined {
    return this.values.get(key);
  }
}

export class ConfigRecord {
  readonly kind = 'config';
  readonly values: Map<string, ConfigValue>;
  constructor(values?: Entries<ConfigValue>) {
    this.values = toMap(values);
  }
  get(key: string): ConfigValue | undefined {
    return this.values.get(key);
  }
  /** A string value, or an error naming the key (instructions are strings in pfedprompt). */
  string(key: string): string {
    const v = this.values.get(key);
    if (typeof v !== 'string') throw new Error(`config "${key}" is not a string (${describe(v)})`);
    return v;
  }
  /** An integer value as a JS number (int or integral float accepted). */
  integer(key: string): number {
    const v = this.values.get(key);
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    throw new Error(`config "${key}" is not an integer (${describe(v)})`);
  }
}

function describe(v: unknown): string {
  return v === undefined ? 'missing' : Array.isArray(v) ? 'a list' : typeof v;
}

export type FlowerRecord = ArrayRecord | MetricRecord | ConfigRecord;

/** A message's content: named records, in order. */
export class RecordDict {
  readonly records: Map<string, FlowerRecord>;
  constructor(records?: Entries<FlowerRecord>) {
    this.records = toMap(records);
  }
  get(name: string): FlowerRecord | undefined {
    return this.records.get(name);
  }
  arrayRecord(name: string): ArrayRecord {
    return this.typed(name, ArrayRecord);
  }
  metricRecord(name: string): MetricRecord {
    return this.typed(name, MetricRecord);
  }
  configRecord(name: string): ConfigRecord {
    return this.typed(name, ConfigRecord);
  }
  private typed<T extends FlowerRecord>(name: string, cls: new () => T): T {
    const record = this.records.get(name);
    if (!(record instanceof cls)) {
      throw new Error(`record "${name}" is ${record === undefined ? 'missing' : `a ${record.constructor.name}`}, expected a ${cls.name}`);
    }
    return record;
  }
}
