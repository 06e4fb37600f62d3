// `npm run bench:views`: the default (world) experiment at several numbers of
// augmented views per training image, each into a fresh feature cache, timing
// the whole run and its feature extraction (decoding, augmenting, encoding,
// pooling and reading back, summed over the seeds) in wall time and in this
// process's CPU time (which other work on the machine does not inflate;
// worker threads count), with each method's
// accuracy (mean ± std over seeds). Flags as `pfedprompt run` takes them
// (`--methods promptfl,pfedprompt`, `--optimizer.warmupEpochs 0`) apply to
// every run.
//
//   npm run bench:views -- --views 4,16,50 --out runs/bench-views [--<field> <value> ...]

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { applyOverrides, parseConfig } from '../src/experiment/config.js';
import { runExperiment } from '../src/experiment/runner.js';
import { worldExperimentConfig } from '../src/experiment/world-experiment.js';
import { mean, populationStd } from '../src/report/aggregate.js';
import { DISTURBED_SHARE, startInterferenceMeter } from './measure.js';

interface ViewsRun {
  readonly views: number;
  readonly runSeconds: number;
  readonly featureSeconds: number;
  /** CPU time of this process (all its threads): what the run cost whatever else the machine was doing. */
  readonly runCpuSeconds: number;
  readonly featureCpuSeconds: number;
  readonly othersShare: number | undefined;
  readonly accuracy: Record<string, { mean: number; std: number; n: number }>;
}

function parseArgs(argv: readonly string[]): { views: number[]; out: string; overrides: [string, string][] } {
  let views = [4, 16, 50];
  let out = path.resolve('runs', 'bench-views');
  const overrides: [string, string][] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!flag.startsWith('--') || value === undefined) throw new Error(`bench:views: expected --flag value pairs, got "${flag}"`);
    if (flag === '--views') views = value.split(',').map(Number);
    else if (flag === '--out') out = path.resolve(value);
    else overrides.push([flag.slice(2), value]);
  }
  if (views.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`--views: non-negative integers, got ${views.join(',')}`);
  return { views, out, overrides };
}

async function runWithViews(views: number, out: string, overrides: [string, string][]): Promise<ViewsRun> {
  const dir = path.join(out, `views-${views}`);
  const cache = path.join(out, `cache-views-${views}`);
  rmSync(cache, { recursive: true, force: true }); // every run extracts its features from scratch
  rmSync(path.join(dir, 'cells'), { recursive: true, force: true });
  const base = await worldExperimentConfig(dir);
  const config = parseConfig(applyOverrides({ ...base, output: dir, cache }, [...overrides, ['data.views', String(views)]]), 'bench:views');
  const featureStart = new Map<string, { wall: number; cpu: number }>();
  let featureSeconds = 0;
  let featureCpuSeconds = 0;
  const cpuSeconds = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
  const cpuAtStart = cpuSeconds();
  const others = startInterferenceMeter();
  const started = performance.now();
  const { results } = await runExperiment(config, {
    log: (m) => console.error(m),
    onFeatures(label, done, total) {
      if (!featureStart.has(label)) featureStart.set(label, { wall: performance.now(), cpu: cpuSeconds() });
      if (done === total) {
        featureSeconds += (performance.now() - featureStart.get(label)!.wall) / 1000;
        featureCpuSeconds += cpuSeconds() - featureStart.get(label)!.cpu;
      }
    },
    onCellEnd: (cell, result) => console.error(`views ${views}: ${cell.id}: ${(100 * result.meanAccuracy).toFixed(2)} %`),
  });
  const runSeconds = (performance.now() - started) / 1000;
  const accuracy: ViewsRun['accuracy'] = {};
  const byMethod = new Map<string, number[]>();
  for (const cell of results.cells) byMethod.set(cell.methodLabel, [...(byMethod.get(cell.methodLabel) ?? []), cell.meanAccuracy]);
  for (const [label, xs] of byMethod) accuracy[label] = { mean: mean(xs), std: populationStd(xs), n: xs.length };
  return { views, runSeconds, featureSeconds, runCpuSeconds: cpuSeconds() - cpuAtStart, featureCpuSeconds, othersShare: others(), accuracy };
}

async function main(): Promise<void> {
  const { views, out, overrides } = parseArgs(process.argv.slice(2));
  mkdirSync(out, { recursive: true });
  const runs: ViewsRun[] = [];
  for (const v of views) {
    runs.push(await runWithViews(v, out, overrides));
    writeFileSync(path.join(out, 'bench-views.json'), `${JSON.stringify({ overrides, runs }, null, 1)}\n`);
  }
  const first = runs[0];
  console.log(`| views | run (s) | × ${first.views} views | features (s) | run CPU (s) | × ${first.views} views | features CPU (s) | others' share of the machine |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    const share = r.othersShare === undefined ? 'n/a' : `${(100 * r.othersShare).toFixed(0)} %${r.othersShare > DISTURBED_SHARE ? ' (disturbed)' : ''}`;
    console.log(`| ${r.views} | ${r.runSeconds.toFixed(1)} | ${(r.runSeconds / first.runSeconds).toFixed(2)} | ${r.featureSeconds.toFixed(1)} | ${r.runCpuSeconds.toFixed(1)} | ${(r.runCpuSeconds / first.runCpuSeconds).toFixed(2)} | ${r.featureCpuSeconds.toFixed(1)} | ${share} |`);
  }
  console.log('');
  console.log(`| method | ${runs.map((r) => `${r.views} views`).join(' | ')} |`);
  console.log(`|---|${runs.map(() => '---').join('|')}|`);
  for (const label of Object.keys(first.accuracy)) {
    console.log(`| ${label} | ${runs.map((r) => { const a = r.accuracy[label]; return a ? `${(100 * a.mean).toFixed(2)} ± ${(100 * a.std).toFixed(2)}` : '—'; }).join(' | ')} |`);
  }
}

await main();
