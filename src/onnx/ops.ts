// ONNX operators as typed functions that also compute output shapes.
// Only what the CLIP graphs and their gradients use.

import { DataType } from './proto.js';
import type { Dim, Graph, Shape, Value } from './graph.js';

function broadcastShapes(a: Shape, b: Shape, where: string): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y || typeof y === 'string') out.push(x);
    else if (typeof x === 'string') out.push(y);
    else throw new Error(`${where}: shapes [${a}] and [${b}] do not broadcast`);
  }
  return out;
}

const axisOf = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

function binary(op: string) {
  return (g: Graph, a: Value, b: Value): Value =>
    g.node(op, [a, b], {}, [{ shape: broadcastShapes(a.shape, b.shape, op), dataType: a.dataType }])[0];
}

export const add = binary('Add');
export const sub = binary('Sub');
export const mul = binary('Mul');
export const div = binary('Div');

function unary(op: string) {
  return (g: Graph, x: Value): Value => g.node(op, [x], {}, [{ shape: x.shape, dataType: x.dataType }])[0];
}

export const neg = unary('Neg');
export const sqrt = unary('Sqrt');
export const exp = unary('Exp');
export const sigmoid = unary('Sigmoid');
export const relu = unary('Relu');
export const identity = unary('Identity');

export function matmul(g: Graph, a: Value, b: Value): Value {
  if (a.shape.length < 2 || b.shape.length < 2) throw new Error('MatMul: operands must have rank ≥ 2');
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'MatMul');
  return g.node('MatMul', [a, b], {}, [{ shape: [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]] }])[0];
}

export function transpose(g: Graph, x: Value, perm: readonly number[]): Value {
  return g.node('Transpose', [x], { perm }, [{ shape: perm.map((p) => x.shape[p]) }])[0];
}

/** Swaps the last two axes. */
export function transposeLast(g: Graph, x: Value): Value {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return transpose(g, x, perm);
}

/**
 * Reshape to `target`, where 0 copies the input's size at that axis (ONNX
 * semantics) and -1 is inferred; `shape` is the resulting symbolic shape.
 */
export function reshape(g: Graph, x: Value, target: readonly number[], shape: Shape): Value {
  return g.node('Reshape', [x, g.ints(target)], {}, [{ shape }])[0];
}

/** Reshape to the runtime shape of `like`. */
export function reshapeLike(g: Graph, x: Value, like: Value): Value {
  return g.node('Reshape', [x, shapeOf(g, like)], {}, [{ shape: like.shape }])[0];
}

export function shapeOf(g: Graph, x: Value, start?: number, end?: number): Value {
  const attrs: Record<string, number> = {};
  if (start !== undefined) attrs.start = start;
  if (end !== undefined) attrs.end = end;
  const len = (end ?? x.shape.length) - (start ?? 0);
  return g.node('Shape', [x], attrs, [{ shape: [len], dataType: DataType.INT64 }])[0];
}

export function reduceSum(g: Graph, x: Value, axes: readonly number[], keepdims: boolean): Value {
  const r = x.shape.length;
  const ax = axes.map((a) => axisOf(a, r));
  const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
  return g.node('ReduceSum', [x, g.ints(ax)], { keepdims: keepdims ? 1 : 0 }, [{ shape }])[0];
}

export function reduceMean(g: Graph, x: Value, axes: readonly number[], keepdims: boolean): Value {
  const r = x.shape.length;
  const ax = axes.map((a) => axisOf(a, r));
  const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
  return g.node('ReduceMean', [x], { axes: ax, keepdims: keepdims ? 1 : 0 }, [{ shape }])[0];
}

export function softmax(g: Graph, x: Value, axis = -1): Value {
  return g.node('Softmax', [x], { axis }, [{ shape: x.shape }])[0];
}

export function logSoftmax(g: Graph, x: Value, axis = -1): Value {
  return g.node('LogSoftmax', [x], { axis }, [{ shape: x.shape }])[0];
}

/** Layer norm over the last axis. */
export function layerNorm(g: Graph, x: Value, scale: Value, bias: Value, epsilon: number): Value {
  return g.node('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: epsilon } }, [{ shape: x.shape }])[0];
}

export function concat(g: Graph, xs: readonly Value[], axis: number): Value {
  const r = xs[0].shape.length;
  const a = axisOf(axis, r);
  const sizes = xs.map((x) => x.shape[a]);
  const total: Dim = sizes.every((s) => typeof s === 'number')
    ? (sizes as number[]).reduce((p, q) => p + q, 0)
    : sizes.join('+');
  const shape = xs[0].shape.map((d, i) => (i === a ? total : d));
  return g.node('Concat', xs, { axis: a }, [{ shape, dataType: xs[0].dataType }])[0];
}

/** Broadcasts `x` to `shape`, given at run time by the int64 tensor `runtimeShape`. */
export function expand(g: Graph, x: Value, runtimeShape: Value, shape: Shape): Value {
  return g.node('Expand', [x, runtimeShape], {}, [{ shape }])[0];
}

export function unsqueeze(g: Graph, x: Value, axes: readonly number[]): Value {
  const rank = x.shape.length + axes.length;
  const ax = axes.map((a) => axisOf(a, rank));
  const shape: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[j++]);
  return g.node('Unsqueeze', [x, g.ints(ax)], {}, [{ shape, dataType: x.dataType }])[0];
}

/** Slice along `axis` from `start` to `end`, both int64 tensors of one element. */
export function slice(g: Graph, x: Value, start: Value, end: Value, axis: number, size: Dim): Value {
  const a = axisOf(axis, x.shape.length);
  return g.node('Slice', [x, start, end, g.ints([a])], {}, [{ shape: x.shape.map((d, i) => (i === a ? size : d)), dataType: x.dataType }])[0];
}

export function conv(g: Graph, x: Value, w: Value, b: Value | undefined, opts: { stride: number; pad: number; outShape: Shape }): Value {
  const k = w.shape[2] as number;
  return g.node('Conv', b ? [x, w, b] : [x, w], {
    kernel_shape: [k, k], strides: [opts.stride, opts.stride], pads: [opts.pad, opts.pad, opts.pad, opts.pad],
  }, [{ shape: opts.outShape }])[0];
}

export function averagePool(g: Graph, x: Value, kernel: number, outShape: Shape): Value {
  return g.node('AveragePool', [x], { kernel_shape: [kernel, kernel], strides: [kernel, kernel] }, [{ shape: outShape }])[0];
}

export function int64Add(g: Graph, a: Value, b: Value): Value {
  return g.node('Add', [a, b], {}, [{ shape: a.shape, dataType: DataType.INT64 }])[0];
}

export function int64Sub(g: Graph, a: Value, b: Value): Value {
  return g.node('Sub', [a, b], {}, [{ shape: a.shape, dataType: DataType.INT64 }])[0];
}

/** Zero padding: `pads` is an int64 tensor [begin_0 … begin_{r-1}, end_0 … end_{r-1}]; `shape` the result's. */
export function pad(g: Graph, x: Value, pads: Value, shape: Shape): Value {
  return g.node('Pad', [x, pads], { mode: 'constant' }, [{ shape, dataType: x.dataType }])[0];
}
