// A client's personal state on its own disk (a Flower node's): one
// safetensors file per run and cell, written atomically, so a node killed
// mid-round comes back with the state of its last finished step.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { PersonalStore } from '../federation/client.js';
import type { Tensors } from '../federation/method.js';
import { readSafetensors, toFloat32, writeSafetensors } from '../io/safetensors.js';

export class DiskStore implements PersonalStore {
  constructor(readonly file: string) {}

  async load(): Promise<Tensors | undefined> {
    if (!existsSync(this.file)) return undefined;
    const stored = await readSafetensors(this.file);
    const out: Record<string, Float32Array> = {};
    for (const [name, entry] of stored.tensors) out[name] = toFloat32(entry);
    return out;
  }

  async save(state: Tensors): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    await writeSafetensors(this.file, Object.fromEntries(Object.entries(state).map(([name, data]) => [name, { shape: [data.length], data }])));
  }
}
