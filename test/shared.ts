// Where the read-only fixtures live: ../shared beside the project root.
// Tests may read them; the product never does.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test
export const PROJECT_ROOT = path.resolve(here, '..', '..');
export const SHARED = process.env.PFEDPROMPT_SHARED ?? path.resolve(PROJECT_ROOT, '..', 'shared');
export const fixture = (...parts: string[]): string => path.join(SHARED, 'fixtures', ...parts);

/** Largest |a − b| over the largest |b| (the arrays must be equally long). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relativeError: ${a.length} values against ${b.length}`);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}
