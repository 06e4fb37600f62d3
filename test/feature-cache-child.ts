// A child process for test/feature-cache.test.ts: fills a feature cache for
// the images of a folder and prints one JSON progress line after each batch
// is stored, so the test can kill it mid-run or run two at once.
//
//   node dist/test/feature-cache-child.js <model> <image dir> <cache root> <batch size> <views>

import { readdirSync } from 'node:fs';
import path from 'node:path';
import { loadClipModel } from '../src/clip/node-runtime.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';

const [modelPath, imageDir, cacheRoot, batchSize, views] = process.argv.slice(2);
const items = readdirSync(imageDir)
  .filter((name) => /\.(png|jpg)$/.test(name))
  .sort()
  .map((name, label) => ({ path: path.join(imageDir, name), relativePath: name, label }));
const model = await loadClipModel(modelPath, { threads: 1 });
const cache = await FeatureCache.open(model.weights, { root: cacheRoot, onWarning: (m) => console.error(`warning: ${m}`) });
const result = await extractFeatures(model, items, {
  views: Number(views),
  batchSize: Number(batchSize),
  cache,
  output: 'none',
  workers: 1,
  // Called after each batch's shard is on disk.
  onProgress: (p) => process.stdout.write(`${JSON.stringify(p)}\n`),
});
process.stdout.write(`${JSON.stringify({ done: true, computed: result.computed, fromCache: result.fromCache })}\n`);
await model.release();
