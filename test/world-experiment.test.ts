// The default experiment's dataset: each client of the published split sees
// its classes through its own camera.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dataset } from '../src/data/dataset.js';
import { pathologicalPartition } from '../src/data/partitioners/pathological.js';
import { clientDomains, worldDatasetOptions } from '../src/experiment/world-experiment.js';
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
