// The page bundle the browser tests serve: `npm run build`'s dist/web when it is there (what
// `pfedprompt serve` serves), else the same entries bundled here into `dir`.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { WEB_BUNDLE_DIR } from '../src/serve/server.js';
import { bundleForBrowser } from './browser-harness.js';
import { PROJECT_ROOT } from './shared.js';

export async function webBundle(dir: string): Promise<string> {
  if (existsSync(path.join(WEB_BUNDLE_DIR, 'index.html')) && existsSync(path.join(WEB_BUNDLE_DIR, 'worker.js'))) return WEB_BUNDLE_DIR;
  const web = path.join(dir, 'web');
  mkdirSync(web, { recursive: true });
  await bundleForBrowser({ page: 'src/browser/page.ts', worker: 'src/browser/worker.ts' }, web);
  copyFileSync(path.join(PROJECT_ROOT, 'src', 'browser', 'page.html'), path.join(web, 'index.html'));
  copyFileSync(path.join(PROJECT_ROOT, 'src', 'browser', 'page.css'), path.join(web, 'page.css'));
  return web;
}
