// The report: hand-computed mean ± std in the Markdown, bold best, scoring
// line everywhere, CSV round trip, a self-contained HTML with one SVG per
// chart, valid PNGs, and the reader's errors on a malformed file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';

import {
  CSV_COLUMNS,
  markdownTables,
  readResults,
  resultsCsv,
  summaryTable,
  writeReport,
  type CellResult,
  type ResultsFile,
} from '../src/report/index.js';

// Client accuracies per dataset, method and seed (3 clients each).
const ACCURACIES: Record<string, Record<string, Record<number, number[]>>> = {
  caltech101: {
    zeroshot: { 1: [0.8, 0.85, 0.9], 2: [0.8, 0.85, 0.9] }, //       85.00 ± 0.00, spread 4.08
    promptfl: { 1: [0.9, 0.9, 0.9], 2: [0.92, 0.92, 0.92] }, //      91.00 ± 1.00, spread 0.00
    pfedprompt: { 1: [0.95, 0.96, 0.97], 2: [0.93, 0.94, 0.95] }, // 95.00 ± 1.00, spread 0.82
  },
  oxford_flowers: {
    zeroshot: { 1: [0.6, 0.7, 0.8], 2: [0.6, 0.7, 0.8] }, //         70.00 ± 0.00, spread 8.16
    promptfl: { 1: [0.8, 0.8, 0.8], 2: [0.84, 0.84, 0.84] }, //      82.00 ± 2.00, spread 0.00
    pfedprompt: { 1: [0.78, 0.8, 0.82], 2: [0.8, 0.8, 0.8] }, //     80.00 ± 0.00, spread (1.63 + 0) / 2 = 0.82
  },
};
const METHOD_LABELS: Record<string, string> = { zeroshot: 'zero-shot CLIP', promptfl: 'PromptFL', pfedprompt: 'pFedPrompt' };
const DATASET_LABELS: Record<string, string> = { caltech101: 'Caltech101', oxford_flowers: 'Flowers, Oxford' };

const meanOf = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const stdOf = (xs: number[]): number => Math.sqrt(meanOf(xs.map((x) => (x - meanOf(xs)) ** 2)));

function synthetic(): ResultsFile {
  const cells: CellResult[] = [];
  for (const dataset of Object.keys(ACCURACIES)) {
    for (const method of Object.keys(ACCURACIES[dataset])) {
      for (const seed of [1, 2]) {
        const accs = ACCURACIES[dataset][method][seed];
        const final = meanOf(accs);
        cells.push({
          id: `${dataset}/rn50/16shot/${method}/seed${seed}`,
          method,
          methodLabel: METHOD_LABELS[method],
          dataset,
          datasetLabel: DATASET_LABELS[dataset],
          backbone: 'RN50',
          shots: 16,
          seed,
          scoring: 'all-classes',
          config: { method, rounds: 3 },
          clients: accs.map((accuracy, id) => ({ id, accuracy, testCount: 50 + id, classes: [id * 2, id * 2 + 1] })),
          meanAccuracy: final,
          stdAccuracy: stdOf(accs),
          // Zero-shot has no rounds; the others climb to their final accuracy in 3.
          rounds:
            method === 'zeroshot'
              ? []
              : [1, 2, 3].map((round) => ({
                  round,
                  meanAccuracy: final - (3 - round) * 0.05,
                  trainLoss: 1 / round,
                  bytesUp: 3 * 8192,
                  bytesDown: 3 * 8192 + (method === 'pfedprompt' ? 1024 : 0),
                  seconds: 2,
                })),
          wallSeconds: 10 + seed,
        });
      }
    }
  }
  return { format: 'pfedprompt-results/1', code: { version: '0.1.0', commit: 'abc123' }, createdAt: '2025-01-01T00:00:00.000Z', cells };
}

test('Markdown: hand-computed mean ± std over seeds, rows in order of appearance, best per column bold, scoring line', () => {
  const md = markdownTables(synthetic());
  const lines = md.split('\n');
  const header = lines.findIndex((l) => l.startsWith('| Method |'));
  assert.equal(lines[header], '| Method | Caltech101 | Flowers, Oxford |');
  assert.deepEqual(lines.slice(header + 2, header + 5), [
    '| zero-shot CLIP | 85.00 ± 0.00 | 70.00 ± 0.00 |',
    '| PromptFL | 91.00 ± 1.00 | **82.00 ± 2.00** |',
    '| pFedPrompt | **95.00 ± 1.00** | 80.00 ± 0.00 |',
  ]);
  // The spread table: mean over seeds of the std over clients.
  const spread = lines.findIndex((l, i) => i > header && l.startsWith('| Method |'));
  assert.deepEqual(lines.slice(spread + 2, spread + 5), [
    '| zero-shot CLIP | 4.08 | 8.16 |',
    '| PromptFL | **0.00** | **0.00** |',
    '| pFedPrompt | 0.82 | 0.82 |',
  ]);
  assert.equal(md.split('Scoring: logits over all C classes of the dataset.').length - 1, 2, 'a scoring line under each table');
  assert.match(md, /## RN50 · 16-shot · all-classes scoring/);
});

test('Markdown: client-classes scoring gets its own table and line', () => {
  const results = synthetic();
  results.cells.push({ ...results.cells[0], id: 'other', scoring: 'client-classes' });
  const md = markdownTables(results);
  assert.match(md, /Scoring: logits over each client's own classes only\./);
  assert.match(md, /## RN50 · 16-shot · client-classes scoring/);
});

test('terminal table: same entries, best marked, scoring line', () => {
  const text = summaryTable(synthetic());
  assert.match(text, /95\.00 ± 1\.00 \*/);
  assert.match(text, /82\.00 ± 2\.00 \*/);
  assert.match(text, /91\.00 ± 1\.00/);
  assert.match(text, /Scoring: logits over all C classes of the dataset\./);
  assert.doesNotMatch(text, /\u001b\[/, 'no ANSI escapes unless asked');
  assert.match(summaryTable(synthetic(), { color: true }), /\u001b\[1m95\.00 ± 1\.00\u001b\[22m/);
});

test('CSV: one row per (cell, client), parses back, commas quoted', () => {
  const results = synthetic();
  const rows = parse(resultsCsv(results), { columns: true }) as Record<string, string>[];
  assert.equal(rows.length, 2 * 3 * 2 * 3);
  assert.deepEqual(Object.keys(rows[0]), [...CSV_COLUMNS]);
  const flowers = rows.filter((r) => r.dataset === 'oxford_flowers');
  assert.equal(flowers.length, 18);
  assert.ok(flowers.every((r) => r.dataset_label === 'Flowers, Oxford'));
  const r = rows.find((r) => r.cell_id === 'caltech101/rn50/16shot/pfedprompt/seed2' && r.client_id === '1')!;
  assert.equal(Number(r.client_accuracy), 0.94);
  assert.equal(r.scoring, 'all-classes');
  assert.equal(r.client_classes, '2 3');
  assert.equal(Number(r.bytes_up_total), 3 * 3 * 8192);
});

test('writeReport: csv, md, a self-contained HTML with an SVG per chart, and valid PNGs', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-report-'));
  try {
    const { files } = await writeReport(synthetic(), dir);
    const names = files.map((f) => path.basename(f)).sort();
    const pngs = names.filter((n) => n.endsWith('.png'));
    assert.deepEqual(pngs, [
      'accuracy-caltech101-rn50-16shot.png',
      'accuracy-oxford-flowers-rn50-16shot.png',
      'clients-caltech101-rn50-16shot.png',
      'clients-oxford-flowers-rn50-16shot.png',
    ]);
    for (const n of ['results.csv', 'results.md', 'report.html']) assert.ok(names.includes(n), n);

    const html = readFileSync(path.join(dir, 'report.html'), 'utf8');
    assert.equal(html.split('<svg').length - 1, pngs.length, 'one inline SVG per chart');
    assert.doesNotMatch(html, /\bsrc\s*=\s*["']?\s*(https?:)?\/\//i, 'nothing fetched at view time');
    assert.doesNotMatch(html, /<link\b|<script\b|@import/i);
    assert.match(html, /<td class="num best">95\.00 ± 1\.00<\/td>/);
    assert.match(html, /Scoring: logits over all C classes of the dataset\./);
    assert.match(html, /24\.0 KiB/, 'bytes up per round');
    // The inlined SVGs must not share element ids.
    const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, 'distinct ids');

    for (const png of pngs) {
      const meta = await sharp(path.join(dir, png)).metadata();
      assert.equal(meta.format, 'png');
      assert.ok((meta.width ?? 0) > 0 && (meta.height ?? 0) > 0, png);
    }
    assert.equal(readFileSync(path.join(dir, 'results.md'), 'utf8'), markdownTables(synthetic()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readResults: reads a good file, and names the file and field of a bad one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfedprompt-results-'));
  try {
    const good = path.join(dir, 'results.json');
    writeFileSync(good, JSON.stringify(synthetic()));
    assert.equal((await readResults(good)).cells.length, 12);

    const bad = path.join(dir, 'bad.json');
    const write = (mutate: (r: any) => void): void => {
      const r = synthetic() as any;
      mutate(r);
      writeFileSync(bad, JSON.stringify(r));
    };
    write((r) => (r.cells[1].clients[2].accuracy = 1.5));
    await assert.rejects(readResults(bad), (err: Error) => {
      assert.match(err.message, /bad\.json: cells\[1\]\.clients\[2\]\.accuracy: expected a number in \[0, 1\], got 1\.5/);
      return true;
    });
    write((r) => delete r.cells[3].scoring);
    await assert.rejects(readResults(bad), /bad\.json: cells\[3\]\.scoring: expected "all-classes" or "client-classes", got nothing/);
    write((r) => (r.format = 'something-else'));
    await assert.rejects(readResults(bad), /bad\.json: format: expected "pfedprompt-results\/1"/);
    write((r) => (r.cells[4].rounds[0].bytesUp = 'lots'));
    await assert.rejects(readResults(bad), /bad\.json: cells\[4\]\.rounds\[0\]\.bytesUp: expected a number ≥ 0, got "lots"/);
    write((r) => (r.cells[5].seed = r.cells[4].seed));
    await assert.rejects(readResults(bad), /bad\.json: cells\[5\]: same method, dataset, backbone, shots, scoring and seed as cells\[4\]/);
    writeFileSync(bad, '{"format":');
    await assert.rejects(readResults(bad), /bad\.json: not valid JSON/);
    // A NaN loss written by JSON.stringify as null reads as absent.
    write((r) => (r.cells[2].rounds[1].trainLoss = null));
    assert.equal((await readResults(bad)).cells[2].rounds[1].trainLoss, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('aggregation refuses two cells for the same seed of one entry (they would count as two seeds)', () => {
  const results = synthetic();
  results.cells.push({ ...results.cells[0], id: 'duplicate' });
  assert.throws(() => markdownTables(results), /"caltech101\/rn50\/16shot\/zeroshot\/seed1" and "duplicate" are the same seed/);
});
