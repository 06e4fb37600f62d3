// Shared setup of the tests that run methods for real: three clients of the
// generated shapes folder, featurised by the tiny fixture CLIP, and the run
// settings every such test uses (2 local epochs of 4-image batches, 3 rounds).

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { loadDataset } from '../src/data/load-dataset.js';
import { createPartition } from '../src/data/partitioners/index.js';
import { loadClientData } from '../src/experiment/client-features.js';
import type { MethodSpec } from '../src/experiment/client-worker.js';
import type { ClientData } from '../src/federation/client-data.js';
import { sharedModel, sharedTokenizer, textFeatureCache, type ClientHostSetup } from '../src/federation/client-executor.js';
import { FederatedClient, InMemoryStore } from '../src/federation/client.js';
import type { PromptCompute } from '../src/federation/local-training.js';
import type { ClientRuntime, FederationSetup, Method } from '../src/federation/method.js';
import { DEFAULT_METHOD_OPTIONS, createMethod, type MethodId, type MethodOptions } from '../src/methods/index.js';
import { CoopPrompt } from '../src/prompt/coop-prompt.js';
import { fixture } from './shared.js';
import { CLASSNAMES, writeShapesDataset } from './synthetic-dataset.js';

export const MODEL = fixture('clip', 'tiny-vit-hf');
export const TOKENIZER = fixture('clip-tokenizer');

/** The three clients' data, filled in by the `before` hook that `useShapesClients` registers. */
export interface ShapesClients {
  clients: ClientData[];
}

/** Registers hooks that write the shapes folder, split it over three clients and featurise it (removed after the file's tests). */
export function useShapesClients(): ShapesClients {
  const holder: ShapesClients = { clients: [] };
  let workdir: string;
  before(async () => {
    workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-methods-'));
    await writeShapesDataset(path.join(workdir, 'shapes'));
    const dataset = await loadDataset(path.join(workdir, 'shapes'));
    const partition = createPartition(dataset, { scheme: 'pathological', clients: 3, shots: 2, valShots: 2 });
    holder.clients = await loadClientData(await sharedModel(MODEL), dataset, partition, { views: 2, augmentSeed: 0, tokens: true });
  });
  after(() => rmSync(workdir, { recursive: true, force: true }));
  return holder;
}

export function federationSetup(prompt: CoopPrompt, clients: number, seed: number): FederationSetup {
  return {
    clients, rounds: 3, contextSize: prompt.rows * prompt.width, contextRows: prompt.rows,
    contextTokens: prompt.contextTokens, width: prompt.width, initialContext: prompt.initialContext(seed),
  };
}

/** A client host's setup for `method` (built by the worker entry from `id` and `options`). */
export async function hostSetup(
  method: Method, clients: ClientData[], seed: number, options: MethodOptions = DEFAULT_METHOD_OPTIONS,
): Promise<ClientHostSetup<MethodSpec>> {
  const model = await sharedModel(MODEL);
  const promptOptions = { contextLength: 4, position: 'end' as const, classSpecific: false, ...method.prompt };
  const prompt = new CoopPrompt(model, await sharedTokenizer(TOKENIZER), CLASSNAMES, promptOptions);
  return {
    modelPath: MODEL, tokenizerDir: TOKENIZER, method: { id: method.id as MethodId, options }, prompt: promptOptions,
    classnames: CLASSNAMES,
    settings: {
      federation: federationSetup(prompt, clients.length, seed), numClasses: CLASSNAMES.length, localEpochs: 2, batchSize: 4,
      sgd: { lr: 0.02, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine' }, scheduleEpochs: 6, seed, scoring: 'all-classes',
    },
    clients,
  };
}

/** The frozen model and prompt layout a client of `setup` computes with. */
export async function computeFor(setup: ClientHostSetup): Promise<PromptCompute> {
  const model = await sharedModel(setup.modelPath);
  return { model, prompt: new CoopPrompt(model, await sharedTokenizer(setup.tokenizerDir), setup.classnames, setup.prompt) };
}

/** One FederatedClient per client of `setup` in this thread, each with a store the test can read. */
export async function localClients(method: Method, setup: ClientHostSetup): Promise<{ clients: FederatedClient[]; stores: InMemoryStore[] }> {
  const compute = await computeFor(setup);
  const texts = textFeatureCache(compute);
  const stores = setup.clients.map(() => new InMemoryStore());
  return { clients: setup.clients.map((data, i) => new FederatedClient(method, compute, setup.settings, data, stores[i], texts)), stores };
}

/** The method `id` with `options` changed from the defaults. */
export function methodWith(id: MethodId, options: Partial<MethodOptions> = {}): { method: Method; options: MethodOptions } {
  const merged = { ...DEFAULT_METHOD_OPTIONS, ...options };
  return { method: createMethod(id, merged), options: merged };
}

/** The training half of a ClientRuntime, for tests that only predict: any use of it fails the test. */
export const noTraining: Pick<ClientRuntime, 'train' | 'text' | 'schedule'> = {
  train: () => { throw new Error('no training here'); },
  schedule: () => { throw new Error('no training here'); },
  text: {
    logitScale: NaN, classes: 0, dim: 0,
    features: () => { throw new Error('no text tower here'); },
    withGradient: () => { throw new Error('no text tower here'); },
  },
};
