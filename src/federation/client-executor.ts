// Where the clients of a simulated federation compute: in this thread, or on
// a pool of worker threads, each worker hosting a fixed share of the clients.
// A client lives on one host for the whole run: its features are sent to
// that host only, and its personal state stays there. A job carries only
// what the server sends (and the round), and the seeds come from the run
// seed, the round and the client, so a parallel run gives the same numbers
// as a sequential one.
//
// This module knows methods only through the Method interface: the worker
// entry that builds a method from its id lives with the experiment
// (experiment/client-worker.ts) and hands this module a factory.

import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { type ClipModel } from '../clip/model.js';
import { loadClipModel } from '../clip/node-runtime.js';
import { type ClipTokenizer } from '../clip/tokenizer.js';
import { loadTokenizer } from '../clip/tokenizer-file.js';
import { CoopPrompt, type PromptOptions } from '../prompt/coop-prompt.js';
import type { ClientData } from './client-data.js';
import { FederatedClient, InMemoryStore, textFeatureCache, type ClientSettings, type EvaluateReply, type FitReply } from './client.js';

export { textFeatureCache } from './client.js';
import type { PromptCompute } from './local-training.js';
import type { Choice, Method, Tensors } from './method.js';

/** Everything a host needs to run its clients: serialisable, so a worker can rebuild it. */
export interface ClientHostSetup<MethodSpec = unknown> {
  readonly modelPath: string;
  readonly tokenizerDir: string;
  /** onnxruntime threads per operator (per worker). */
  readonly threads?: number;
  readonly executionProviders?: readonly string[];
  /** What the host's method factory builds the method from (e.g. its id and options). */
  readonly method: MethodSpec;
  /** The prompt layout, the method's own overrides already applied. */
  readonly prompt: PromptOptions;
  readonly classnames: readonly string[];
  readonly settings: ClientSettings;
  /** The clients this host runs, and only those. */
  readonly clients: readonly ClientData[];
}

export type MethodFactory<MethodSpec = unknown> = (spec: MethodSpec) => Method;

export interface FitJob {
  /** 'fit': a round's local training; 'finish': the method's last local step after the rounds. */
  readonly kind: 'fit' | 'finish';
  readonly client: number;
  /** 1-based; finish jobs carry rounds + 1. */
  readonly round: number;
  readonly download: Tensors;
}

export interface EvalJob {
  readonly client: number;
  readonly split: 'test' | 'val';
  readonly download: Tensors;
  /** Choices to score (one accuracy each); absent: the method's own prediction. */
  readonly choices?: readonly Choice[];
}

/** A finish job's reply has nothing to upload. */
export type FitJobReply = FitReply | { readonly client: number; readonly finished: true };

/** The server's view of the clients: it sends jobs, it gets replies (or a job's error). */
export interface ClientExecutor {
  fit(job: FitJob): Promise<FitJobReply>;
  evaluate(job: EvalJob): Promise<EvaluateReply>;
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
  if (!m) models.set(key, (m = loadClipModel(modelPath, { threads: runtime.threads, executionProviders: runtime.executionProviders })));
  return m;
}

/** The tokenizer in `dir`, loaded once per thread. */
export function sharedTokenizer(dir: string): Promise<ClipTokenizer> {
  let t = tokenizers.get(dir);
  if (!t) tokenizers.set(dir, (t = loadTokenizer(dir)));
  return t;
}

/** Runs its clients in this thread, one job at a time. */
export class InProcessExecutor implements ClientExecutor {
  private readonly clients = new Map<number, FederatedClient>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(method: Method, compute: PromptCompute, setup: ClientHostSetup) {
    const texts = textFeatureCache(compute);
    for (const data of setup.clients) this.clients.set(data.id, new FederatedClient(method, compute, setup.settings, data, new InMemoryStore(), texts));
  }

  static async create(setup: ClientHostSetup, method: Method): Promise<InProcessExecutor> {
    const [model, tokenizer] = await Promise.all([sharedModel(setup.modelPath, setup), sharedTokenizer(setup.tokenizerDir)]);
    return new InProcessExecutor(method, { model, prompt: new CoopPrompt(model, tokenizer, setup.classnames, setup.prompt) }, setup);
  }

  private client(id: number): FederatedClient {
    const client = this.clients.get(id);
    if (!client) throw new Error(`client ${id} is not hosted here (this host runs ${[...this.clients.keys()].join(', ') || 'none'})`);
    return client;
  }

  /** One job after another: jobs of one thread would only contend for its cores. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => {});
    return next;
  }

  fit(job: FitJob): Promise<FitJobReply> {
    return this.serial(async () => {
      const client = this.client(job.client);
      if (job.kind === 'finish') {
        await client.finish(job.round, job.download);
        return { client: job.client, finished: true as const };
      }
      return client.fit(job.round, job.download);
    });
  }

  evaluate(job: EvalJob): Promise<EvaluateReply> {
    return this.serial(() => this.client(job.client).evaluate(job.split, job.download, job.choices));
  }

  async close(): Promise<void> {
    this.clients.clear();
  }
}

// ---------------------------------------------------------------- worker threads

type Request =
  | { id: number; kind: 'setup'; run: number; setup: ClientHostSetup }
  | { id: number; kind: 'release'; run: number }
  | { id: number; kind: 'fit'; run: number; job: FitJob }
  | { id: number; kind: 'evaluate'; run: number; job: EvalJob };
type Reply = { id: number; result?: unknown; error?: string };
type Message = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

/** A marker in workerData: the entry module, started as a worker, serves a pool. */
const POOL_WORKER = 'pfedprompt-client-pool';

/**
 * Worker threads that host clients, each with 1/workers of the cores. Client
 * k of a run lives on worker k mod workers: only that worker ever receives its
 * features or holds its personal state. The pool outlives a run: each run
 * sends its setup once, and a worker keeps the loaded model between runs.
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

  /** `entry`: a module that calls serveClientWorker with its method factory. */
  static create(workers: number, entry: URL): WorkerPool {
    if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers must be a positive integer, got ${workers}`);
    const threads = Math.max(1, Math.floor(os.availableParallelism() / workers));
    return new WorkerPool(Array.from({ length: workers }, () => new Worker(entry, { workerData: { role: POOL_WORKER, threads } })));
  }

  get size(): number {
    return this.workers.length;
  }

  private request<T>(worker: Worker, message: Message): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ ...message, id });
    });
  }

  /** An executor for one run: each worker receives the setup with its own clients' data only. */
  async executor(setup: ClientHostSetup): Promise<ClientExecutor> {
    const run = this.runs++;
    const W = this.workers.length;
    const owner = new Map(setup.clients.map((c, i) => [c.id, i % W]));
    await Promise.all(this.workers.map((w, k) => this.request(w, { kind: 'setup', run, setup: { ...setup, clients: shareOf(setup.clients, k, W) } })));
    // One job in flight per worker, as a worker's clients share its cores.
    const queues = this.workers.map(() => Promise.resolve() as Promise<unknown>);
    const send = <T>(client: number, message: Message): Promise<T> => {
      const k = owner.get(client);
      if (k === undefined) return Promise.reject(new Error(`no client ${client} in this run`));
      const done = queues[k].then(() => this.request<T>(this.workers[k], message));
      queues[k] = done.catch(() => {});
      return done;
    };
    return {
      fit: (job) => send(job.client, { kind: 'fit', run, job }),
      evaluate: (job) => send(job.client, { kind: 'evaluate', run, job }),
      close: async () => {
        await Promise.all(this.workers.map((w) => this.request(w, { kind: 'release', run })));
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** The clients worker `k` of `workers` hosts: every workers-th, from the k-th. */
export function shareOf<T>(clients: readonly T[], k: number, workers: number): T[] {
  return clients.filter((_, i) => i % workers === k);
}

/** Runs in this thread for one worker, else on `pool` (or a pool of `workers` threads on `entry`, made for this run and closed with it). */
export async function createExecutor(
  setup: ClientHostSetup, methodFactory: MethodFactory, options: { workers: number; pool?: WorkerPool; entry?: URL },
): Promise<ClientExecutor> {
  if (options.pool) return options.pool.executor(setup);
  if (options.workers <= 1 || !options.entry) return InProcessExecutor.create(setup, methodFactory(setup.method));
  const own = WorkerPool.create(options.workers, options.entry);
  const executor = await own.executor(setup);
  return { ...executor, close: async () => { await executor.close(); await own.close(); } };
}

/** The worker side of a pool; call it from the pool's entry module. Does nothing outside a pool worker. */
export function serveClientWorker(methodFactory: MethodFactory): void {
  if (isMainThread || !parentPort || (workerData as { role?: string } | undefined)?.role !== POOL_WORKER) return;
  const port = parentPort;
  const { threads } = workerData as { threads: number };
  const runs = new Map<number, Promise<InProcessExecutor>>();
  port.on('message', async (request: Request) => {
    try {
      let result: unknown = null;
      if (request.kind === 'setup') {
        const executor = InProcessExecutor.create({ ...request.setup, threads: request.setup.threads ?? threads }, methodFactory(request.setup.method));
        runs.set(request.run, executor);
        await executor;
      } else if (request.kind === 'release') {
        await (await runs.get(request.run))?.close();
        runs.delete(request.run);
      } else {
        const executor = runs.get(request.run);
        if (!executor) throw new Error(`worker: no run ${request.run}`);
        result = request.kind === 'fit' ? await (await executor).fit(request.job) : await (await executor).evaluate(request.job);
      }
      port.postMessage({ id: request.id, result } satisfies Reply);
    } catch (error) {
      port.postMessage({ id: request.id, error: (error as Error).stack ?? String(error) } satisfies Reply);
    }
  });
}
