#!/usr/bin/env node
// The `pfedprompt` command: one subcommand per module in this folder.

import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerFederate } from './federate.js';
import { registerFeatures } from './features.js';
import { registerNode } from './node.js';
import { registerPartition } from './partition.js';
import { registerReport } from './report.js';
import { registerRun } from './run.js';
import { registerServe } from './serve.js';
import { registerTokenize } from './tokenize.js';
import { registerVerify } from './verify.js';
import { registerWorld } from './world.js';
import { registerZeroshot } from './zeroshot.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('pfedprompt')
  .description('Personalized federated prompt learning for CLIP (pFedPrompt and baselines), on onnxruntime')
  .version(pkg.version)
  .showHelpAfterError();

registerZeroshot(program);
registerTokenize(program);
registerVerify(program);
registerFeatures(program);
registerPartition(program);
registerRun(program);
registerReport(program);
registerWorld(program);
registerNode(program);
registerFederate(program);
registerServe(program);

try {
  await program.parseAsync();
} catch (error) {
  console.error(`pfedprompt: ${(error as Error).message}`);
  process.exitCode = 1;
}
