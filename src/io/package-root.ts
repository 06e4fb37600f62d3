// The installed package's root folder (holding models/, configs/, flower/), from
// this compiled file's place in dist/src/io.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
