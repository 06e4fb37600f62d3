import type { Command } from 'commander';
import path from 'node:path';
import { readResults, summaryTable, writeReport } from '../report/index.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('print the results table of a results.json and write its CSV, Markdown, HTML report and charts again')
    .requiredOption('--results <file>', 'a results.json written by `pfedprompt run`')
    .option('--out <dir>', 'where to write (default: beside the results file)')
    .action(async (opts: { results: string; out?: string }) => {
      const results = await readResults(opts.results);
      const out = opts.out ?? path.dirname(path.resolve(opts.results));
      const { files } = await writeReport(results, out);
      console.log(summaryTable(results, { color: Boolean(process.stdout.isTTY) }));
      console.log(`\nwrote ${files.length} files to ${out}`);
    });
}
