// Training-free memories on zero-shot CLIP's hand prompt: nothing learned and
// nothing federated. Next to zero-shot CLIP and pFedPrompt they show what a
// memory alone adds.
//
// local Tip-Adapter is Tip-Adapter as published (Zhang et al., ECCV 2022;
// github:gaopengcuhk/Tip-Adapter, utils.py build_cache_model / search_hp) on
// each client's own shots: every shot's CLIP embedding f(x) is a key, the
// mean of its features over 10 augmented views (`augment_epoch`), then
// normalised; values its one-hot label; affinity exp(−β(1 − cos)); logits
// CLIP + α·A·L. α and β are chosen on validation from its own grid: β over
// `searchSteps[0]` values from 0.1 to `searchScale[0]`, α over
// `searchSteps[1]` from 0.1 to `searchScale[1]`, its configs' spacing. The
// grid is its Flowers102 config's, the widest it publishes (scale [50, 50],
// steps [200, 20]): on the world's validation images its ImageNet grid
// ([7, 3]) had every seed choose its largest α and smallest β, the wide one
// values inside it and 10 points more. α 1.17, β 1 (its ImageNet init) serve
// only without validation images. The runner multiplies the α grid by
// exp(logit_scale)/100, as for pFedPrompt's (Tip-Adapter's CLIP logits are at
// scale 100).
//
// memory only is the paper's ablation row "without the shared prompt":
// pFedPrompt's own memory (methodOptions.memory, its grid) on the hand prompt.
//
// Trains: nothing. Uploads: nothing. Stays on the client: its memory and its images.

import type { Method } from '../federation/method.js';
import { DEFAULT_MEMORY, memoryReadsTokens, VisualMemory, type MemoryOptions } from './visual-memory.js';
import { zeroShot } from './zero-shot.js';

export interface TipAdapterOptions {
  /** Used when no client has validation images (Tip-Adapter's init_alpha, init_beta). */
  readonly alpha: number;
  readonly beta: number;
  /** Augmented views averaged into each key (min(views, views cached); Tip-Adapter's augment_epoch). */
  readonly views: number;
  /** [β max, α max] of the grid (Tip-Adapter's search_scale). */
  readonly searchScale: readonly [number, number];
  /** [β values, α values] (its search_step). */
  readonly searchSteps: readonly [number, number];
}

export const TIP_ADAPTER_DEFAULTS: TipAdapterOptions = { alpha: 1.17, beta: 1, views: 10, searchScale: [50, 50], searchSteps: [200, 20] };

/** Tip-Adapter's memory: every shot's embedding, averaged over augmented views. */
export function tipAdapterMemory(options: TipAdapterOptions): MemoryOptions {
  return { query: 'embedding', keys: 'shots', keyViews: options.views, alpha: options.alpha, beta: options.beta, inTraining: false, leaveOneOut: false };
}

/** Tip-Adapter's search grid (search_hp): values i·(scale − 0.1)/steps + 0.1, i = 0 … steps − 1. */
export function tipAdapterGrid(options: TipAdapterOptions): { alpha: number[]; beta: number[] } {
  const line = (scale: number, steps: number) => Array.from({ length: steps }, (_, i) => (i * (scale - 0.1)) / steps + 0.1);
  return { beta: line(options.searchScale[0], options.searchSteps[0]), alpha: line(options.searchScale[1], options.searchSteps[1]) };
}

export function localTipAdapter(options: TipAdapterOptions = TIP_ADAPTER_DEFAULTS): Method {
  return {
    ...handPromptMemory(tipAdapterMemory(options)),
    id: 'local-tip-adapter',
    label: 'local Tip-Adapter',
  };
}

export function memoryOnly(memory: MemoryOptions = DEFAULT_MEMORY): Method {
  return {
    ...handPromptMemory(memory),
    id: 'memory-only',
    label: 'memory only (hand prompt)',
  };
}

function handPromptMemory(memory: MemoryOptions): Method {
  const base = zeroShot();
  return {
    ...base,
    staysOnClient: 'its visual memory and its images',
    choosesOnValidation: "the visual memory's α and β",
    readsTokens: memoryReadsTokens(memory),
    client: {
      ...base.client,
      predictor: (runtime, download, _personal, choice) => ({ context: download.context, personal: VisualMemory.ofClient(runtime, { ...memory, ...choice }) }),
    },
  };
}
