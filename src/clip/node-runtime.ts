// The default runtime in Node: onnxruntime-node, with what only it offers
// (execution providers such as CUDA, thread counts). A browser passes
// onnxruntime-web to ClipModel instead (src/browser/client.ts).

import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { loadClip } from './checkpoint-file.js';
import { ClipModel, type ClipRuntime } from './model.js';

export interface RuntimeOptions {
  /** onnxruntime execution providers, e.g. ['cuda', 'cpu']. Default: ['cpu']. */
  readonly executionProviders?: readonly string[];
  /** Threads per operator; default: every core. */
  readonly threads?: number;
}

export function nodeRuntime(options: RuntimeOptions = {}): ClipRuntime {
  return {
    ort,
    sessionOptions: {
      executionProviders: [...(options.executionProviders ?? ['cpu'])],
      intraOpNumThreads: options.threads ?? os.availableParallelism(),
      interOpNumThreads: 1,
    },
  };
}

/** A CLIP checkpoint from disk (see checkpoint-file.ts), on onnxruntime-node. */
export async function loadClipModel(checkpointPath: string, options: RuntimeOptions = {}): Promise<ClipModel> {
  return new ClipModel(await loadClip(checkpointPath), nodeRuntime(options));
}
