// FedOTP (Li, Huang, Wang and Shi, "Global and Local Prompts Cooperation via
// Optimal Transport for Federated Learning", CVPR 2024; code
// HongxiaLee/FedOTP, trainers/GLP_OT.py and federated_main.py). Each client
// holds two CoOp prompts: a global one, averaged by the server (FedAvg), and a
// local one that never leaves it. An image is its M spatial tokens
// (FeatureSet.tokens), a class is its N = 2 text features (one per prompt);
// their similarity is the transported similarity Σ_mn T_mn ⟨x_m, w_n⟩ under
// an unbalanced optimal-transport plan T between the normalised tokens (mass
// at most 1/M each) and the normalised prompt features (mass top_percent/N
// each), computed by entropic Sinkhorn iterations on K = exp(−(1 − sim)/ε)
// without gradient. logit = exp(logit_scale) · transported similarity,
// cross-entropy, both prompts trained by SGD.
//
// As in their code: the plan's iterations run for a whole batch of (image,
// class) pairs in lock-step and stop when the mean change of the scaling
// vector over the batch falls below `thresh` (so at test time they run per
// chunk of `evalBatchSize` images, their test batch of 100); with their ε
// the scalings are far above `thresh` and all `maxIter` iterations run. The
// plan is computed in float64 (theirs in fp16/fp32 on GPU): with ε = 0.01,
// K reaches e^−200, below float32's range.
//
// Trains: the global and the local context. Uploads: the global context.
// Stays on the client: the local context and its images.

import { SeededRandom } from '../clip/random.js';
import { selectRows, type FeatureSet } from '../federation/client-data.js';
import { forEachBatch } from '../federation/local-training.js';
import { contextOf, type FederationSetup, type Method, type Tensors } from '../federation/method.js';
import type { TextTower } from '../federation/text-tower.js';
import { Sgd } from '../prompt/sgd.js';
import { sharedContextServer } from './promptfl.js';

/** GLP_OT's `--OT`: their unbalanced (constrained) transport, or plain balanced Sinkhorn. */
export type Transport = 'cot' | 'sinkhorn';

export interface FedOtpOptions {
  readonly weighted: boolean;
  readonly transport: Transport;
  /** Entropic regularisation ε of K = exp(−(1 − sim)/ε). */
  readonly eps: number;
  /** The iterations stop when the batch's mean change of the scaling vector is below this. */
  readonly thresh: number;
  readonly maxIter: number;
  /** Mass the prompts take in all (COT): each of the N prompts gets top_percent/N, so tokens are only partly transported. */
  readonly topPercent: number;
  /** Images whose plans are iterated together at test time (their test batch size). */
  readonly evalBatchSize: number;
}

/** scripts/fedotp_few_shot.sh: COT, top_percent 0.8, ε 0.01, thresh 0.001, 100 iterations; test batch 100 (federated_main.py). */
export const FEDOTP_DEFAULTS: FedOtpOptions = { weighted: true, transport: 'cot', eps: 0.01, thresh: 1e-3, maxIter: 100, topPercent: 0.8, evalBatchSize: 100 };

/** The prompts per client: global and local (`--num_prompt 2 --avg_prompt 1`). */
const PROMPTS = 2;

export function checkFedOtpOptions(options: FedOtpOptions): void {
  const fail = (what: string): never => { throw new Error(`FedOTP: ${what}`); };
  if (options.transport !== 'cot' && options.transport !== 'sinkhorn') fail(`transport must be "cot" or "sinkhorn", got ${JSON.stringify(options.transport)}`);
  if (!(options.eps > 0)) fail(`eps must be positive, got ${options.eps}`);
  if (!(options.thresh >= 0)) fail(`thresh must be non-negative, got ${options.thresh}`);
  if (!(Number.isInteger(options.maxIter) && options.maxIter >= 1)) fail(`maxIter must be a positive integer, got ${options.maxIter}`);
  if (!(options.topPercent > 0 && options.topPercent <= 1)) fail(`topPercent must be in (0, 1], got ${options.topPercent}`);
  if (!(Number.isInteger(options.evalBatchSize) && options.evalBatchSize >= 1)) fail(`evalBatchSize must be a positive integer, got ${options.evalBatchSize}`);
}

/**
 * Transport plans of B problems with M sources and N targets, iterated in
 * lock-step as GLP_OT.py does, from the kernels K [B, M, N]. COT
 * (entropic_COT_fast): source mass at most 1/M, target mass top_percent/N.
 * Sinkhorn: source 1/M, target 1/N exactly. Returns T [B, M, N] and the
 * iterations run.
 */
export function transportPlans(K: Float64Array, B: number, M: number, N: number, options: FedOtpOptions): { plans: Float64Array; iterations: number } {
  if (K.length !== B * M * N) throw new Error(`transport kernel has ${K.length} values, expected ${B}×${M}×${N}`);
  const a = 1 / M;
  // min(Σ xx, top_percent): Σ xx is B (each problem's sources hold 1), so top_percent whenever B ≥ 1.
  const b = options.transport === 'cot' ? Math.min(B, options.topPercent) / N : 1 / N;
  const u = new Float64Array(B * M).fill(1);
  const v = new Float64Array(B * N).fill(1);
  let iterations = 0;
  while (iterations < options.maxIter) {
    let change = 0;
    for (let p = 0; p < B; p++) {
      const k = p * M * N;
      if (options.transport === 'cot') {
        // u = min(1 / (diag(1/a) K v), 1); v = 1 / (diag(1/b) Kᵀ u); the change is v's.
        for (let m = 0; m < M; m++) {
          let s = 0;
          for (let n = 0; n < N; n++) s += (K[k + m * N + n] / a) * v[p * N + n];
          u[p * M + m] = Math.min(1 / s, 1);
        }
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let m = 0; m < M; m++) s += (K[k + m * N + n] / b) * u[p * M + m];
          const next = 1 / s;
          change += Math.abs(next - v[p * N + n]);
          v[p * N + n] = next;
        }
      } else {
        // r = a / (K c); c = b / (Kᵀ r); the change is r's.
        for (let m = 0; m < M; m++) {
          let s = 0;
          for (let n = 0; n < N; n++) s += K[k + m * N + n] * v[p * N + n];
          const next = a / s;
          change += Math.abs(next - u[p * M + m]);
          u[p * M + m] = next;
        }
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let m = 0; m < M; m++) s += K[k + m * N + n] * u[p * M + m];
          v[p * N + n] = b / s;
        }
      }
    }
    iterations++;
    const mean = change / (B * (options.transport === 'cot' ? N : M));
    if (mean < options.thresh) break;
  }
  const plans = new Float64Array(B * M * N);
  for (let p = 0; p < B; p++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        const i = p * M * N + m * N + n;
        plans[i] = u[p * M + m] * K[i] * v[p * N + n];
        if (!Number.isFinite(plans[i])) {
          throw new Error(`FedOTP: the transport plan is not finite (ε ${options.eps} too small for these similarities: K underflows)`);
        }
      }
    }
  }
  return { plans, iterations };
}

/** Unit rows of [rows, E] (F.normalize: x / max(‖x‖, 1e-12)). */
export function unitRows(x: Float32Array, E: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / E; r++) {
    let sum = 0;
    for (let e = 0; e < E; e++) sum += x[r * E + e] ** 2;
    const norm = Math.max(Math.sqrt(sum), 1e-12);
    for (let e = 0; e < E; e++) out[r * E + e] = x[r * E + e] / norm;
  }
  return out;
}

/** A batch scored by transport: logits, and what the gradient needs. */
export interface TransportScores {
  /** [b, C]: logitScale · Σ_mn T_mn sim_mn (float64: the loss and its finite differences read them). */
  readonly logits: Float64Array;
  /** [b·C, M, N], pair (image i, class c) at i·C + c. */
  readonly plans: Float64Array;
  readonly iterations: number;
}

/**
 * FedOTP's logits of b images from their normalised tokens [b, M, E] and the
 * N prompts' normalised class features (each [C, E]). `plans`, when given,
 * replaces the computed plans (to hold them fixed, as the gradient does).
 */
export function transportLogits(
  tokens: Float32Array, b: number, M: number, prompts: readonly Float32Array[], C: number, E: number, logitScale: number, options: FedOtpOptions, plans?: Float64Array,
): TransportScores {
  const N = prompts.length;
  if (tokens.length !== b * M * E) throw new Error(`FedOTP: tokens have ${tokens.length} values, expected ${b}×${M}×${E}`);
  for (const w of prompts) if (w.length !== C * E) throw new Error(`FedOTP: class features have ${w.length} values, expected ${C}×${E}`);
  // sim[(i·C + c)·M·N + m·N + n] = ⟨x_im, w_nc⟩
  const sim = new Float64Array(b * C * M * N);
  for (let i = 0; i < b; i++) {
    for (let m = 0; m < M; m++) {
      const x = tokens.subarray((i * M + m) * E, (i * M + m + 1) * E);
      for (let n = 0; n < N; n++) {
        const w = prompts[n];
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let e = 0; e < E; e++) s += x[e] * w[c * E + e];
          sim[(i * C + c) * M * N + m * N + n] = s;
        }
      }
    }
  }
  let iterations = 0;
  if (!plans) {
    const K = Float64Array.from(sim, (s) => Math.exp(-(1 - s) / options.eps));
    ({ plans, iterations } = transportPlans(K, b * C, M, N, options));
  } else if (plans.length !== sim.length) {
    throw new Error(`FedOTP: ${plans.length} plan values for ${b}×${C}×${M}×${N}`);
  }
  const logits = new Float64Array(b * C);
  for (let p = 0; p < b * C; p++) {
    let s = 0;
    for (let j = p * M * N; j < (p + 1) * M * N; j++) s += plans[j] * sim[j];
    logits[p] = logitScale * s;
  }
  return { logits, plans, iterations };
}

/**
 * Mean cross-entropy of `scores` against `labels`, and its gradient with
 * respect to each prompt's class features [C, E] with the plans held fixed:
 * ∂L/∂w_nc = Σ_i ∂L/∂logit_ic · logitScale · Σ_m T_icmn x_im.
 */
export function transportLossGradients(
  scores: TransportScores, tokens: Float32Array, labels: Int32Array, M: number, N: number, C: number, E: number, logitScale: number,
): { loss: number; grads: Float32Array[] } {
  const b = labels.length;
  const grads = Array.from({ length: N }, () => new Float32Array(C * E));
  let loss = 0;
  const dLogits = new Float64Array(C);
  for (let i = 0; i < b; i++) {
    const row = scores.logits.subarray(i * C, (i + 1) * C);
    let max = -Infinity;
    for (const z of row) max = Math.max(max, z);
    let total = 0;
    for (const z of row) total += Math.exp(z - max);
    const label = labels[i];
    if (!(label >= 0 && label < C)) throw new Error(`FedOTP: label ${label} outside the ${C} classes`);
    loss += Math.log(total) + max - row[label];
    for (let c = 0; c < C; c++) dLogits[c] = (Math.exp(row[c] - max) / total - (c === label ? 1 : 0)) / b;
    for (let c = 0; c < C; c++) {
      const scale = dLogits[c] * logitScale;
      const plan = (i * C + c) * M * N;
      for (let m = 0; m < M; m++) {
        const x = tokens.subarray((i * M + m) * E, (i * M + m + 1) * E);
        for (let n = 0; n < N; n++) {
          const weight = scale * scores.plans[plan + m * N + n];
          const g = grads[n];
          for (let e = 0; e < E; e++) g[c * E + e] += weight * x[e];
        }
      }
    }
  }
  return { loss: loss / b, grads };
}

/** A feature set's tokens, normalised per token, with their shape; a clear error when the run did not compute them. */
function tokensOf(set: { readonly tokens?: Float32Array; readonly tokenCount?: number }, E: number): { tokens: Float32Array; M: number } {
  if (!set.tokens || set.tokenCount === undefined) {
    throw new Error('FedOTP reads the images\' spatial tokens, but these features carry none (the run did not compute them)');
  }
  return { tokens: unitRows(set.tokens, E), M: set.tokenCount };
}

/**
 * Where the local prompt starts: N(0, 0.02²) as CoOp's, a draw of its own
 * (FedOTP's ctx [N, n_ctx, dim] draws both prompts at once), the same on every
 * client because it is seeded by the run's initial context.
 */
export function initialLocalContext(setup: FederationSetup): Float32Array {
  const bytes = new Uint8Array(setup.initialContext.buffer, setup.initialContext.byteOffset, setup.initialContext.byteLength);
  let hash = 0x811c9dc5; // FNV-1a
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return SeededRandom.forName(hash, 'fedotp-local-prompt').normals(setup.contextSize, 0.02);
}

/** FedOTP's logits of every image of `set` under the two prompts, `evalBatchSize` images per plan iteration. */
export async function predictByTransport(text: TextTower, contexts: readonly Float32Array[], set: FeatureSet, options: FedOtpOptions): Promise<Float32Array> {
  const E = text.dim;
  const C = text.classes;
  const prompts = await Promise.all(contexts.map((context) => text.features(context)));
  const logits = new Float32Array(set.count * C);
  if (set.count === 0) return logits;
  const { tokens, M } = tokensOf(set, E);
  for (let start = 0; start < set.count; start += options.evalBatchSize) {
    const b = Math.min(options.evalBatchSize, set.count - start);
    const chunk = tokens.subarray(start * M * E, (start + b) * M * E);
    logits.set(transportLogits(chunk, b, M, prompts, C, E, text.logitScale, options).logits, start * C);
  }
  return logits;
}

export function fedOtp(options: FedOtpOptions = FEDOTP_DEFAULTS): Method {
  checkFedOtpOptions(options);
  const localOf = (personal: Tensors | undefined, setup: FederationSetup): Float32Array =>
    personal?.local ? contextOf(personal, 'local', setup) : initialLocalContext(setup);
  return {
    id: 'fedotp',
    label: 'FedOTP',
    trains: 'two prompt contexts: a global one shared by all clients and a local one, images scored by optimal transport between their spatial tokens and both prompts',
    uploads: 'the global context only',
    staysOnClient: 'its local context and its images',
    trainsPrompt: true,
    readsTokens: true,
    server: sharedContextServer({ weighted: options.weighted }), // FedAvg of the global prompt, as PromptFL's
    client: {
      async fit(runtime, download, personal) {
        const { setup, text } = runtime;
        const contexts = [contextOf(download, 'context', setup).slice(), localOf(personal, setup).slice()];
        const schedule = runtime.schedule();
        const optimizers = contexts.map(() => new Sgd(schedule.sgd));
        const E = text.dim;
        const C = text.classes;
        const { meanLoss, steps } = await forEachBatch(runtime.data, schedule, async ({ view, rows, lr }) => {
          const batch = selectRows(view, rows);
          const { tokens, M } = tokensOf({ tokens: batch.tokens?.data, tokenCount: view.tokenCount }, E);
          const towers = await Promise.all(contexts.map((context) => text.withGradient(context)));
          const features = towers.map((t) => t.features);
          const scores = transportLogits(tokens, rows.length, M, features, C, E, text.logitScale, options);
          const { loss, grads } = transportLossGradients(scores, tokens, batch.labels, M, PROMPTS, C, E, text.logitScale);
          const contextGrads = await Promise.all(towers.map((t, n) => t.backward(grads[n])));
          contexts.forEach((context, n) => optimizers[n].step(context, contextGrads[n], lr));
          return loss;
        });
        return { upload: { context: contexts[0] }, personal: { local: contexts[1] }, loss: meanLoss, steps };
      },
      predictor(runtime, download, personal) {
        const contexts = [contextOf(download, 'context', runtime.setup), localOf(personal, runtime.setup)];
        return { logits: (set) => predictByTransport(runtime.text, contexts, set, options) };
      },
    },
  };
}
