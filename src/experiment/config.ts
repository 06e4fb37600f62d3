// An experiment as a file (YAML or JSON): which model, which datasets and
// shots, which methods and seeds, and every training choice. Defaults are the
// paper's protocol (../docs in the README). Every field is also a command-line
// flag (`--federation.rounds 5`); an unknown or ill-typed field is an error
// that names it.

import { z } from 'zod';
import { SCORINGS, type Scoring } from '../federation/evaluation.js';
import { FEDOTP_DEFAULTS } from '../methods/fedotp.js';
import { METHOD_IDS, type MethodId, type MethodOptions } from '../methods/index.js';
import { TIP_ADAPTER_DEFAULTS } from '../methods/local-tip-adapter.js';
import { MEMORY_QUERIES } from '../methods/visual-memory.js';
import { FINE_TUNE_SHAPES } from '../methods/promptfl-ft.js';
import { CLASS_TOKEN_POSITIONS } from '../prompt/coop-prompt.js';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const positive = z.number().positive();

const PartitionSchema = z.object({
  scheme: z.enum(['pathological', 'dirichlet', 'iid']).default('pathological'),
  clients: positiveInt.default(10),
  /** The published split's seed; the same for every run seed, so all runs share clients. */
  seed: nonNegativeInt.default(2023),
  /** Dirichlet concentration. */
  beta: positive.default(0.5),
  /** Validation images per class per client for choosing α and β (default min(shots, 4)). */
  valShots: nonNegativeInt.optional(),
}).strict();

/** The visual memory's choices (src/methods/visual-memory.ts says what each means). */
const MemorySchema = z.object({
  query: z.enum(MEMORY_QUERIES).default('pooled'),
  keys: z.enum(['prototypes', 'shots']).default('prototypes'),
  alpha: z.number().nonnegative().default(1),
  beta: z.number().nonnegative().default(5.5),
  inTraining: z.boolean().default(true),
  leaveOneOut: z.boolean().default(true),
  keyViews: nonNegativeInt.default(0),
}).strict();

/** Local Tip-Adapter as published: its defaults and its grid (src/methods/local-tip-adapter.ts). */
const TipAdapterSchema = z.object({
  alpha: z.number().nonnegative().default(TIP_ADAPTER_DEFAULTS.alpha),
  beta: z.number().nonnegative().default(TIP_ADAPTER_DEFAULTS.beta),
  views: positiveInt.default(TIP_ADAPTER_DEFAULTS.views),
  searchScale: z.tuple([positive, positive]).default([...TIP_ADAPTER_DEFAULTS.searchScale]),
  searchSteps: z.tuple([positiveInt, positiveInt]).default([...TIP_ADAPTER_DEFAULTS.searchSteps]),
}).strict();

const MethodOptionsSchema = z.object({
  weighted: z.boolean().default(true),
  fineTuneEpochs: positiveInt.optional(),
  /** PromptFL+FT's candidate fine-tuning schedules, chosen on validation images (absent: DEFAULT_FINE_TUNES). */
  fineTunes: z.array(z.object({
    epochs: positiveInt.optional(),
    shape: z.enum(FINE_TUNE_SHAPES),
    lrScale: z.number().nonnegative().default(1),
  }).strict()).min(1).optional(),
  globalTokens: nonNegativeInt.optional(),
  mu: z.number().nonnegative().default(0.5),
  amp: z.object({ alphaK: positive.default(0.1), sigma: positive.default(1), lambda: z.number().nonnegative().default(1) }).strict().default({}),
  memory: MemorySchema.default({}),
  tipAdapter: TipAdapterSchema.default({}),
  /** FedOTP's optimal transport; defaults from its scripts/fedotp_few_shot.sh (src/methods/fedotp.ts). */
  fedotp: z.object({
    transport: z.enum(['cot', 'sinkhorn']).default(FEDOTP_DEFAULTS.transport),
    eps: positive.default(FEDOTP_DEFAULTS.eps),
    thresh: z.number().nonnegative().default(FEDOTP_DEFAULTS.thresh),
    maxIter: positiveInt.default(FEDOTP_DEFAULTS.maxIter),
    topPercent: positive.max(1).default(FEDOTP_DEFAULTS.topPercent),
    evalBatchSize: positiveInt.default(FEDOTP_DEFAULTS.evalBatchSize),
  }).strict().default({}),
  /** pFedMoAP (src/methods/pfedmoap.ts): experts counts the client's own. */
  moap: z.object({
    experts: positiveInt.default(10), gatingDim: positiveInt.default(128), heads: positiveInt.default(8),
    lambda: z.number().nonnegative().default(0.5), scaling: positive.default(10), gatingLr: positive.default(0.01),
  }).strict().default({}),
}).strict();

/**
 * A method under a name of its own with some options changed, so one run can
 * hold several pFedPrompts (`variants: { pfedprompt-shots: { method: pfedprompt,
 * label: "pFedPrompt, shot keys", methodOptions: { memory: { keys: shots } } } }`,
 * then `methods: [pfedprompt, pfedprompt-shots]`). Its options are the run's
 * `methodOptions` with these fields replaced.
 */
const VariantSchema = z.object({
  method: z.enum(METHOD_IDS),
  /** Its name in tables (default: the method's, with the variant's name). */
  label: z.string().min(1).optional(),
  methodOptions: z.record(z.unknown()).default({}),
}).strict();

export const ConfigSchema = z.object({
  /** Names the output folder (runs/<name>) and the report. */
  name: z.string().min(1).default('experiment'),
  /** A Hugging Face CLIPModel folder or an OpenAI / open_clip .safetensors file. */
  model: z.string().min(1),
  /** Tokenizer folder (default: the model's folder). */
  tokenizer: z.string().min(1).optional(),
  /** Backbone name in tables (default: the model folder's name). */
  backbone: z.string().min(1).optional(),
  data: z.object({
    /** Folder holding CoOp's dataset folders (caltech-101/, oxford_pets/, …). */
    root: z.string().optional(),
    /** CoOp dataset names, or dataset / image folders. */
    datasets: z.array(z.string().min(1)).min(1),
    shots: z.array(positiveInt).min(1).default([16]),
    partition: PartitionSchema.default({}),
    /**
     * Augmented views (random resized crop + flip) cached per training image and run seed; each epoch reads one,
     * every view once per cycle of `views` epochs (one per epoch of the run, the default 50 = 10 × 5: each view
     * exactly once, as CoOp sees a fresh crop every epoch).
     */
    views: nonNegativeInt.default(50),
    /** Names the family of augmented views; each run seed draws its own views within it. */
    augmentSeed: nonNegativeInt.default(0),
    /** Skip unreadable images with a warning instead of failing. */
    skipBad: z.boolean().default(false),
  }).strict(),
  /** Methods by id, or by the name of a variant below. */
  methods: z.array(z.string().min(1)).min(1).default(['zeroshot', 'local-coop', 'promptfl', 'promptfl-ft', 'promptper', 'promptprox', 'promptamp', 'pfedprompt']),
  seeds: z.array(nonNegativeInt).min(1).default([1, 2, 3]),
  federation: z.object({
    rounds: positiveInt.default(10),
    localEpochs: positiveInt.default(5),
    participation: z.number().gt(0).lte(1).default(1),
    batchSize: positiveInt.default(32),
    /**
     * Worker threads running a round's clients in parallel, each with its share of the cores (1: in this
     * thread). Results are the same for any count; two threads of one core each measured 18 % faster than one
     * thread of two (npm run bench:round).
     */
    workers: positiveInt.default(2),
    /** Fewest clients whose replies a round needs: a client that errors or times out is left out of that round, and the run stops below this. */
    minClients: positiveInt.default(1),
    /** Seconds a client has to reply to one step before it is left out of it (default: no limit). */
    timeoutSeconds: positive.optional(),
  }).strict().default({}),
  optimizer: z.object({
    lr: positive.default(0.002),
    momentum: z.number().min(0).lt(1).default(0.9),
    weightDecay: z.number().nonnegative().default(5e-4),
    schedule: z.enum(['constant', 'cosine']).default('cosine'),
    /** Epochs of the run at a constant warmupLr before the schedule takes over (Dassl's WARMUP_EPOCH, constant type, as CoOp's and PromptFL's configs). */
    warmupEpochs: nonNegativeInt.default(1),
    warmupLr: positive.default(1e-5),
  }).strict().default({}),
  prompt: z.object({
    contextLength: positiveInt.default(16),
    /** Words whose embeddings start the context (e.g. "a photo of a"); absent: N(0, 0.02²). */
    initWords: z.string().min(1).optional(),
    position: z.enum(CLASS_TOKEN_POSITIONS as [string, ...string[]]).default('end'),
    classSpecific: z.boolean().default(false),
  }).strict().default({}),
  methodOptions: MethodOptionsSchema.default({}),
  variants: z.record(VariantSchema).default({}),
  /**
   * α and β tried for the visual memory on validation images after training (never test images); empty lists
   * keep methodOptions.memory's. α is given for CLIP's logit scale of 100 and, with `scaleAlpha`, multiplied by
   * the model's exp(logit_scale)/100, so that the memory's weight relative to CLIP's logits is the same for any model.
   */
  memorySearch: z.object({
    alpha: z.array(z.number().nonnegative()).default([0.5, 1, 2, 5, 10, 20, 50, 100]),
    beta: z.array(z.number().nonnegative()).default([1, 3, 5.5, 10]),
    scaleAlpha: z.boolean().default(true),
  }).strict().default({}),
  evaluation: z.object({
    scoring: z.enum(SCORINGS as [Scoring, ...Scoring[]]).default('all-classes'),
    /** Test every client after every round, for the per-round curves. */
    eachRound: z.boolean().default(true),
  }).strict().default({}),
  /** Output folder (default runs/<name>). */
  output: z.string().min(1).optional(),
  /** Feature cache root (default $PFEDPROMPT_CACHE or ~/.cache/pfedprompt/features). */
  cache: z.string().min(1).optional(),
  executionProviders: z.array(z.enum(['cpu', 'cuda'])).min(1).default(['cpu']),
  /**
   * How the default experiment's open settings were chosen on validation images (src/experiment/default-choices.ts):
   * set by the default experiment, copied into results.json; it changes no computation.
   */
  defaultChoices: z.record(z.unknown()).optional(),
}).strict().superRefine((config, ctx) => {
  config.methods.forEach((name, i) => {
    if (!(METHOD_IDS as readonly string[]).includes(name) && !(name in config.variants)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['methods', i], message: `"${name}" is neither a method (${METHOD_IDS.join(', ')}) nor a variant (${Object.keys(config.variants).join(', ') || 'none defined'})` });
    }
  });
  for (const [name, variant] of Object.entries(config.variants)) {
    if ((METHOD_IDS as readonly string[]).includes(name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['variants', name], message: 'a variant cannot take a method\'s name' });
    const merged = MethodOptionsSchema.safeParse(mergeOptions(config.methodOptions, variant.methodOptions));
    if (!merged.success) {
      for (const issue of merged.error.issues) ctx.addIssue({ ...issue, path: ['variants', name, 'methodOptions', ...issue.path] } as z.IssueData);
    }
  }
});

export type ExperimentConfig = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** Validates a parsed config; errors list every offending field by its path. */
export function parseConfig(input: unknown, source = 'config'): ExperimentConfig {
  const result = ConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const where = issue.path.join('.') || '(top level)';
    if (issue.code === 'unrecognized_keys') return `${[...issue.path, ...issue.keys].join('.')}: unknown field${issue.keys.length > 1 ? 's' : ''} (${issue.keys.join(', ')})`;
    return `${where}: ${issue.message}`;
  });
  throw new Error(`${source}: ${problems.join('; ')}`);
}

/** A method of the grid by the name the config lists it under: its id, options and name in tables. */
export interface ResolvedMethod {
  readonly id: MethodId;
  readonly options: MethodOptions;
  /** The variant's name, when it is one. */
  readonly variant?: string;
  /** The variant's label, when it gives one. */
  readonly label?: string;
}

export function resolveMethod(config: ExperimentConfig, name: string): ResolvedMethod {
  const base = config.methodOptions as MethodOptions;
  if ((METHOD_IDS as readonly string[]).includes(name)) return { id: name as MethodId, options: base };
  const variant = config.variants[name];
  if (!variant) throw new Error(`"${name}" is neither a method nor a variant of the config`);
  const options = MethodOptionsSchema.parse(mergeOptions(base as unknown as Record<string, unknown>, variant.methodOptions)) as MethodOptions;
  return { id: variant.method, options, variant: name, ...(variant.label ? { label: variant.label } : {}) };
}

/** `over`'s fields replace `base`'s, groups merged field by field. */
function mergeOptions(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const under = out[key];
    const isGroup = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = isGroup(value) && isGroup(under) ? mergeOptions(under, value) : value;
  }
  return out;
}

/**
 * Applies `--a.b.c value` overrides to a config object. A value is read as
 * JSON when it parses (numbers, booleans, lists like [1,2]), a comma list for
 * list fields, else as a string.
 */
export function applyOverrides(config: Record<string, unknown>, overrides: readonly [string, string][]): Record<string, unknown> {
  const out = structuredClone(config);
  for (const [key, raw] of overrides) {
    const parts = key.split('.');
    if (parts.some((p) => p.length === 0)) throw new Error(`--${key}: not a field path`);
    let holder = out;
    for (const part of parts.slice(0, -1)) {
      const next = holder[part];
      if (next === undefined) holder[part] = {};
      else if (next === null || typeof next !== 'object' || Array.isArray(next)) throw new Error(`--${key}: ${part} is not a group of fields`);
      holder = holder[part] as Record<string, unknown>;
    }
    holder[parts[parts.length - 1]] = parseFlagValue(key, raw);
  }
  return out;
}

/** Fields that hold lists, so that `--seeds 1,2,3` works as `--seeds [1,2,3]` does. */
const LIST_FIELDS = new Set(['data.datasets', 'data.shots', 'methods', 'seeds', 'memorySearch.alpha', 'memorySearch.beta', 'executionProviders']);

function parseFlagValue(key: string, raw: string): unknown {
  if (LIST_FIELDS.has(key) && !raw.trim().startsWith('[')) return raw.split(',').map((s) => parseScalar(s.trim()));
  return parseScalar(raw);
}

function parseScalar(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
