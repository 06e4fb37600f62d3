// `npm run ablation:memory [-- --seeds 1 …]`: the visual memory's choices on
// the default world. configs/ablations/memory.yaml names the methods and the
// pFedPrompt variants; its fields replace the default experiment's, and flags
// replace both (`--output DIR`, `--seeds 1`, `--methods a,b`, `--world classic`). The run is an
// ordinary resumable experiment (results.json, report.html …) in
// runs/memory-ablation; this adds memory-ablation.md: validation and test
// accuracy, mean ± std over seeds, and the α and β the clients chose on their
// validation images for each seed.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagPairs } from '../src/cli/run.js';
import { applyOverrides, parseConfig, type ExperimentConfig } from '../src/experiment/config.js';
import { readConfigFile } from '../src/experiment/config-file.js';
import { runExperiment } from '../src/experiment/runner.js';
import { DEFAULT_WORLD, worldExperimentConfig } from '../src/experiment/world-experiment.js';
import { mean, percent, populationStd } from '../src/report/aggregate.js';
import type { CellResult } from '../src/report/results.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'); // from dist/bench
const FILE = path.join(ROOT, 'configs', 'ablations', 'memory.yaml');

/** One row per method in the order of the run: validation and test, mean ± std over seeds, and each seed's choice. */
export function ablationTable(cells: readonly CellResult[]): string {
  const byMethod = new Map<string, CellResult[]>();
  for (const cell of cells) byMethod.set(cell.method, [...(byMethod.get(cell.method) ?? []), cell]);
  const spread = (xs: number[]) => (xs.length === 0 ? '—' : `${percent(mean(xs))} ± ${percent(populationStd(xs))}`);
  const lines = ['| method | validation | test | seeds | α, β chosen on validation (per seed) |', '|---|---|---|---|---|'];
  for (const [, group] of byMethod) {
    const chosen = group.map((c) => {
      const selection = c.config.memorySelection as { chosen?: { alpha?: number; beta?: number } } | undefined;
      const { alpha, beta } = selection?.chosen ?? {};
      return alpha === undefined ? '' : `${alpha.toPrecision(3)}, ${beta?.toPrecision(3)}`;
    }).filter(Boolean);
    const val = group.map((c) => c.meanValAccuracy).filter((v): v is number => v !== undefined);
    lines.push(`| ${group[0].methodLabel} | ${spread(val)} | ${spread(group.map((c) => c.meanAccuracy))} | ${group.length} | ${chosen.join('; ') || '—'} |`);
  }
  return lines.join('\n');
}

/** The ablation's config: the world's default experiment with the file's fields, then the flags. */
export async function memoryAblationConfig(worldName: string, pairs: readonly [string, string][], defaultOutput: string): Promise<ExperimentConfig> {
  const output = path.resolve(pairs.find(([key]) => key === 'output')?.[1] ?? defaultOutput);
  const world = await worldExperimentConfig(output, (m) => console.error(m), worldName);
  return parseConfig(applyOverrides({ ...world, ...(await readConfigFile(FILE)), output }, pairs), FILE);
}

/** Runs an experiment with a line per cell on stderr. */
export function runLogged(config: ExperimentConfig): ReturnType<typeof runExperiment> {
  return runExperiment(config, {
    log: (m) => console.error(m),
    onCellEnd: (cell, result, reused) => console.error(`${reused ? 'kept' : 'done'}: ${cell.id} ${percent(result.meanAccuracy)}%`),
  });
}

async function main(): Promise<void> {
  const all = flagPairs(process.argv.slice(2));
  const worldName = all.find(([key]) => key === 'world')?.[1] ?? DEFAULT_WORLD; // --world classic: the first world
  const pairs = all.filter(([key]) => key !== 'world');
  const config = await memoryAblationConfig(worldName, pairs, path.join('runs', worldName === DEFAULT_WORLD ? 'memory-ablation' : `memory-ablation-${worldName}`));
  const done = await runLogged(config);
  const table = ablationTable(done.results.cells);
  const scaled = config.memorySearch.scaleAlpha;
  const text = [
    `Accuracy (%) over all classes, mean ± std over seeds of the mean over clients (${config.seeds.length} seeds; ${done.outDir}).`,
    `α is the value used (the grid's α × exp(logit_scale)/100: ${scaled ? "scaled" : "not scaled"}).`,
    '',
    table,
    '',
  ].join('\n');
  writeFileSync(path.join(done.outDir, 'memory-ablation.md'), text);
  console.log(text);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
