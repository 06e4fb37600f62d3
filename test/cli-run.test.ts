// `pfedprompt run` as a user meets it: a YAML config plus flags, every output
// written, a rerun that recomputes nothing, and config errors that name the
// field at fault.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readResults } from '../src/report/results.js';
import { PROJECT_ROOT, fixture } from './shared.js';
import { writeShapesDataset } from './synthetic-dataset.js';

const CLI = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');
let workdir: string;

function pfedprompt(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: workdir, env: { ...process.env, PFEDPROMPT_CACHE: path.join(workdir, 'cache') } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-run-'));
  await writeShapesDataset(path.join(workdir, 'shapes'), 8);
  writeFileSync(path.join(workdir, 'small.yaml'), [
    'name: small',
    `model: ${fixture('clip', 'tiny-vit-hf')}`,
    `tokenizer: ${fixture('clip-tokenizer')}`,
    'data:',
    '  datasets: [./shapes]',
    '  shots: [2]',
    '  partition: { scheme: pathological, clients: 3 }',
    '  views: 1',
    'methods: [zeroshot, promptfl, pfedprompt, promptfl-ft]',
    'seeds: [1, 2]',
    'federation: { rounds: 2, localEpochs: 1, batchSize: 8 }',
    'prompt: { contextLength: 4 }',
    'memorySearch: { alpha: [1, 2], beta: [5.5] }',
    'methodOptions: { fineTunes: [{ shape: constant, lrScale: 0.1 }, { shape: continued, epochs: 2 }] }',
  ].join('\n'));
});
after(() => rmSync(workdir, { recursive: true, force: true }));

test('run: a config and flags give results.json, CSV, Markdown, HTML and charts; a rerun recomputes nothing', () => {
  const first = pfedprompt('run', '--config', 'small.yaml', '--optimizer.lr', '0.01', '--output', 'out');
  assert.equal(first.status, 0, first.stderr);
  const out = path.join(workdir, 'out');
  for (const file of ['results.json', 'results.csv', 'results.md', 'report.html', 'config.json', 'partitions/shapes-2shot.json']) {
    assert.ok(statSync(path.join(out, file)).size > 0, `${file} missing`);
  }
  assert.match(first.stdout, /pFedPrompt/);
  assert.match(readFileSync(path.join(out, 'results.md'), 'utf8'), /Scoring: logits over all C classes of the dataset/);
  const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
  assert.equal(config.optimizer.lr, 0.01);
  assert.equal(config.federation.rounds, 2);

  const cells = readdirSync(path.join(out, 'cells'));
  assert.equal(cells.length, 4 * 2);
  const stamps = cells.map((c) => statSync(path.join(out, 'cells', c)).mtimeMs);
  const second = pfedprompt('run', '--config', 'small.yaml', '--optimizer.lr', '0.01', '--output', 'out');
  assert.equal(second.status, 0, second.stderr);
  assert.equal((second.stderr.match(/done earlier/g) ?? []).length, 8);
  assert.deepEqual(cells.map((c) => statSync(path.join(out, 'cells', c)).mtimeMs), stamps);
  // The same numbers come back.
  assert.equal(readFileSync(path.join(out, 'results.csv'), 'utf8').split('\n').length > 6, true);
});

test('run: every number is traceable to its config and code version', async () => {
  const results = await readResults(path.join(workdir, 'out', 'results.json'));
  assert.equal(results.cells.length, 8);
  for (const cell of results.cells) {
    assert.equal(cell.scoring, 'all-classes');
    assert.equal((cell.config as { seed: number }).seed, cell.seed);
    assert.ok(results.code.version);
    if (cell.method === 'pfedprompt') {
      const selection = cell.config.memorySelection as { candidates: unknown[]; how: string };
      assert.equal(selection.candidates.length, 2);
      assert.match(selection.how, /validation/);
    }
    if (cell.method === 'promptfl-ft') {
      // The fine-tuning schedule is chosen on validation images and recorded with the cell, as α and β are.
      const selection = cell.config.fineTuneSelection as { candidates: { candidate: number; valAccuracy: number }[]; chosen: { candidate: number }; how: string };
      assert.deepEqual(selection.candidates.map((c) => c.candidate), [0, 1]);
      assert.equal((selection.candidates[1] as unknown as { epochs: number }).epochs, 2);
      assert.ok(selection.candidates.every((c) => Number.isFinite(c.valAccuracy)));
      assert.ok([0, 1].includes(selection.chosen.candidate));
      assert.match(selection.how, /validation/);
      assert.equal(cell.config.memorySelection, undefined);
    }
    if (cell.method === 'promptfl') assert.equal(cell.rounds.length, 2);
  }
});

test('run: results.json carries the record of defaults chosen on validation, naming the settings the run overrode', async () => {
  const chosen = {
    format: 'pfedprompt-default-choices/1', world: 'shapes', command: 'test', code: { version: '0' }, createdAt: '2026-11-30T00:00:00Z',
    choices: [{ name: 'views and rounds', chosen: 0, candidates: [
      { settings: { 'data.views': 1, 'federation.rounds': 5 }, scoredOn: ['zeroshot'], valAccuracy: 0.5, testAccuracy: 0.5, seeds: [1], valBySeed: [0.5] },
      { settings: { 'data.views': 2, 'federation.rounds': 2 }, scoredOn: ['zeroshot'], valAccuracy: 0.4, testAccuracy: 0.9, seeds: [1], valBySeed: [0.4] },
    ] }],
  };
  writeFileSync(path.join(workdir, 'chosen.yaml'), `${readFileSync(path.join(workdir, 'small.yaml'), 'utf8')}\ndefaultChoices: ${JSON.stringify(chosen)}\n`);
  const run = pfedprompt('run', '--config', 'chosen.yaml', '--methods', 'zeroshot', '--seeds', '1', '--output', 'chosen');
  assert.equal(run.status, 0, run.stderr);
  const results = JSON.parse(readFileSync(path.join(workdir, 'chosen', 'results.json'), 'utf8'));
  assert.deepEqual(results.defaults.choices, chosen);
  assert.deepEqual(results.defaults.overridden, ['federation.rounds']); // views 1 as chosen; rounds 2, not the chosen 5
  // The tables say it too: the winner first, and that this run overrode it.
  const md = readFileSync(path.join(workdir, 'chosen', 'results.md'), 'utf8');
  assert.match(md, /## Settings chosen on validation/);
  assert.match(md, /\| views and rounds \| data\.views = 1, federation\.rounds = 5 \(overridden in this run\) \| 1 \/ 5: 50\.00; 2 \/ 2: 40\.00 \|/);
  assert.match(readFileSync(path.join(workdir, 'chosen', 'report.html'), 'utf8'), /Settings chosen on validation/);
  // The record describes the run; it is no part of a cell's config, so it never makes a cell recompute.
  assert.equal(results.cells[0].config.defaultChoices, undefined);
});

test('run: an unknown or ill-typed field is an error naming it', () => {
  const unknown = pfedprompt('run', '--config', 'small.yaml', '--federation.round', '3');
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /federation\.round: unknown field/);
  const badType = pfedprompt('run', '--config', 'small.yaml', '--federation.rounds', 'many');
  assert.equal(badType.status, 1);
  assert.match(badType.stderr, /federation\.rounds: Expected number/);
  const badMethod = pfedprompt('run', '--config', 'small.yaml', '--methods', 'promptfl,fedsomething');
  assert.equal(badMethod.status, 1);
  assert.match(badMethod.stderr, /methods\.1/);
  const missing = pfedprompt('run', '--config', 'nothere.yaml');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nothere\.yaml: cannot read the config/);
});

test('report: a results.json gives its table and files again; a missing file is named', () => {
  const again = pfedprompt('report', '--results', 'out/results.json', '--out', 'again');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /pFedPrompt/);
  assert.ok(statSync(path.join(workdir, 'again', 'report.html')).size > 0);
  const missing = pfedprompt('report', '--results', 'none/results.json');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /none\/results\.json: cannot read the results/);
});

test('the built CLI entry is executable, as the package bin `pfedprompt` (npx) needs it', () => {
  const entry = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');
  assert.ok((statSync(entry).mode & 0o111) !== 0, `${entry} is not executable: npx pfedprompt fails with "Permission denied"`);
  assert.match(readFileSync(entry, 'utf8').split('\n')[0], /^#!.*node/);
});
