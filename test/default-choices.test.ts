// The default experiment's open settings are chosen on validation images and
// the choice travels with every run: the winner is the best validation score
// whatever test says, a record whose winner was edited by hand is refused, the
// default world's config takes exactly the recorded winners, and a run's
// results.json carries the record with the settings a flag overrode.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import {
  DEFAULT_CHOICES_FORMAT, chooseOnValidation, chosenSettings, defaultChoicesFile, defaultsOfRun, parseDefaultChoices,
  readDefaultChoices, scoreCandidate, valueAt, type DefaultChoices,
} from '../src/experiment/default-choices.js';
import { applyOverrides, parseConfig } from '../src/experiment/config.js';
import { DEFAULT_WORLD, worldExperimentConfig } from '../src/experiment/world-experiment.js';
import type { CellResult } from '../src/report/results.js';

const workdir = mkdtempSync(path.join(os.tmpdir(), 'pfedprompt-defaults-'));
after(() => rmSync(workdir, { recursive: true, force: true }));

const candidate = (valBySeed: number[], testAccuracy: number, views: number) => ({
  settings: { 'data.views': views }, scoredOn: ['promptfl'], valAccuracy: valBySeed.reduce((a, b) => a + b, 0) / valBySeed.length,
  testAccuracy, seeds: valBySeed.map((_, i) => i + 1), valBySeed,
});

function record(candidates: ReturnType<typeof candidate>[], chosen: number): DefaultChoices {
  return {
    format: DEFAULT_CHOICES_FORMAT, world: 'test-world', command: 'test', code: { version: '0' }, createdAt: '2026-11-30T00:00:00Z',
    choices: [{ name: 'views', candidates, chosen }],
  };
}

test('a candidate replaces the first (the paper\'s) only when it beats it on validation by more than the seeds\' noise; test is never read', () => {
  // +5 points in every seed: clear evidence, even though test says the opposite.
  assert.equal(chooseOnValidation([candidate([0.6, 0.6, 0.6], 0.9, 50), candidate([0.65, 0.66, 0.64], 0.5, 16)]), 1);
  // Of those that clear the bar, the highest mean.
  assert.equal(chooseOnValidation([candidate([0.6, 0.6, 0.6], 0.9, 50), candidate([0.62, 0.62, 0.62], 0.9, 16), candidate([0.7, 0.71, 0.69], 0.1, 4)]), 2);
  // +1 point on average but −4, +3, +4 by seed: within one standard error (2.6), so the paper's setting stays.
  assert.equal(chooseOnValidation([candidate([0.60, 0.60, 0.60], 0.5, 50), candidate([0.56, 0.63, 0.64], 0.9, 16)]), 0);
  // A higher mean that does not clear the bar does not hide one that does.
  assert.equal(chooseOnValidation([candidate([0.6, 0.6, 0.6], 0.5, 50), candidate([0.50, 0.70, 0.75], 0.5, 16), candidate([0.62, 0.62, 0.63], 0.5, 4)]), 2);
  // A tie keeps the first; one seed has no spread, so the higher mean wins.
  assert.equal(chooseOnValidation([candidate([0.7, 0.7], 0.1, 50), candidate([0.7, 0.7], 0.9, 16)]), 0);
  assert.equal(chooseOnValidation([candidate([0.7], 0.9, 50), candidate([0.71], 0.1, 16)]), 1);
  assert.throws(() => chooseOnValidation([candidate([0.6, 0.6], 0.5, 50), candidate([0.9], 0.5, 16)]), /candidate 1 was scored on 1 seeds, the reference on 2/);
  assert.throws(() => chooseOnValidation([]), /no candidates/);
});

test('a candidate scores the mean over its methods of the mean over seeds; a method without validation in a seed is named', () => {
  const cell = (method: string, seed: number, val: number | undefined, acc: number) =>
    ({ method, seed, meanValAccuracy: val, meanAccuracy: acc }) as unknown as CellResult;
  const scored = scoreCandidate([cell('a', 1, 0.5, 0.1), cell('a', 2, 0.7, 0.3), cell('b', 1, 0.9, 0.5), cell('b', 2, 0.9, 0.5), cell('other', 1, 0, 0)], ['a', 'b'], { x: 1 });
  assert.ok(Math.abs(scored.valAccuracy - 0.75) < 1e-12); // (0.6 + 0.9) / 2
  assert.ok(Math.abs(scored.testAccuracy - 0.35) < 1e-12);
  assert.deepEqual(scored.seeds, [1, 2]);
  assert.deepEqual(scored.valBySeed, [0.7, 0.8]); // per seed, the mean over methods
  assert.deepEqual(scored.scoredOn, ['a', 'b']);
  assert.throws(() => scoreCandidate([cell('a', 1, 0.5, 0.1), cell('a', 2, undefined, 0.3)], ['a'], { x: 1 }), /method "a" has no validation accuracy for seed 2/);
  assert.throws(() => scoreCandidate([cell('a', 1, 0.5, 0.1)], ['b'], { x: 1 }), /method "b"/);
});

test('a record whose chosen candidate is not the validation winner is refused, naming the choice', () => {
  const clear = [candidate([0.6, 0.6], 0.9, 50), candidate([0.7, 0.7], 0.5, 16)];
  assert.equal(parseDefaultChoices(record(clear, 1), 'r').choices[0].chosen, 1);
  assert.throws(() => parseDefaultChoices(record(clear, 0), 'r.json'),
    /r\.json: choices\.0 \("views"\) records candidate 0 as chosen, but candidate 1 has the highest validation accuracy/);
  assert.throws(() => parseDefaultChoices({ ...record([candidate([0.6], 0.9, 50)], 0), format: 'other' }, 'r.json'), /r\.json: format/);
  assert.throws(() => parseDefaultChoices(record([{ ...candidate([0.6, 0.6], 0.9, 50), seeds: [1] }], 0), 'r.json'), /valBySeed needs one value per seed/);
  const file = path.join(workdir, 'bad.json');
  writeFileSync(file, '{ not json');
  assert.throws(() => readDefaultChoices('test-world', file), /bad\.json: not JSON/);
  writeFileSync(file, JSON.stringify(record([candidate([0.6], 0.9, 50)], 0)));
  assert.throws(() => readDefaultChoices('another-world', file), /recorded for world "test-world", read for "another-world"/);
});

test('the default world has a record, and its config takes exactly the recorded winners', async () => {
  const chosen = readDefaultChoices(DEFAULT_WORLD);
  assert.ok(chosen, `no record of the default world's choices at ${defaultChoicesFile(DEFAULT_WORLD)}: run npm run select:defaults`);
  const settings = chosenSettings(chosen);
  assert.ok(settings.some(([key]) => key === 'data.views') && settings.some(([key]) => key === 'optimizer.warmupEpochs'));
  assert.ok(settings.some(([key]) => key.startsWith('methodOptions.memory.')));
  const config = parseConfig(await worldExperimentConfig(workdir, undefined, DEFAULT_WORLD) as Record<string, unknown>, 'world');
  for (const [key, value] of settings) assert.deepEqual(valueAt(config, key), value, key);
  assert.deepEqual(defaultsOfRun(config)?.overridden, []);

  // A flag replaces a chosen setting: the run says so in results.json's record.
  const flagged = parseConfig(applyOverrides(await worldExperimentConfig(workdir, undefined, DEFAULT_WORLD) as Record<string, unknown>, [['data.views', '3']]), 'world');
  assert.deepEqual(defaultsOfRun(flagged)?.overridden, ['data.views']);

  // Without the record: the schema's own settings, and nothing to carry.
  const plain = parseConfig(await worldExperimentConfig(workdir, undefined, DEFAULT_WORLD, { chosenDefaults: false }) as Record<string, unknown>, 'world');
  assert.equal(plain.defaultChoices, undefined);
  assert.equal(defaultsOfRun(plain), undefined);
});

test('the committed record is the one select:defaults wrote: every chosen candidate is the validation winner', () => {
  const text = readFileSync(defaultChoicesFile(DEFAULT_WORLD), 'utf8');
  const parsed = parseDefaultChoices(JSON.parse(text), 'record');
  for (const choice of parsed.choices) {
    assert.ok(choice.candidates.length >= 2, `${choice.name}: a choice needs candidates to choose between`);
    assert.ok(choice.candidates.every((c) => c.seeds.length >= 3), `${choice.name}: scored over at least 3 seeds`);
  }
});
