// The ground the browser node stands on: a page served with COOP/COEP is cross-origin
// isolated, and onnxruntime-web (its own files, served from node_modules) runs a graph made
// by the project's graph builder in a Worker with 2 wasm threads, giving onnxruntime-node's
// outputs. Without the headers onnxruntime-web falls back to 1 thread: the second test
// shows the check can fail.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { Browser } from 'playwright-core';
import { DIST, ORT_WEB_DIST, browserSkip, launchChromium, pageErrors, serveStatic, type StaticServer } from './browser-harness.js';
import { TINY_IN, TINY_ROWS, tinyGraph, tinyInput } from './browser-tiny-graph.js';

const skip = browserSkip();

const PAGE = `<!doctype html><meta charset="utf-8"><title>isolation</title>
<script type="module">
  window.result = new Promise((resolve) => {
    const worker = new Worker('/worker.js', { type: 'module' });
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => resolve({ error: e.message });
  });
  window.isolated = crossOriginIsolated;
</script>`;

// The Worker builds the graph itself (the project's builder, compiled to dist/) and runs it.
const WORKER = `
import * as ort from '/ort/ort.wasm.min.mjs';
import { tinyGraph, tinyInput, TINY_ROWS, TINY_IN } from '/dist/test/browser-tiny-graph.js';
try {
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = 2;
  const session = await ort.InferenceSession.create(tinyGraph(), { executionProviders: ['wasm'] });
  const out = await session.run({ x: new ort.Tensor('float32', tinyInput(), [TINY_ROWS, TINY_IN]) });
  postMessage({ y: Array.from(out.y.data), dims: out.y.dims, threads: ort.env.wasm.numThreads, isolated: self.crossOriginIsolated });
} catch (error) {
  postMessage({ error: String(error && error.stack || error) });
}`;

interface WorkerResult { y?: number[]; dims?: number[]; threads?: number; isolated?: boolean; error?: string }

let browser: Browser;
const servers: StaticServer[] = [];

before(async () => {
  if (!skip) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => s.close()));
});

async function runPage(isolate: boolean): Promise<{ isolated: boolean; result: WorkerResult; errors: string[] }> {
  const server = await serveStatic({ folders: { '/ort/': ORT_WEB_DIST, '/dist/': DIST }, pages: { '/': PAGE, '/worker.js': WORKER }, isolate });
  servers.push(server);
  const page = await browser.newPage();
  const errors = pageErrors(page);
  try {
    await page.goto(`${server.url}/`);
    const isolated = await page.evaluate(() => (window as unknown as { isolated: boolean }).isolated);
    const result = await page.evaluate(() => (window as unknown as { result: Promise<WorkerResult> }).result);
    return { isolated, result, errors };
  } finally {
    await page.close();
  }
}

test('a page served with COOP/COEP is cross-origin isolated; onnxruntime-web runs a graph from src/onnx/graph.ts in a Worker on 2 threads, as onnxruntime-node does', { skip, timeout: 60_000 }, async () => {
  const { isolated, result, errors } = await runPage(true);
  assert.equal(result.error, undefined, `the Worker ran the graph: ${result.error}\n${errors.join('\n')}`);
  assert.equal(isolated, true, 'window.crossOriginIsolated');
  assert.equal(result.isolated, true, 'the Worker is isolated too');
  assert.equal(result.threads, 2, 'onnxruntime-web kept 2 threads (it drops to 1 without isolation)');
  assert.deepEqual(result.dims, [TINY_ROWS, 24]);

  const session = await ort.InferenceSession.create(tinyGraph());
  const expected = (await session.run({ x: new ort.Tensor('float32', tinyInput(), [TINY_ROWS, TINY_IN]) })).y.data as Float32Array;
  assert.equal(result.y!.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(result.y![i] - expected[i]) <= 1e-6 * Math.max(Math.abs(expected[i]), 1e-3), `y[${i}]: browser ${result.y![i]}, onnxruntime-node ${expected[i]}`);
  }
});

test('without COOP/COEP the page is not isolated and onnxruntime-web falls back to 1 thread', { skip, timeout: 60_000 }, async () => {
  const { isolated, result, errors } = await runPage(false);
  assert.equal(result.error, undefined, `the Worker ran the graph: ${result.error}\n${errors.join('\n')}`);
  assert.equal(isolated, false);
  assert.equal(result.threads, 1);
});
