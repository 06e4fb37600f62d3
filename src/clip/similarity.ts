// CLIP's contrastive head on the host: cosine logits between image and text
// embeddings, and their softmax. Small enough that plain loops are fastest.

import type { HostTensor } from './weights.js';

/** Each row divided by its Euclidean norm. */
export function normalizeRows(t: HostTensor): Float32Array {
  const [rows, cols] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += t.data[r * cols + c] ** 2;
    const inv = 1 / Math.max(Math.sqrt(sum), 1e-12);
    for (let c = 0; c < cols; c++) out[r * cols + c] = t.data[r * cols + c] * inv;
  }
  return out;
}

/** scale · cos(image_i, text_j): [N, E] × [C, E] → [N, C]. */
export function cosineLogits(images: HostTensor, texts: HostTensor, scale: number): HostTensor {
  const [n, e] = images.shape;
  const [c, e2] = texts.shape;
  if (e !== e2) throw new Error(`cosineLogits: image width ${e} ≠ text width ${e2}`);
  const a = normalizeRows(images);
  const b = normalizeRows(texts);
  const out = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      let dot = 0;
      for (let k = 0; k < e; k++) dot += a[i * e + k] * b[j * e + k];
      out[i * c + j] = scale * dot;
    }
  }
  return { shape: [n, c], data: out };
}

/** Row-wise softmax of [N, C] logits. */
export function softmaxRows(t: HostTensor): Float32Array {
  const [rows, cols] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let r = 0; r < rows; r++) {
    const row = t.data.subarray(r * cols, (r + 1) * cols);
    const max = Math.max(...row);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += out[r * cols + c] = Math.exp(row[c] - max);
    for (let c = 0; c < cols; c++) out[r * cols + c] /= sum;
  }
  return out;
}
