// An experiment config as a file on disk (Node): YAML or JSON, its relative
// paths resolved against the file's folder. Validation is config.ts's.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';

/** Reads a YAML or JSON config file (not yet validated: flags may still be merged in). Relative paths in it are relative to the file. */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${file}: cannot read the config (${err.code ?? err.message})`);
  });
  let json: unknown;
  try {
    json = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(err as Error).message.split('\n')[0]})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file}: a config must be a mapping of fields`);
  return resolvePaths(json as Record<string, unknown>, path.dirname(path.resolve(file)));
}

const PATH_FIELDS = [['model'], ['tokenizer'], ['data', 'root'], ['output'], ['cache']];

function resolvePaths(config: Record<string, unknown>, base: string): Record<string, unknown> {
  const out = structuredClone(config);
  for (const fieldPath of PATH_FIELDS) {
    let holder: Record<string, unknown> | undefined = out;
    for (const key of fieldPath.slice(0, -1)) holder = holder?.[key] as Record<string, unknown> | undefined;
    const last = fieldPath[fieldPath.length - 1];
    const value = holder?.[last];
    if (typeof value === 'string') holder![last] = path.resolve(base, expandHome(value));
  }
  const data = out.data as Record<string, unknown> | undefined;
  if (data && Array.isArray(data.datasets)) {
    // A dataset given as a relative folder is relative to the file; a CoOp name stays a name.
    data.datasets = data.datasets.map((d) => (typeof d === 'string' && (d.startsWith('.') || d.includes('/')) ? path.resolve(base, expandHome(d)) : d));
  }
  return out;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(process.env.HOME ?? '', p.slice(1)) : p;
}

