// Building blocks shared by CLIP's towers, as ONNX subgraphs: linear layers,
// layer norm, QuickGELU MLP and multi-head attention. Weights are read by
// their OpenAI state-dict names and become graph initializers.

import type { Graph, Shape, Value } from '../onnx/graph.js';
import * as op from '../onnx/ops.js';
import { tensor, type ClipWeights, type HostTensor } from './weights.js';

/** [rows, cols] → [cols, rows], so x @ W^T becomes a plain MatMul. */
export function transposed(t: HostTensor, rowStart = 0, rowEnd = t.shape[0]): Float32Array {
  const cols = t.shape[1];
  const rows = rowEnd - rowStart;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const src = (rowStart + r) * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[src + c];
  }
  return out;
}

/**
 * A weight the graph reads as an input rather than an initializer (see
 * GraphWeights' `asInputs`): the graph input `input` holds elements
 * [start, end) of the tensor `tensor`'s row-major data, in its stored layout.
 */
export interface WeightInput {
  readonly input: Value;
  readonly tensor: string;
  readonly start: number;
  readonly end: number;
}

/**
 * Creates each weight once per graph, however often it is used. By default
 * weights become initializers (a frozen model). With `asInputs`, every weight
 * becomes a graph input instead, fed in its stored layout (transposes happen
 * in the graph), so that gradients with respect to the weights can be taken
 * and the same graph runs with new values after each optimiser step.
 */
export class GraphWeights {
  private readonly cache = new Map<string, Value>();
  /** The graph inputs made for weights, in creation order (only with `asInputs`). */
  readonly inputs: WeightInput[] = [];

  constructor(readonly g: Graph, readonly weights: ClipWeights, readonly options: { readonly asInputs?: boolean } = {}) {}

  private once(key: string, make: () => Value): Value {
    let v = this.cache.get(key);
    if (!v) this.cache.set(key, (v = make()));
    return v;
  }

  /** A graph input for elements [start, end) of tensor `name`, viewed with `shape`. */
  private weightInput(name: string, shape: readonly number[], start: number, end: number): Value {
    const suffix = start === 0 && end === tensor(this.weights, name).data.length ? '' : `[${start}:${end}]`;
    const input = this.g.input(`${name}${suffix}`, shape);
    this.inputs.push({ input, tensor: name, start, end });
    return input;
  }

  /** The tensor as stored. */
  raw(name: string, shape: readonly number[]): Value {
    return this.once(name, () => {
      const t = tensor(this.weights, name, shape);
      return this.options.asInputs ? this.weightInput(name, shape, 0, t.data.length) : this.g.weight(name, shape, t.data);
    });
  }

  /** Rows [start, end) of a PyTorch [out, in] matrix, transposed to [in, out]. */
  matrixT(name: string, shape: readonly [number, number], start = 0, end = shape[0]): Value {
    return this.once(`${name}[${start}:${end}]^T`, () => {
      const t = tensor(this.weights, name, shape);
      if (!this.options.asInputs) return this.g.weight(`${name}_T`, [shape[1], end - start], transposed(t, start, end));
      const rows = this.weightInput(name, [end - start, shape[1]], start * shape[1], end * shape[1]);
      return op.transpose(this.g, rows, [1, 0]);
    });
  }

  /** Elements [start, end) of a vector. */
  vector(name: string, length: number, start = 0, end = length): Value {
    return this.once(`${name}[${start}:${end}]`, () => {
      const t = tensor(this.weights, name, [length]);
      return this.options.asInputs ? this.weightInput(name, [end - start], start, end) : this.g.weight(name, [end - start], t.data.slice(start, end));
    });
  }

  layerNorm(x: Value, name: string, width: number): Value {
    return op.layerNorm(this.g, x, this.vector(`${name}.weight`, width), this.vector(`${name}.bias`, width), this.weights.config.layerNormEps);
  }

  /** x @ W^T + b for a PyTorch Linear `name` of shape [out, in]. */
  linear(x: Value, name: string, outDim: number, inDim: number): Value {
    return this.affine(x, `${name}.weight`, `${name}.bias`, [outDim, inDim]);
  }

  /** x @ W[start:end]^T + b[start:end] for a weight of shape [out, in]. */
  private affine(x: Value, weight: string, bias: string, shape: readonly [number, number], start = 0, end = shape[0]): Value {
    const w = this.matrixT(weight, shape, start, end);
    return op.add(this.g, op.matmul(this.g, x, w), this.vector(bias, shape[0], start, end));
  }

  /** CLIP's MLP: c_fc, QuickGELU (x · sigmoid(1.702 x)), c_proj. */
  mlp(x: Value, name: string, width: number): Value {
    const g = this.g;
    const h = this.linear(x, `${name}.c_fc`, 4 * width, width);
    const gelu = op.mul(g, h, op.sigmoid(g, op.mul(g, h, g.scalar(1.702))));
    return this.linear(gelu, `${name}.c_proj`, width, 4 * width);
  }

  /** The q, k and v projections of nn.MultiheadAttention's packed in_proj. */
  qkv(x: Value, name: string, width: number): [Value, Value, Value] {
    const proj = (i: number): Value =>
      this.affine(x, `${name}.in_proj_weight`, `${name}.in_proj_bias`, [3 * width, width], i * width, (i + 1) * width);
    return [proj(0), proj(1), proj(2)];
  }
}

/** [..., T, H·D] → [..., H, T, D] for a value of rank 2 or 3. */
export function splitHeads(g: Graph, x: Value, heads: number): Value {
  const width = x.shape[x.shape.length - 1] as number;
  const d = width / heads;
  if (x.shape.length === 2) {
    const r = op.reshape(g, x, [0, heads, d], [x.shape[0], heads, d]);
    return op.transpose(g, r, [1, 0, 2]);
  }
  const r = op.reshape(g, x, [0, 0, heads, d], [x.shape[0], x.shape[1], heads, d]);
  return op.transpose(g, r, [0, 2, 1, 3]);
}

/** Inverse of splitHeads. */
export function mergeHeads(g: Graph, x: Value): Value {
  const h = x.shape[x.shape.length - 3] as number;
  const d = x.shape[x.shape.length - 1] as number;
  if (x.shape.length === 3) {
    const t = op.transpose(g, x, [1, 0, 2]);
    return op.reshape(g, t, [0, h * d], [t.shape[0], h * d]);
  }
  const t = op.transpose(g, x, [0, 2, 1, 3]);
  return op.reshape(g, t, [0, 0, h * d], [t.shape[0], t.shape[1], h * d]);
}

/** softmax(q kᵀ / √d + mask) v over heads already split. */
export function attend(g: Graph, q: Value, k: Value, v: Value, mask?: Value): Value {
  const d = q.shape[q.shape.length - 1] as number;
  let scores = op.matmul(g, op.mul(g, q, g.scalar(1 / Math.sqrt(d))), op.transposeLast(g, k));
  if (mask) scores = op.add(g, scores, mask);
  return op.matmul(g, op.softmax(g, scores), v);
}

/** A shape with a symbolic leading dimension, for readability at call sites. */
export const dims = (...d: (number | string)[]): Shape => d;
