// Where the read-only fixtures live: ../shared beside the project root.
// Tests may read them; the product never does.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test
export const PROJECT_ROOT = path.resolve(here, '..', '..');
export const SHARED = process.env.PFEDPROMPT_SHARED ?? path.resolve(PROJECT_ROOT, '..', 'shared');
export const fixture = (...parts: string[]): string => path.join(SHARED, 'fixtures', ...parts);
