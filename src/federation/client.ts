// One client at run time: the client half of a method, the client's own
// features and its personal state. It is what a worker thread or a Flower
// node hosts, one per client; the engine (the server side) talks to it only
// through messages — what the server sends in, the declared upload and
// scores out. Its personal state goes to the client's own store and nowhere
// else.

import { SeededRandom } from '../clip/random.js';
import { learningRate, type SgdOptions } from '../prompt/sgd.js';
import type { ClientData } from './client-data.js';
import { sha256Hex } from '../io/sha256.js';
import { accuracy, classTextFeatures, predictLogits, type Scoring } from './evaluation.js';
import { trainLocally, type PromptCompute, type TrainingSchedule } from './local-training.js';
import { textTower, type TextTower } from './text-tower.js';
import type { Choice, ClientRuntime, FederationSetup, Method, ScheduleRequest, Tensors } from './method.js';

/** How every client of a run trains and scores: serialisable, the same on every client. */
export interface ClientSettings {
  readonly federation: FederationSetup;
  readonly numClasses: number;
  readonly localEpochs: number;
  readonly batchSize: number;
  readonly sgd: SgdOptions;
  /** Epochs of the whole run, for the learning-rate schedule. */
  readonly scheduleEpochs: number;
  readonly seed: number;
  readonly scoring: Scoring;
}

/** Where a client keeps its personal state between rounds: memory in a simulation, its own disk on a node. */
export interface PersonalStore {
  load(): Promise<Tensors | undefined>;
  save(state: Tensors): Promise<void>;
}

export class InMemoryStore implements PersonalStore {
  private state?: Tensors;
  async load(): Promise<Tensors | undefined> {
    return this.state;
  }
  async save(state: Tensors): Promise<void> {
    this.state = state;
  }
}

/** What a client sends back after a local round: the upload and what the server may know of the round. */
export interface FitReply {
  readonly client: number;
  readonly upload: Tensors;
  /** Training images (FedAvg's weight). */
  readonly samples: number;
  readonly loss: number;
  readonly steps: number;
}

export interface EvaluateReply {
  readonly client: number;
  /** One accuracy per choice scored, or one for the client's own prediction. */
  readonly accuracies: readonly number[];
  /** Images scored. */
  readonly count: number;
}

/** Normalised class text features [C, E] for a context (a cache shared by the clients of one host). */
export type TextFeatures = (context: Float32Array) => Promise<Float32Array>;

/** Normalised class text features of the last few contexts scored, shared by the clients of one host (the global prompt is the same for all). */
export function textFeatureCache(compute: PromptCompute, size = 16): (context: Float32Array) => Promise<Float32Array> {
  const texts = new Map<string, Promise<Float32Array>>();
  return (context) => {
    const key = sha256Hex(new Uint8Array(context.buffer, context.byteOffset, context.byteLength));
    let t = texts.get(key);
    if (!t) {
      t = classTextFeatures(compute, context);
      t.catch(() => texts.delete(key));
      if (texts.size >= size) texts.delete(texts.keys().next().value!);
      texts.set(key, t);
    }
    return t;
  };
}

export class FederatedClient {
  private readonly text: TextTower;

  constructor(
    private readonly method: Method,
    private readonly compute: PromptCompute,
    private readonly settings: ClientSettings,
    readonly data: ClientData,
    private readonly store: PersonalStore,
    private readonly textFeatures: TextFeatures,
  ) {
    this.text = textTower(compute);
  }

  get id(): number {
    return this.data.id;
  }

  private runtime(kind: 'fit' | 'finish' | 'evaluate', round: number): ClientRuntime {
    const { settings, compute, data } = this;
    const schedule = (options: ScheduleRequest = {}): TrainingSchedule => {
      const epochs = options.learningRates?.length ?? options.epochs ?? settings.localEpochs;
      // A round's epochs follow the run's schedule; a finishing step (fine-tuning) has a schedule of its own,
      // and reads the augmented views from where the run left them.
      const first = kind === 'fit' ? (round - 1) * settings.localEpochs : 0;
      const total = kind === 'fit' ? settings.scheduleEpochs : epochs;
      const sgd = kind === 'fit' ? settings.sgd : { ...settings.sgd, warmupEpochs: 0 }; // the warm-up is the run's start only
      return {
        epochs,
        batchSize: settings.batchSize,
        sgd: settings.sgd,
        learningRates: options.learningRates ?? Array.from({ length: epochs }, (_, e) => learningRate(sgd, first + e, total)),
        seed: SeededRandom.forName(settings.seed, `${kind}/round${round}/client${data.id}`).nextUint32(),
        firstEpoch: kind === 'fit' ? first : settings.scheduleEpochs,
        viewSeed: SeededRandom.forName(settings.seed, `views/client${data.id}`).nextUint32(),
      };
    };
    return {
      setup: settings.federation,
      data,
      numClasses: settings.numClasses,
      round,
      text: this.text,
      schedule,
      train: (start, options = {}) =>
        trainLocally(compute, data, start, { ...schedule(options), penalty: options.penalty, personal: options.personal }),
    };
  }

  /** A local round from what the server sent; the personal state it leaves is saved before the reply. */
  async fit(round: number, download: Tensors): Promise<FitReply> {
    const result = await this.method.client.fit(this.runtime('fit', round), download, await this.store.load());
    await this.store.save(result.personal);
    return { client: this.id, upload: result.upload, samples: this.data.train[0].count, loss: result.loss, steps: result.steps };
  }

  /** The method's finishing step after the last round (nothing is uploaded). */
  async finish(round: number, download: Tensors): Promise<void> {
    const { finish } = this.method.client;
    if (!finish) throw new Error(`${this.method.label} has no finishing step`);
    await this.store.save(await finish(this.runtime('finish', round), download, await this.store.load()));
  }

  /** Accuracy on the client's own `split` images with what the server sent: once per choice, or once as the method predicts. */
  async evaluate(split: 'test' | 'val', download: Tensors, choices?: readonly Choice[]): Promise<EvaluateReply> {
    const set = this.data[split];
    const personal = await this.store.load();
    const runtime = this.runtime('evaluate', this.settings.federation.rounds);
    // CLIP's logits under one context are computed once, however many choices (α, β) add their personal logits to them.
    let clip: { readonly context: Float32Array; readonly logits: Float32Array } | undefined;
    const clipLogits = async (context: Float32Array): Promise<Float32Array> => {
      if (clip?.context !== context) clip = { context, logits: predictLogits(set, await this.textFeatures(context), this.compute.model.logitScale) };
      return clip.logits;
    };
    const score = async (choice?: Choice): Promise<number> => {
      const predictor = this.method.client.predictor(runtime, download, personal, choice);
      if (!predictor.logits && !predictor.context) throw new Error(`${this.method.label} predicts with neither a context nor logits of its own`);
      let logits: Float32Array;
      if (predictor.logits) {
        logits = await predictor.logits(set);
      } else {
        const base = await clipLogits(predictor.context!);
        logits = predictor.personal ? predictor.personal.logits(set) : base.slice();
        if (predictor.personal) for (let i = 0; i < logits.length; i++) logits[i] += base[i];
      }
      if (logits.length !== set.count * this.settings.numClasses) {
        throw new Error(`${this.method.label} predicted ${logits.length} logits for ${set.count} images × ${this.settings.numClasses} classes`);
      }
      return accuracy(logits, set.labels, this.settings.scoring, this.data.classes);
    };
    const accuracies: number[] = [];
    for (const choice of choices ?? [undefined]) accuracies.push(await score(choice));
    return { client: this.id, accuracies, count: set.count };
  }
}
