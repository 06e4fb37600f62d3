// A minimal protobuf encoder for the parts of ONNX's ModelProto the project
// writes. Messages are built as lists of byte chunks so that large weight
// tensors are copied once, when the model is finally joined into one buffer.

export const enum DataType {
  FLOAT = 1,
  INT32 = 6,
  INT64 = 7,
}

export interface TensorProto {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: DataType;
  readonly raw: Uint8Array;
}

export type AttributeValue = number | readonly number[] | string | TensorProto | { readonly float: number };

export interface NodeProto {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly domain?: string;
}

export interface ValueInfoProto {
  readonly name: string;
  readonly dataType: DataType;
  /** A number is a fixed size, a string a named symbolic size. */
  readonly shape: readonly (number | string)[];
}

export interface GraphProto {
  readonly name: string;
  readonly nodes: readonly NodeProto[];
  readonly initializers: readonly TensorProto[];
  readonly inputs: readonly ValueInfoProto[];
  readonly outputs: readonly ValueInfoProto[];
}

/** An encoded message: its chunks and their total length. */
class Message {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      out.push(byte);
    } while (v !== 0n);
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, m: Message): this {
    this.key(field, 2);
    this.varint(m.length);
    for (const c of m.chunks) this.push(c);
    return this;
  }
}

const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

function tensorMessage(t: TensorProto): Message {
  const m = new Message();
  for (const d of t.dims) m.int(1, d);
  m.int(2, t.dataType);
  m.string(8, t.name);
  m.bytes(9, t.raw);
  return m;
}

function attributeMessage(name: string, value: AttributeValue): Message {
  const m = new Message().string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float: x } for float attributes`);
    m.int(3, value).int(20, AttributeType.INT);
  } else if (typeof value === 'string') {
    m.string(4, value).int(20, AttributeType.STRING);
  } else if (Array.isArray(value)) {
    for (const v of value as readonly number[]) m.int(8, v);
    m.int(20, AttributeType.INTS);
  } else if ('float' in (value as object)) {
    m.float(2, (value as { float: number }).float).int(20, AttributeType.FLOAT);
  } else {
    m.message(5, tensorMessage(value as TensorProto)).int(20, AttributeType.TENSOR);
  }
  return m;
}

function nodeMessage(n: NodeProto): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name).string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes)) m.message(5, attributeMessage(k, v));
  if (n.domain) m.string(7, n.domain);
  return m;
}

function valueInfoMessage(v: ValueInfoProto): Message {
  const shape = new Message();
  for (const d of v.shape) {
    shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  }
  const tensorType = new Message().int(1, v.dataType).message(2, shape);
  return new Message().string(1, v.name).message(2, new Message().message(1, tensorType));
}

/** Serialises a model with one graph at the given default-domain opset. */
export function encodeModel(graph: GraphProto, opset: number, extraOpsets: Record<string, number> = {}): Uint8Array {
  const g = new Message();
  for (const n of graph.nodes) g.message(1, nodeMessage(n));
  g.string(2, graph.name);
  for (const t of graph.initializers) g.message(5, tensorMessage(t));
  for (const i of graph.inputs) g.message(11, valueInfoMessage(i));
  for (const o of graph.outputs) g.message(12, valueInfoMessage(o));

  const model = new Message().int(1, 8).string(2, 'pfedprompt');
  model.message(7, g);
  model.message(8, new Message().string(1, '').int(2, opset));
  for (const [domain, version] of Object.entries(extraOpsets)) model.message(8, new Message().string(1, domain).int(2, version));

  const out = new Uint8Array(model.length);
  let offset = 0;
  for (const c of model.chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
