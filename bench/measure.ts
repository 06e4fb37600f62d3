// What every benchmark measures with: medians, and how much of the machine
// other processes took while it ran (timings assume the cores are ours).

import { readFileSync } from 'node:fs';
import os from 'node:os';

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;

/** Busy CPU-seconds of the whole machine so far (Linux /proc/stat), or undefined elsewhere. */
function systemCpuSeconds(): number | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / 100; // in USER_HZ, 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * What the machine spent beyond this process was someone else's work
 * competing with ours: the returned function gives its share of the machine
 * since this call (a few % on an idle machine: kernel threads, the VM's own
 * agents). Worker threads count as this process.
 */
export function startInterferenceMeter(): () => number | undefined {
  const busyAtStart = systemCpuSeconds();
  const ownAtStart = process.cpuUsage();
  const wallAtStart = performance.now();
  return () => {
    const busy = systemCpuSeconds();
    if (busyAtStart === undefined || busy === undefined) return undefined;
    const own = process.cpuUsage(ownAtStart);
    const others = Math.max(0, busy - busyAtStart - (own.user + own.system) / 1e6);
    return others / (((performance.now() - wallAtStart) / 1000) * os.availableParallelism());
  };
}

/** Above this share of the machine used by others, timings are flagged as disturbed. */
export const DISTURBED_SHARE = 0.25;
