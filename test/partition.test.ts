// Partitions: the pathological split against the published runs' Python on
// all 42 fixture cases; Dirichlet and IID properties; the partition file's
// round trip and the errors of a bad or mismatched file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { fixture } from './shared.js';
import type { Dataset, ImageItem } from '../src/data/dataset.js';
import { PythonRandom } from '../src/data/python-random.js';
import { pathologicalPartition, pathologicalSplit } from '../src/data/partitioners/pathological.js';
import { dirichletPartition, sampleDirichlet, sampleLogGamma } from '../src/data/partitioners/dirichlet.js';
import { iidPartition } from '../src/data/partitioners/iid.js';
import { clientImages, partitionSummary, type Partition } from '../src/data/partition.js';
import { readPartition, writePartition } from '../src/data/partition-file.js';

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

test('the fixture has the 42 cases', () => assert.equal(cases.length, 42));

cases.forEach((c, i) => {
  test(`pathological case ${i}: ${c.classes} classes, ${c.clients} clients, ${c.shots} shots — classes, train and test as Python picks them`, () => {
    const got = pathologicalSplit(c.train_labels, c.test_labels, c.clients, c.shots, new PythonRandom(2023));
    assert.deepEqual(got.classes, c.client_classes, 'classes');
    assert.deepEqual(got.train, c.client_train, 'train indices');
    assert.deepEqual(got.test, c.client_test, 'test indices');
  });
});

/** A dataset of labels only (paths are not read by partitioners). */
function labelDataset(train: number[], test: number[], val: number[] = [], name = 'synthetic'): Dataset {
  const items = (split: string, labels: number[]): ImageItem[] => labels.map((label, i) => ({ path: `/x/${split}/${i}.jpg`, relativePath: `${split}/${i}.jpg`, label }));
  const numClasses = Math.max(...train) + 1;
  return {
    name,
    root: '/x',
    classnames: Array.from({ length: numClasses }, (_, c) => `class ${c}`),
    train: items('train', train),
    val: items('val', val),
    test: items('test', test),
    fingerprint: `fp-${name}-${train.length}-${test.length}`,
  };
}

/** Labels 0..C-1 with `perClass` images each, in a seeded shuffled order. */
function labels(numClasses: number, perClass: (c: number) => number, seed: number): number[] {
  const out = Array.from({ length: numClasses }, (_, c) => Array<number>(perClass(c)).fill(c)).flat();
  return new PythonRandom(seed).shuffle(out);
}

test('pathologicalPartition keeps the Python draws and adds val shots after them', () => {
  const c = cases[1];
  const val = labels(c.classes, () => 6, 3);
  const partition = pathologicalPartition(labelDataset(c.train_labels, c.test_labels, val), { clients: c.clients, shots: c.shots });
  assert.equal(partition.scheme.seed, 2023);
  assert.deepEqual(partition.clients.map((x) => x.classes), c.client_classes);
  assert.deepEqual(partition.clients.map((x) => x.train), c.client_train);
  assert.deepEqual(partition.clients.map((x) => x.test), c.client_test);
  const valShots = Math.min(c.shots, 4);
  partition.clients.forEach((client) => {
    assert.equal(client.val!.length, client.classes.length * valShots);
    for (const i of client.val!) assert.ok(client.classes.includes(val[i]));
  });
  // Another seed gives other clients.
  const other = pathologicalPartition(labelDataset(c.train_labels, c.test_labels), { clients: c.clients, shots: c.shots, seed: 1, valShots: 0 });
  assert.notDeepEqual(other.clients.map((x) => x.classes), c.client_classes);
  assert.equal(other.clients[0].val, undefined);
});

test('gamma and Dirichlet draws: means match α and 1/n', () => {
  const rng = new PythonRandom(11);
  for (const shape of [0.1, 0.5, 1, 3.7]) {
    let sum = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) sum += Math.exp(sampleLogGamma(shape, rng));
    assert.ok(Math.abs(sum / n - shape) < 0.05 * Math.max(1, shape), `mean of Gamma(${shape}) ≈ ${sum / n}`);
  }
  const p = sampleDirichlet(0.001, 8, rng); // tiny β: the variates underflow unless kept in logs
  assert.ok(p.every((x) => Number.isFinite(x) && x >= 0));
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
});

const train500 = labels(20, (c) => 15 + c, 5); // 20 classes, 15…34 images each
const test200 = labels(20, () => 10, 6);
const val100 = labels(20, () => 5, 7);
const data = labelDataset(train500, test200, val100, 'skewed');

test('dirichlet: deterministic, every client ≥ minSize, labels skewed for small β', () => {
  const a = dirichletPartition(data, { clients: 10, beta: 0.1, minSize: 20 });
  const b = dirichletPartition(data, { clients: 10, beta: 0.1, minSize: 20 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(dirichletPartition(data, { clients: 10, beta: 0.1, minSize: 20, seed: 7 }).clients, a.clients);

  const all = a.clients.flatMap((c) => c.train);
  assert.equal(all.length, train500.length, 'without shots every training image goes to a client');
  assert.equal(new Set(all).size, all.length, 'no image twice');
  for (const c of a.clients) assert.ok(c.train.length >= 20, `client has ${c.train.length}`);

  // Skew: with β = 0.1 a client's largest class dominates; with β = 100 it does not.
  const dominance = (p: Partition): number => {
    const shares = p.clients.map((c) => {
      const counts = new Map<number, number>();
      for (const i of c.train) counts.set(train500[i], (counts.get(train500[i]) ?? 0) + 1);
      return Math.max(...counts.values()) / c.train.length;
    });
    return shares.reduce((x, y) => x + y, 0) / shares.length;
  };
  const iidLike = dirichletPartition(data, { clients: 10, beta: 100, minSize: 20 });
  assert.ok(dominance(a) > 0.3, `β 0.1: mean top-class share ${dominance(a)}`);
  assert.ok(dominance(iidLike) < 0.15, `β 100: mean top-class share ${dominance(iidLike)}`);
  assert.ok(a.clients.reduce((s, c) => s + c.classes.length, 0) < iidLike.clients.reduce((s, c) => s + c.classes.length, 0));

  // Proportional test sets (the default) are disjoint and only of held classes.
  const tests = a.clients.flatMap((c) => c.test);
  assert.equal(new Set(tests).size, tests.length);
  a.clients.forEach((c) => c.test.forEach((i) => assert.ok(c.classes.includes(test200[i]))));
});

test('dirichlet with shots: at most K per class, minSize counted after shot selection; "classes" test rule', () => {
  const p = dirichletPartition(data, { clients: 5, beta: 0.5, shots: 2, minSize: 6, test: 'classes' });
  for (const c of p.clients) {
    assert.ok(c.train.length >= 6);
    const counts = new Map<number, number>();
    for (const i of c.train) counts.set(train500[i], (counts.get(train500[i]) ?? 0) + 1);
    assert.ok([...counts.values()].every((n) => n <= 2));
    assert.deepEqual(c.test, test200.flatMap((label, i) => (c.classes.includes(label) ? [i] : [])));
    assert.ok(c.val!.every((i) => c.classes.includes(val100[i])));
  }
  assert.throws(() => dirichletPartition(data, { clients: 10, beta: 0.5, minSize: 60 }), /cannot give each of 10 clients at least 60/);
  assert.throws(() => dirichletPartition(data, { clients: 5, beta: 0.5, shots: 1, minSize: 21 }), /cannot give each of 5 clients at least 21/);
});

test('iid: every class to every client, shares within one image, test rules', () => {
  const p = iidPartition(data, { clients: 4 });
  const sizes = p.clients.map((c) => c.train.length);
  assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `sizes ${sizes}`);
  const all = p.clients.flatMap((c) => c.train);
  assert.equal(new Set(all).size, train500.length);
  for (const c of p.clients) {
    assert.equal(c.classes.length, 20);
    assert.equal(c.test.length, test200.length, 'default: every test image');
  }
  const shots = iidPartition(data, { clients: 4, shots: 3, test: 'proportional' });
  for (const c of shots.clients) assert.equal(c.train.length, 60);
  const tests = shots.clients.map((c) => c.test.length);
  assert.equal(tests.reduce((a, b) => a + b, 0), test200.length, 'proportional: a disjoint split');
  assert.ok(Math.max(...tests) - Math.min(...tests) <= 20);
  assert.deepEqual(iidPartition(data, { clients: 4, shots: 3 }), iidPartition(data, { clients: 4, shots: 3 }));
});

test('partition file: write, read back equal, checked against its dataset; summary rows', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfp-partition-'));
  try {
    const partition = dirichletPartition(data, { clients: 6, beta: 0.5, shots: 4, minSize: 8 });
    const file = path.join(dir, 'sub', 'p.json');
    await writePartition(file, partition);
    const back = await readPartition(file, data);
    assert.deepEqual(back, partition);
    // One line per client keeps the file readable and diffable.
    const text = readFileSync(file, 'utf8');
    assert.equal(text.split('\n').filter((l) => l.trimStart().startsWith('{"classes"')).length, 6);

    const rows = partitionSummary(back);
    assert.equal(rows.length, 6);
    assert.deepEqual(rows[0].classnames, back.clients[0].classes.map((c) => `class ${c}`));
    assert.equal(rows[0].train, back.clients[0].train.length);
    const images = clientImages(back, data, 2);
    assert.ok(images.train.every((item) => back.clients[2].classes.includes(item.label)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('partition file errors name the file and the field', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfp-partition-'));
  try {
    const partition = pathologicalPartition(data, { clients: 4, shots: 2 });
    const file = path.join(dir, 'p.json');
    const variant = async (edit: (json: any) => void): Promise<string> => {
      const json = JSON.parse(JSON.stringify(partition));
      edit(json);
      writeFileSync(file, JSON.stringify(json));
      return file;
    };
    const rejects = async (edit: (json: any) => void, pattern: RegExp, dataset?: Dataset): Promise<void> => {
      const f = await variant(edit);
      await assert.rejects(readPartition(f, dataset), (err: Error) => {
        assert.ok(err.message.startsWith(f), `names the file: ${err.message}`);
        assert.match(err.message, pattern);
        return true;
      });
    };

    await rejects((j) => (j.version = 2), /version: version 2 is not supported/);
    await rejects((j) => (j.format = 'other'), /format: expected "pfedprompt-partition"/);
    await rejects((j) => (j.clients[1].train[0] = 9999), /clients\[1\]\.train\[0\]: 9999 is not an index into the train split/);
    await rejects((j) => (j.clients[0].test[2] = -1), /clients\[0\]\.test\[2\]/);
    await rejects((j) => (j.clients[2].classes[0] = 20), /clients\[2\]\.classes\[0\]: 20 is not an index into the 20 classes/);
    await rejects((j) => j.clients.pop(), /clients: 3 clients, but scheme.clients is 4/);
    await rejects((j) => (j.dataset.classnames = ['a']), /dataset\.classnames: expected 20 class names/);
    await rejects((j) => (j.scheme.name = 'random'), /scheme\.name: expected one of pathological, dirichlet, iid/);
    await rejects((j) => (j.scheme.shots = null), /scheme\.shots: the pathological scheme needs a shot count/);
    await rejects((j) => (j.dataset.fingerprint = 'feedbeef'), /dataset\.fingerprint: made from skewed feedbeef/, data);
    await rejects((j) => (j.dataset.classnames[3] = 'cat'), /dataset\.classnames\[3\]: "cat", but skewed calls class 3 "class 3"/, data);
    await rejects(
      (j) => (j.clients[1].train[0] = train500.findIndex((label) => !j.clients[1].classes.includes(label))),
      /clients\[1\]\.train\[0\]: image \d+ has label \d+, which is not among the client's classes/,
      data,
    );
    writeFileSync(file, '{"format": ');
    await assert.rejects(readPartition(file), (err: Error) => err.message.startsWith(`${file}: not valid JSON`));
    // Another dataset (other split sizes and fingerprint) is refused.
    const other = labelDataset(train500.slice(1), test200, val100, 'skewed');
    writeFileSync(file, JSON.stringify(partition));
    await assert.rejects(readPartition(file, other), /dataset\.fingerprint/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
