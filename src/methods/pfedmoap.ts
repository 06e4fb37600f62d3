// pFedMoAP (Luo, Chen and Wu, "Mixture of Experts Made Personalized:
// Federated Prompt Learning for Vision-Language Models", ICLR 2025, arXiv
// 2410.10114; code github.com/ljaiverson/pFedMoAP, read at commit a481de3:
// trainers/pfedmoap.py for the client, federated_main.py's pFedMoAP branch for
// the server). Each client's prompt is a local expert; the server keeps every
// client's latest prompt and sends a client the prompts of others as fixed
// non-local experts; a small attention network, personal to the client,
// mixes the text features of all experts for each image.
//
// As the code does it (files of that commit):
// - Start of a round: the local prompt starts from the FedAvg of the last
//   round's uploads, weighted by training images (federated_main.py: the
//   pFedMoAP branch loads `global_prompt` into the prompt learner before
//   training; `average_weights(local_prompts, idxs_users, datanumber_client)`).
//   Round 1 starts from the run's initial context.
// - Experts: a client that has uploaded before gets the nearest K = experts − 1
//   other stored prompts by ‖P_i − P_j‖ (the Frobenius distance of
//   `sparse_selection(…, "nearest")`; all of them when no more are stored),
//   the default `--num_experts 10` counting the local one, so 9 non-local.
//   The first time a client trains — every client in round 1, before the
//   server holds any prompt — it has no experts and trains its prompt alone
//   with CLIP's cross-entropy, as the code does (`nonlocal_text_features` is
//   empty, `forward` returns the local logits). (The code's trainer calls
//   sparse_selection without its method argument, so it actually draws a
//   fixed random order; its "nearest" branch is never reached when
//   K ≥ clients − 1, which is the published 10-client setting. We follow the
//   paper: nearest.)
// - Gating (`MultiheadAttention`): the image feature f(x)/‖f(x)‖ and each
//   expert's normalised class text feature are cut to d_gating = 128 values by
//   taking every (E / 128)-th coordinate (`pool`, a stride, not a learned
//   projection); per class c, the B images are the queries and the class's
//   n = 1 + K expert features [local, non-local…] are keys and values; four
//   biased 128×128 linear maps W_q, W_k, W_v, W_o, 8 heads of 16, scores
//   scaled by a fixed `scaling` = 10 (not 1/√16), softmax over the experts.
//   (A joint width E below d_gating, which the code cannot run, is used whole.)
//   Dropout is declared but never applied. Initialisation: nn.Linear's
//   default, weight and bias U(−1/√128, 1/√128), here seeded per client.
// - Logits: λ · s · cos(f(x), w_c) + s · pool(f̂(x)) · gated_c(x), with λ = 0.5
//   on the local logits only (`lmbda * local_logits + logit_scale * bmm(…)`),
//   s = exp(logit_scale). Loss: cross-entropy of those logits. Gradients reach
//   the local prompt through both terms (its pooled features are a key and a
//   value); the non-local experts are constants.
// - Optimisers: the prompt follows the run's SGD (lr 0.002, cosine, as
//   configs/trainers/PFEDMOAP/rn50.yaml); the gating network SGD at a constant
//   lr 0.01 (OPTIMGATING: single_step, γ 1, constant warm-up at 0.01), the
//   same momentum 0.9 and weight decay 5e-4 (Dassl's defaults).
// - Test: the mixture with the experts the gating was last trained with (the
//   code tests a client right after its round, with those experts); a client
//   that never had experts uses its own prompt, one that never trained the
//   server's FedAvg prompt.
// Where this differs from the code: each client's optimisers and gating start
// fresh (the code shares one trainer, so a client's first gating and the SGD
// momentum buffers carry over from whichever client trained before it), and
// the prompt's cosine schedule is the run's over all rounds (the code's one
// scheduler, T_max = the local epochs, is stepped by every client in turn).
//
// Trains: each client's own prompt and its gating network. Uploads: the
// prompt. Stays on the client: the gating network and the experts' pooled
// features it was trained with.

import { SeededRandom } from '../clip/random.js';
import { normalizeRows } from '../clip/similarity.js';
import { selectRows, type FeatureSet } from '../federation/client-data.js';
import { forEachBatch } from '../federation/local-training.js';
import { contextOf, federatedAverage, type ClientRuntime, type FederationSetup, type Method, type Tensors } from '../federation/method.js';
import { Sgd } from '../prompt/sgd.js';

export interface PFedMoApOptions {
  /** Experts a client mixes, its own included (the code's --num_experts): it receives experts − 1 other prompts. */
  readonly experts: number;
  /** Width of the gating network's attention, d_gating. */
  readonly gatingDim: number;
  readonly heads: number;
  /** Weight of the local prompt's logits, λ. */
  readonly lambda: number;
  /** Factor on the attention scores (the code's --scaling). */
  readonly scaling: number;
  /** The gating network's constant SGD learning rate. */
  readonly gatingLr: number;
  /** Where a round's local prompt starts: FedAvg weighted by training images (default), or a plain mean. */
  readonly weighted: boolean;
}

/** The published settings (federated_main.py, train.sh, configs/trainers/PFEDMOAP/rn50.yaml). */
export const PFEDMOAP_DEFAULTS: PFedMoApOptions = { experts: 10, gatingDim: 128, heads: 8, lambda: 0.5, scaling: 10, gatingLr: 0.01, weighted: true };

const promptKey = (client: number): string => `prompt/${client}`;

/** The gating network's tensors, nn.Linear's layout: W [out, in], y = W x + b. */
export const GATING_TENSORS = ['wq', 'bq', 'wk', 'bk', 'wv', 'bv', 'wo', 'bo'] as const;
export type GatingTensor = (typeof GATING_TENSORS)[number];
export type Gating = Readonly<Record<GatingTensor, Float32Array>>;
const gatingKey = (name: GatingTensor): string => `gating/${name}`;

/** Non-local expert slots a client is sent: experts − 1, at most every other client. */
export function expertSlots(options: PFedMoApOptions, setup: FederationSetup): number {
  return Math.min(options.experts - 1, setup.clients - 1);
}

/**
 * The other clients whose stored prompts are nearest to `client`'s, nearest
 * first (ties: lower id), at most `k`; none when `client` has no stored
 * prompt yet (its first round trains the local prompt alone).
 */
export function nearestExperts(server: Tensors, client: number, k: number): number[] {
  const own = server[promptKey(client)];
  if (!own) return [];
  const candidates: { client: number; distance: number }[] = [];
  for (const name of Object.keys(server)) {
    if (!name.startsWith('prompt/')) continue;
    const other = Number(name.slice('prompt/'.length));
    if (other === client) continue;
    const p = server[name];
    let sum = 0;
    for (let i = 0; i < own.length; i++) sum += (own[i] - p[i]) ** 2;
    candidates.push({ client: other, distance: Math.sqrt(sum) });
  }
  candidates.sort((a, b) => a.distance - b.distance || a.client - b.client);
  return candidates.slice(0, k).map((c) => c.client);
}

/** The gating network as nn.Linear initialises it: every weight and bias U(−1/√d, 1/√d). */
export function initialGating(dim: number, random: SeededRandom): Gating {
  const bound = 1 / Math.sqrt(dim);
  const out = {} as Record<GatingTensor, Float32Array>;
  for (const name of GATING_TENSORS) out[name] = random.uniforms(name.startsWith('w') ? dim * dim : dim, -bound, bound);
  return out;
}

/** What the mixture computes with, for B images and C classes. */
export interface MixtureInput {
  /** Normalised image features [B, E]. */
  readonly images: Float32Array;
  /** The local prompt's normalised class text features [C, E]. */
  readonly local: Float32Array;
  /** The non-local experts' pooled class text features [n, C, d]. */
  readonly experts: Float32Array;
  readonly classes: number;
  readonly embedDim: number;
  /** exp(logit_scale). */
  readonly logitScale: number;
}

export interface MixtureSettings {
  readonly dim: number;
  readonly heads: number;
  readonly lambda: number;
  readonly scaling: number;
}

/** Every (E / d)-th coordinate of each row of `x` [rows, E] → [rows, d] (the code's `pool`). */
export function strided(x: Float32Array, rows: number, embedDim: number, dim: number): Float32Array {
  const stride = strideOf(embedDim, dim);
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) out[r * dim + j] = x[r * embedDim + j * stride];
  return out;
}

function strideOf(embedDim: number, dim: number): number {
  if (embedDim % dim !== 0) throw new Error(`pFedMoAP: the joint width ${embedDim} is not a multiple of d_gating ${dim}`);
  return (embedDim / dim) | 0;
}

/** y[r] = W x[r] + b for rows of x [rows, d], four rows at a time (each weight read serves four rows: ~3× faster in V8). */
function linear(x: Float32Array, rows: number, w: Float32Array, b: Float32Array, dim: number): Float32Array {
  const y = new Float32Array(rows * dim);
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const x0 = r * dim, x1 = x0 + dim, x2 = x1 + dim, x3 = x2 + dim;
    for (let i = 0; i < dim; i++) {
      const wi = i * dim;
      let s0 = b[i], s1 = b[i], s2 = b[i], s3 = b[i];
      for (let j = 0; j < dim; j++) {
        const wij = w[wi + j];
        s0 += wij * x[x0 + j];
        s1 += wij * x[x1 + j];
        s2 += wij * x[x2 + j];
        s3 += wij * x[x3 + j];
      }
      y[x0 + i] = s0;
      y[x1 + i] = s1;
      y[x2 + i] = s2;
      y[x3 + i] = s3;
    }
  }
  for (; r < rows; r++) {
    for (let i = 0; i < dim; i++) {
      let sum = b[i];
      for (let j = 0; j < dim; j++) sum += w[i * dim + j] * x[r * dim + j];
      y[r * dim + i] = sum;
    }
  }
  return y;
}

interface Forward {
  readonly logits: Float32Array;
  readonly pooledImages: Float32Array;
  /** Keys and values [n, C, d] per expert (index 0 the local one), queries [B, d], W_oᵀ p_b [B, d]. */
  readonly tokens: Float32Array;
  readonly keys: Float32Array;
  readonly values: Float32Array;
  readonly queries: Float32Array;
  readonly readout: Float32Array;
  /** Attention [B, C, heads, n] and attended values [B, C, d]. */
  readonly attention: Float32Array;
  readonly attended: Float32Array;
  readonly experts: number;
}

function forward(input: MixtureInput, gating: Gating, settings: MixtureSettings): Forward {
  const { images, local, classes: C, embedDim: E, logitScale: s } = input;
  const { dim: d, heads: H, lambda, scaling } = settings;
  if (d % H !== 0) throw new Error(`pFedMoAP: d_gating ${d} is not a multiple of the ${H} heads`);
  const B = (images.length / E) | 0;
  const nonLocal = input.experts.length / (C * d);
  if (!Number.isInteger(nonLocal)) throw new Error(`pFedMoAP: expert features of ${input.experts.length} values are not [n, ${C}, ${d}]`);
  const n = 1 + nonLocal;
  const dk = (d / H) | 0;
  const pooledImages = strided(images, B, E, d);
  const tokens = new Float32Array(n * C * d);
  tokens.set(strided(local, C, E, d));
  tokens.set(input.experts, C * d);
  const keys = linear(tokens, n * C, gating.wk, gating.bk, d);
  const values = linear(tokens, n * C, gating.wv, gating.bv, d);
  const queries = linear(pooledImages, B, gating.wq, gating.bq, d);
  // p · (W_o o + b_o) = (W_oᵀ p) · o + p · b_o: one product per image instead of one per image and class.
  const readout = new Float32Array(B * d);
  const bias = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < d; i++) {
      const p = pooledImages[b * d + i];
      bias[b] += p * gating.bo[i];
      for (let j = 0; j < d; j++) readout[b * d + j] += gating.wo[i * d + j] * p;
    }
  }
  const attention = new Float32Array(B * C * H * n);
  const attended = new Float32Array(B * C * d);
  const logits = new Float32Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let h = 0; h < H; h++) {
        const a = ((b * C + c) * H + h) * n; // this image, class and head's attention over the n experts
        let max = -Infinity;
        for (let e = 0; e < n; e++) {
          let dot = 0;
          for (let j = h * dk; j < (h + 1) * dk; j++) dot += queries[b * d + j] * keys[(e * C + c) * d + j];
          attention[a + e] = scaling * dot;
          if (attention[a + e] > max) max = attention[a + e];
        }
        let sum = 0;
        for (let e = 0; e < n; e++) sum += (attention[a + e] = Math.exp(attention[a + e] - max));
        for (let e = 0; e < n; e++) attention[a + e] /= sum;
        for (let j = h * dk; j < (h + 1) * dk; j++) {
          let o = 0;
          for (let e = 0; e < n; e++) o += attention[a + e] * values[(e * C + c) * d + j];
          attended[(b * C + c) * d + j] = o;
        }
      }
      let gated = bias[b];
      let cosine = 0;
      for (let j = 0; j < d; j++) gated += readout[b * d + j] * attended[(b * C + c) * d + j];
      for (let k = 0; k < E; k++) cosine += images[b * E + k] * local[c * E + k];
      logits[b * C + c] = s * (lambda * cosine + gated);
    }
  }
  return { logits, pooledImages, tokens, keys, values, queries, readout, attention, attended, experts: n };
}

/** Logits [B, C] of the mixture. */
export function mixtureLogits(input: MixtureInput, gating: Gating, settings: MixtureSettings): Float32Array {
  return forward(input, gating, settings).logits;
}

export interface MixtureGradients {
  /** Mean cross-entropy over the B images. */
  readonly loss: number;
  /** ∂loss/∂(the local prompt's normalised class features) [C, E]. */
  readonly local: Float32Array;
  readonly gating: Gating;
}

/** The mean cross-entropy of the mixture's logits and its gradients (written out; checked by finite differences in test/pfedmoap.test.ts). */
export function mixtureGradients(input: MixtureInput, gating: Gating, settings: MixtureSettings, labels: ArrayLike<number>): MixtureGradients {
  const { images, classes: C, embedDim: E, logitScale: s } = input;
  const { dim: d, heads: H, lambda, scaling } = settings;
  const f = forward(input, gating, settings);
  const { logits, pooledImages: p, tokens, keys, values, queries, readout, attention, attended, experts: n } = f;
  const B = labels.length;
  if (B * C !== logits.length) throw new Error(`pFedMoAP: ${labels.length} labels for ${logits.length / C} images`);
  const dk = (d / H) | 0;
  const stride = (E / d) | 0;
  // ∂loss/∂logits: (softmax − one-hot) / B.
  const G = new Float32Array(B * C);
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const row = logits.subarray(b * C, (b + 1) * C);
    let max = -Infinity;
    for (let c = 0; c < C; c++) if (row[c] > max) max = row[c];
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(row[c] - max);
    loss += max + Math.log(sum) - row[labels[b]];
    for (let c = 0; c < C; c++) G[b * C + c] = Math.exp(row[c] - max) / sum / B;
    G[b * C + labels[b]] -= 1 / B;
  }
  const grad = Object.fromEntries(GATING_TENSORS.map((name) => [name, new Float32Array(gating[name].length)])) as Record<GatingTensor, Float32Array>;
  const dLocal = new Float32Array(C * E);
  const dQueries = new Float32Array(B * d);
  const dKeys = new Float32Array(n * C * d);
  const dValues = new Float32Array(n * C * d);
  const dAttended = new Float32Array(d);
  const dAttention = new Float32Array(n);
  for (let b = 0; b < B; b++) {
    const weighted = new Float32Array(d); // Σ_c γ_bc o_bc, for ∂W_o
    for (let c = 0; c < C; c++) {
      const gamma = s * G[b * C + c];
      for (let k = 0; k < E; k++) dLocal[c * E + k] += s * lambda * G[b * C + c] * images[b * E + k];
      for (let j = 0; j < d; j++) {
        weighted[j] += gamma * attended[(b * C + c) * d + j];
        dAttended[j] = gamma * readout[b * d + j];
      }
      for (let h = 0; h < H; h++) {
        const a = ((b * C + c) * H + h) * n;
        let mean = 0;
        for (let e = 0; e < n; e++) {
          let da = 0;
          for (let j = h * dk; j < (h + 1) * dk; j++) {
            da += dAttended[j] * values[(e * C + c) * d + j];
            dValues[(e * C + c) * d + j] += attention[a + e] * dAttended[j];
          }
          dAttention[e] = da;
          mean += attention[a + e] * da;
        }
        for (let e = 0; e < n; e++) {
          const ds = scaling * attention[a + e] * (dAttention[e] - mean);
          for (let j = h * dk; j < (h + 1) * dk; j++) {
            dQueries[b * d + j] += ds * keys[(e * C + c) * d + j];
            dKeys[(e * C + c) * d + j] += ds * queries[b * d + j];
          }
        }
      }
    }
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) grad.wo[i * d + j] += p[b * d + i] * weighted[j];
  }
  // b_k, b_v and b_o stay at zero gradient: b_k shifts every expert's score
  // equally (the softmax ignores it), b_v and b_o shift every class's logit
  // by the same p · W_o b_v + p · b_o (the cross-entropy ignores it).
  accumulateLinear(grad.wq, dQueries, p, B, d, grad.bq);
  accumulateLinear(grad.wk, dKeys, tokens, n * C, d);
  accumulateLinear(grad.wv, dValues, tokens, n * C, d);
  // Back to the local expert's tokens (rows 0 … C−1), then to the coordinates the stride took.
  for (let c = 0; c < C; c++) {
    for (let j = 0; j < d; j++) {
      let dt = 0;
      for (let i = 0; i < d; i++) dt += gating.wk[i * d + j] * dKeys[c * d + i] + gating.wv[i * d + j] * dValues[c * d + i];
      dLocal[c * E + j * stride] += dt;
    }
  }
  return { loss: loss / B, local: dLocal, gating: grad };
}

/** ∂W += Σ_r dy_r x_rᵀ (and ∂b += Σ_r dy_r when asked), four rows at a time (one update of ∂W per four rows). */
function accumulateLinear(dw: Float32Array, dy: Float32Array, x: Float32Array, rows: number, dim: number, db?: Float32Array): void {
  if (db) for (let r = 0; r < rows; r++) for (let i = 0; i < dim; i++) db[i] += dy[r * dim + i];
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const r0 = r * dim, r1 = r0 + dim, r2 = r1 + dim, r3 = r2 + dim;
    for (let i = 0; i < dim; i++) {
      const g0 = dy[r0 + i], g1 = dy[r1 + i], g2 = dy[r2 + i], g3 = dy[r3 + i];
      const wi = i * dim;
      for (let j = 0; j < dim; j++) dw[wi + j] += g0 * x[r0 + j] + g1 * x[r1 + j] + g2 * x[r2 + j] + g3 * x[r3 + j];
    }
  }
  for (; r < rows; r++) {
    for (let i = 0; i < dim; i++) {
      const g = dy[r * dim + i];
      for (let j = 0; j < dim; j++) dw[i * dim + j] += g * x[r * dim + j];
    }
  }
}

/** The gating network of a client's personal state, checked; undefined when it has none yet. */
function gatingOf(personal: Tensors | undefined, dim: number): Gating | undefined {
  if (!personal || !personal[gatingKey('wq')]) return undefined;
  const out = {} as Record<GatingTensor, Float32Array>;
  for (const name of GATING_TENSORS) {
    const t = personal[gatingKey(name)];
    const size = name.startsWith('w') ? dim * dim : dim;
    if (!t) throw new Error(`pFedMoAP: personal state lacks "${gatingKey(name)}"`);
    if (t.length !== size) throw new Error(`pFedMoAP: personal "${gatingKey(name)}" has ${t.length} values, expected ${size}`);
    out[name] = t;
  }
  return out;
}

/** The non-local expert contexts of a download, checked: `expertCount` of the `experts` slots are filled. */
export function expertsOf(download: Tensors, setup: FederationSetup, slots: number): Float32Array[] {
  const experts = download.experts;
  const count = download.expertCount;
  if (!experts) throw new Error('pFedMoAP: the download lacks tensor "experts"');
  if (!count || count.length !== 1) throw new Error('pFedMoAP: the download lacks tensor "expertCount" (one value)');
  if (experts.length !== slots * setup.contextSize) {
    throw new Error(`pFedMoAP: tensor "experts" has ${experts.length} values, expected ${slots} expert slots × ${setup.contextSize}`);
  }
  const n = count[0];
  if (!Number.isInteger(n) || n < 0 || n > slots) throw new Error(`pFedMoAP: "expertCount" is ${n}, expected an integer from 0 to ${slots}`);
  return Array.from({ length: n }, (_, e) => experts.subarray(e * setup.contextSize, (e + 1) * setup.contextSize));
}

export function pFedMoAp(options: PFedMoApOptions = PFEDMOAP_DEFAULTS): Method {
  const { experts, gatingDim, heads, lambda, scaling, gatingLr, weighted } = options;
  if (!(Number.isInteger(experts) && experts >= 1)) throw new Error(`pFedMoAP: experts must be a positive integer, got ${experts}`);
  // (A whole multiple of whole heads is itself whole.)
  if (!(Number.isInteger(heads) && heads >= 1 && gatingDim >= heads && gatingDim % heads === 0)) {
    throw new Error(`pFedMoAP: d_gating (${gatingDim}) must be a positive multiple of the heads (${heads})`);
  }
  if (!(lambda >= 0 && scaling > 0 && gatingLr > 0)) throw new Error('pFedMoAP: λ must be non-negative, the scaling and the gating learning rate positive');
  // A joint space narrower than d_gating (the bundled world model's 128 is not; the test fixture's 48 is) is taken whole.
  const settingsFor = (embedDim: number): MixtureSettings => ({ dim: Math.min(gatingDim, embedDim), heads, lambda, scaling });

  /** The mixture's logits for every image of `set`, in chunks (nothing kept for a backward pass). */
  const predict = async (runtime: ClientRuntime, context: Float32Array, gating: Gating, expertFeatures: Float32Array, set: FeatureSet): Promise<Float32Array> => {
    const local = await runtime.text.features(context);
    const E = set.embedDim;
    const settings = settingsFor(E);
    const C = runtime.text.classes;
    const images = normalizeRows({ shape: [set.count, E], data: set.embeds });
    const out = new Float32Array(set.count * C);
    const chunk = 64;
    for (let start = 0; start < set.count; start += chunk) {
      const end = Math.min(set.count, start + chunk);
      const input = { images: images.subarray(start * E, end * E), local, experts: expertFeatures, classes: C, embedDim: E, logitScale: runtime.text.logitScale };
      out.set(mixtureLogits(input, gating, settings), start * C);
    }
    return out;
  };

  return {
    id: 'pfedmoap',
    label: 'pFedMoAP',
    trains: "each client's own prompt (its local expert) and its attention gating network",
    uploads: "the client's prompt",
    staysOnClient: 'its gating network and the pooled text features of the experts it was trained with',
    trainsPrompt: true,
    server: {
      uploadSpec: (setup) => ({ context: setup.contextSize }),
      // No prompt is stored before the first uploads; `global` is where every local prompt starts.
      initialState: (setup) => ({ global: setup.initialContext }),
      download(server, client, setup) {
        const slots = expertSlots(options, setup);
        const chosen = nearestExperts(server, client, slots);
        const packed = new Float32Array(slots * setup.contextSize);
        chosen.forEach((other, e) => packed.set(contextOf(server, promptKey(other), setup), e * setup.contextSize));
        return { global: contextOf(server, 'global', setup), experts: packed, expertCount: Float32Array.of(chosen.length) };
      },
      aggregate(server, uploads) {
        const next: Record<string, Float32Array> = { ...server, global: federatedAverage(uploads, 'context', weighted) };
        for (const u of uploads) next[promptKey(u.client)] = u.tensors.context;
        return next;
      },
    },
    client: {
      async fit(runtime, download, personal) {
        const { setup, text } = runtime;
        const start = contextOf(download, 'global', setup);
        const others = expertsOf(download, setup, expertSlots(options, setup));
        const kept = personal ?? {};
        if (others.length === 0) {
          // No other prompt to mix yet: the local prompt alone, with CLIP's cross-entropy (the code's forward without experts).
          const result = await runtime.train(start);
          return { upload: { context: result.context }, personal: { ...kept, context: result.context }, loss: result.meanLoss, steps: result.steps };
        }
        const C = text.classes;
        const E = text.dim;
        const settings = settingsFor(E);
        const d = settings.dim;
        const expertFeatures = new Float32Array(others.length * C * d);
        for (let e = 0; e < others.length; e++) expertFeatures.set(strided(await text.features(others[e]), C, E, d), e * C * d);
        const schedule = runtime.schedule();
        const gating = gatingOf(personal, d) ?? initialGating(d, SeededRandom.forName(schedule.seed, 'pfedmoap/gating'));
        // One flat parameter vector, so one SGD (and one momentum buffer) serves the whole network.
        const offsets = new Map<GatingTensor, number>();
        let size = 0;
        for (const name of GATING_TENSORS) { offsets.set(name, size); size += gating[name].length; }
        const params = new Float32Array(size);
        for (const name of GATING_TENSORS) params.set(gating[name], offsets.get(name)!);
        const view = (flat: Float32Array): Gating => Object.fromEntries(GATING_TENSORS.map((name) => [name, flat.subarray(offsets.get(name)!, offsets.get(name)! + gating[name].length)])) as Gating;
        const trained = view(params);
        const flatGrad = new Float32Array(size);
        const context = start.slice();
        // The run's momentum and weight decay for both; each step passes its own rate (the prompt's scheduled, the gating's constant).
        const promptSgd = new Sgd(schedule.sgd);
        const gatingSgd = new Sgd(schedule.sgd);
        const { meanLoss, steps } = await forEachBatch(runtime.data, schedule, async (batch) => {
          const rows = selectRows(batch.view, batch.rows);
          const images = normalizeRows(rows.embeds);
          const tower = await text.withGradient(context);
          const input = { images, local: tower.features, experts: expertFeatures, classes: C, embedDim: E, logitScale: text.logitScale };
          const result = mixtureGradients(input, trained, settings, rows.labels);
          for (const name of GATING_TENSORS) flatGrad.set(result.gating[name], offsets.get(name)!);
          promptSgd.step(context, await tower.backward(result.local), batch.lr);
          gatingSgd.step(params, flatGrad, gatingLr);
          return result.loss;
        });
        const state: Record<string, Float32Array> = { context, experts: expertFeatures };
        for (const name of GATING_TENSORS) state[gatingKey(name)] = trained[name].slice();
        return { upload: { context }, personal: state, loss: meanLoss, steps };
      },
      predictor(runtime, download, personal) {
        const d = settingsFor(runtime.text.dim).dim;
        const gating = gatingOf(personal, d);
        if (personal && gating && personal.experts?.length) {
          const context = contextOf(personal, 'context', runtime.setup);
          const expertFeatures = personal.experts;
          if (expertFeatures.length % (runtime.text.classes * d) !== 0) {
            throw new Error(`pFedMoAP: personal "experts" has ${expertFeatures.length} values, not [n, ${runtime.text.classes}, ${d}]`);
          }
          return { logits: (set) => predict(runtime, context, gating, expertFeatures, set) };
        }
        return { context: contextOf(personal?.context ? personal : download, personal?.context ? 'context' : 'global', runtime.setup) };
      },
    },
  };
}
