// What the page and its Worker say to each other (postMessage). The page never computes
// and never talks to the server; the Worker never touches the DOM. Everything here is
// structured-clone data.

/** Where the node's local dataset comes from. */
export type DataSource =
  /** The person's photos: one sub-folder per class, as `<input webkitdirectory>` gives them. */
  | { readonly kind: 'folder'; readonly files: readonly PhotoFile[]; readonly client: number }
  /** A local dataset drawn from the bundled world (`seed`: the world's dataset seed): this client's share of it. */
  | { readonly kind: 'world'; readonly client: number; readonly seed: number };

export interface PhotoFile {
  /** Path inside the picked folder, `class/name.jpg` (the top folder's own name removed). */
  readonly path: string;
  readonly data: Blob;
}

/** What a method declares it sends and keeps (src/federation/method.ts), and the metrics a node may send. */
export interface Disclosure {
  readonly method: string;
  readonly label: string;
  readonly trains: string;
  readonly uploads: string;
  readonly staysOnClient: string;
  /** The metric names a node's reply may hold (src/node/flower-handler.ts). */
  readonly metrics: readonly string[];
  /** Array names and lengths the method's server half accepts, once a run has told the node its cell. */
  readonly uploadSpec?: Readonly<Record<string, number>>;
}

export type PageToWorker =
  | { readonly type: 'disclose'; readonly method: string }
  | { readonly type: 'join'; readonly source: DataSource; readonly heartbeatInterval?: number }
  | { readonly type: 'leave' };

/** The node's progress, as the page shows it. */
export interface Progress {
  readonly runId?: string;
  readonly method?: string;
  /** The server's round; after the last one, Flower numbers the finishing and testing steps rounds + 1. */
  readonly round?: number;
  /** The cell's rounds, from the node's own description of it. */
  readonly rounds?: number;
  /** What the node did last: describe, fit, finish, evaluate. */
  readonly ask?: string;
  readonly trainLoss?: number;
  readonly accuracy?: number;
  /** Request bytes the node has sent to the server since it joined (protobuf bodies and signed metadata). */
  readonly bytesSent: number;
  readonly messages: number;
}

export type WorkerToPage =
  /** `methods`: every method a browser node can run, for the page's choice. */
  | { readonly type: 'disclosure'; readonly disclosure: Disclosure; readonly methods: readonly { readonly id: string; readonly label: string }[] }
  /** What the node is doing, in words (shown as the status and logged). */
  | { readonly type: 'status'; readonly text: string }
  /** The protocol's own lines (registration, messages received and answered): logged only. */
  | { readonly type: 'log'; readonly text: string }
  | { readonly type: 'joined'; readonly nodeId: string; readonly restored: boolean; readonly personalStates: number }
  | { readonly type: 'progress'; readonly progress: Progress }
  | { readonly type: 'left' }
  | { readonly type: 'error'; readonly message: string };

/** "2 of 10", and "10 of 10, done" for the steps after the last round (which the server numbers rounds + 1). */
export function roundText(p: Pick<Progress, 'round' | 'rounds'>): string | undefined {
  if (p.round === undefined) return undefined;
  if (p.rounds === undefined) return String(p.round);
  return p.round > p.rounds ? `${p.rounds} of ${p.rounds}, done` : `${p.round} of ${p.rounds}`;
}
