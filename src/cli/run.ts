import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import path from 'node:path';
import { applyOverrides, parseConfig, type ExperimentConfig } from '../experiment/config.js';
import { readConfigFile } from '../experiment/config-file.js';
import { runExperiment, type RunEvents } from '../experiment/runner.js';
import type { RoundRecord } from '../federation/engine.js';
import { DEFAULT_WORLD, worldExperimentConfig } from '../experiment/world-experiment.js';
import { summaryTable } from '../report/index.js';

interface RunOptions {
  config?: string;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run an experiment: datasets × shots × methods × seeds, resumable; writes results.json, CSV, Markdown, an HTML report and charts')
    .option('--config <file>', 'experiment config (YAML or JSON); see configs/paper/ for the published protocol. Without one: the bundled world experiment')
    .argument('[overrides...]', 'any config field as a flag, e.g. --federation.rounds 5 --seeds 1,2 --methods promptfl,pfedprompt')
    .allowUnknownOption()
    .addHelpText('after', '\nWithout --config, --world <name> picks the bundled world (harsh-cameras, the default; classic, the first one).\nEvery config field is also a flag: --data.shots 2,16 --federation.workers 2 --methodOptions.memory.beta 3 …\nA finished cell is never recomputed: rerun the same command after an interrupt to go on.')
    .action(async (overrides: string[], opts: RunOptions) => {
      const config = await resolveConfig(opts.config, flagPairs(overrides), path.join('runs', 'world'));
      const progress = progressEvents(config);
      const done = await runExperiment(config, progress).finally(() => progress.stop());
      console.log('');
      console.log(summaryTable(done.results, { color: Boolean(process.stdout.isTTY) }));
      console.log(`\nwrote ${done.files.length} files to ${done.outDir}: ${done.files.map((f) => path.relative(done.outDir, f)).join(', ')}`);
    });
}

/**
 * The validated config of a command that runs an experiment: the file's (or, without one, the bundled
 * world experiment's, its dataset drawn into the output folder first) with the flags applied.
 */
export async function resolveConfig(file: string | undefined, allPairs: readonly [string, string][], defaultOutput: string): Promise<ExperimentConfig> {
  // --world picks the bundled world of the default experiment; it is not a config field.
  const world = allPairs.find(([key]) => key === 'world')?.[1];
  if (world !== undefined && file) throw new Error('--world chooses the bundled world of the default experiment; with --config the config names its datasets');
  const pairs = allPairs.filter(([key]) => key !== 'world');
  const worldName = world ?? DEFAULT_WORLD;
  const output = path.resolve(pairs.find(([key]) => key === 'output')?.[1] ?? (worldName === DEFAULT_WORLD ? defaultOutput : `${defaultOutput}-${worldName}`));
  const base = file ? await readConfigFile(file) : { ...(await worldExperimentConfig(output, (m) => console.error(m), worldName)), output };
  return parseConfig(applyOverrides(base, pairs), file ?? 'the default experiment with flags');
}

/** `--a.b value` and `--a.b=value` pairs from what commander left unparsed. */
export function flagPairs(args: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}": config fields are given as --field value`);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      pairs.push([arg.slice(2, eq), arg.slice(eq + 1)]);
    } else {
      const value = args[i + 1];
      if (value === undefined || value.startsWith('--')) throw new Error(`${arg}: missing value`);
      pairs.push([arg.slice(2), value]);
      i++;
    }
  }
  return pairs;
}

/** Progress bars on a terminal (features, cells, the current cell's rounds), a line per round and cell otherwise (logs, CI). */
function progressEvents(config: ExperimentConfig): RunEvents & { stop(): void } {
  const tty = Boolean(process.stderr.isTTY);
  const bars = tty
    ? new cliProgress.MultiBar({ hideCursor: true, clearOnComplete: false, format: '{label} |{bar}| {value}/{total} ETA {eta_formatted} | {detail}', etaBuffer: 20, etaAsynchronousUpdate: true }, cliProgress.Presets.shades_classic)
    : undefined;
  let features: cliProgress.SingleBar | undefined;
  let cells: cliProgress.SingleBar | undefined;
  let rounds: cliProgress.SingleBar | undefined;
  let lastFeatureLine = 0;
  const label = (text: string): string => text.padEnd(24).slice(0, 24);
  const log = (message: string): void => (bars ? bars.log(`${message}\n`) : console.error(message));
  const roundLine = (r: RoundRecord): string =>
    `loss ${r.trainLoss.toFixed(4)}${r.meanAccuracy !== undefined ? `, accuracy ${(100 * r.meanAccuracy).toFixed(2)}%` : ''}, ${r.seconds.toFixed(1)} s`;
  return {
    log,
    stop: () => bars?.stop(),
    onFeatures(what, done, total) {
      if (bars) {
        features ??= bars.create(total, 0, { label: label('features'), detail: what });
        features.setTotal(total);
        features.update(done, { detail: what });
      } else if (done === total || Date.now() - lastFeatureLine > 10_000) {
        lastFeatureLine = Date.now();
        console.error(`${what}: ${done}/${total}`);
      }
    },
    onCellStart(cell, index, total) {
      if (bars) {
        if (features) {
          bars.remove(features);
          features = undefined;
        }
        cells ??= bars.create(total, 0, { label: label('cells'), detail: '' });
        cells.update(index, { detail: cell.id });
        rounds ??= bars.create(config.federation.rounds, 0, { label: label('rounds'), detail: '' });
        rounds.update(0, { detail: '' });
      } else {
        console.error(`[${index + 1}/${total}] ${cell.id}`);
      }
    },
    onRound(cell, r) {
      if (rounds) rounds.update(r.round, { detail: roundLine(r) });
      else console.error(`  ${cell.id} round ${r.round}/${config.federation.rounds}: ${roundLine(r)}`);
    },
    onCellEnd(cell, result, reused) {
      log(`${reused ? 'done earlier' : 'done'}: ${cell.id}: ${(100 * result.meanAccuracy).toFixed(2)}% ± ${(100 * result.stdAccuracy).toFixed(2)} over clients`);
      cells?.increment();
    },
  };
}
