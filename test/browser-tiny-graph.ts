// A tiny model made by the project's own graph builder, shared by a browser test's Worker
// (loaded from dist/ as an ES module) and the Node side that checks its outputs: the same
// code builds it in both places, so the two runtimes are compared on the same bytes.
import { Graph } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops.js';

export const TINY_IN = 48;
export const TINY_OUT = 24;
export const TINY_ROWS = 3;

/** softmax(x · W + b) with fixed, irregular weights; returns the encoded ONNX model. */
export function tinyGraph(): Uint8Array {
  const g = new Graph('tiny');
  const x = g.input('x', [TINY_ROWS, TINY_IN]);
  const w = g.weight('w', [TINY_IN, TINY_OUT], Float32Array.from({ length: TINY_IN * TINY_OUT }, (_, i) => Math.sin(i * 0.37) * 0.2));
  const b = g.weight('b', [TINY_OUT], Float32Array.from({ length: TINY_OUT }, (_, i) => Math.cos(i) * 0.1));
  g.output(op.softmax(g, op.add(g, op.matmul(g, x, w), b)), 'y');
  return g.encode();
}

/** The input both sides feed it. */
export function tinyInput(): Float32Array {
  return Float32Array.from({ length: TINY_ROWS * TINY_IN }, (_, i) => Math.cos(i * 0.11) * 2);
}
