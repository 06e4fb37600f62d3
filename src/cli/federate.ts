// `pfedprompt federate`: the experiment of `pfedprompt run`, over Flower on
// this machine — a SuperLink, one node process per client, the ServerApp —
// with the same results table, results.json and report.

import type { Command } from 'commander';
import path from 'node:path';
import { federateLocally } from '../federate/local-federation.js';
import { summaryTable } from '../report/index.js';
import { positiveInt } from './options.js';
import { flagPairs, resolveConfig } from './run.js';

interface FederateOptions {
  config?: string;
  nodes?: number;
}

export function registerFederate(program: Command): void {
  program
    .command('federate')
    .description("run an experiment over Flower on this machine: a SuperLink, one `pfedprompt node` per client and the ServerApp (flower/); prints the results table and writes results.json and the report")
    .option('--config <file>', 'experiment config (YAML or JSON), as for `pfedprompt run`. Without one: the bundled world experiment')
    .option('--nodes <n>', 'nodes to start, one per client (sets data.partition.clients)', positiveInt)
    .argument('[overrides...]', 'any config field as a flag, as for `pfedprompt run`')
    .allowUnknownOption()
    .addHelpText('after', '\nNeeds the Flower server side (Python ≥ 3.11): `npm run setup:python`. Node logs and the SuperLink log go to <output>/flower/.')
    .action(async (overrides: string[], opts: FederateOptions) => {
      const pairs = flagPairs(overrides);
      if (opts.nodes !== undefined) pairs.push(['data.partition.clients', String(opts.nodes)]);
      const config = await resolveConfig(opts.config, pairs, path.join('runs', 'world-flower'));
      const done = await federateLocally(config, {
        log: (m) => console.error(m),
        onServerLine: (line) => console.error(line.replace(/\x1b\[[0-9;]*m/g, '')),
      });
      console.log('');
      console.log(summaryTable(done.results, { color: Boolean(process.stdout.isTTY) }));
      console.log(`\nwrote ${done.files.length} files to ${done.outDir}: ${done.files.map((f) => path.relative(done.outDir, f)).join(', ')}`);
    });
}
