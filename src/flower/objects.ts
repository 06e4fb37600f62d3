// Flower's "inflatable objects": how a Message travels between SuperLink and node.
// A message is cut into a tree of objects, Message → RecordDict → *Record → Array →
// ArrayChunk, each stored and transferred on its own under the SHA-256 of its bytes.
// An object's bytes are `"<Class> <child ids joined by ','> <body length>" 0x00 <body>`.
// Bodies, as flwr 1.42.0 writes them (flwr/app/message/*.py):
//   Message      protobuf flwr.proto.Message with metadata (message_id "") and error only
//   RecordDict   JSON {name: record id}        (Python json.dumps: ", " and ": " separators)
//   ArrayRecord  JSON {name: array id}
//   Array        JSON {"dtype", "shape", "stype", "arraychunk_ids": [index into the head's ids]}
//   ArrayChunk   raw bytes of the array's .npy data, at most 5 MiB each
//   ConfigRecord / MetricRecord  protobuf with `repeated Item {key, value}`
// Everything is reproduced byte for byte, so ids made here equal the ids Python makes
// for the same content (test/flower-objects.test.ts checks against a Python golden).
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { Sha256Hex } from './crypto.js';
import { decodeNpy, encodeNpy } from './npy.js';
import {
  BoolListSchema,
  BytesListSchema,
  ConfigRecordSchema as ProtoConfigRecordSchema,
  DoubleListSchema,
  SintListSchema,
  StringListSchema,
  UintListSchema,
  ConfigRecordValueSchema,
  MetricRecordSchema as ProtoMetricRecordSchema,
  MetricRecordValueSchema,
  type ConfigRecordValue,
  type MetricRecordValue,
} from './proto/flwr/proto/recorddict_pb.js';
import { MessageSchema as ProtoMessageSchema, MetadataSchema, ObjectTreeSchema, type Metadata, type ObjectTree } from './proto/flwr/proto/message_pb.js';
import { ErrorSchema } from './proto/flwr/proto/error_pb.js';
import { ArrayRecord, ConfigRecord, MetricRecord, RecordDict, type ConfigValue, type FlowerRecord, type MetricValue, type NdArray } from './records.js';

/** Flower's default FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE (5 MiB). */
export const MAX_ARRAY_CHUNK_SIZE = 5 * 1024 * 1024;
/** `SType.NUMPY`: the only array serialisation Flower's numpy helpers produce. */
export const STYPE_NUMPY = 'numpy.ndarray';
const INT64_MAX = (1n << 63n) - 1n;

export type ObjectType = 'Message' | 'RecordDict' | 'ArrayRecord' | 'MetricRecord' | 'ConfigRecord' | 'Array' | 'ArrayChunk';
const OBJECT_TYPES = new Set<string>(['Message', 'RecordDict', 'ArrayRecord', 'MetricRecord', 'ConfigRecord', 'Array', 'ArrayChunk']);

/** What a Message's metadata says (flwr.app.Metadata). Ids are uint64, hence bigint. */
export interface MessageMetadata {
  runId: bigint;
  messageId: string;
  srcNodeId: bigint;
  dstNodeId: bigint;
  replyToMessageId: string;
  groupId: string;
  /** Seconds the message lives after `createdAt`. */
  ttl: number;
  messageType: string;
  /** Unix time in seconds (float), as Python's `now().timestamp()`. */
  createdAt: number;
  /** Task ids (flwr ≥ 1.3x); a reply swaps them. */
  srcTaskId?: bigint;
  dstTaskId?: bigint;
}

/** flwr.app.Error: a reply that carries a failure instead of content. */
export interface MessageError {
  code: number;
  reason: string;
}

/** A Flower Message: metadata plus either content or an error. */
export interface FlowerMessage {
  metadata: MessageMetadata;
  content?: RecordDict;
  error?: MessageError;
}

export class ObjectFormatError extends Error {
  override name = 'ObjectFormatError';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Prefixes `body` with Flower's object head. */
export function withObjectHead(type: ObjectType, childIds: readonly string[], body: Uint8Array): Uint8Array {
  const head = encoder.encode(`${type} ${childIds.join(',')} ${body.byteLength}`);
  const out = new Uint8Array(head.byteLength + 1 + body.byteLength);
  out.set(head, 0);
  out[head.byteLength] = 0;
  out.set(body, head.byteLength + 1);
  return out;
}

export interface ParsedObject {
  type: ObjectType;
  childIds: string[];
  body: Uint8Array;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Splits an object into head values and body, with the checks the SuperLink applies
 * (three head values, known type, valid child ids, body length as announced). */
export function parseObject(bytes: Uint8Array): ParsedObject {
  const zero = bytes.indexOf(0);
  if (zero < 0) throw new ObjectFormatError('object has no head/body divider');
  const head = decoder.decode(bytes.subarray(0, zero)).split(' ');
  if (head.length !== 3) throw new ObjectFormatError(`object head has ${head.length} values, expected 3`);
  const [type, children, length] = head;
  if (!OBJECT_TYPES.has(type)) throw new ObjectFormatError(`unknown object type ${JSON.stringify(type)}`);
  const childIds = children === '' ? [] : children.split(',');
  for (const id of childIds) if (!SHA256_HEX.test(id)) throw new ObjectFormatError(`invalid child id ${JSON.stringify(id)}`);
  const body = bytes.subarray(zero + 1);
  if (!/^\d+$/.test(length) || Number(length) !== body.byteLength) {
    throw new ObjectFormatError(`object head announces ${length} body bytes, body has ${body.byteLength}`);
  }
  return { type: type as ObjectType, childIds, body };
}

/** Python's `json.dumps` for the flat objects Flower writes (ASCII-escaped, ", "/": "). */
function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(', ')}}`;
  }
  if (typeof value === 'string') {
    // json.dumps escapes every non-ASCII character as \uXXXX (ensure_ascii=True).
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  return JSON.stringify(value);
}

/** JSON objects keyed in a given order; `Object.entries` would put integer-like keys first. */
function pythonJsonMap(entries: Iterable<[string, string]>): string {
  return `{${[...entries].map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(', ')}}`;
}

/** Flower's flat {name: id} listings, parsed with the document's key order kept
 * (JSON.parse would move integer-like keys to the front). */
function parseOrderedObject(text: string): Array<[string, unknown]> {
  // Flower's listings are flat {string: string}; parse them with a tiny scanner so the
  // order of keys is exactly the document's.
  const value = JSON.parse(text) as unknown;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ObjectFormatError('expected a JSON object');
  const out: Array<[string, unknown]> = [];
  const re = /"((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*")/gy;
  let i = text.indexOf('{') + 1;
  for (;;) {
    while (i < text.length && /[\s,]/.test(text[i])) i++;
    if (text[i] === '}') break;
    re.lastIndex = i;
    const m = re.exec(text);
    if (m === null) throw new ObjectFormatError('expected a flat JSON object of strings');
    out.push([JSON.parse(`"${m[1]}"`) as string, JSON.parse(m[2]) as unknown]);
    i = re.lastIndex;
  }
  return out;
}

/** A message deflated into its objects, ready for PushMessages/PushObject. */
export interface DeflatedMessage {
  /** The Message object's id, which is also its `message_id`. */
  messageId: string;
  /** Every object of the tree by id, children before parents. */
  objects: Map<string, Uint8Array>;
  tree: ObjectTree;
}

export class ObjectCodec {
  constructor(private readonly sha256: Sha256Hex, private readonly chunkSize = MAX_ARRAY_CHUNK_SIZE) {}

  /** Cuts `message` into Flower objects; `metadata.messageId` is ignored (it is the result). */
  async deflateMessage(message: FlowerMessage): Promise<DeflatedMessage> {
    const objects = new Map<string, Uint8Array>();
    let children: ObjectTree[] = [];
    let childIds: string[] = [];
    if (message.error === undefined) {
      const content = await this.deflateRecordDict(message.content ?? new RecordDict(), objects);
      children = [content];
      childIds = [content.objectId];
    }
    const body = toBinary(ProtoMessageSchema, create(ProtoMessageSchema, {
      metadata: metadataToProto({ ...message.metadata, messageId: '' }),
      error: message.error === undefined ? undefined : create(ErrorSchema, { code: BigInt(message.error.code), reason: message.error.reason }),
    }));
    const tree = await this.put(objects, 'Message', childIds, body, children);
    return { messageId: tree.objectId, objects, tree };
  }

  private async put(objects: Map<string, Uint8Array>, type: ObjectType, childIds: string[], body: Uint8Array, children: ObjectTree[]): Promise<ObjectTree> {
    const bytes = withObjectHead(type, childIds, body);
    const objectId = await this.sha256(bytes);
    objects.set(objectId, bytes);
    return create(ObjectTreeSchema, { objectId, children });
  }

  private async deflateRecordDict(content: RecordDict, objects: Map<string, Uint8Array>): Promise<ObjectTree> {
    const refs: Array<[string, string]> = [];
    const unique = new Map<string, ObjectTree>();
    for (const [name, record] of content.records) {
      const tree = await this.deflateRecord(record, objects);
      refs.push([name, tree.objectId]);
      if (!unique.has(tree.objectId)) unique.set(tree.objectId, tree);
    }
    return this.put(objects, 'RecordDict', [...unique.keys()], encoder.encode(pythonJsonMap(refs)), [...unique.values()]);
  }

  private async deflateRecord(record: FlowerRecord, objects: Map<string, Uint8Array>): Promise<ObjectTree> {
    if (record instanceof ArrayRecord) {
      const refs: Array<[string, string]> = [];
      const unique = new Map<string, ObjectTree>();
      for (const [name, array] of record.arrays) {
        const tree = await this.deflateArray(array, objects);
        refs.push([name, tree.objectId]);
        if (!unique.has(tree.objectId)) unique.set(tree.objectId, tree);
      }
      return this.put(objects, 'ArrayRecord', [...unique.keys()], encoder.encode(pythonJsonMap(refs)), [...unique.values()]);
    }
    if (record instanceof MetricRecord) {
      const body = toBinary(ProtoMetricRecordSchema, create(ProtoMetricRecordSchema, {
        items: [...record.values].map(([key, value]) => ({ key, value: metricValueToProto(key, value) })),
      }));
      return this.put(objects, 'MetricRecord', [], body, []);
    }
    if (record instanceof ConfigRecord) {
      const body = toBinary(ProtoConfigRecordSchema, create(ProtoConfigRecordSchema, {
        items: [...record.values].map(([key, value]) => ({ key, value: configValueToProto(key, value) })),
      }));
      return this.put(objects, 'ConfigRecord', [], body, []);
    }
    throw new Error(`not a Flower record: ${String(record)}`);
  }

  private async deflateArray(array: NdArray, objects: Map<string, Uint8Array>): Promise<ObjectTree> {
    const data = encodeNpy(array);
    const chunkIds: string[] = [];
    const unique = new Map<string, ObjectTree>();
    // Identical chunks (e.g. all zeros) are stored once; the body lists each position.
    for (let start = 0; start < data.byteLength; start += this.chunkSize) {
      const tree = await this.put(objects, 'ArrayChunk', [], data.subarray(start, Math.min(start + this.chunkSize, data.byteLength)), []);
      chunkIds.push(tree.objectId);
      if (!unique.has(tree.objectId)) unique.set(tree.objectId, tree);
    }
    const uniqueIds = [...unique.keys()];
    const body = pythonJson({
      dtype: array.dtype,
      shape: array.shape,
      stype: STYPE_NUMPY,
      arraychunk_ids: chunkIds.map((id) => uniqueIds.indexOf(id)),
    });
    return this.put(objects, 'Array', uniqueIds, encoder.encode(body), [...unique.values()]);
  }

  /**
   * Rebuilds a message from its objects (all of them present, hashes already checked
   * by whoever fetched them). `metadata` is the one PullMessages delivered, whose
   * `message_id` is the root's id; the Message object's own copy is checked against it.
   */
  inflateMessage(rootId: string, objects: ReadonlyMap<string, Uint8Array>, metadata?: MessageMetadata): FlowerMessage {
    const root = this.expect(objects, rootId, ['Message']);
    const proto = fromBinary(ProtoMessageSchema, root.body);
    const inner = metadataFromProto(proto.metadata ?? create(MetadataSchema), rootId);
    const error = proto.error === undefined ? undefined : { code: Number(proto.error.code), reason: proto.error.reason };
    if (error !== undefined) {
      if (root.childIds.length !== 0) throw new ObjectFormatError('a Message with an error has no content');
      return { metadata: metadata ?? inner, error };
    }
    if (root.childIds.length !== 1) throw new ObjectFormatError(`a Message has one RecordDict, found ${root.childIds.length} children`);
    return { metadata: metadata ?? inner, content: this.inflateRecordDict(objects, root.childIds[0]) };
  }

  private expect(objects: ReadonlyMap<string, Uint8Array>, id: string, types: ObjectType[]): ParsedObject {
    const bytes = objects.get(id);
    if (bytes === undefined) throw new ObjectFormatError(`object ${id} is missing`);
    const parsed = parseObject(bytes);
    if (!types.includes(parsed.type)) throw new ObjectFormatError(`object ${id} is a ${parsed.type}, expected ${types.join(' or ')}`);
    return parsed;
  }

  private refs(parsed: ParsedObject, what: string): Array<[string, string]> {
    const refs = parseOrderedObject(decoder.decode(parsed.body)) as Array<[string, string]>;
    const listed = new Set(refs.map(([, id]) => id));
    if (listed.size !== parsed.childIds.length || !parsed.childIds.every((id) => listed.has(id))) {
      throw new ObjectFormatError(`${what}: body references do not match the head's child ids`);
    }
    return refs;
  }

  private inflateRecordDict(objects: ReadonlyMap<string, Uint8Array>, id: string): RecordDict {
    const parsed = this.expect(objects, id, ['RecordDict']);
    const out = new RecordDict();
    for (const [name, recordId] of this.refs(parsed, 'RecordDict')) out.records.set(name, this.inflateRecord(objects, recordId));
    return out;
  }

  private inflateRecord(objects: ReadonlyMap<string, Uint8Array>, id: string): FlowerRecord {
    const parsed = this.expect(objects, id, ['ArrayRecord', 'MetricRecord', 'ConfigRecord']);
    if (parsed.type === 'ArrayRecord') {
      const out = new ArrayRecord();
      for (const [name, arrayId] of this.refs(parsed, 'ArrayRecord')) out.arrays.set(name, this.inflateArray(objects, arrayId));
      return out;
    }
    if (parsed.childIds.length !== 0) throw new ObjectFormatError(`${parsed.type} ${id} has children`);
    if (parsed.type === 'MetricRecord') {
      const proto = fromBinary(ProtoMetricRecordSchema, parsed.body);
      return new MetricRecord(proto.items.map((item): [string, MetricValue] => [item.key, metricValueFromProto(item.key, item.value)]));
    }
    const proto = fromBinary(ProtoConfigRecordSchema, parsed.body);
    return new ConfigRecord(proto.items.map((item): [string, ConfigValue] => [item.key, configValueFromProto(item.key, item.value)]));
  }

  private inflateArray(objects: ReadonlyMap<string, Uint8Array>, id: string): NdArray {
    const parsed = this.expect(objects, id, ['Array']);
    const meta = JSON.parse(decoder.decode(parsed.body)) as { dtype: string; shape: number[]; stype: string; arraychunk_ids: number[] };
    if (meta.stype !== STYPE_NUMPY) throw new ObjectFormatError(`Array ${id}: stype ${meta.stype} is not supported (only ${STYPE_NUMPY})`);
    const chunks = meta.arraychunk_ids.map((index) => {
      const chunkId = parsed.childIds[index];
      if (chunkId === undefined) throw new ObjectFormatError(`Array ${id}: chunk index ${index} out of range`);
      return this.expect(objects, chunkId, ['ArrayChunk']).body;
    });
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    const data = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      data.set(c, offset);
      offset += c.byteLength;
    }
    const array = decodeNpy(data);
    if (array.dtype !== meta.dtype || array.shape.join(',') !== meta.shape.join(',')) {
      throw new ObjectFormatError(`Array ${id}: says ${meta.dtype} [${meta.shape}], its .npy data holds ${array.dtype} [${array.shape}]`);
    }
    return array;
  }
}

/** Checks that `bytes` really is object `id` (its SHA-256) and well formed. */
export async function verifyObject(id: string, bytes: Uint8Array, sha256: Sha256Hex): Promise<void> {
  const actual = await sha256(bytes);
  if (actual !== id) throw new ObjectFormatError(`object ${id} arrived with hash ${actual}`);
  parseObject(bytes);
}

export function metadataToProto(m: MessageMetadata): Metadata {
  return create(MetadataSchema, {
    runId: m.runId,
    messageId: m.messageId,
    srcNodeId: m.srcNodeId,
    dstNodeId: m.dstNodeId,
    replyToMessageId: m.replyToMessageId,
    groupId: m.groupId,
    ttl: m.ttl,
    messageType: m.messageType,
    createdAt: m.createdAt,
    srcTaskId: m.srcTaskId,
    dstTaskId: m.dstTaskId,
  });
}

export function metadataFromProto(p: Metadata, messageId = p.messageId): MessageMetadata {
  return {
    runId: p.runId,
    messageId,
    srcNodeId: p.srcNodeId,
    dstNodeId: p.dstNodeId,
    replyToMessageId: p.replyToMessageId,
    groupId: p.groupId,
    ttl: p.ttl,
    messageType: p.messageType,
    createdAt: p.createdAt,
    srcTaskId: p.srcTaskId,
    dstTaskId: p.dstTaskId,
  };
}

// Record values follow flwr.common.serde_utils._record_value_to_proto: the first allowed
// type that fits wins (MetricRecord: float, int; ConfigRecord: bool, int, float, str, bytes),
// which decides, e.g., that an empty list is a DoubleList in a MetricRecord and a BoolList
// in a ConfigRecord.
function intField(v: bigint): { case: 'sint64' | 'uint64'; value: bigint } {
  return v > INT64_MAX ? { case: 'uint64', value: v } : { case: 'sint64', value: v };
}

function metricValueToProto(key: string, v: MetricValue): MetricRecordValue {
  if (typeof v === 'number') return create(MetricRecordValueSchema, { value: { case: 'double', value: v } });
  if (typeof v === 'bigint') return create(MetricRecordValueSchema, { value: intField(v) });
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'number')) return create(MetricRecordValueSchema, { value: { case: 'doubleList', value: { vals: v as number[] } } });
    if (v.every((x) => typeof x === 'bigint')) {
      const vals = v as bigint[];
      return create(MetricRecordValueSchema, {
        value: vals.some((x) => x > INT64_MAX) ? { case: 'uintList', value: { vals } } : { case: 'sintList', value: { vals } },
      });
    }
  }
  throw new TypeError(`metric "${key}": a MetricRecord holds floats (number), ints (bigint) or lists of one of them`);
}

function configValueToProto(key: string, v: ConfigValue): ConfigRecordValue {
  const make = (value: ConfigRecordValue['value']) => create(ConfigRecordValueSchema, { value });
  const intList = (vals: bigint[]): ConfigRecordValue['value'] => vals.some((x) => x > INT64_MAX)
    ? { case: 'uintList', value: create(UintListSchema, { vals }) }
    : { case: 'sintList', value: create(SintListSchema, { vals }) };
  if (typeof v === 'boolean') return make({ case: 'bool', value: v });
  if (typeof v === 'bigint') return make(intField(v));
  if (typeof v === 'number') return make({ case: 'double', value: v });
  if (typeof v === 'string') return make({ case: 'string', value: v });
  if (v instanceof Uint8Array) return make({ case: 'bytes', value: v });
  if (Array.isArray(v)) {
    const list = v as unknown[];
    if (list.every((x) => typeof x === 'boolean')) return make({ case: 'boolList', value: create(BoolListSchema, { vals: list as boolean[] }) });
    if (list.every((x) => typeof x === 'bigint')) return make(intList(list as bigint[]));
    if (list.every((x) => typeof x === 'number')) return make({ case: 'doubleList', value: create(DoubleListSchema, { vals: list as number[] }) });
    if (list.every((x) => typeof x === 'string')) return make({ case: 'stringList', value: create(StringListSchema, { vals: list as string[] }) });
    if (list.every((x) => x instanceof Uint8Array)) return make({ case: 'bytesList', value: create(BytesListSchema, { vals: list as Uint8Array[] }) });
  }
  throw new TypeError(`config "${key}": a ConfigRecord holds bool, int (bigint), float (number), str, bytes or a list of one of them`);
}

function metricValueFromProto(key: string, p: MetricRecordValue | undefined): MetricValue {
  const v = p?.value;
  switch (v?.case) {
    case 'double': case 'sint64': case 'uint64': return v.value;
    case 'doubleList': case 'sintList': case 'uintList': return [...v.value.vals] as MetricValue;
    default: throw new ObjectFormatError(`metric "${key}" has no value`);
  }
}

function configValueFromProto(key: string, p: ConfigRecordValue | undefined): ConfigValue {
  const v = p?.value;
  switch (v?.case) {
    case 'double': case 'sint64': case 'uint64': case 'bool': case 'string': case 'bytes': return v.value;
    case 'doubleList': case 'sintList': case 'uintList': case 'boolList': case 'stringList': case 'bytesList':
      return [...v.value.vals] as ConfigValue;
    default: throw new ObjectFormatError(`config "${key}" has no value`);
  }
}
