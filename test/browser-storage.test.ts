// The browser node's storage (src/browser/storage.ts) in Chromium: across a reload the node
// keeps the same key pair (stored as CryptoKey objects, the private key not extractable),
// its personal state per run and cell, its data source, and the model files (Cache Storage,
// fetched once). A fresh browser profile starts with none of it.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { browserSkip, bundleForBrowser, launchChromium, pageErrors, serveStatic, type StaticServer } from './browser-harness.js';

const skip = browserSkip();

let browser: Browser;
let server: StaticServer;
let dir: string;
let modelFetches = 0;
const MODEL_BYTES = Buffer.from(Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)).buffer);

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-storage-'));
  await bundleForBrowser({ storage: 'test/browser-storage-entry.ts' }, dir);
  server = await serveStatic({
    folders: { '/js/': dir },
    pages: { '/': '<!doctype html><meta charset="utf-8"><title>storage</title><script type="module" src="/js/storage.js"></script>' },
    dynamic: { '/model/weights.bin': () => { modelFetches++; return MODEL_BYTES; } },
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Api = {
  NodeStorage: typeof import('../src/browser/storage.js').NodeStorage;
  cachedFetch: typeof import('../src/browser/storage.js').cachedFetch;
};

async function open(page: Page): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => 'NodeStorage' in globalThis);
}

/** The node key's public half (SPKI, hex), whether it was created now, and whether the private key can be exported. */
function nodeKey(page: Page) {
  return page.evaluate(async () => {
    const { NodeStorage } = globalThis as unknown as Api;
    const storage = await NodeStorage.open();
    const { pair, created } = await storage.keyPair(() => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']));
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
    storage.close();
    return { spki: Array.from(spki, (b) => b.toString(16).padStart(2, '0')).join(''), created, extractable: pair.privateKey.extractable };
  });
}

test('a reload keeps the node key (same public key, private key not extractable), the personal state per run and cell, and the data source', { skip, timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = pageErrors(page);
  try {
    await open(page);
    const first = await nodeKey(page);
    assert.equal(first.created, true, 'a fresh profile makes a key');
    assert.equal(first.extractable, false);
    await page.evaluate(async () => {
      const { NodeStorage } = globalThis as unknown as Api;
      const storage = await NodeStorage.open();
      await storage.put('run-7', 'world__vit__2shot__pfedprompt__seed1', { memory: Float32Array.of(1.5, -2, 3.25), labels: Float32Array.of(0, 1) });
      await storage.saveDataSource({ kind: 'world', client: 3, seed: 2 });
      storage.close();
    });

    await page.reload();
    await page.waitForFunction(() => 'NodeStorage' in globalThis);
    const again = await nodeKey(page);
    assert.equal(again.created, false, 'the kept key is used');
    assert.equal(again.spki, first.spki, 'the same public key: the same node id at the SuperLink');
    const kept = await page.evaluate(async () => {
      const { NodeStorage } = globalThis as unknown as Api;
      const storage = await NodeStorage.open();
      const state = await storage.get('run-7', 'world__vit__2shot__pfedprompt__seed1');
      const other = await storage.get('run-8', 'world__vit__2shot__pfedprompt__seed1');
      const source = await storage.dataSource();
      const count = await storage.personalStates();
      storage.close();
      return { state: state && Object.fromEntries(Object.entries(state).map(([k, v]) => [k, [v.constructor.name, ...v]])), other: other === undefined, source, count };
    });
    assert.deepEqual(kept.state, { memory: ['Float32Array', 1.5, -2, 3.25], labels: ['Float32Array', 0, 1] });
    assert.equal(kept.other, true, 'another run has no state');
    assert.deepEqual(kept.source, { kind: 'world', client: 3, seed: 2 });
    assert.equal(kept.count, 1);

    // Another profile (another person's browser) shares none of it.
    const stranger = await browser.newContext();
    const strangerPage = await stranger.newPage();
    await open(strangerPage);
    const theirs = await nodeKey(strangerPage);
    assert.equal(theirs.created, true);
    assert.notEqual(theirs.spki, first.spki);
    await stranger.close();
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('personal state that is not Float32Arrays is refused, naming the tensor', { skip, timeout: 30_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await open(page);
    const message = await page.evaluate(async () => {
      const { NodeStorage } = globalThis as unknown as Api;
      const storage = await NodeStorage.open();
      try {
        await storage.put('r', 'c', { rows: [1, 2] as unknown as Float32Array });
        return 'saved';
      } catch (error) {
        return (error as Error).message;
      } finally {
        storage.close();
      }
    });
    assert.match(message, /personal state r\/c: tensor "rows" is not a Float32Array/);
  } finally {
    await context.close();
  }
});

test('model files are fetched once and then read from Cache Storage, also after a reload', { skip, timeout: 30_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await open(page);
    const fetchModel = () => page.evaluate(async () => {
      const downloads: string[] = [];
      const bytes = await (globalThis as unknown as Api).cachedFetch('/model/weights.bin', { onDownload: (url) => downloads.push(url) });
      return { length: bytes.byteLength, head: Array.from(new Uint8Array(bytes, 0, 8)), downloads };
    });
    const before = modelFetches;
    const first = await fetchModel();
    assert.deepEqual(first.downloads, ['/model/weights.bin']);
    assert.equal(first.length, MODEL_BYTES.length);
    assert.deepEqual(first.head, [...MODEL_BYTES.subarray(0, 8)]);
    await page.reload();
    await page.waitForFunction(() => 'cachedFetch' in globalThis);
    const second = await fetchModel();
    assert.deepEqual(second.downloads, [], 'no download the second time');
    assert.deepEqual(second, { ...first, downloads: [] });
    assert.equal(modelFetches - before, 1, 'the server saw one request');
  } finally {
    await context.close();
  }
});
