// Where clients compute: one thread after another, or a pool of worker
// threads running clients of a round in parallel. A job carries everything
// it depends on (what the server sent, the client's own state, a seed made
// from the run seed, the round and the client), so a parallel run gives the
// same numbers as a sequential one.
//
// This file is also the workers' entry point.

import { createHash } from 'node:crypto';
import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ClipModel } from '../clip/model.js';
import { SeededRandom } from '../clip/random.js';
import { ClipTokenizer } from '../clip/tokenizer.js';
import { createMethod, type MethodId, type MethodOptions } from '../methods/index.js';
import { VisualMemory, type MemoryOptions } from '../methods/visual-memory.js';
import { CoopPrompt, type PromptOptions } from '../prompt/coop-prompt.js';
import { learningRate, type SgdOptions } from '../prompt/sgd.js';
import type { ClientData } from './client-data.js';
import { accuracy, classTextFeatures, predictLogits, type Scoring } from './evaluation.js';
import { trainLocally, type PromptCompute } from './local-training.js';
import type { ClientRuntime, FederationSetup, Method, Tensors } from './method.js';

/** Everything a client needs besides its job: serialisable, so a worker can rebuild it. */
export interface ExecutorSetup {
  readonly modelPath: string;
  readonly tokenizerDir: string;
  /** onnxruntime threads per operator (per worker). */
  readonly threads?: number;
  readonly executionProviders?: readonly string[];
  readonly methodId: MethodId;
  readonly methodOptions: MethodOptions;
  /** The prompt layout, the method's own overrides already applied. */
  readonly prompt: PromptOptions;
  readonly classnames: readonly string[];
  readonly federation: FederationSetup;
  readonly localEpochs: number;
  readonly batchSize: number;
  readonly sgd: SgdOptions;
  /** Epochs of the whole run, for the learning-rate schedule. */
  readonly scheduleEpochs: number;
  readonly seed: number;
  readonly scoring: Scoring;
  readonly clients: readonly ClientData[];
}

export interface FitJob {
  /** 'fit': a round's local training; 'finish': the method's last local step after the rounds. */
  readonly kind: 'fit' | 'finish';
  readonly client: number;
  /** 1-based; finish jobs carry rounds + 1. */
  readonly round: number;
  readonly download: Tensors;
  readonly personal?: Tensors;
}

export interface FitJobResult {
  readonly client: number;
  readonly upload: Tensors;
  readonly personal: Tensors;
  readonly loss: number;
  readonly steps: number;
}

export interface EvalJob {
  readonly client: number;
  readonly split: 'test' | 'val';
  readonly context: Float32Array;
  /** Memory settings to score with (several: one accuracy each); none: CLIP's logits alone. */
  readonly memories: readonly MemoryOptions[];
}

export interface EvalJobResult {
  readonly client: number;
  /** One accuracy per memory setting, or one without memory. */
  readonly accuracies: readonly number[];
  readonly count: number;
}

export interface ClientExecutor {
  fit(jobs: readonly FitJob[]): Promise<FitJobResult[]>;
  evaluate(jobs: readonly EvalJob[]): Promise<EvalJobResult[]>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- one thread

/** Loaded models, shared by every executor of this thread that names the same checkpoint. */
const models = new Map<string, Promise<ClipModel>>();
const tokenizers = new Map<string, Promise<ClipTokenizer>>();

/** The checkpoint at `modelPath`, loaded once per thread and runtime setting. */
export function sharedModel(modelPath: string, runtime: { threads?: number; executionProviders?: readonly string[] } = {}): Promise<ClipModel> {
  const key = JSON.stringify([modelPath, runtime.threads, runtime.executionProviders]);
  let m = models.get(key);
  if (!m) models.set(key, (m = ClipModel.load(modelPath, { threads: runtime.threads, executionProviders: runtime.executionProviders })));
  return m;
}

/** The tokenizer in `dir`, loaded once per thread. */
export function sharedTokenizer(dir: string): Promise<ClipTokenizer> {
  let t = tokenizers.get(dir);
  if (!t) tokenizers.set(dir, (t = ClipTokenizer.fromDirectory(dir)));
  return t;
}

/** Runs jobs in this thread. */
export class InProcessExecutor implements ClientExecutor {
  private readonly method: Method;
  /** Normalised class text features of the last few contexts evaluated (the global prompt is shared by every client). */
  private readonly texts = new Map<string, Float32Array>();

  private constructor(private readonly setup: ExecutorSetup, private readonly compute: PromptCompute) {
    this.method = createMethod(setup.methodId, setup.methodOptions);
  }

  static async create(setup: ExecutorSetup): Promise<InProcessExecutor> {
    const [model, tokenizer] = await Promise.all([sharedModel(setup.modelPath, setup), sharedTokenizer(setup.tokenizerDir)]);
    return new InProcessExecutor(setup, { model, prompt: new CoopPrompt(model, tokenizer, setup.classnames, setup.prompt) });
  }

  private client(id: number): ClientData {
    const data = this.setup.clients[id];
    if (!data) throw new Error(`no client ${id} (the run has ${this.setup.clients.length})`);
    return data;
  }

  private runtime(job: FitJob): ClientRuntime {
    const { setup, compute, method } = this;
    const data = this.client(job.client);
    const memoryOptions = method.memoryOptions;
    return {
      setup: setup.federation,
      data,
      round: job.round,
      memory: () => {
        if (!memoryOptions) throw new Error(`${method.label} has no visual memory`);
        return VisualMemory.build(data.train[0], setup.classnames.length, memoryOptions);
      },
      train: (start, options = {}) => {
        const epochs = options.epochs ?? setup.localEpochs;
        // A round's epochs follow the run's schedule; a finishing step (fine-tuning) has a schedule of its own.
        const first = job.kind === 'fit' ? (job.round - 1) * setup.localEpochs : 0;
        const total = job.kind === 'fit' ? setup.scheduleEpochs : epochs;
        const learningRates = Array.from({ length: epochs }, (_, e) => learningRate(setup.sgd, first + e, total));
        return trainLocally(compute, data, start, {
          epochs,
          batchSize: setup.batchSize,
          sgd: setup.sgd,
          learningRates,
          seed: SeededRandom.forName(setup.seed, `${job.kind}/round${job.round}/client${job.client}`).nextUint32(),
          penalty: options.penalty,
          memory: options.memory && memoryOptions ? VisualMemory.build(data.train[0], setup.classnames.length, memoryOptions) : undefined,
        });
      },
    };
  }

  async fit(jobs: readonly FitJob[]): Promise<FitJobResult[]> {
    const out: FitJobResult[] = [];
    for (const job of jobs) {
      const runtime = this.runtime(job);
      if (job.kind === 'finish') {
        if (!this.method.finish) throw new Error(`${this.method.label} has no finishing step`);
        const personal = await this.method.finish(runtime, job.download, job.personal);
        out.push({ client: job.client, upload: {}, personal, loss: NaN, steps: 0 });
      } else {
        const result = await this.method.fit(runtime, job.download, job.personal);
        out.push({ client: job.client, ...result });
      }
    }
    return out;
  }

  private async textFeatures(context: Float32Array): Promise<Float32Array> {
    const key = createHash('sha1').update(new Uint8Array(context.buffer, context.byteOffset, context.byteLength)).digest('hex');
    let texts = this.texts.get(key);
    if (!texts) {
      texts = await classTextFeatures(this.compute, context);
      if (this.texts.size >= 16) this.texts.delete(this.texts.keys().next().value!);
      this.texts.set(key, texts);
    }
    return texts;
  }

  async evaluate(jobs: readonly EvalJob[]): Promise<EvalJobResult[]> {
    const out: EvalJobResult[] = [];
    const scale = this.compute.model.logitScale;
    for (const job of jobs) {
      const data = this.client(job.client);
      const set = data[job.split];
      const texts = await this.textFeatures(job.context);
      const score = (memory?: VisualMemory): number => accuracy(predictLogits(set, texts, scale, memory), set.labels, this.setup.scoring, data.classes);
      const accuracies = job.memories.length === 0 ? [score()]
        : job.memories.map((m) => score(VisualMemory.build(data.train[0], this.setup.classnames.length, m)));
      out.push({ client: job.client, accuracies, count: set.count });
    }
    return out;
  }

  async close(): Promise<void> {
    this.texts.clear();
  }
}

// ---------------------------------------------------------------- worker threads

type Request =
  | { id: number; kind: 'setup'; run: number; setup: ExecutorSetup }
  | { id: number; kind: 'release'; run: number }
  | { id: number; kind: 'fit'; run: number; jobs: readonly FitJob[] }
  | { id: number; kind: 'evaluate'; run: number; jobs: readonly EvalJob[] };
type Reply = { id: number; result?: unknown; error?: string };
type Message = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

/** A marker in workerData: this module, started as a worker, serves a pool. */
const POOL_WORKER = 'pfedprompt-client-pool';

/**
 * Worker threads that run clients, each with 1/workers of the cores. The pool
 * outlives a run: each run sends its setup once, and a worker keeps the
 * loaded model between runs, so many small runs do not pay for threads and
 * sessions again.
 */
export class WorkerPool {
  private next = 0;
  private runs = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly workers: Worker[]) {
    for (const worker of workers) {
      worker.on('message', (reply: Reply) => {
        const p = this.pending.get(reply.id);
        if (!p) return;
        this.pending.delete(reply.id);
        if (reply.error !== undefined) p.reject(new Error(reply.error));
        else p.resolve(reply.result);
      });
      worker.on('error', (error) => {
        for (const p of this.pending.values()) p.reject(error);
        this.pending.clear();
      });
    }
  }

  static create(workers: number): WorkerPool {
    if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers must be a positive integer, got ${workers}`);
    const threads = Math.max(1, Math.floor(os.availableParallelism() / workers));
    return new WorkerPool(Array.from({ length: workers }, () => new Worker(new URL(import.meta.url), { workerData: { role: POOL_WORKER, threads } })));
  }

  get size(): number {
    return this.workers.length;
  }

  request<T>(worker: Worker, message: Message): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ ...message, id });
    });
  }

  /** An executor for one run on this pool's threads (each worker builds the run's prompt and memory once). */
  async executor(setup: ExecutorSetup): Promise<ClientExecutor> {
    const run = this.runs++;
    await Promise.all(this.workers.map((w) => this.request(w, { kind: 'setup', run, setup })));
    const spread = async <J, R>(kind: 'fit' | 'evaluate', jobs: readonly J[]): Promise<R[]> => {
      // Jobs go one at a time to whichever worker is free; results come back in job order.
      const results = new Array<R>(jobs.length);
      let cursor = 0;
      await Promise.all(this.workers.map(async (worker) => {
        while (cursor < jobs.length) {
          const index = cursor++;
          const [result] = await this.request<R[]>(worker, { kind, run, jobs: [jobs[index]] } as Message);
          results[index] = result;
        }
      }));
      return results;
    };
    return {
      fit: (jobs) => spread('fit', jobs),
      evaluate: (jobs) => spread('evaluate', jobs),
      close: async () => {
        await Promise.all(this.workers.map((w) => this.request(w, { kind: 'release', run })));
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Runs in this thread for one worker, else on `pool` (or a pool of `workers` threads made for this run and closed with it). */
export async function createExecutor(setup: ExecutorSetup, workers: number, pool?: WorkerPool): Promise<ClientExecutor> {
  if (pool) return pool.executor(setup);
  if (workers <= 1) return InProcessExecutor.create(setup);
  const own = WorkerPool.create(workers);
  const executor = await own.executor(setup);
  return { ...executor, close: async () => { await executor.close(); await own.close(); } };
}

if (!isMainThread && parentPort && (workerData as { role?: string } | undefined)?.role === POOL_WORKER) {
  const port = parentPort;
  const { threads } = workerData as { threads: number };
  const runs = new Map<number, Promise<InProcessExecutor>>();
  port.on('message', async (request: Request) => {
    try {
      let result: unknown = null;
      if (request.kind === 'setup') {
        const executor = InProcessExecutor.create({ ...request.setup, threads: request.setup.threads ?? threads });
        runs.set(request.run, executor);
        await executor;
      } else if (request.kind === 'release') {
        await (await runs.get(request.run))?.close();
        runs.delete(request.run);
      } else {
        const executor = runs.get(request.run);
        if (!executor) throw new Error(`worker: no run ${request.run}`);
        result = request.kind === 'fit' ? await (await executor).fit(request.jobs) : await (await executor).evaluate(request.jobs);
      }
      port.postMessage({ id: request.id, result } satisfies Reply);
    } catch (error) {
      port.postMessage({ id: request.id, error: (error as Error).stack ?? String(error) } satisfies Reply);
    }
  });
}
