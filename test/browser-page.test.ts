// The browser node's page in Chromium, before it joins: it shows what the chosen method
// declares it uploads and keeps (the methods' own texts, through the real Worker), the
// metrics a node may send, reads a picked folder as one sub-folder per class, labels every
// control, and reports a failure to join. Joining a federation: browser-federation.test.ts.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { METHOD_IDS, createMethod } from '../src/methods/index.js';
import { NODE_METRICS } from '../src/node/flower-handler.js';
import { browserSkip, bundleForBrowser, launchChromium, pageErrors, serveStatic, type StaticServer } from './browser-harness.js';
import { PROJECT_ROOT } from './shared.js';

const skip = browserSkip();

let browser: Browser;
let server: StaticServer;
let dir: string;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-page-'));
  await bundleForBrowser({ page: 'src/browser/page.ts', worker: 'test/browser-page-worker.ts' }, path.join(dir, 'web'));
  const src = path.join(PROJECT_ROOT, 'src', 'browser');
  server = await serveStatic({
    folders: { '/': path.join(dir, 'web') },
    pages: { '/': readFileSync(path.join(src, 'page.html'), 'utf8'), '/page.css': readFileSync(path.join(src, 'page.css'), 'utf8') },
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openPage(query = ''): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${server.url}/${query}`);
  await page.locator('#method option').first().waitFor({ state: 'attached' });
  return { page, errors, close: () => context.close() };
}

test('before joining, the page shows what the method uploads and keeps (its own texts) and the metrics a node sends; another method, other texts', { skip, timeout: 60_000 }, async () => {
  const { page, errors, close } = await openPage();
  try {
    const pfedprompt = createMethod('pfedprompt');
    assert.equal(await page.locator('#method').inputValue(), 'pfedprompt', 'pFedPrompt first');
    assert.equal(await page.locator('#uploads').textContent(), pfedprompt.uploads);
    assert.equal(await page.locator('#stays').textContent(), `For ${pfedprompt.label}: ${pfedprompt.staysOnClient}`);
    assert.equal(await page.locator('#trains').textContent(), pfedprompt.trains);
    assert.equal(await page.locator('#metrics').textContent(), Object.keys(NODE_METRICS).join(', '));
    assert.deepEqual(await page.locator('#method option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), [...METHOD_IDS]);
    const kept = await page.locator('.kept').textContent();
    assert.match(kept!, /Your images, and their features/);
    assert.match(kept!, /personal memory/);

    await page.selectOption('#method', 'promptper');
    const promptper = createMethod('promptper');
    await page.waitForFunction((text) => document.getElementById('uploads')!.textContent === text, promptper.uploads);
    assert.equal(await page.locator('#stays').textContent(), `For ${promptper.label}: ${promptper.staysOnClient}`);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test('?method= chooses the method shown first', { skip, timeout: 30_000 }, async () => {
  const { page, close } = await openPage('?method=promptfl');
  try {
    await page.waitForFunction(() => (document.getElementById('method') as HTMLSelectElement).value === 'promptfl');
    assert.equal(await page.locator('#uploads').textContent(), createMethod('promptfl').uploads);
  } finally {
    await close();
  }
});

test('every control has a label; a picked folder reads as one sub-folder per class, other files ignored', { skip, timeout: 30_000 }, async () => {
  const { page, errors, close } = await openPage();
  const photos = path.join(dir, 'my-photos');
  for (const [cls, names] of [['cat', ['a.png', 'b.JPG']], ['dog', ['c.jpeg']]] as const) {
    mkdirSync(path.join(photos, cls), { recursive: true });
    for (const name of names) writeFileSync(path.join(photos, cls, name), 'not really an image');
  }
  writeFileSync(path.join(photos, 'notes.txt'), 'loose file');
  try {
    const unlabelled = await page.locator('input, select').evaluateAll((els) => els.filter((e) => ((e as HTMLInputElement).labels?.length ?? 0) === 0).map((e) => e.id));
    assert.deepEqual(unlabelled, [], 'inputs and selects without a <label>');
    const buttons = await page.locator('button').allTextContents();
    assert.ok(buttons.every((t) => t.trim().length > 0), `buttons have text: ${buttons}`);
    assert.ok(await page.getByLabel('Client index').isVisible());
    assert.ok(await page.getByLabel('Method the federation runs').isVisible());

    await page.locator('#folder').setInputFiles(photos);
    await page.waitForFunction(() => document.getElementById('folder-summary')!.textContent!.includes('photos'));
    assert.equal(await page.locator('#folder-summary').textContent(), '3 photos in 2 classes: cat (2), dog (1); 1 other files ignored');
    assert.equal(await page.locator('#source-folder').isChecked(), true, 'picking a folder chooses it as the source');
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test('joining reports what failed and offers to join again; a folder source needs a folder', { skip, timeout: 30_000 }, async () => {
  const { page, close } = await openPage();
  try {
    await page.locator('#source-folder').check();
    await page.locator('#join').click();
    assert.match((await page.locator('#status').textContent())!, /choose a folder of photos first/);
    assert.equal(await page.locator('#join').isEnabled(), true);

    await page.locator('#source-world').check();
    await page.locator('#client').fill('2');
    await page.locator('#join').click();
    await page.waitForFunction(() => /Error/.test(document.getElementById('status')!.textContent!));
    assert.match((await page.locator('#status').textContent())!, /Error: the page test's Worker has no compute/);
    await page.waitForFunction(() => !(document.getElementById('join') as HTMLButtonElement).disabled);
    assert.equal(await page.locator('#leave').isEnabled(), false);
    assert.match((await page.locator('#log').textContent())!, /has no compute/);
  } finally {
    await close();
  }
});
