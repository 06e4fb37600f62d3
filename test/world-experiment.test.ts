// The default experiment's dataset: each client of the published split sees
// its classes through its own camera.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dataset } from '../src/data/dataset.js';
import { pathologicalPartition } from '../src/data/partitioners/pathological.js';
import { resolveConfig } from '../src/cli/run.js';
import { DEFAULT_WORLD, clientDomains, worldDatasetOptions } from '../src/experiment/world-experiment.js';
import { STYLE_PRESETS } from '../src/world/style.js';
import { worldClasses, worldExamples } from '../src/world/datasets.js';

test('every class is drawn in the style of the client the pathological split gives it to', () => {
  const options = worldDatasetOptions(10, 1);
  const classes = worldClasses({ classes: 'all' });
  const items = (perClass: number) => classes.flatMap((_, label) => Array.from({ length: perClass }, (_, k) => ({ path: `/x/${label}/${k}`, relativePath: `${label}/${k}`, label })));
  const dataset: Dataset = { name: 'world', root: '/x', classnames: classes.map((c) => c.name), train: items(16), val: items(4), test: items(20), fingerprint: 'f' };
  const partition = pathologicalPartition(dataset, { clients: 10, shots: 4 });
  partition.clients.forEach((client, i) => {
    for (const c of client.classes) assert.equal(options.domainOfClass![c], i, `class ${classes[c].name} of client ${i}`);
  });
  const names = clientDomains(10, 1).map((d) => d.name);
  assert.equal(new Set(names).size, 10);

  const examples = worldExamples({ ...options, perClass: { train: 1, val: 0, test: 1 } });
  for (const e of examples) assert.equal(e.domain, names[options.domainOfClass![e.label]]);
});

test('domainOfClass of the wrong length or out of range is refused', () => {
  const options = worldDatasetOptions(10, 1);
  assert.throws(() => worldExamples({ ...options, domainOfClass: [0, 1] }), /domainOfClass must give each of the 48 classes/);
  assert.throws(() => worldExamples({ ...options, domainOfClass: options.domainOfClass!.map(() => 10) }), /domain index in 0 … 9/);
});

test('worlds are named presets: the default draws harsh cameras, "classic" keeps the first world, an unknown name is refused', () => {
  assert.equal(DEFAULT_WORLD, 'harsh-cameras');
  const harsh = clientDomains(10, 1);
  const classic = clientDomains(10, 1, 'classic');
  assert.deepEqual(classic.slice(0, 6).map((d) => d.name), Object.keys(STYLE_PRESETS));
  assert.notDeepEqual(harsh.map((d) => d.style), classic.map((d) => d.style));
  for (const { style } of harsh) {
    assert.ok(typeof style === 'object' && style.noise > 0, 'every harsh camera is noisy');
    assert.ok(typeof style === 'object' && style.scale < 0.95, 'harsh cameras shrink the object');
  }
  assert.throws(() => clientDomains(10, 1, 'nope'), /unknown world "nope"; worlds are harsh-cameras, classic/);
});

test('--world is refused next to --config (a config names its own datasets)', async () => {
  await assert.rejects(resolveConfig('configs/paper/dtd-rn50.yaml', [['world', 'classic']], 'runs/x'), /--world chooses the bundled world/);
});
