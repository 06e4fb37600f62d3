// Reverse-mode differentiation of a Graph: appends the nodes that compute the
// vector-Jacobian product of an output with respect to chosen values, so one
// onnxruntime session runs forward and backward together.
//
// Each rule below is the textbook VJP of one ONNX operator; broadcasting is
// undone by summing over the axes it added (unbroadcast).

import { DataType } from './proto.js';
import type { Graph, GraphNode, Shape, Value } from './graph.js';
import * as op from './ops.js';

/** Sums `grad` down to `target`'s shape, undoing numpy-style broadcasting. */
function unbroadcast(g: Graph, grad: Value, target: Shape): Value {
  let r = grad;
  const lead = r.shape.length - target.length;
  if (lead > 0) r = op.reduceSum(g, r, [...Array(lead).keys()], false);
  const ones = target.flatMap((d, i) => (d === 1 && r.shape[i] !== 1 ? [i] : []));
  if (ones.length) r = op.reduceSum(g, r, ones, true);
  return r;
}

function intAttr(node: GraphNode, name: string, fallback: number): number {
  const a = node.attributes[name];
  return typeof a === 'number' ? a : fallback;
}

type Rule = (g: Graph, node: GraphNode, dy: Value, need: readonly boolean[]) => (Value | undefined)[];

/** Broadcasts a gradient of a reduction back over the reduced axes. */
function unreduce(g: Graph, node: GraphNode, dy: Value, axes: readonly number[]): Value {
  const x = node.inputs[0];
  const keep = intAttr(node, 'keepdims', 1) === 1;
  const kept = keep ? dy : op.unsqueeze(g, dy, axes);
  return op.expand(g, kept, op.shapeOf(g, x), x.shape);
}

const rules: Record<string, Rule> = {
  Identity: (_g, _n, dy) => [dy],
  Neg: (g, _n, dy) => [op.neg(g, dy)],
  Add: (g, n, dy, need) => [
    need[0] ? unbroadcast(g, dy, n.inputs[0].shape) : undefined,
    need[1] ? unbroadcast(g, dy, n.inputs[1].shape) : undefined,
  ],
  Sub: (g, n, dy, need) => [
    need[0] ? unbroadcast(g, dy, n.inputs[0].shape) : undefined,
    need[1] ? unbroadcast(g, op.neg(g, dy), n.inputs[1].shape) : undefined,
  ],
  Mul: (g, n, dy, need) => {
    const [a, b] = n.inputs;
    return [
      need[0] ? unbroadcast(g, op.mul(g, dy, b), a.shape) : undefined,
      need[1] ? unbroadcast(g, op.mul(g, dy, a), b.shape) : undefined,
    ];
  },
  Div: (g, n, dy, need) => {
    const [a, b] = n.inputs;
    const y = n.outputs[0];
    return [
      need[0] ? unbroadcast(g, op.div(g, dy, b), a.shape) : undefined,
      need[1] ? unbroadcast(g, op.neg(g, op.div(g, op.mul(g, dy, y), b)), b.shape) : undefined,
    ];
  },
  Sqrt: (g, n, dy) => [op.div(g, op.mul(g, dy, g.scalar(0.5)), n.outputs[0])],
  Exp: (g, n, dy) => [op.mul(g, dy, n.outputs[0])],
  Sigmoid: (g, n, dy) => {
    const y = n.outputs[0];
    return [op.mul(g, dy, op.mul(g, y, op.sub(g, g.scalar(1), y)))];
  },
  MatMul: (g, n, dy, need) => {
    const [a, b] = n.inputs;
    return [
      need[0] ? unbroadcast(g, op.matmul(g, dy, op.transposeLast(g, b)), a.shape) : undefined,
      need[1] ? unbroadcast(g, op.matmul(g, op.transposeLast(g, a), dy), b.shape) : undefined,
    ];
  },
  Transpose: (g, n, dy) => {
    const perm = n.attributes.perm as readonly number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [op.transpose(g, dy, inverse)];
  },
  Reshape: (g, n, dy) => [op.reshapeLike(g, dy, n.inputs[0])],
  Unsqueeze: (g, n, dy) => [op.reshapeLike(g, dy, n.inputs[0])],
  Expand: (g, n, dy) => [unbroadcast(g, dy, n.inputs[0].shape)],
  ReduceSum: (g, n, dy) => {
    const axes = g.intConstants.get(n.inputs[1].name);
    if (!axes) throw new Error('ReduceSum gradient needs constant axes');
    return [unreduce(g, n, dy, axes)];
  },
  ReduceMean: (g, n, dy) => {
    const axes = n.attributes.axes as readonly number[];
    const x = n.inputs[0];
    let count = 1;
    for (const a of axes) {
      const d = x.shape[a];
      if (typeof d !== 'number') throw new Error('ReduceMean gradient needs reduced axes of known size');
      count *= d;
    }
    return [op.mul(g, unreduce(g, n, dy, axes), g.scalar(1 / count))];
  },
  Softmax: (g, n, dy) => {
    const y = n.outputs[0];
    const axis = intAttr(n, 'axis', -1);
    return [op.mul(g, y, op.sub(g, dy, op.reduceSum(g, op.mul(g, dy, y), [axis], true)))];
  },
  LogSoftmax: (g, n, dy) => {
    const y = n.outputs[0];
    const axis = intAttr(n, 'axis', -1);
    return [op.sub(g, dy, op.mul(g, op.exp(g, y), op.reduceSum(g, dy, [axis], true)))];
  },
  LayerNormalization: (g, n, dy, need) => {
    // Mean and inverse deviation are recomputed here rather than taken from the
    // forward node, which keeps inference graphs to the single fused output.
    const [x, scale, bias] = n.inputs;
    const eps = (n.attributes.epsilon as { float: number }).float;
    const centred = op.sub(g, x, op.reduceMean(g, x, [-1], true));
    const variance = op.reduceMean(g, op.mul(g, centred, centred), [-1], true);
    const inv = op.div(g, g.scalar(1), op.sqrt(g, op.add(g, variance, g.scalar(eps))));
    const xhat = op.mul(g, centred, inv);
    let dx: Value | undefined;
    if (need[0]) {
      const dxhat = op.mul(g, dy, scale);
      const meanD = op.reduceMean(g, dxhat, [-1], true);
      const meanDX = op.reduceMean(g, op.mul(g, dxhat, xhat), [-1], true);
      dx = op.mul(g, inv, op.sub(g, op.sub(g, dxhat, meanD), op.mul(g, xhat, meanDX)));
    }
    return [
      dx,
      need[1] ? unbroadcast(g, op.mul(g, dy, xhat), scale.shape) : undefined,
      need[2] ? unbroadcast(g, dy, bias.shape) : undefined,
    ];
  },
  Slice: (g, n, dy, need) => {
    // Zero-pad the gradient back to the input's extent along the sliced axis.
    const [x, start, end, axesValue] = n.inputs;
    if (n.inputs.length > 4) throw new Error('Slice gradient: steps are not supported');
    const axes = axesValue ? g.intConstants.get(axesValue.name) : undefined;
    if (!axes || axes.length !== 1 || start.shape[0] !== 1) throw new Error('Slice gradient needs one constant axis');
    if (!need[0]) return [];
    const rank = x.shape.length;
    const a = axes[0] < 0 ? axes[0] + rank : axes[0];
    const after = op.int64Sub(g, op.shapeOf(g, x, a, a + 1), end);
    const zeros = (k: number): Value[] => (k > 0 ? [g.ints(new Array(k).fill(0))] : []);
    const pads = op.concat(g, [...zeros(a), start, ...zeros(rank - 1), after, ...zeros(rank - a - 1)], 0);
    return [op.pad(g, dy, pads, x.shape)];
  },
  Conv: (g, n, dy, need) => {
    // Only the patch embedding's case: stride = kernel, no padding, so every
    // input pixel meets one kernel position and the convolution is a MatMul
    // of non-overlapping patches.
    const [x, w] = n.inputs;
    const k = w.shape[2] as number;
    const strides = n.attributes.strides as readonly number[] | undefined;
    const pads = n.attributes.pads as readonly number[] | undefined;
    if (!strides || strides.some((s) => s !== k) || (pads && pads.some((p) => p !== 0)) || w.shape[3] !== k) {
      throw new Error('Conv gradient is implemented for non-overlapping patches only (square kernel = stride, no padding)');
    }
    if (need[0]) throw new Error('Conv gradient with respect to its input is not implemented (only the weights and bias)');
    const [outC, inC] = w.shape as number[];
    const [, , gh, gw] = dy.shape;
    if (typeof gh !== 'number' || typeof gw !== 'number') throw new Error('Conv gradient needs a known output grid');
    // x [B, C, gh·k, gw·k] → patches [B·gh·gw, C·k·k]; any pixels beyond the grid are cropped first.
    let xs = x;
    if (x.shape[2] !== gh * k) xs = op.slice(g, xs, g.ints([0]), g.ints([gh * k]), 2, gh * k);
    if (x.shape[3] !== gw * k) xs = op.slice(g, xs, g.ints([0]), g.ints([gw * k]), 3, gw * k);
    const six = op.reshape(g, xs, [0, inC, gh, k, gw, k], [x.shape[0], inC, gh, k, gw, k]);
    const patches = op.reshape(g, op.transpose(g, six, [0, 2, 4, 1, 3, 5]), [-1, inC * k * k], ['patches', inC * k * k]);
    const dyRows = op.reshape(g, op.transpose(g, dy, [0, 2, 3, 1]), [-1, outC], ['patches', outC]); // [B·gh·gw, O]
    const dw = op.reshape(g, op.matmul(g, op.transposeLast(g, dyRows), patches), [outC, inC, k, k], [outC, inC, k, k]);
    const db = n.inputs[2] && need[2] ? op.reduceSum(g, dy, [0, 2, 3], false) : undefined;
    return [undefined, need[1] ? dw : undefined, db];
  },
  Concat: (g, n, dy, need) => {
    const axis = n.attributes.axis as number;
    let start = g.ints([0]);
    return n.inputs.map((x, i) => {
      const end = op.int64Add(g, start, op.shapeOf(g, x, axis, axis + 1));
      const part = need[i] ? op.slice(g, dy, start, end, axis, x.shape[axis]) : undefined;
      start = end;
      return part;
    });
  },
};

/**
 * Appends to `g` the gradient of `y` with respect to each of `wrt`, for the
 * cotangent `seed` (default: 1, for a scalar `y`). Returns one value per `wrt`.
 */
export function gradients(g: Graph, y: Value, wrt: readonly Value[], seed?: Value): Value[] {
  const nodes = [...g.nodes];
  // Values that depend differentiably on `wrt` (shape computations do not).
  const isFloat = (v: Value): boolean => v.dataType === DataType.FLOAT;
  const active = new Set(wrt.map((v) => v.name));
  for (const n of nodes) {
    if (n.inputs.some((v) => isFloat(v) && active.has(v.name))) for (const o of n.outputs.filter(isFloat)) active.add(o.name);
  }
  const useful = new Set([y.name]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (n.outputs.some((v) => useful.has(v.name))) for (const v of n.inputs) useful.add(v.name);
  }

  const grads = new Map<string, Value>();
  grads.set(y.name, seed ?? g.weight('seed', y.shape.map(() => 1), Float32Array.of(1)));
  const accumulate = (v: Value, d: Value): void => {
    const prev = grads.get(v.name);
    grads.set(v.name, prev ? op.add(g, prev, d) : d);
  };

  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((v) => active.has(v.name) && useful.has(v.name))) continue;
    if (n.outputs.length !== 1) throw new Error(`no gradient rule for multi-output ${n.opType}`);
    const dy = grads.get(n.outputs[0].name);
    if (!dy) continue;
    const rule = rules[n.opType];
    if (!rule) throw new Error(`no gradient rule for ONNX operator ${n.opType}`);
    const need = n.inputs.map((v) => isFloat(v) && active.has(v.name));
    rule(g, n, dy, need).forEach((d, j) => {
      if (d && need[j]) accumulate(n.inputs[j], d);
    });
  }

  return wrt.map((v) => {
    const d = grads.get(v.name);
    if (!d) throw new Error(`${y.name} does not depend on ${v.name}`);
    return d;
  });
}
