// The browser side of `npm run bench:browser` (bundled, run in a Worker as the browser node
// computes): the CLIP's weights from the server's /model/ files or drawn at random, then
// bench/browser-work.ts's steps on onnxruntime-web's wasm backend.
import * as ort from 'onnxruntime-web/wasm';
import { clipFromFiles } from '../src/clip/checkpoint.js';
import { CLIP_VIT_B16, randomClipWeights } from '../src/clip/random.js';
import type { ClipWeights } from '../src/clip/weights.js';
import { timeSteps, type StepWork } from './browser-work.js';

export interface BenchRequest {
  readonly model: 'world' | 'vit-b16';
  readonly work: StepWork;
  readonly steps: number;
  readonly threads: number;
}

async function bytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function weightsOf(model: BenchRequest['model']): Promise<ClipWeights> {
  if (model === 'vit-b16') return randomClipWeights(CLIP_VIT_B16, 16);
  const [weights, config, preprocessorConfig] = await Promise.all(['model.safetensors', 'config.json', 'preprocessor_config.json'].map((f) => bytes(`/model/${f}`)));
  return clipFromFiles({ weights, config, preprocessorConfig }, '/model');
}

self.onmessage = async (event: MessageEvent<BenchRequest>) => {
  const { model, work, steps, threads } = event.data;
  try {
    ort.env.wasm.wasmPaths = '/ort/';
    ort.env.wasm.numThreads = threads;
    const weights = await weightsOf(model);
    const timing = await timeSteps(weights, { ort, sessionOptions: { executionProviders: ['wasm'], graphOptimizationLevel: 'all' } }, work, steps);
    postMessage({ ...timing, threads: ort.env.wasm.numThreads, isolated: self.crossOriginIsolated });
  } catch (error) {
    postMessage({ error: String((error as Error).stack ?? error) });
  }
};
