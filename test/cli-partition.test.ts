// `pfedprompt partition` end to end: a generated CoOp Caltech101 folder whose
// split file carries the labels of a fixture case must give exactly the
// clients, shots and test sets the published Python picks; bad flags fail
// with a message naming the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { PROJECT_ROOT, fixture } from './shared.js';
import { loadDataset } from '../src/data/load-dataset.js';
import { readPartition } from '../src/data/partition-file.js';

interface Case {
  classes: number;
  clients: number;
  shots: number;
  train_labels: number[];
  test_labels: number[];
  client_classes: number[][];
  client_train: number[][];
  client_test: number[][];
}

const cases = (JSON.parse(readFileSync(fixture('protocol', 'pathological.json'), 'utf8')) as { cases: Case[] }).cases;
const main = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');

function pfedprompt(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** <root>/caltech-101 with empty image files and a split file listing them with the case's labels, in the case's order. */
function makeCaltech(root: string, c: Case): void {
  const folder = path.join(root, 'caltech-101');
  const classDir = (label: number): string => `class_${String(label).padStart(3, '0')}`;
  const counters = new Map<number, number>();
  const list = (labels: number[]): [string, number, string][] =>
    labels.map((label) => {
      const n = (counters.get(label) ?? 0) + 1;
      counters.set(label, n);
      const rel = `${classDir(label)}/image_${String(n).padStart(4, '0')}.jpg`;
      mkdirSync(path.join(folder, '101_ObjectCategories', classDir(label)), { recursive: true });
      writeFileSync(path.join(folder, '101_ObjectCategories', rel), '');
      return [rel, label, `class ${label}`];
    });
  const train = list(c.train_labels);
  const val = list(Array.from({ length: c.classes }, (_, l) => l));
  const testList = list(c.test_labels);
  writeFileSync(path.join(folder, 'split_zhou_Caltech101.json'), JSON.stringify({ train, val, test: testList }));
}

test('partition on a CoOp Caltech101 folder: the published clients, shots and test sets; a table per client', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'pfp-cli-'));
  try {
    const c = cases[1]; // 100 classes, 10 clients, 2 shots, shuffled label order
    makeCaltech(root, c);
    const out = path.join(root, 'runs', 'caltech-path.json');
    const run = pfedprompt('partition', '--dataset', 'caltech101', '--root', root, '--shots', String(c.shots), '--clients', String(c.clients), '--out', out);
    assert.equal(run.status, 0, run.stderr);

    const dataset = await loadDataset('caltech101', { root });
    const partition = await readPartition(out, dataset);
    assert.deepEqual(partition.clients.map((x) => x.classes), c.client_classes);
    assert.deepEqual(partition.clients.map((x) => x.train), c.client_train);
    assert.deepEqual(partition.clients.map((x) => x.test), c.client_test);
    assert.equal(partition.scheme.seed, 2023);

    assert.match(run.stdout, /Caltech101 .*: 100 classes; train \d+, val 100, test \d+ images/);
    assert.match(run.stdout, /pathological split: 10 clients, 2 shots per class, seed 2023/);
    const rows = run.stdout.split('\n').filter((line) => /^│\s+\d+ │/.test(line));
    assert.equal(rows.length, 10);
    const first = rows[0].split('│').map((cell) => cell.trim());
    assert.deepEqual([first[1], first[2], first[4], first[6]], ['0', '10', String(c.client_train[0].length), String(c.client_test[0].length)]);
    assert.match(first[3], /^class \d+, class \d+, .*… \(\+\d+\)$/);
    assert.match(run.stdout, /│\s+total │\s+100 │ 100 of 100 classes held/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('partition with the dirichlet and iid schemes writes files that read back against the dataset', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'pfp-cli-'));
  try {
    makeCaltech(root, cases[0]);
    const folder = path.join(root, 'caltech-101');
    const dataset = await loadDataset(folder);
    for (const args of [
      ['--scheme', 'dirichlet', '--beta', '0.3', '--clients', '20', '--min-size', '20', '--test', 'classes', '--seed', '5'],
      ['--scheme', 'iid', '--clients', '4', '--shots', '3', '--val-shots', '0'],
    ]) {
      const out = path.join(root, `${args[1]}.json`);
      const run = pfedprompt('partition', '--dataset', folder, ...args, '--out', out);
      assert.equal(run.status, 0, run.stderr);
      const partition = await readPartition(out, dataset);
      assert.equal(partition.scheme.name, args[1]);
      assert.match(run.stdout, new RegExp(`${args[1]} split: `));
    }
    const dirichlet = await readPartition(path.join(root, 'dirichlet.json'), dataset);
    assert.ok(dirichlet.scheme.name === 'dirichlet' && dirichlet.scheme.beta === 0.3 && dirichlet.scheme.seed === 5 && dirichlet.scheme.test === 'classes');
    const iid = await readPartition(path.join(root, 'iid.json'), dataset);
    // 3 shots of each of the 100 classes, where the client's share of the class has 3 (classes have 3 to 30 images, dealt to 4 clients).
    assert.ok(iid.clients.every((client) => client.val === undefined && client.train.length <= 300 && client.train.length > 200));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('bad flags: an error naming the flag, exit status 1', () => {
  const expectations: [string[], RegExp][] = [
    [['--clients', '0'], /--clients <n>.*expected a positive integer, got "0"/],
    [['--shots', 'two'], /--shots <k>.*expected a positive integer, got "two"/],
    [['--scheme', 'random'], /--scheme <name>.*Allowed choices are pathological, dirichlet, iid/],
    [['--beta', '0.5', '--shots', '2'], /--beta applies only to --scheme dirichlet/],
    [['--scheme', 'iid', '--min-size', '3'], /--min-size applies only to --scheme dirichlet/],
    [['--scheme', 'dirichlet', '--beta', '-1'], /--beta <b>.*expected a positive number/],
    [[], /--shots is required for --scheme pathological/],
    [['--shots', '2', '--test', 'proportional'], /--test: the pathological scheme/],
    [['--shots', '2', '--val-shots', 'some'], /--val-shots <n\|all>.*expected a non-negative integer or "all", got "some"/],
    [['--shots', '2', '--check-images', 'deep'], /--check-images \[mode\].*Allowed choices are header, full/],
  ];
  for (const [flags, pattern] of expectations) {
    const run = pfedprompt('partition', '--dataset', 'caltech101', '--root', tmpdir(), '--out', path.join(tmpdir(), 'never.json'), ...flags);
    assert.equal(run.status, 1, `${flags.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, pattern, flags.join(' '));
  }
});
