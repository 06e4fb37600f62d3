// A small builder for ONNX graphs with static, partly symbolic shapes.
//
// Each op helper records one ONNX node and works out its output shape, so
// that the reverse-mode differentiation in autodiff.ts knows, for example,
// which axes a broadcast added. A dimension is a number, or a name such as
// 'classes' for a size only known when the graph runs.

import { DataType, encodeModel, type AttributeValue, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';

export type Dim = number | string;
export type Shape = readonly Dim[];

export interface Value {
  readonly name: string;
  readonly shape: Shape;
  readonly dataType: DataType;
}

export interface GraphNode {
  readonly opType: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

export const OPSET = 17;

function rawBytes(data: Float32Array | BigInt64Array | Int32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class Graph {
  readonly nodes: GraphNode[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private counter = 0;
  /** Values of the int64 constants made by ints(), for rules that need them (reduction axes). */
  readonly intConstants = new Map<string, readonly number[]>();

  constructor(readonly name: string) {}

  private fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.used.has(name));
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`graph ${this.name}: duplicate value name "${name}"`);
    this.used.add(name);
    return name;
  }

  input(name: string, shape: Shape, dataType: DataType = DataType.FLOAT): Value {
    const v = { name: this.claim(name), shape, dataType };
    this.inputs.push({ name, dataType, shape });
    return v;
  }

  /** A float32 initializer (weights). The data is referenced, not copied, until the model is encoded. */
  weight(hint: string, shape: readonly number[], data: Float32Array): Value {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`graph ${this.name}: weight ${hint} has ${data.length} values, shape [${shape}] needs ${size}`);
    const name = this.fresh(hint);
    this.initializers.push({ name, dims: shape, dataType: DataType.FLOAT, raw: rawBytes(data) });
    return { name, shape, dataType: DataType.FLOAT };
  }

  scalar(value: number): Value {
    return this.weight('scalar', [], Float32Array.of(value));
  }

  ints(values: readonly number[]): Value {
    const name = this.fresh('ints');
    this.initializers.push({ name, dims: [values.length], dataType: DataType.INT64, raw: rawBytes(BigInt64Array.from(values.map(BigInt))) });
    this.intConstants.set(name, values);
    return { name, shape: [values.length], dataType: DataType.INT64 };
  }

  output(value: Value, name: string): void {
    const [out] = this.node('Identity', [value], {}, [{ shape: value.shape, dataType: value.dataType }], name);
    this.outputs.push({ name: out.name, dataType: out.dataType, shape: out.shape });
  }

  /** Records a node; `results` gives each output's shape (and type, float by default). */
  node(opType: string, inputs: readonly Value[], attributes: Record<string, AttributeValue>,
    results: readonly { shape: Shape; dataType?: DataType }[], outputName?: string): Value[] {
    const outputs = results.map((r, i) => ({
      name: i === 0 && outputName ? this.claim(outputName) : this.fresh(opType.toLowerCase()),
      shape: r.shape,
      dataType: r.dataType ?? DataType.FLOAT,
    }));
    this.nodes.push({ opType, inputs, outputs, attributes });
    return outputs;
  }

  encode(): Uint8Array {
    const nodes: NodeProto[] = this.nodes.map((n, i) => ({
      opType: n.opType,
      name: `n${i}_${n.opType}`,
      inputs: n.inputs.map((v) => v.name),
      outputs: n.outputs.map((v) => v.name),
      attributes: n.attributes,
    }));
    return encodeModel({ name: this.name, nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs }, OPSET);
  }
}
