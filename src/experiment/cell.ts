// A cell of an experiment (dataset × backbone × shots × method × seed) as
// every client of it sees it: its id, its method, and what its clients
// compute with. Shared by the simulation (runner.ts), a Flower node and a
// browser node, so it reads no files.

import type { ClipModel } from '../clip/model.js';
import type { ClipTokenizer } from '../clip/tokenizer.js';
import type { PartitionRequest } from '../data/partitioners/index.js';
import type { ClientSettings } from '../federation/client.js';
import type { Choice, FederationSetup, Method } from '../federation/method.js';
import { createMethod } from '../methods/index.js';
import { tipAdapterGrid } from '../methods/local-tip-adapter.js';
import { CoopPrompt, type PromptOptions } from '../prompt/coop-prompt.js';
import { resolveMethod, type ExperimentConfig } from './config.js';

export interface CellSpec {
  readonly id: string;
  readonly dataset: string;
  readonly shots: number;
  /** The method's id, or the name of a variant of it (config.variants). */
  readonly method: string;
  readonly seed: number;
}

/** A cell of the grid by its coordinates; its id names it in results and files. */
export function cellSpecOf(datasetId: string, backbone: string, shots: number, method: string, seed: number): CellSpec {
  return { id: [datasetId, safeName(backbone), `${shots}shot`, method, `seed${seed}`].join('/'), dataset: datasetId, shots, method, seed };
}

/** The backbone's name in tables: the config's, else the model folder's or file's. */
export function backboneOf(config: ExperimentConfig): string {
  return config.backbone ?? baseName(config.model).replace(/\.safetensors$/i, '');
}

/** What every client of a cell computes with, and the method: the same in a simulation and on a Flower node. */
export interface PreparedCell {
  readonly method: Method;
  readonly prompt: PromptOptions;
  readonly federation: FederationSetup;
  readonly settings: ClientSettings;
}

export function prepareCell(config: ExperimentConfig, spec: CellSpec, model: ClipModel, tokenizer: ClipTokenizer, classnames: readonly string[], clients: number): PreparedCell {
  const method = methodOfCell(config, spec.method);
  const promptOptions = { ...config.prompt, ...method.prompt } as PromptOptions;
  const prompt = new CoopPrompt(model, tokenizer, classnames, promptOptions);
  const federation: FederationSetup = {
    clients,
    rounds: config.federation.rounds,
    contextSize: prompt.rows * prompt.width,
    contextRows: prompt.rows,
    contextTokens: prompt.contextTokens,
    width: prompt.width,
    initialContext: prompt.initialContext(spec.seed),
  };
  const settings: ClientSettings = {
    federation,
    numClasses: classnames.length,
    localEpochs: config.federation.localEpochs,
    batchSize: config.federation.batchSize,
    sgd: config.optimizer,
    scheduleEpochs: config.federation.rounds * config.federation.localEpochs,
    seed: spec.seed,
    scoring: config.evaluation.scoring,
  };
  return { method, prompt: promptOptions, federation, settings };
}

/** The method a cell runs (a variant under its own id and label). */
export function methodOfCell(config: ExperimentConfig, name: string): Method {
  const resolved = resolveMethod(config, name);
  const method = createMethod(resolved.id, resolved.options);
  if (!resolved.variant) return method;
  return { ...method, id: resolved.variant, label: resolved.label ?? `${method.label} (${resolved.variant})` };
}

/** What the clients of a method with choices score on their validation images: the method's own candidates, else the memory grid. */
export function validationChoices(config: ExperimentConfig, method: Method, methodName: string, logitScale: number): readonly Choice[] {
  if (!method.choosesOnValidation) return [];
  return method.choices?.candidates ?? memoryChoices(config, methodName, logitScale);
}

/** The field of a cell's config that records what validation chose. */
export function selectionField(method: Method): string {
  return method.choices?.record ?? 'memorySelection';
}

/**
 * The (α, β) grid the clients of a cell score on their validation images: local Tip-Adapter's own grid, else
 * memorySearch's. α is given for CLIP's logit scale of 100 and (memorySearch.scaleAlpha) multiplied by the
 * model's exp(logit_scale)/100: the memory's logits then weigh the same against CLIP's for any model.
 */
export function memoryChoices(config: ExperimentConfig, methodName: string, logitScale: number): { alpha: number; beta: number }[] {
  if (!(logitScale > 0)) throw new Error(`memory search: the model's logit scale must be positive, got ${logitScale}`);
  const { id, options } = resolveMethod(config, methodName);
  const grid = id === 'local-tip-adapter' ? tipAdapterGrid(options.tipAdapter) : config.memorySearch;
  const scale = config.memorySearch.scaleAlpha ? logitScale / 100 : 1;
  return grid.alpha.flatMap((alpha) => grid.beta.map((beta) => ({ alpha: alpha * scale, beta })));
}

export function partitionRequest(config: ExperimentConfig, shots: number): PartitionRequest {
  const p = config.data.partition;
  const common = { clients: p.clients, seed: p.seed, shots, ...(p.valShots !== undefined ? { valShots: p.valShots } : {}) };
  switch (p.scheme) {
    case 'pathological': return { scheme: 'pathological', ...common };
    case 'dirichlet': return { scheme: 'dirichlet', beta: p.beta, ...common };
    case 'iid': return { scheme: 'iid', ...common };
  }
}

/** What determines a cell's numbers: it is stored with the cell, and a rerun recomputes a cell whose config changed. */
export function cellConfigOf(config: ExperimentConfig, spec: CellSpec, backbone: string, partition: { readonly dataset: { readonly fingerprint: string } }): Record<string, unknown> {
  const { name: _name, output: _output, cache: _cache, methods: _methods, seeds: _seeds, variants: _variants, methodOptions: _options, defaultChoices: _defaultChoices, data, federation, ...rest } = config;
  const { workers: _workers, ...training } = federation; // parallel runs give the same numbers
  return {
    ...rest,
    methodOptions: resolveMethod(config, spec.method).options, // a variant's own
    backbone,
    data: { ...data, datasets: undefined, shots: undefined, dataset: spec.dataset, datasetFingerprint: partition.dataset.fingerprint },
    federation: training,
    shots: spec.shots,
    method: spec.method,
    seed: spec.seed,
  };
}

/** A cell's id as one file name. */
export function cellFileName(cellId: string): string {
  return cellId.replaceAll('/', '__');
}

export function datasetIdOf(spec: string): string {
  return safeName(baseName(spec).toLowerCase());
}

export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase() || 'unnamed';
}


/** The last part of a path or URL, as path.basename gives it (trailing slashes ignored). */
function baseName(p: string): string {
  return p.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? p;
}
