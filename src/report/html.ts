// report.html: one self-contained page (inline CSS and SVG, no scripts, no
// network at view time) with the tables, the charts and the communication cost.
import { entryKey, type Summary, type TableEntry } from './aggregate.js';
import { methodColour } from './charts.js';
import type { ResultsFile } from './results.js';
import {
  accuracyText,
  ACCURACY_CAPTION,
  DEFAULTS_CAPTION,
  defaultsRows,
  groupTitle,
  scoringLine,
  seedsText,
  spreadText,
  SPREAD_CAPTION,
} from './tables.js';

export interface RenderedChart {
  /** Which (dataset, backbone, shots, scoring) the chart belongs to: the panel's stem. */
  stem: string;
  title: string;
  svg: string;
  png: string;
}

export const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Bytes as B / KiB / MiB / GiB, 1 decimal above bytes. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}

const CSS = `
body { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: .3em .8em; border-bottom: 1px solid #e3e3e3; }
th { background: #f4f4f4; text-align: center; } td.num { text-align: right; } td.missing { text-align: center; color: #999; }
td.best { font-weight: bold; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: .4em; vertical-align: baseline; }
p.caption { color: #444; margin: .3em 0; } p.scoring { font-style: italic; margin: .2em 0 1em; }
figure { margin: 1em 0; overflow-x: auto; } figcaption { color: #555; font-size: .9em; }
.meta { color: #555; }
`;

export function reportHtml(results: ResultsFile, summary: Summary, charts: RenderedChart[]): string {
  const h = escapeHtml;
  const methodCell = (label: string, colour: string): string =>
    `<td><span class="swatch" style="background:${colour}"></span>${h(label)}</td>`;
  const out: string[] = [];
  out.push(
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>pfedprompt results</title>',
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<h1>pfedprompt results</h1>',
    `<p class="meta">pfedprompt ${h(results.code.version)}${results.code.commit ? ` (commit ${h(results.code.commit)})` : ''} · ` +
      `results written ${h(results.createdAt)} · ${results.cells.length} cell${results.cells.length === 1 ? '' : 's'}</p>`,
  );

  for (const g of summary.groups) {
    const table = (cell: (e: TableEntry) => string, isBest: (e: TableEntry) => boolean): string => {
      const rows = g.methods.map((m) => {
        const tds = g.datasets.map((d) => {
          const e = g.entries.get(entryKey(m.id, d.id));
          if (!e) return '<td class="missing">—</td>';
          return `<td class="num${isBest(e) ? ' best' : ''}">${h(cell(e))}</td>`;
        });
        return `<tr>${methodCell(m.label, methodColour(m))}${tds.join('')}</tr>`;
      });
      return [
        '<table>',
        `<thead><tr><th>Method</th>${g.datasets.map((d) => `<th>${h(d.label)}</th>`).join('')}</tr></thead>`,
        `<tbody>${rows.join('\n')}</tbody>`,
        '</table>',
      ].join('\n');
    };
    out.push(
      `<h2>${h(groupTitle(g))}</h2>`,
      `<p class="caption">${h(ACCURACY_CAPTION)} ${h(seedsText(g))}; best per column in bold.</p>`,
      table((e) => accuracyText(e, g), (e) => e.best),
      `<p class="scoring">${h(scoringLine(g.scoring))}</p>`,
      `<p class="caption">${h(SPREAD_CAPTION)} Lowest per column in bold.</p>`,
      table((e) => spreadText(e, g), (e) => e.leastSpread),
      `<p class="scoring">${h(scoringLine(g.scoring))}</p>`,
    );

    for (const p of summary.panels) {
      if (p.backbone !== g.backbone || p.shots !== g.shots || p.scoring !== g.scoring) continue;
      out.push(`<h3>${h(`${p.dataset.label} · ${p.backbone} · ${p.shots}-shot`)}</h3>`);
      for (const c of charts.filter((c) => c.stem === p.stem)) {
        out.push(`<figure>${c.svg}<figcaption>${h(c.title)} (PNG: ${h(c.png)})</figcaption></figure>`);
      }
      out.push(
        '<table>',
        '<thead><tr><th>Method</th><th>Rounds</th><th>Up per round</th><th>Down per round</th><th>Up + down, all rounds</th><th>Wall time</th></tr></thead>',
        '<tbody>',
        ...p.cost.map((c) => {
          const total = (c.bytesUpPerRound + c.bytesDownPerRound) * c.rounds;
          const bytes = (n: number): string => (c.rounds > 0 ? `<td class="num" title="${Math.round(n)} bytes">${formatBytes(n)}</td>` : '<td class="missing">—</td>');
          return `<tr>${methodCell(c.method.label, methodColour(c.method))}<td class="num">${formatCount(c.rounds)}</td>${bytes(c.bytesUpPerRound)}${bytes(c.bytesDownPerRound)}${bytes(total)}<td class="num">${formatSeconds(c.wallSeconds)}</td></tr>`;
        }),
        '</tbody>',
        '</table>',
        `<p class="caption">Communication per method: bytes sent by clients (up) and by the server (down) per round, mean over rounds and seeds; wall time mean over seeds.</p>`,
      );
    }
  }
  const chosen = defaultsRows(results);
  if (chosen.length > 0) {
    out.push('<h2>Settings chosen on validation</h2>', `<p class="caption">${h(DEFAULTS_CAPTION)}</p>`, '<table>',
      '<thead><tr><th>Choice</th><th>Chosen</th><th>Candidates</th></tr></thead>', '<tbody>',
      ...chosen.map((r) => `<tr><td>${h(r.choice)}</td><td>${h(r.chosen)}${r.overridden ? ' <em>(overridden in this run)</em>' : ''}</td><td>${h(r.candidates)}</td></tr>`),
      '</tbody>', '</table>');
  }
  out.push('</body>', '</html>', '');
  return out.join('\n');
}

const formatCount = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}
