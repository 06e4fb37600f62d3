// The report of a run: results.json in, tables and pictures out.
//   results.csv  one row per (cell, client)
//   results.md   paper-style tables per (backbone, shots, scoring)
//   report.html  one self-contained page: tables, charts, communication cost
//   *.png        every chart, for papers
// Every file is written atomically; all numbers come from summarize().
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { summarize } from './aggregate.js';
import { panelCharts, renderSvg, svgToPng } from './charts.js';
import { reportHtml, type RenderedChart } from './html.js';
import type { ResultsFile } from './results.js';
import { markdownTables, resultsCsv } from './tables.js';
import { writeFileAtomic } from '../io/atomic.js';

export * from './results.js';
export { summarize, mean, populationStd, type Summary, type TableGroup, type TableEntry, type Panel, type MethodInfo, type DatasetInfo } from './aggregate.js';
export { markdownTables, summaryTable, resultsCsv, scoringText, CSV_COLUMNS, type SummaryTableOptions } from './tables.js';

/** Writes results.csv, results.md, report.html and one PNG per chart into `outDir` (created if missing). */
export async function writeReport(results: ResultsFile, outDir: string): Promise<{ files: string[] }> {
  await mkdir(outDir, { recursive: true });
  const summary = summarize(results);
  const files: string[] = [];
  const write = async (name: string, data: string | Uint8Array): Promise<void> => {
    const file = path.join(outDir, name);
    await writeFileAtomic(file, data);
    files.push(file);
  };

  await write('results.csv', resultsCsv(results));
  await write('results.md', markdownTables(results, summary));

  const rendered: RenderedChart[] = [];
  let n = 0;
  for (const panel of summary.panels) {
    for (const chart of panelCharts(panel)) {
      // Vega numbers clip paths per view from 1; distinct ids keep inlined SVGs from sharing them.
      const svg = uniqueIds(await renderSvg(chart.spec), `c${n++}-`);
      await write(chart.png, await svgToPng(svg));
      rendered.push({ stem: panel.stem, title: chart.title, svg, png: chart.png });
    }
  }
  await write('report.html', reportHtml(results, summary, rendered));
  return { files };
}

/** Prefixes every id="…" of an SVG and its url(#…) / href="#…" references. */
function uniqueIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}${id}"`);
}
