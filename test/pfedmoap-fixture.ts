// Helpers shared by the pFedMoAP tests: random unit rows, the mixture's mean
// cross-entropy computed plainly from its logits, and a tolerance check.

import assert from 'node:assert/strict';
import type { SeededRandom } from '../src/clip/random.js';
import { normalizeRows } from '../src/clip/similarity.js';
import { mixtureLogits, type Gating, type MixtureInput, type MixtureSettings } from '../src/methods/pfedmoap.js';

export function unitRows(random: SeededRandom, rows: number, cols: number): Float32Array {
  return normalizeRows({ shape: [rows, cols], data: random.normals(rows * cols) });
}

export function lossOf(input: MixtureInput, gating: Gating, settings: MixtureSettings, labels: readonly number[]): number {
  const logits = mixtureLogits(input, gating, settings);
  const C = input.classes;
  let loss = 0;
  labels.forEach((label, b) => {
    const row = Array.from(logits.subarray(b * C, (b + 1) * C));
    const max = Math.max(...row);
    loss += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[label];
  });
  return loss / labels.length;
}

export function close(analytic: number, numeric: number, what: string, rel = 2e-3, abs = 2e-4): void {
  assert.ok(Math.abs(analytic - numeric) <= rel * Math.max(1, Math.abs(numeric)) + abs, `${what}: analytic ${analytic}, numeric ${numeric}`);
}

