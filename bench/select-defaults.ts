// `npm run select:defaults [-- --seeds 1 --record FILE ...]`: chooses the
// default experiment's open settings on the clients' validation images and
// writes the record the default experiment reads them from
// (configs/defaults/<world>.json, src/experiment/default-choices.ts).
//
//   1. The protocol: views per training image {50, 16, 4} × warm-up {1, 0}
//      epochs, each a run of the default experiment's prompt-training methods;
//      scored by their mean validation accuracy.
//   2. The visual memory and Tip-Adapter's grid: one run of the memory
//      ablation (configs/ablations/memory.yaml) under the chosen protocol;
//      each choice (query, keys, leave-one-out, memory in training, Tip-Adapter's
//      grid) scored by its variant's validation accuracy, one choice at a time
//      from the paper's pFedPrompt.
//
// The first candidate listed is the paper's setting; another replaces it only
// when it beats it on validation by more than one standard error of their
// per-seed difference (chooseOnValidation). Test accuracy is recorded beside
// each candidate for the reader and never read here to choose. Flags go to every run (`--seeds 1`); `--world` picks the world;
// `--record FILE` writes elsewhere than the world's record (for trial runs).

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { flagPairs } from '../src/cli/run.js';
import { applyOverrides, parseConfig, type ExperimentConfig } from '../src/experiment/config.js';
import {
  DEFAULT_CHOICES_FORMAT, chooseOnValidation, defaultChoicesFile, parseDefaultChoices, scoreCandidate, valueAt,
  type DefaultChoice, type DefaultChoices,
} from '../src/experiment/default-choices.js';
import { DEFAULT_WORLD, worldExperimentConfig } from '../src/experiment/world-experiment.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { percent } from '../src/report/aggregate.js';
import { codeVersion } from '../src/experiment/runner.js';
import { ablationTable, memoryAblationConfig, runLogged } from './memory-ablation.js';

/** The methods whose training the protocol shapes (FedOTP and pFedMoAP left out: together 14 × the others' time per cell). */
const PROTOCOL_METHODS = ['local-coop', 'promptfl', 'promptfl-ft', 'promptper', 'promptprox', 'promptamp', 'pfedprompt'];
const VIEWS = [50, 16, 4];
const WARMUP_EPOCHS = [1, 0];

/** The memory ablation's variants that answer each choice; the first is the paper's setting, `pfedprompt` itself. */
const MEMORY_CHOICES: ReadonlyArray<{ name: string; path: string; candidates: ReadonlyArray<{ method: string; value: unknown }> }> = [
  { name: "the memory's query", path: 'methodOptions.memory.query', candidates: [
    { method: 'pfedprompt', value: 'pooled' }, { method: 'pfp-embedding', value: 'embedding' },
    { method: 'pfp-projected', value: 'projected' }, { method: 'pfp-tokens', value: 'tokens' },
  ] },
  { name: "the memory's keys", path: 'methodOptions.memory.keys', candidates: [
    { method: 'pfedprompt', value: 'prototypes' }, { method: 'pfp-shots', value: 'shots' },
  ] },
  { name: 'leave-one-out in training', path: 'methodOptions.memory.leaveOneOut', candidates: [
    { method: 'pfedprompt', value: true }, { method: 'pfp-no-leave-one-out', value: false },
  ] },
  { name: 'the memory in training', path: 'methodOptions.memory.inTraining', candidates: [
    { method: 'pfedprompt', value: true }, { method: 'pfp-test-only', value: false },
  ] },
  { name: "local Tip-Adapter's grid", path: 'methodOptions.tipAdapter.searchScale', candidates: [
    { method: 'local-tip-adapter', value: undefined /* the schema's: read from the run's config */ }, { method: 'tip-imagenet-grid', value: [7, 3] },
  ] },
];

function option(pairs: Array<[string, string]>, key: string): string | undefined {
  const i = pairs.findIndex(([k]) => k === key);
  if (i < 0) return undefined;
  const [, value] = pairs.splice(i, 1)[0];
  return value;
}

function choice(name: string, candidates: DefaultChoice['candidates']): DefaultChoice {
  return { name, candidates, chosen: chooseOnValidation(candidates) };
}

function choiceTable(choices: readonly DefaultChoice[]): string {
  const lines = ['| choice | candidate | scored on | validation | per seed | test (not used) |', '|---|---|---|---|---|---|'];
  for (const c of choices) {
    c.candidates.forEach((candidate, i) => {
      const settings = Object.entries(candidate.settings).map(([k, v]) => `${k.split('.').pop()} ${JSON.stringify(v)}`).join(', ');
      const mark = i === c.chosen ? '**' : '';
      lines.push(`| ${i === 0 ? c.name : ''} | ${mark}${settings}${mark} | ${candidate.scoredOn.join(', ')} | ${mark}${percent(candidate.valAccuracy)}${mark} | ${candidate.valBySeed.map(percent).join(', ')} | ${percent(candidate.testAccuracy)} |`);
    });
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const pairs = flagPairs(process.argv.slice(2));
  const world = option(pairs, 'world') ?? DEFAULT_WORLD;
  const recordFile = path.resolve(option(pairs, 'record') ?? defaultChoicesFile(world));
  const out = path.resolve(option(pairs, 'output') ?? path.join('runs', `select-defaults-${world}`));
  const command = ['npm run select:defaults', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');

  // 1. The protocol, from the schema's settings (no earlier record is read).
  const protocol: DefaultChoice['candidates'] = [];
  const base = await worldExperimentConfig(out, (m) => console.error(m), world, { chosenDefaults: false }); // the dataset, drawn once for all six
  for (const views of VIEWS) {
    for (const warmupEpochs of WARMUP_EPOCHS) {
      const dir = path.join(out, `protocol-views${views}-warmup${warmupEpochs}`);
      const config: ExperimentConfig = parseConfig(applyOverrides({ ...base, output: dir, methods: PROTOCOL_METHODS }, [
        ...pairs, ['data.views', String(views)], ['optimizer.warmupEpochs', String(warmupEpochs)],
      ]), 'select:defaults');
      console.error(`protocol: ${views} views, warm-up ${warmupEpochs} epoch(s)`);
      const { results } = await runLogged(config);
      protocol.push(scoreCandidate(results.cells, config.methods, { 'data.views': views, 'optimizer.warmupEpochs': warmupEpochs }));
    }
  }
  const code = codeVersion();
  const record = (choices: DefaultChoice[]): DefaultChoices => ({ format: DEFAULT_CHOICES_FORMAT, world, command, code, createdAt: new Date().toISOString(), choices });
  const protocolChoice = choice('views per training image and warm-up', protocol);
  mkdirSync(path.dirname(recordFile), { recursive: true });
  await writeFileAtomic(recordFile, `${JSON.stringify(record([protocolChoice]), null, 1)}\n`); // a valid record should the next stage be stopped

  // 2. The memory's choices under that protocol (given as flags, so a trial --record never mixes with the world's own):
  // the memory ablation, one choice at a time from the paper's pFedPrompt.
  const chosenProtocol = Object.entries(protocolChoice.candidates[protocolChoice.chosen].settings).map(([key, value]): [string, string] => [key, JSON.stringify(value)]);
  const ablation = await memoryAblationConfig(world, [...pairs, ...chosenProtocol], path.join(out, 'memory'));
  const done = await runLogged(ablation);
  const memoryChoices = MEMORY_CHOICES.map((c) => choice(c.name, c.candidates.map(({ method, value }) => {
    const setting = value ?? valueAt(ablation, c.path);
    return scoreCandidate(done.results.cells.filter((cell) => cell.method === method), [method], { [c.path]: setting });
  })));

  const final = parseDefaultChoices(record([protocolChoice, ...memoryChoices]), recordFile);
  await writeFileAtomic(recordFile, `${JSON.stringify(final, null, 1)}\n`);
  const text = [
    `Defaults of the ${world} world chosen on validation images (${recordFile}); accuracy (%) over all classes, the mean over`,
    `the scored methods of the mean over seeds ${final.choices[0].candidates[0].seeds.join(', ')} of the mean over clients. Chosen in bold.`,
    '', choiceTable(final.choices), '',
    `The memory ablation under the chosen protocol (${done.outDir}):`, '', ablationTable(done.results.cells), '',
  ].join('\n');
  writeFileSync(path.join(out, 'selection.md'), text);
  console.log(text);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
