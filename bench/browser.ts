// `npm run bench:browser`: a browser node's compute against a Node.js node's on the same
// work (bench/browser-work.ts: one local training step of the prompt, the text tower over
// every class, its loss and gradient), with the same thread count:
//   - the bundled world CLIP, 48 classes (what the browser federation test runs);
//   - a ViT-B/16-size text tower (random weights), 100 classes × 16 context vectors
//     (the paper's regime, and the issue's measurement).
// Per run a fresh session (a new page and Worker in Chromium, a new ClipModel in Node):
// session start (graph built, session created, first step), the median of the next steps,
// and memory — in Chromium `performance.measureUserAgentSpecificMemory()` (the page and its
// Worker: JS heaps and the wasm memory onnxruntime-web computes in), in Node the process's
// resident memory growth over the run (onnxruntime-node's memory is native). Medians over runs.

import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { clipFromFiles } from '../src/clip/checkpoint.js';
import { nodeRuntime } from '../src/clip/node-runtime.js';
import { CLIP_VIT_B16, randomClipWeights } from '../src/clip/random.js';
import type { ClipWeights } from '../src/clip/weights.js';
import { WORLD_MODEL_DIR } from '../src/experiment/world-experiment.js';
import { positiveInt } from '../src/cli/options.js';
import { ORT_WEB_DIST, bundleForBrowser, chromiumMissing, launchChromium, serveStatic } from '../test/browser-harness.js';
import type { BenchRequest } from './browser-entry.js';
import { timeSteps, type StepWork } from './browser-work.js';
import { mb, median } from './measure.js';

const MODELS: Record<BenchRequest['model'], { label: string; work: StepWork }> = {
  world: { label: 'world CLIP (bundled), 48 classes × 16 context', work: { classes: 48, context: 16, suffix: 6, batch: 32 } },
  'vit-b16': { label: 'ViT-B/16-size text tower, 100 classes × 16 context', work: { classes: 100, context: 16, suffix: 8, batch: 32 } },
};

interface Measured { sessionStartMs: number; stepMs: number; memoryBytes: number; loss: number }

const log = (line: string): void => console.error(line);

function nodeWeights(model: BenchRequest['model']): ClipWeights {
  if (model === 'vit-b16') return randomClipWeights(CLIP_VIT_B16, 16);
  const read = (name: string) => readFileSync(path.join(WORLD_MODEL_DIR, name));
  return clipFromFiles({ weights: read('model.safetensors'), config: read('config.json'), preprocessorConfig: read('preprocessor_config.json') }, WORLD_MODEL_DIR);
}

async function measureNode(model: BenchRequest['model'], threads: number, steps: number, runs: number): Promise<Measured[]> {
  const weights = nodeWeights(model);
  const out: Measured[] = [];
  for (let r = 0; r < runs; r++) {
    const rss = process.memoryUsage().rss;
    const t = await timeSteps(weights, nodeRuntime({ threads }), MODELS[model].work, steps);
    out.push({ sessionStartMs: t.sessionStartMs, stepMs: median(t.stepsMs), memoryBytes: process.memoryUsage().rss - rss, loss: t.loss });
    log(`  node ${model} run ${r + 1}: start ${t.sessionStartMs.toFixed(0)} ms, step ${median(t.stepsMs).toFixed(1)} ms`);
  }
  return out;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>bench</title><script type="module">
window.measure = (request) => new Promise((resolve) => {
  const worker = new Worker('/bench/bench.js', { type: 'module' });
  worker.onmessage = async (e) => {
    let memory = null;
    try { memory = (await performance.measureUserAgentSpecificMemory()).bytes; } catch (error) { memory = String(error); }
    worker.terminate();
    resolve({ ...e.data, memory });
  };
  worker.onerror = (e) => resolve({ error: e.message });
  worker.postMessage(request);
});
</script>`;

async function measureBrowser(model: BenchRequest['model'], threads: number, steps: number, runs: number): Promise<Measured[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-bench-browser-'));
  const browser = await launchChromium();
  try {
    await bundleForBrowser({ bench: 'bench/browser-entry.ts' }, dir);
    const server = await serveStatic({ folders: { '/ort/': ORT_WEB_DIST, '/bench/': dir, '/model/': WORLD_MODEL_DIR }, pages: { '/': PAGE } });
    try {
      const out: Measured[] = [];
      for (let r = 0; r < runs; r++) {
        const page = await browser.newPage();
        try {
          await page.goto(`${server.url}/`);
          const request: BenchRequest = { model, work: MODELS[model].work, steps, threads };
          type Result = { error?: string; sessionStartMs: number; stepsMs: number[]; loss: number; threads: number; isolated: boolean; memory: number | string };
          const result = await page.evaluate((req) => (window as unknown as { measure: (r: unknown) => Promise<Result> }).measure(req), request);
          if (result.error) throw new Error(`browser: ${result.error}`);
          if (!result.isolated || result.threads !== threads) throw new Error(`browser: ${result.threads} threads, isolated ${result.isolated} (asked ${threads})`);
          if (typeof result.memory !== 'number') throw new Error(`browser: measureUserAgentSpecificMemory failed: ${result.memory}`);
          out.push({ sessionStartMs: result.sessionStartMs, stepMs: median(result.stepsMs), memoryBytes: result.memory, loss: result.loss });
          log(`  browser ${model} run ${r + 1}: start ${result.sessionStartMs.toFixed(0)} ms, step ${median(result.stepsMs).toFixed(1)} ms`);
        } finally {
          await page.close();
        }
      }
      return out;
    } finally {
      await server.close();
    }
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--runs <n>', 'fresh sessions per runtime and model', positiveInt, 5)
    .option('--steps <n>', 'steps timed after the first in each session', positiveInt, 5)
    .option('--threads <n>', 'threads in both runtimes', positiveInt, 2)
    .option('--models <list>', `comma-separated: ${Object.keys(MODELS).join(', ')}`, 'world,vit-b16')
    .parse()
    .opts<{ runs: number; steps: number; threads: number; models: string }>();
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  const models = opts.models.split(',').map((m) => m.trim()) as BenchRequest['model'][];
  for (const m of models) if (!(m in MODELS)) throw new Error(`--models: unknown model "${m}" (${Object.keys(MODELS).join(', ')})`);
  const rows: string[] = [];
  for (const model of models) {
    log(`${MODELS[model].label}: ${opts.runs} runs × ${opts.steps} steps, ${opts.threads} threads`);
    const node = await measureNode(model, opts.threads, opts.steps, opts.runs);
    const browser = await measureBrowser(model, opts.threads, opts.steps, opts.runs);
    // The same work: the first step's loss agrees across runtimes.
    const lossGap = Math.abs(node[0].loss - browser[0].loss) / Math.max(Math.abs(node[0].loss), 1e-12);
    if (lossGap > 1e-4) throw new Error(`${model}: the runtimes disagree on the loss (${node[0].loss} vs ${browser[0].loss}): not the same work`);
    const row = (name: string, m: Measured[]) => `${MODELS[model].label.padEnd(52)} ${name.padEnd(28)} ${`${(median(m.map((x) => x.sessionStartMs)) / 1000).toFixed(2)} s`.padStart(10)} ${`${median(m.map((x) => x.stepMs)).toFixed(0)} ms`.padStart(10)} ${mb(median(m.map((x) => x.memoryBytes))).padStart(9)}`;
    rows.push(row('onnxruntime-node', node), row('Chromium, onnxruntime-web wasm', browser));
    const ratio = median(browser.map((x) => x.stepMs)) / median(node.map((x) => x.stepMs));
    rows.push(`${''.padEnd(52)} ${'browser ÷ node, step'.padEnd(28)} ${''.padStart(10)} ${`${ratio.toFixed(2)}×`.padStart(10)}`);
  }
  console.log();
  console.log(`Medians of ${opts.runs} fresh sessions, ${opts.steps} steps each after the first, ${opts.threads} threads, batch 32; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}).`);
  console.log(`Memory: Chromium, the page and its Worker (measureUserAgentSpecificMemory); Node, resident memory growth over a session.`);
  console.log(`${'work'.padEnd(52)} ${'runtime'.padEnd(28)} ${'start'.padStart(10)} ${'step'.padStart(10)} ${'memory'.padStart(9)}`);
  for (const r of rows) console.log(r);
}

main().catch((error: Error) => {
  console.error(`bench:browser: ${error.message}`);
  process.exit(1);
});
