// Every method by its identifier, built from its options. The order is the
// paper's table: baselines first, pFedPrompt last.

import type { Method } from '../federation/method.js';
import { fedOtp, FEDOTP_DEFAULTS, type FedOtpOptions } from './fedotp.js';
import { localCoop } from './local-coop.js';
import { localTipAdapter, memoryOnly, TIP_ADAPTER_DEFAULTS, type TipAdapterOptions } from './local-tip-adapter.js';
import { pFedMoAp, PFEDMOAP_DEFAULTS, type PFedMoApOptions } from './pfedmoap.js';
import { pFedPrompt, PFEDPROMPT_DEFAULTS } from './pfedprompt.js';
import { promptAmp, PROMPTAMP_DEFAULTS, type PromptAmpOptions } from './promptamp.js';
import { promptFl } from './promptfl.js';
import { promptFlFineTuned, type FineTuneSchedule } from './promptfl-ft.js';
import { promptPer } from './promptper.js';
import { promptProx, PROMPTPROX_DEFAULTS } from './promptprox.js';
import type { MemoryOptions } from './visual-memory.js';
import { zeroShot } from './zero-shot.js';

export const METHOD_IDS = [
  'zeroshot', 'local-coop', 'promptfl', 'promptfl-ft', 'promptper', 'promptprox', 'promptamp', 'pfedprompt', 'local-tip-adapter', 'memory-only', 'fedotp', 'pfedmoap',
] as const;
export type MethodId = (typeof METHOD_IDS)[number];

/** Every method's options in one place, as a config file gives them. */
export interface MethodOptions {
  /** FedAvg weighted by client sample counts (default) or plain. */
  readonly weighted: boolean;
  /** PromptFL+FT's fine-tuning epochs (default: the local epochs). */
  readonly fineTuneEpochs?: number;
  /** PromptFL+FT's candidate schedules, chosen on validation images (default DEFAULT_FINE_TUNES). */
  readonly fineTunes?: readonly FineTuneSchedule[];
  /** PromptPer's global context tokens (default ⌊M/2⌋). */
  readonly globalTokens?: number;
  /** PromptProx's μ. */
  readonly mu: number;
  readonly amp: PromptAmpOptions;
  /** pFedPrompt's (and memory only's) visual memory. */
  readonly memory: MemoryOptions;
  /** Local Tip-Adapter's options and grid. */
  readonly tipAdapter: TipAdapterOptions;
  /** FedOTP's transport (its `weighted` is the one above). */
  readonly fedotp?: Omit<FedOtpOptions, 'weighted'>;
  /** pFedMoAP's experts and gating network (its `weighted` is the run's). */
  readonly moap?: Omit<PFedMoApOptions, 'weighted'>;
}

export const DEFAULT_METHOD_OPTIONS: MethodOptions = {
  weighted: true,
  mu: PROMPTPROX_DEFAULTS.mu,
  amp: PROMPTAMP_DEFAULTS,
  memory: PFEDPROMPT_DEFAULTS.memory,
  tipAdapter: TIP_ADAPTER_DEFAULTS,
  fedotp: (({ weighted: _weighted, ...transport }) => transport)(FEDOTP_DEFAULTS),
};

export function createMethod(id: MethodId, options: MethodOptions = DEFAULT_METHOD_OPTIONS): Method {
  const { weighted } = options;
  switch (id) {
    case 'zeroshot': return zeroShot();
    case 'local-coop': return localCoop();
    case 'promptfl': return promptFl({ weighted });
    case 'promptfl-ft': return promptFlFineTuned({ weighted, fineTuneEpochs: options.fineTuneEpochs, fineTunes: options.fineTunes });
    case 'promptper': return promptPer({ weighted, globalTokens: options.globalTokens });
    case 'promptprox': return promptProx({ weighted, mu: options.mu });
    case 'promptamp': return promptAmp(options.amp);
    case 'pfedprompt': return pFedPrompt({ weighted, memory: options.memory });
    case 'local-tip-adapter': return localTipAdapter(options.tipAdapter);
    case 'memory-only': return memoryOnly(options.memory);
    case 'fedotp': return fedOtp({ ...FEDOTP_DEFAULTS, ...options.fedotp, weighted });
    case 'pfedmoap': return pFedMoAp({ ...PFEDMOAP_DEFAULTS, ...options.moap, weighted });
  }
  const never: never = id;
  throw new Error(`unknown method "${never as string}" (known: ${METHOD_IDS.join(', ')})`);
}

export function isMethodId(id: string): id is MethodId {
  return (METHOD_IDS as readonly string[]).includes(id);
}
