// Bundles the browser node for the page's server (`npm run build` runs it
// after tsc): src/browser/worker.ts and src/browser/page.ts, when they exist,
// into dist/web/ as ES modules for browsers. onnxruntime-web is not bundled:
// its import is rewritten to the copy the server self-hosts at /ort/
// (node_modules/onnxruntime-web/dist/), which loads its .wasm/.mjs from the
// same folder, so one copy of the runtime serves the page and its Worker.
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'web');
/** Where the page's server serves onnxruntime-web's dist/ folder. */
const ORT_URL = process.env.PFEDPROMPT_ORT_URL ?? '/ort/ort.min.mjs';

const entries = ['worker', 'page'].map((name) => path.join(root, 'src', 'browser', `${name}.ts`)).filter((file) => existsSync(file));
rmSync(outdir, { recursive: true, force: true });
if (entries.length === 0) {
  console.log('build-web: no src/browser/worker.ts or page.ts yet, nothing to bundle');
} else {
  const ortFromServer = {
    name: 'onnxruntime-web-from-server',
    setup(build) {
      build.onResolve({ filter: /^onnxruntime-(web|common)$/ }, () => ({ path: ORT_URL, external: true }));
    },
  };
  const result = await esbuild.build({
    entryPoints: entries,
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
    plugins: [ortFromServer],
  });
  // The page itself: served at / as index.html, its stylesheet beside it.
  const page = path.join(root, 'src', 'browser', 'page.html');
  if (existsSync(page)) {
    copyFileSync(page, path.join(outdir, 'index.html'));
    copyFileSync(path.join(root, 'src', 'browser', 'page.css'), path.join(outdir, 'page.css'));
  }
  for (const [file, { bytes }] of Object.entries(result.metafile.outputs)) {
    if (file.endsWith('.js')) console.log(`build-web: ${file} ${(bytes / 1024).toFixed(0)} KiB`);
  }
}
