// `npm run bench:clip`: how fast the CLIP graphs run on onnxruntime, on
// random weights of the released sizes, and how that compares with the
// PyTorch reference (shared/reference/clip_ref.py) doing the same work:
//
//  - image encoding at 224 px, ViT-B/16 and RN50, batches of 16 images;
//  - one CoOp step (forward + backward of the 12-layer text tower) for 100
//    classes × 16 context vectors against 32 image embeddings.
//
// Each figure is the median of --runs timed runs after one untimed warm-up
// (which also builds the graph and the onnxruntime session). The PyTorch side
// runs afterwards in a child process (bench/clip_ref_bench.py), never at the
// same time, so the two do not share the cores.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { ClipModel } from '../src/clip/model.js';
import { nodeRuntime } from '../src/clip/node-runtime.js';
import { CLIP_RN50, CLIP_VIT_B16, SeededRandom, randomClipWeights } from '../src/clip/random.js';
import type { ClipWeights, HostTensor } from '../src/clip/weights.js';
import { DISTURBED_SHARE, mb, median, startInterferenceMeter } from './measure.js';
import { positiveInt } from '../src/cli/options.js';

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'); // from dist/bench
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = path.join(PROJECT_ROOT, 'bench', 'clip_ref_bench.py');

const IMAGE_BATCH = 16;
const CONTEXT_LENGTH = 77;
const COOP_CLASSES = 100;
const COOP_CONTEXT = 16;
const COOP_IMAGES = 32;
// Real CLIP BPE ids: start and end of text, '.', and the 'X' CoOp's prompts hold before the context is spliced in.
const START_OF_TEXT = 49406;
const END_OF_TEXT = 49407;
const PERIOD = 269;
const PLACEHOLDER = 343;
/** Ordinary BPE word pieces (past the 256 byte tokens, before the two specials). */
const WORD_PIECE_IDS: readonly [number, number] = [256, 49406];

const GOALS = { vit: 2, rn: 1.3, coop: 2 } as const;

type Task = 'vit' | 'rn' | 'coop';

interface Options {
  readonly runs: number;
  readonly fullRuns: number;
  readonly only?: Task;
  readonly torch: boolean;
  readonly threads: number;
}

// ---------------------------------------------------------------- measuring

interface Stats {
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly runs: number;
}

interface Timing extends Stats {
  /** The warm-up: graph build, session creation and a first run. */
  readonly firstMs: number;
  /** Share of the machine's CPU other processes used during the timed runs, when known. */
  readonly othersShare?: number;
}

const stats = (times: readonly number[]): Stats => ({ medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times), runs: times.length });

async function timeRuns(runs: number, work: () => Promise<unknown>): Promise<Timing> {
  let start = performance.now();
  await work();
  const firstMs = performance.now() - start;
  const meter = startInterferenceMeter();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  return { ...stats(times), firstMs, othersShare: meter() };
}

const rss = (): string => mb(process.memoryUsage.rss());
const log = (line: string): void => console.error(line);

function assertFinite(what: string, t: HostTensor | Float32Array): void {
  const data = t instanceof Float32Array ? t : t.data;
  if (!data.every(Number.isFinite)) throw new Error(`${what}: non-finite values (random weights out of scale?)`);
}

// ---------------------------------------------------------------- our side

interface OurResults {
  vit?: Timing;
  rn?: Timing;
  coop?: Timing & { readonly sequenceLength: number };
  readonly rssAfter: [string, string][];
  readonly weightsMs: [string, number][];
}

function makeWeights(name: string, make: () => ClipWeights, results: OurResults): ClipWeights {
  const start = performance.now();
  const weights = make();
  results.weightsMs.push([name, performance.now() - start]);
  return weights;
}

async function benchEncode(model: ClipModel, label: string, runs: number): Promise<Timing> {
  const R = model.config.vision.imageSize;
  const pixels = new SeededRandom(1).normals(IMAGE_BATCH * 3 * R * R);
  log(`${label}: encoding ${IMAGE_BATCH} images of ${R} px, 1 warm-up + ${runs} runs`);
  return timeRuns(runs, async () => assertFinite(`${label} image embeds`, (await model.encodeImages(pixels, IMAGE_BATCH)).embeds));
}

/**
 * Tokenized CoOp prompts "X×16 {name}." for 100 made-up class names of 1–6
 * word pieces each, [C, 77] ids padded with zeros as CLIP's tokenizer does.
 */
export function syntheticPromptIds(classes: number, contextTokens: number, seed: number, contextLength = CONTEXT_LENGTH): number[] {
  const random = new SeededRandom(seed);
  const ids = new Array<number>(classes * contextLength).fill(0);
  for (let c = 0; c < classes; c++) {
    const name = Array.from({ length: random.int(1, 7) }, () => random.int(...WORD_PIECE_IDS));
    const row = [START_OF_TEXT, ...Array<number>(contextTokens).fill(PLACEHOLDER), ...name, PERIOD, END_OF_TEXT];
    ids.splice(c * contextLength, row.length, ...row);
  }
  return ids;
}

async function benchCoop(model: ClipModel, promptIds: readonly number[], runs: number): Promise<Timing & { sequenceLength: number }> {
  const { width } = model.config.text;
  const random = new SeededRandom(2);
  // The shared prefix is the start token followed by the learned context, as CoOp splices it in.
  const prefix = new Float32Array((1 + COOP_CONTEXT) * width);
  prefix.set(model.embedTokens([START_OF_TEXT]));
  prefix.set(random.normals(COOP_CONTEXT * width, 0.02), width);
  const batch = model.textBatch(promptIds, COOP_CLASSES, 1 + COOP_CONTEXT, prefix);
  const sequenceLength = 1 + COOP_CONTEXT + batch.suffix.shape[1];

  const imageEmbeds: HostTensor = { shape: [COOP_IMAGES, model.config.embedDim], data: random.normals(COOP_IMAGES * model.config.embedDim) };
  const targets = new Float32Array(COOP_IMAGES * COOP_CLASSES);
  for (let b = 0; b < COOP_IMAGES; b++) targets[b * COOP_CLASSES + random.int(0, COOP_CLASSES)] = 1 / COOP_IMAGES; // mean cross-entropy
  const targetTensor: HostTensor = { shape: [COOP_IMAGES, COOP_CLASSES], data: targets };

  log(`CoOp step: ${COOP_CLASSES} classes × ${COOP_CONTEXT} context tokens, sequences of ${sequenceLength} tokens, ${COOP_IMAGES} images, 1 warm-up + ${runs} runs`);
  const timing = await timeRuns(runs, async () => {
    const result = await model.promptLoss(batch, imageEmbeds, targetTensor);
    assertFinite('CoOp loss', Float32Array.of(result.loss));
    assertFinite('CoOp context gradient', result.prefixGrad);
  });
  return { ...timing, sequenceLength };
}

async function runOurs(tasks: ReadonlySet<Task>, options: Options, promptIds: readonly number[]): Promise<OurResults> {
  const results: OurResults = { rssAfter: [['start', rss()]], weightsMs: [] };
  const runtime = { threads: options.threads };
  if (tasks.has('vit') || tasks.has('coop')) {
    // ViT-B/16's text tower is the CoOp benchmark's: one set of weights serves both.
    const weights = makeWeights('ViT-B/16', () => randomClipWeights(CLIP_VIT_B16, 16), results);
    results.rssAfter.push(['ViT-B/16 random weights', rss()]);
    const model = new ClipModel(weights, nodeRuntime(runtime));
    if (tasks.has('vit')) {
      results.vit = await benchEncode(model, 'ViT-B/16', options.runs);
      results.rssAfter.push(['ViT-B/16 encoding', rss()]);
    }
    if (tasks.has('coop')) {
      results.coop = await benchCoop(model, promptIds, options.runs);
      results.rssAfter.push(['CoOp step', rss()]);
    }
    await model.release();
  }
  if (tasks.has('rn')) {
    const weights = makeWeights('RN50', () => randomClipWeights(CLIP_RN50, 50), results);
    const model = new ClipModel(weights, nodeRuntime(runtime));
    results.rn = await benchEncode(model, 'RN50', options.runs);
    results.rssAfter.push(['RN50 encoding', rss()]);
    await model.release();
  }
  return results;
}

// ---------------------------------------------------------------- PyTorch side

interface TorchResults {
  readonly torch: string;
  readonly threads: number;
  readonly max_rss_mb: number;
  /** The BLAS library the Python process loaded, when it could tell. */
  readonly blas: string | null;
  readonly vit?: PyStats;
  readonly rn?: PyStats;
  readonly coop?: { readonly cut_length: number; readonly full_length: number; readonly cut: PyStats; readonly full?: PyStats };
}

interface PyStats {
  readonly median_ms: number;
  readonly min_ms: number;
  readonly max_ms: number;
  readonly runs: number;
  readonly others_share: number | null;
}

function sharedReferenceDir(): string {
  const shared = process.env.PFEDPROMPT_SHARED ?? path.resolve(PROJECT_ROOT, '..', 'shared');
  return path.join(shared, 'reference');
}

/** Why the PyTorch comparison cannot run, or undefined when it can. */
function torchUnavailable(referenceDir: string): string | undefined {
  if (!existsSync(path.join(referenceDir, 'clip_ref.py'))) return `the PyTorch reference is missing (no ${path.join(referenceDir, 'clip_ref.py')}; set PFEDPROMPT_SHARED)`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) return `${PYTHON} cannot import torch (apt-get install python3-torch libopenblas0-pthread)`;
  return undefined;
}

async function runTorch(tasks: ReadonlySet<Task>, options: Options, promptIds: readonly number[], referenceDir: string): Promise<TorchResults> {
  const rows: number[][] = [];
  for (let c = 0; c < COOP_CLASSES; c++) rows.push(promptIds.slice(c * CONTEXT_LENGTH, (c + 1) * CONTEXT_LENGTH));
  const job = {
    reference: referenceDir,
    threads: options.threads,
    runs: options.runs,
    full_runs: options.fullRuns,
    tasks: [...tasks],
    image_batch: IMAGE_BATCH,
    coop: { ids: rows, n_ctx: COOP_CONTEXT, batch: COOP_IMAGES },
  };
  const child = spawn(PYTHON, [TORCH_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stdin.end(JSON.stringify(job));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`${TORCH_SCRIPT} exited with code ${code}`);
  const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as TorchResults & { error?: string };
  if (parsed.error) throw new Error(parsed.error);
  return parsed;
}

// ---------------------------------------------------------------- report

interface Row {
  readonly benchmark: string;
  readonly ours: string;
  readonly spread: string;
  readonly torch: string;
  readonly speedUp: string;
  readonly goal: string;
  /** Other processes' share of the CPU during our timed runs / PyTorch's. */
  readonly others: string;
}

function printTable(rows: readonly Row[]): void {
  const header: Row = { benchmark: 'benchmark', ours: 'ours (median)', spread: 'ours min–max', torch: 'PyTorch (median)', speedUp: 'speed-up', goal: 'goal', others: "others' CPU" };
  const keys = Object.keys(header) as (keyof Row)[];
  const widths = keys.map((k) => Math.max(...[header, ...rows].map((r) => r[k].length)));
  const line = (r: Row): string => keys.map((k, i) => (i === 0 ? r[k].padEnd(widths[i]) : r[k].padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

function report(ours: OurResults, torch: TorchResults | undefined, torchNote: string | undefined, options: Options): void {
  const rows: Row[] = [];
  const goal = (speedUp: number | undefined, target: number | undefined): string =>
    target === undefined ? '' : `≥ ${target}× ${speedUp === undefined ? '' : speedUp >= target ? 'met' : 'MISSED'}`;
  const ratio = (torchMs: number | undefined, ourMs: number): number | undefined => (torchMs === undefined ? undefined : torchMs / ourMs);
  const times = (r: number | undefined): string => (r === undefined ? '–' : `${r.toFixed(2)}×`);
  const shares: number[] = [];
  const others = (ourShare: number | undefined, torchShare: number | null | undefined): string => {
    const percent = (x: number | null | undefined): string => {
      if (x === undefined || x === null) return '–';
      shares.push(x);
      return `${(100 * x).toFixed(0)}%`;
    };
    return `${percent(ourShare)} / ${percent(torchShare)}`;
  };

  const encodeRow = (label: string, ourTiming: Timing | undefined, theirs: PyStats | undefined, target: number): void => {
    if (!ourTiming) return;
    const perSecond = (ms: number): string => `${((IMAGE_BATCH * 1000) / ms).toFixed(1)} img/s`;
    const speedUp = ratio(theirs?.median_ms, ourTiming.medianMs);
    rows.push({
      benchmark: `${label} encode, ${IMAGE_BATCH}×224 px`,
      ours: `${perSecond(ourTiming.medianMs)} (${ourTiming.medianMs.toFixed(0)} ms/batch)`,
      spread: `${ourTiming.minMs.toFixed(0)}–${ourTiming.maxMs.toFixed(0)} ms`,
      torch: theirs ? `${perSecond(theirs.median_ms)} (${theirs.median_ms.toFixed(0)} ms/batch)` : '–',
      speedUp: times(speedUp),
      goal: goal(speedUp, target),
      others: others(ourTiming.othersShare, theirs?.others_share),
    });
  };
  encodeRow('ViT-B/16', ours.vit, torch?.vit, GOALS.vit);
  encodeRow('RN50', ours.rn, torch?.rn, GOALS.rn);

  if (ours.coop) {
    const c = ours.coop;
    const label = `CoOp step, ${COOP_CLASSES} cls × ${COOP_CONTEXT} ctx, ${COOP_IMAGES} img`;
    const step = (ms: number): string => `${ms.toFixed(0)} ms/step`;
    const cut = torch?.coop?.cut;
    const cutSpeedUp = ratio(cut?.median_ms, c.medianMs);
    rows.push({
      benchmark: `${label} (PyTorch cut at L=${torch?.coop?.cut_length ?? c.sequenceLength})`,
      ours: step(c.medianMs),
      spread: `${c.minMs.toFixed(0)}–${c.maxMs.toFixed(0)} ms`,
      torch: cut ? step(cut.median_ms) : '–',
      speedUp: times(cutSpeedUp),
      goal: goal(cutSpeedUp, GOALS.coop),
      others: others(c.othersShare, cut?.others_share),
    });
    const full = torch?.coop?.full;
    if (full) {
      rows.push({
        benchmark: `${label} (PyTorch full L=${torch?.coop?.full_length}, ${full.runs} runs)`,
        ours: step(c.medianMs),
        spread: '',
        torch: step(full.median_ms),
        speedUp: times(ratio(full.median_ms, c.medianMs)),
        goal: '',
        others: others(undefined, full.others_share),
      });
    }
  }

  console.log();
  console.log(`CLIP benchmark: random weights of the released sizes, ${options.threads} threads on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ` +
    `median of ${options.runs} runs after 1 warm-up; speed-up = PyTorch time / our time (> 1: we are faster).`);
  if (torch) {
    const full = torch.coop?.full;
    const fullNote = !torch.coop ? '' : full ? `; its CoOp step at full length is slow, so it ran ${full.runs} times, without its own warm-up` : '; its CoOp step at full length was skipped (--full-runs 0)';
    console.log(`PyTorch ${torch.torch}, ${torch.threads} threads, BLAS ${torch.blas ?? 'unknown'}${fullNote}.`);
    if (torch.blas && /\/blas\/libblas\.so/.test(torch.blas)) {
      console.log('WARNING: PyTorch runs on the netlib reference BLAS, many times slower than an optimised one: ratios are not meaningful (apt-get install libopenblas0-pthread).');
    }
  }
  if (torchNote) console.log(`No PyTorch comparison: ${torchNote}.`);
  if (ours.coop) console.log(`Our CoOp step runs sequences of ${ours.coop.sequenceLength} tokens (cut after the last end-of-text) and returns both ∂loss/∂prefix and ∂loss/∂suffix.`);
  console.log();
  printTable(rows);
  console.log(`others' CPU: share of the machine other processes used during the timed runs, ours / PyTorch's (an idle machine shows a few %).`);
  if (shares.some((x) => x > DISTURBED_SHARE)) {
    console.log(`WARNING: other processes used over ${100 * DISTURBED_SHARE}% of the CPU during some runs: those figures are slower and noisier than on a quiet machine.`);
  }

  console.log();
  console.log('one-time costs (ours):');
  for (const [name, ms] of ours.weightsMs) console.log(`  ${name} random weights: ${(ms / 1000).toFixed(1)} s`);
  if (ours.vit) console.log(`  ViT-B/16 warm-up (graph, session, first batch): ${(ours.vit.firstMs / 1000).toFixed(1)} s`);
  if (ours.coop) console.log(`  CoOp warm-up (graph with gradients, session, first step): ${(ours.coop.firstMs / 1000).toFixed(1)} s`);
  if (ours.rn) console.log(`  RN50 warm-up (graph, session, first batch): ${(ours.rn.firstMs / 1000).toFixed(1)} s`);
  console.log('memory (ours, RSS after each phase):');
  for (const [phase, value] of ours.rssAfter) console.log(`  ${phase.padEnd(24)} ${value.padStart(8)}`);
  console.log(`  ${'peak (maxRSS)'.padEnd(24)} ${mb(process.resourceUsage().maxRSS * 1024).padStart(8)}`);
  if (torch) console.log(`  ${'PyTorch peak (maxRSS)'.padEnd(24)} ${`${torch.max_rss_mb.toFixed(0)} MB`.padStart(8)}`);
}

// ---------------------------------------------------------------- command line

async function main(): Promise<void> {
  const program = new Command()
    .name('bench:clip')
    .description('Times CLIP image encoding and a CoOp step on random weights of the released sizes, against the PyTorch reference')
    .option('--runs <n>', 'timed runs per benchmark, after one warm-up', positiveInt, 5)
    .option('--full-runs <n>', "timed runs of PyTorch's slow full-77-token CoOp step (0: skip it)", (v) => (v === '0' ? 0 : positiveInt(v)), 2)
    .addOption(new Option('--only <task>', 'run one benchmark only').choices(['vit', 'rn', 'coop']))
    .option('--no-torch', 'skip the PyTorch comparison')
    .option('--threads <n>', 'threads per operator, ours and PyTorch; default: every core', positiveInt, os.availableParallelism())
    .parse();
  const options = program.opts<Options>();
  const tasks = new Set<Task>(options.only ? [options.only] : ['vit', 'coop', 'rn']);
  const promptIds = syntheticPromptIds(COOP_CLASSES, COOP_CONTEXT, 3);

  const referenceDir = sharedReferenceDir();
  const torchNote = options.torch ? torchUnavailable(referenceDir) : 'disabled with --no-torch';
  if (torchNote) log(`No PyTorch comparison: ${torchNote}.`);

  const ours = await runOurs(tasks, options, promptIds);
  let torch: TorchResults | undefined;
  let torchFailure: string | undefined;
  if (!torchNote) {
    log(`PyTorch reference (${TORCH_SCRIPT})...`);
    try {
      torch = await runTorch(tasks, options, promptIds, referenceDir);
    } catch (err) {
      torchFailure = `the PyTorch run failed: ${(err as Error).message}`;
    }
  }
  report(ours, torch, torchNote ?? torchFailure, options);
}

// Run when executed, not when imported (e.g. for syntheticPromptIds by a profiling script).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
