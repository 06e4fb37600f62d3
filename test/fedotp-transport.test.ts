// FedOTP's transport (src/methods/fedotp.ts), without a model: plans and
// logits against a transcription of its own code
// (scripts/goldens/fedotp_transport.py), the plans' marginals, the stopping
// rule, the loss gradient to each prompt's class features against finite
// differences with the plan held fixed, and bad options. The method with a
// real text tower and real clients: fedotp.test.ts.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { SeededRandom } from '../src/clip/random.js';
import { parseConfig } from '../src/experiment/config.js';
import { readSafetensors, toFloat32 } from '../src/io/safetensors.js';
import {
  checkFedOtpOptions, fedOtp, FEDOTP_DEFAULTS, transportLogits, transportLossGradients, transportPlans, unitRows, type FedOtpOptions,
} from '../src/methods/fedotp.js';
import { PROJECT_ROOT, relativeError } from './shared.js';

const GOLDEN = path.join(PROJECT_ROOT, 'test', 'fixtures', 'fedotp', 'transport.safetensors');

test('transport plans and logits match FedOTP\'s GLP_OT.py (COT and Sinkhorn, iterations to the thresh stop or to max_iter)', async () => {
  const file = await readSafetensors(GOLDEN);
  const meta = JSON.parse(file.metadata.meta) as { b: number; M: number; C: number; E: number; N: number; logit_scale: number; cases: { key: string; transport: 'cot' | 'sinkhorn'; eps: number; iterations: number }[] };
  const { b, M, C, E, N } = meta;
  const get = (name: string): Float32Array => toFloat32(file.tensors.get(name)!);
  const tokens = unitRows(get('input.tokens'), E);
  const text = get('input.text');
  const prompts = Array.from({ length: N }, (_, n) => text.subarray(n * C * E, (n + 1) * C * E));
  assert.equal(meta.cases.length, 4);
  const iterations = new Set<number>();
  for (const c of meta.cases) {
    const options: FedOtpOptions = { ...FEDOTP_DEFAULTS, transport: c.transport, eps: c.eps };
    const scores = transportLogits(tokens, b, M, prompts, C, E, meta.logit_scale, options);
    assert.equal(scores.iterations, c.iterations, `${c.key}: iterations`);
    iterations.add(c.iterations);
    const planError = relativeError(scores.plans, toFloat32(file.tensors.get(`${c.key}.plans`)!));
    const logitError = relativeError(scores.logits, get(`${c.key}.logits`));
    console.log(`${c.key}: ${c.iterations} iterations, plans relative error ${planError.toExponential(2)}, logits ${logitError.toExponential(2)}`);
    assert.ok(planError < 2e-5, `${c.key}: plans relative error ${planError}`);
    assert.ok(logitError < 1e-5, `${c.key}: logits relative error ${logitError}`);
  }
  assert.ok(iterations.has(100) && [...iterations].some((i) => i < 100), 'the cases cover both ways the iterations end');
});

test('COT plans: each token carries at most 1/M, each prompt exactly top_percent/N; Sinkhorn plans have both marginals exact', () => {
  const B = 4, M = 6, N = 2;
  const random = new SeededRandom(3);
  const K = Float64Array.from(random.normals(B * M * N), (s) => Math.exp(-(1 - 0.3 * s) / 0.1));
  for (const transport of ['cot', 'sinkhorn'] as const) {
    const options = { ...FEDOTP_DEFAULTS, transport, thresh: 0, maxIter: 1000 };
    const { plans, iterations } = transportPlans(K, B, M, N, options);
    assert.equal(iterations, 1000);
    const columnMass = transport === 'cot' ? 0.8 / N : 1 / N;
    for (let p = 0; p < B; p++) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let m = 0; m < M; m++) sum += plans[p * M * N + m * N + n];
        assert.ok(Math.abs(sum - columnMass) < 1e-9, `${transport} problem ${p} prompt ${n}: mass ${sum}, expected ${columnMass}`);
      }
      let saturated = 0;
      for (let m = 0; m < M; m++) {
        let sum = 0;
        for (let n = 0; n < N; n++) sum += plans[p * M * N + m * N + n];
        if (transport === 'sinkhorn') assert.ok(Math.abs(sum - 1 / M) < 1e-6, `sinkhorn problem ${p} token ${m}: mass ${sum}`);
        else assert.ok(sum <= 1 / M + 1e-12, `cot problem ${p} token ${m}: mass ${sum} above 1/M`);
        if (Math.abs(sum - 1 / M) < 1e-9) saturated++;
      }
      if (transport === 'cot') assert.ok(saturated < M, `cot problem ${p}: every token fully transported, the mass constraint did nothing`);
    }
  }
});

test('the plans stop early once the batch\'s mean change is below thresh, and a plan that underflows is an error', () => {
  const K = new Float64Array(2 * 3 * 2).fill(0.5);
  K[0] = 0.9;
  const loose = transportPlans(K, 2, 3, 2, { ...FEDOTP_DEFAULTS, thresh: 1e-3 });
  const tight = transportPlans(K, 2, 3, 2, { ...FEDOTP_DEFAULTS, thresh: 1e-12 });
  assert.ok(loose.iterations < tight.iterations && tight.iterations < 100, `${loose.iterations} vs ${tight.iterations}`);
  assert.throws(() => transportPlans(new Float64Array(12), 2, 3, 2, FEDOTP_DEFAULTS), /not finite \(ε 0\.01 too small/);
  assert.throws(() => transportPlans(new Float64Array(5), 2, 3, 2, FEDOTP_DEFAULTS), /5 values, expected 2×3×2/);
});

test('the loss gradient to each prompt\'s class features matches finite differences with the plan held fixed, and is the plan-weighted sum by hand', () => {
  const C = 3, E = 6, M = 5, b = 3;
  const random = new SeededRandom(21);
  const tokens = unitRows(random.normals(b * M * E), E);
  const features = [unitRows(random.normals(C * E), E), unitRows(random.normals(C * E), E)];
  const labels = Int32Array.from([2, 0, 1]);
  const options = { ...FEDOTP_DEFAULTS, eps: 0.1 };
  const scale = 27.5;
  const scores = transportLogits(tokens, b, M, features, C, E, scale, options);
  const { loss, grads } = transportLossGradients(scores, tokens, labels, M, 2, C, E, scale);
  const lossAt = (w: Float32Array[]): number =>
    transportLossGradients(transportLogits(tokens, b, M, w, C, E, scale, options, scores.plans), tokens, labels, M, 2, C, E, scale).loss;
  assert.ok(Math.abs(lossAt(features) - loss) < 1e-12);
  // The loss by hand: mean over images of log Σ_c e^z − z_label.
  let byHand = 0;
  for (let i = 0; i < b; i++) {
    const z = Array.from(scores.logits.subarray(i * C, (i + 1) * C));
    byHand += Math.log(z.reduce((s, v) => s + Math.exp(v), 0)) - z[labels[i]];
  }
  assert.ok(Math.abs(byHand / b - loss) < 1e-9, `loss ${loss}, by hand ${byHand / b}`);
  for (let n = 0; n < 2; n++) {
    for (let i = 0; i < C * E; i++) {
      // Central differences over the step the float32 features really take.
      const h = 2e-4;
      const shifted = (delta: number): Float32Array[] => features.map((w, k) => (k === n ? Float32Array.from(w, (v, j) => (j === i ? v + delta : v)) : w));
      const [plus, minus] = [shifted(h), shifted(-h)];
      const numeric = (lossAt(plus) - lossAt(minus)) / (plus[n][i] - minus[n][i]);
      assert.ok(Math.abs(numeric - grads[n][i]) < 1e-4 * Math.max(1, Math.abs(numeric)), `prompt ${n} feature ${i}: analytic ${grads[n][i]}, numeric ${numeric}`);
    }
  }
  assert.throws(() => transportLossGradients(scores, tokens, Int32Array.from([0, 3, 1]), M, 2, C, E, scale), /label 3 outside the 3 classes/);
  assert.throws(() => transportLossGradients(scores, tokens, Int32Array.from([0, -1, 1]), M, 2, C, E, scale), /label -1 outside/);
});

test('bad options and inputs are refused, naming what is wrong', () => {
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, eps: 0 }), /eps must be positive/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, topPercent: 1.5 }), /topPercent must be in \(0, 1\]/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, maxIter: 0 }), /maxIter must be a positive integer/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, evalBatchSize: 2.5 }), /evalBatchSize must be a positive integer/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, thresh: -1 }), /thresh must be non-negative/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, transport: 'emd' as 'cot' }), /transport must be "cot" or "sinkhorn"/);
  assert.throws(() => fedOtp({ ...FEDOTP_DEFAULTS, eps: -1 }), /FedOTP: eps/);
  // The edges that are allowed, and just past them.
  for (const ok of [FEDOTP_DEFAULTS, { ...FEDOTP_DEFAULTS, transport: 'sinkhorn' as const }, { ...FEDOTP_DEFAULTS, thresh: 0 }, { ...FEDOTP_DEFAULTS, maxIter: 1 },
    { ...FEDOTP_DEFAULTS, topPercent: 1 }, { ...FEDOTP_DEFAULTS, evalBatchSize: 1 }]) {
    assert.doesNotThrow(() => checkFedOtpOptions(ok), JSON.stringify(ok));
  }
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, topPercent: 0 }), /topPercent must be in \(0, 1\]/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, evalBatchSize: 0 }), /evalBatchSize must be a positive integer/);
  assert.throws(() => checkFedOtpOptions({ ...FEDOTP_DEFAULTS, transport: '' as 'cot' }), /transport must be/);
  assert.equal(FEDOTP_DEFAULTS.weighted, true);
  assert.throws(() => transportLogits(new Float32Array(5), 1, 2, [new Float32Array(6)], 3, 2, 1, FEDOTP_DEFAULTS), /tokens have 5 values, expected 1×2×2/);
  assert.throws(() => transportLogits(new Float32Array(4), 1, 2, [new Float32Array(5)], 3, 2, 1, FEDOTP_DEFAULTS), /class features have 5 values, expected 3×2/);
  assert.throws(() => transportLogits(new Float32Array(4), 1, 2, [new Float32Array(6)], 3, 2, 1, FEDOTP_DEFAULTS, new Float64Array(2)), /2 plan values/);
  const config = parseConfig({ model: 'm', data: { datasets: ['d'] }, methodOptions: { fedotp: { eps: 0.1 } } }, 'test');
  const { weighted: _weighted, ...transportDefaults } = FEDOTP_DEFAULTS;
  assert.deepEqual(config.methodOptions.fedotp, { ...transportDefaults, eps: 0.1 });
  assert.throws(() => parseConfig({ model: 'm', data: { datasets: ['d'] }, methodOptions: { fedotp: { topPercent: 2 } } }, 'test'), /topPercent/);
});
