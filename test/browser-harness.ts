// Test-side helpers for the browser tests: Debian's Chromium driven by playwright-core
// (no downloaded browser), and a small static server that sends the headers a page needs
// for cross-origin isolation (COOP/COEP), without which onnxruntime-web gets no threads.
//
// Without Chromium the browser tests are skipped with the reason; under CI=true they run
// and fail instead, since CI installs Chromium (.ci/run) and a skip there would hide it.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PROJECT_ROOT } from './shared.js';

/** The browser the tests drive: Debian's package, or PFEDPROMPT_CHROMIUM. */
export const CHROMIUM = process.env.PFEDPROMPT_CHROMIUM ?? '/usr/bin/chromium';

/** Why Chromium cannot be launched here, or undefined when it can. */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  return `no Chromium at ${CHROMIUM}: the browser tests drive Debian's chromium (apt-get install chromium, as .ci/run does), or set PFEDPROMPT_CHROMIUM to a Chromium binary`;
}

/** `skip` for a browser test: the reason when Chromium is missing, except under CI, where the test runs and fails. */
export function browserSkip(): string | false {
  const missing = chromiumMissing();
  return missing && process.env.CI !== 'true' ? missing : false;
}

/** A headless Chromium; throws with the reason when it is missing. */
export async function launchChromium(): Promise<Browser> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root (containers, CI) Chromium refuses to start with its sandbox.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
}

/** Collects a page's console errors and uncaught exceptions, for assertions and failure reports. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  return errors;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.css': 'text/css', '.map': 'application/json', '.png': 'image/png',
};

/** What a test serves: URL prefix → folder, and exact paths → fixed bodies. */
export interface StaticSite {
  readonly folders: Readonly<Record<string, string>>;
  readonly pages?: Readonly<Record<string, string>>;
  /** Exact paths → bytes made per request (a test counts requests). */
  readonly dynamic?: Readonly<Record<string, () => Uint8Array>>;
  /** Send COOP/COEP (default true); false shows what a page gets without them. */
  readonly isolate?: boolean;
}

export interface StaticServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `site` on 127.0.0.1 with COOP/COEP on every response (a loopback address counts as a secure context). */
export async function serveStatic(site: StaticSite): Promise<StaticServer> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (site.isolate !== false) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
      res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    }
    const url = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (url === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const made = site.dynamic?.[url];
    if (made) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      res.end(made());
      return;
    }
    const page = site.pages?.[url];
    if (page !== undefined) {
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(url) || '.html'] ?? 'text/html; charset=utf-8' });
      res.end(page);
      return;
    }
    for (const [prefix, folder] of Object.entries(site.folders)) {
      if (!url.startsWith(prefix)) continue;
      const file = path.join(folder, url.slice(prefix.length));
      if (!file.startsWith(path.resolve(folder)) || !existsSync(file) || !statSync(file).isFile()) break;
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end(`not found: ${url}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** onnxruntime-web's own files (the wasm binaries and their loaders), as the package ships them. */
export const ORT_WEB_DIST = path.join(PROJECT_ROOT, 'node_modules', 'onnxruntime-web', 'dist');
/** The compiled project (`npm run build`): its ES modules load in a browser as they are where they import nothing of Node. */
export const DIST = path.join(PROJECT_ROOT, 'dist');

/** Bundles browser entry points (TypeScript sources, by output name) into `outdir` with esbuild, as the page's build does. */
export async function bundleForBrowser(entries: Readonly<Record<string, string>>, outdir: string): Promise<void> {
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: Object.entries(entries).map(([out, source]) => ({ out, in: path.join(PROJECT_ROOT, source) })),
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    logLevel: 'silent',
  });
}
