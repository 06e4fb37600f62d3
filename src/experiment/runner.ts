// Runs an experiment: the grid datasets × shots × methods × seeds, each cell a
// federated run on the same clients. Resumable: every finished cell is written
// to <output>/cells/ at once (atomically), and a rerun with the same config
// skips it. At the end (and after every cell) results.json gathers the grid
// and the report is written from it.
//
//   <output>/config.json          the validated config, every default filled in
//   <output>/partitions/*.json    the clients of each (dataset, shots), shareable
//   <output>/cells/*.json         one finished cell each
//   <output>/prompts/*.safetensors each cell's final server state (the shared prompt to deploy)
//   <output>/results.json, results.csv, results.md, report.html, *.png

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ClipModel } from '../clip/model.js';
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/load-dataset.js';
import { writePartition } from '../data/partition-file.js';
import { createPartition } from '../data/partitioners/index.js';
import { runAugmentSeed } from '../features/augment.js';
import { FeatureCache } from '../features/cache.js';
import type { ClientData, FeatureSet } from '../federation/client-data.js';
import { WorkerPool, createExecutor, sharedModel, sharedTokenizer, type ClientHostSetup } from '../federation/client-executor.js';
import { mean, runFederation, type FederationOptions, type FederationResult, type RoundRecord } from '../federation/engine.js';
import type { Tensors } from '../federation/method.js';
import { writeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { defaultsOfRun } from './default-choices.js';
import { PACKAGE_ROOT } from '../io/package-root.js';
import { RESULTS_FORMAT, type CellResult, type ResultsFile } from '../report/results.js';
import { writeReport } from '../report/index.js';
import { loadClientData } from './client-features.js';
import { CLIENT_WORKER_ENTRY, methodFromSpec, type MethodSpec } from './client-worker.js';
import { resolveMethod, type ExperimentConfig } from './config.js';
import { cellSpecOf, backboneOf, prepareCell, methodOfCell, validationChoices, selectionField, partitionRequest, cellConfigOf, cellFileName, datasetIdOf, safeName, type CellSpec } from './cell.js';

export { cellSpecOf, backboneOf, prepareCell, methodOfCell, validationChoices, selectionField, memoryChoices, partitionRequest, cellConfigOf, cellFileName, datasetIdOf, type CellSpec, type PreparedCell } from './cell.js';

/** What a run reports as it goes; the command line draws it as progress bars. */
export interface RunEvents {
  readonly log?: (message: string) => void;
  readonly onFeatures?: (label: string, done: number, total: number) => void;
  readonly onCellStart?: (cell: CellSpec, index: number, total: number) => void;
  readonly onRound?: (cell: CellSpec, record: RoundRecord) => void;
  readonly onCellEnd?: (cell: CellSpec, result: CellResult, reused: boolean) => void;
}

export interface ExperimentOutput {
  readonly outDir: string;
  readonly results: ResultsFile;
  readonly files: readonly string[];
}


/** Where the tokenizer is read from: the config's folder, else the model's. */
export function tokenizerDirOf(config: ExperimentConfig): string {
  return config.tokenizer ?? (isDirectory(config.model) ? config.model : path.dirname(config.model));
}

export function outputDir(config: ExperimentConfig): string {
  return config.output ?? path.resolve('runs', config.name);
}

export async function runExperiment(config: ExperimentConfig, events: RunEvents = {}): Promise<ExperimentOutput> {
  const log = events.log ?? (() => {});
  const outDir = outputDir(config);
  await mkdir(path.join(outDir, 'cells'), { recursive: true });
  await mkdir(path.join(outDir, 'partitions'), { recursive: true });
  await writeFileAtomic(path.join(outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

  const tokenizerDir = tokenizerDirOf(config);
  const backbone = backboneOf(config);
  const model = await sharedModel(config.model, { executionProviders: config.executionProviders });
  await sharedTokenizer(tokenizerDir); // a missing tokenizer fails now, not after the features
  const cache = await FeatureCache.open(model.weights, { root: config.cache, onWarning: log });
  const code = codeVersion();

  // One pool of client threads for the whole grid: threads and loaded models are kept from cell to cell.
  const pool = config.federation.workers > 1 ? WorkerPool.create(config.federation.workers, CLIENT_WORKER_ENTRY) : undefined;
  try {
    return await runGrid(config, events, { outDir, tokenizerDir, backbone, model, cache, code, pool });
  } finally {
    await pool?.close();
  }
}

interface GridContext {
  readonly outDir: string;
  readonly tokenizerDir: string;
  readonly backbone: string;
  readonly model: ClipModel;
  readonly cache: FeatureCache;
  readonly code: ResultsFile['code'];
  readonly pool?: WorkerPool;
}

async function runGrid(config: ExperimentConfig, events: RunEvents, context: GridContext): Promise<ExperimentOutput> {
  const { outDir, tokenizerDir, backbone, model, cache, code, pool } = context;
  const cells: CellResult[] = [];
  const chosen = defaultsOfRun(config);
  const defaults = chosen ? { defaults: chosen } : {};
  const grid = config.data.datasets.flatMap((d) => config.data.shots.flatMap((s) => config.methods.flatMap((m) => config.seeds.map((seed) => ({ d, s, m, seed })))));
  let index = 0;
  for (const datasetSpec of config.data.datasets) {
    const dataset = await loadDataset(datasetSpec, { root: config.data.root, skipBad: config.data.skipBad });
    const datasetId = datasetIdOf(datasetSpec);
    for (const shots of config.data.shots) {
      const partition = createPartition(dataset, partitionRequest(config, shots));
      await writePartition(path.join(outDir, 'partitions', `${safeName(datasetId)}-${shots}shot.json`), partition);
      // Seed by seed: each seed trains on augmented views of its own, and only one seed's views are held at a time.
      for (const seed of config.seeds) {
        let clients: ClientData[] | undefined; // loaded when the first cell of this (dataset, shots, seed) needs them
        for (const methodId of config.methods) {
          const spec = cellSpecOf(datasetId, backbone, shots, methodId, seed);
          const cellConfig = cellConfigOf(config, spec, backbone, partition);
          const file = path.join(outDir, 'cells', `${cellFileName(spec.id)}.json`);
          events.onCellStart?.(spec, index++, grid.length);
          const previous = await readFinishedCell(file, cellConfig);
          if (previous) {
            cells.push(previous);
            events.onCellEnd?.(spec, previous, true);
            continue;
          }
          clients ??= await loadClientData(model, dataset, partition, {
            views: config.data.views, augmentSeed: runAugmentSeed(config.data.augmentSeed, seed), cache, onWarning: events.log, tokens: readsTokens(config),
            onProgress: (done, total) => events.onFeatures?.(`${dataset.name} ${shots}-shot features (seed ${seed})`, done, total),
          });
          const started = performance.now();
          const federation = await runCell(config, spec, model, tokenizerDir, dataset, clients, pool, (r) => events.onRound?.(spec, r), events.log);
          const cell = cellResult(spec, dataset, backbone, config, cellConfig, federation, (performance.now() - started) / 1000, (c) => clients![c].classes);
          await writeFinalState(outDir, spec, federation.finalState);
          await writeFileAtomic(file, `${JSON.stringify({ cellConfigHash: hashOf(cellConfig), cell }, null, 1)}\n`);
          cells.push(cell);
          events.onCellEnd?.(spec, cell, false);
          await writeResults(outDir, { format: RESULTS_FORMAT, code, createdAt: new Date().toISOString(), ...defaults, cells });
        }
      }
    }
  }
  const results: ResultsFile = { format: RESULTS_FORMAT, code, createdAt: new Date().toISOString(), ...defaults, cells };
  await writeResults(outDir, results);
  const { files } = await writeReport(results, outDir);
  return { outDir, results, files: [path.join(outDir, 'results.json'), ...files] };
}

async function runCell(
  config: ExperimentConfig, spec: CellSpec, model: ClipModel, tokenizerDir: string, dataset: Dataset, clients: readonly ClientData[],
  pool: WorkerPool | undefined, onRound: (record: RoundRecord) => void, log?: (message: string) => void,
): Promise<FederationResult> {
  const { method, prompt, federation, settings } = prepareCell(config, spec, model, await sharedTokenizer(tokenizerDir), dataset.classnames, clients.length);
  if (!method.readsTokens) clients = clients.map(withoutTokens); // not copied to workers that never read them
  const setup: ClientHostSetup<MethodSpec> = {
    modelPath: config.model,
    tokenizerDir,
    executionProviders: config.executionProviders,
    method: methodSpecOf(config, spec.method),
    prompt,
    classnames: dataset.classnames,
    settings,
    clients,
  };
  const executor = await createExecutor(setup, methodFromSpec, { workers: config.federation.workers, pool, entry: CLIENT_WORKER_ENTRY });
  try {
    return await runFederation(method, federation, executor, federationOptions(config, spec, log, model.logitScale), onRound);
  } finally {
    await executor.close();
  }
}

/** Whether any method of the run reads spatial tokens, so that the clients' features must carry them. */
export function readsTokens(config: ExperimentConfig): boolean {
  return config.methods.some((name) => methodOfCell(config, name).readsTokens === true);
}

function withoutTokens(data: ClientData): ClientData {
  const strip = ({ tokens: _tokens, tokenCount: _count, ...set }: FeatureSet): FeatureSet => set;
  return { ...data, train: data.train.map(strip), val: strip(data.val), test: strip(data.test) };
}

/** How a client host builds the cell's method: the id and the options (a variant's merged in). */
export function methodSpecOf(config: ExperimentConfig, name: string): MethodSpec {
  const { id, options } = resolveMethod(config, name);
  return { id, options };
}

/** How the server side runs a cell, from the config; `logitScale` is the model's exp(logit_scale), for the α grid. */
export function federationOptions(config: ExperimentConfig, spec: CellSpec, log: ((message: string) => void) | undefined, logitScale: number): FederationOptions {
  return {
    participation: config.federation.participation,
    seed: spec.seed,
    choices: validationChoices(config, methodOfCell(config, spec.method), spec.method, logitScale),
    evaluateEachRound: config.evaluation.eachRound,
    minClients: config.federation.minClients,
    timeoutSeconds: config.federation.timeoutSeconds,
    onFailure: (f) => log?.(`${spec.id}: client ${f.client} left out of ${f.stage}${f.round !== undefined ? ` (round ${f.round})` : ''}: ${f.reason}`),
  };
}

function cellResult(
  spec: CellSpec, dataset: Dataset, backbone: string, config: ExperimentConfig, cellConfig: Record<string, unknown>,
  federation: FederationResult, wallSeconds: number, classesOf: (client: number) => readonly number[],
): CellResult {
  const accuracies = federation.clients.map((c) => c.accuracy);
  const validated = federation.clients.map((c) => c.valAccuracy).filter((a) => !Number.isNaN(a));
  const m = mean(accuracies);
  const method = methodOfCell(config, spec.method);
  return {
    id: spec.id,
    method: spec.method,
    methodLabel: method.label,
    dataset: spec.dataset,
    datasetLabel: dataset.name,
    backbone,
    shots: spec.shots,
    seed: spec.seed,
    scoring: config.evaluation.scoring,
    config: { ...cellConfig, ...(federation.selection ? { [selectionField(method)]: federation.selection } : {}), ...(federation.failures.length > 0 ? { failures: federation.failures } : {}) },
    clients: federation.clients.map((c) => ({
      id: c.id, accuracy: c.accuracy, testCount: c.testCount, ...(Number.isNaN(c.valAccuracy) ? {} : { valAccuracy: c.valAccuracy }), classes: [...classesOf(c.id)],
    })),
    meanAccuracy: m,
    ...(validated.length > 0 ? { meanValAccuracy: mean(validated) } : {}),
    stdAccuracy: Math.sqrt(mean(accuracies.map((a) => (a - m) ** 2))),
    rounds: federation.rounds.map((r) => ({
      round: r.round,
      ...(r.meanAccuracy !== undefined ? { meanAccuracy: r.meanAccuracy } : {}),
      ...(Number.isFinite(r.trainLoss) ? { trainLoss: r.trainLoss } : {}),
      bytesUp: r.bytesUp,
      bytesDown: r.bytesDown,
      seconds: r.seconds,
    })),
    wallSeconds,
  };
}

async function readFinishedCell(file: string, cellConfig: Record<string, unknown>): Promise<CellResult | undefined> {
  if (!existsSync(file)) return undefined;
  try {
    const stored = JSON.parse(await readFile(file, 'utf8')) as { cellConfigHash?: string; cell?: CellResult };
    return stored.cellConfigHash === hashOf(cellConfig) ? stored.cell : undefined;
  } catch {
    return undefined; // unreadable: computed again and overwritten
  }
}

/** Where a cell's final server state is written (flower/'s ServerApp names it the same). */
export function promptFile(outDir: string, cellId: string): string {
  return path.join(outDir, 'prompts', `${cellFileName(cellId)}.safetensors`);
}

async function writeFinalState(outDir: string, spec: CellSpec, state: Tensors): Promise<void> {
  const file = promptFile(outDir, spec.id);
  await mkdir(path.dirname(file), { recursive: true });
  await writeSafetensors(file, Object.fromEntries(Object.entries(state).map(([name, data]) => [name, { shape: [data.length], data }])));
}

async function writeResults(outDir: string, results: ResultsFile): Promise<void> {
  await writeFileAtomic(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

function isDirectory(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** The package version, and the git commit when the code runs from a checkout. */
/** The package version, and the git commit when the package is a checkout. */
export function codeVersion(): ResultsFile['code'] {
  const version = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return { version, commit: dirty ? `${commit}+dirty` : commit };
  } catch {
    return { version };
  }
}
