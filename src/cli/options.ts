// Parsers for option values shared by several commands; a bad value is an
// error that names the option.

import { InvalidArgumentError } from 'commander';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

/** Comma-separated, trimmed, non-empty items. */
export function list(value: string): string[] {
  const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return items;
}

export function executionProviders(value: string): string[] {
  const known = ['cpu', 'cuda'];
  const items = list(value);
  for (const p of items) if (!known.includes(p)) throw new InvalidArgumentError(`unknown execution provider "${p}" (known: ${known.join(', ')})`);
  return items;
}
