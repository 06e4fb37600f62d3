// Charts as Vega-Lite specs, rendered to SVG in Node by Vega's headless view
// (renderer 'none': no canvas, no browser), and to PNG by sharp. Each method
// keeps one colour in every chart, fixed by its order of first appearance.
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

import type { MethodInfo, Panel } from './aggregate.js';
import { scoringText } from './tables.js';

/** Tableau 10, then 10 more distinguishable colours for larger method lists. */
const PALETTE = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
  '#1f77b4', '#17becf', '#bcbd22', '#8c564b', '#7f7f7f', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173',
];

export const methodColour = (m: MethodInfo): string => PALETTE[m.index % PALETTE.length];

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

const CONFIG = {
  font: FONT,
  background: 'white',
  padding: 12,
  title: { fontSize: 16, subtitleFontSize: 12, subtitleColor: '#444', anchor: 'start', offset: 10 },
  axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', gridColor: '#e6e6e6' },
  legend: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', labelLimit: 260, symbolStrokeWidth: 3 },
  view: { stroke: '#ccc' },
} as const;

export interface Chart {
  kind: 'accuracy' | 'clients';
  panel: Panel;
  title: string;
  spec: TopLevelSpec;
  /** File name of the PNG, e.g. 'accuracy-caltech101-rn50-16shot.png'. */
  png: string;
}

function colourScale(methods: MethodInfo[]) {
  return { domain: methods.map((m) => m.label), range: methods.map(methodColour) };
}

const panelTitle = (p: Panel): string => `${p.dataset.label} · ${p.backbone} · ${p.shots}-shot`;

/** The charts of a panel: accuracy per round (when any method evaluated per round) and final accuracy per client. */
export function panelCharts(p: Panel): Chart[] {
  const charts: Chart[] = [];
  const scoring = `Scoring: ${scoringText(p.scoring)}.`;

  if (p.curves.length > 0) {
    // Only methods drawn in this chart enter its legend, in the results' order.
    const shown = p.methods.filter((m) => p.curves.some((c) => c.method === m) || p.levels.some((l) => l.method === m));
    const color = {
      field: 'method',
      type: 'nominal' as const,
      title: 'Method',
      scale: colourScale(shown),
      sort: shown.map((m) => m.label),
    };
    const y = { field: 'accuracy', type: 'quantitative' as const, title: 'Mean accuracy over clients (%)', scale: { zero: false } };
    const subtitle = ['Mean over seeds.' + (p.levels.length ? ' Dashed: methods without rounds (final accuracy).' : ''), scoring];
    const title = `${panelTitle(p)} — accuracy per round`;
    charts.push({
      kind: 'accuracy',
      panel: p,
      title,
      png: `accuracy-${p.stem}.png`,
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: { text: title, subtitle },
        width: 560,
        height: 320,
        config: CONFIG,
        layer: [
          {
            data: { values: p.curves.map((c) => ({ method: c.method.label, round: c.round, accuracy: c.accuracy * 100 })) },
            mark: { type: 'line', point: { size: 40 }, strokeWidth: 2.5 },
            encoding: {
              x: { field: 'round', type: 'quantitative', title: 'Round', axis: { tickMinStep: 1, format: 'd' }, scale: { nice: false } },
              y,
              color,
            },
          },
          ...(p.levels.length
            ? [
                {
                  data: { values: p.levels.map((l) => ({ method: l.method.label, accuracy: l.accuracy * 100 })) },
                  mark: { type: 'rule' as const, strokeDash: [7, 5], strokeWidth: 2.5 },
                  encoding: { y, color },
                },
              ]
            : []),
        ],
      } as TopLevelSpec,
    });
  }

  if (p.clients.length > 0) {
    const clientIds = [...new Set(p.clients.map((c) => c.client))];
    const shown = p.methods.filter((m) => p.clients.some((c) => c.method === m));
    const width = Math.max(560, clientIds.length * (shown.length * 9 + 14));
    const title = `${panelTitle(p)} — final accuracy per client`;
    charts.push({
      kind: 'clients',
      panel: p,
      title,
      png: `clients-${p.stem}.png`,
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: { text: title, subtitle: ['Mean over seeds.', scoring] },
        width,
        height: 320,
        config: CONFIG,
        data: { values: p.clients.map((c) => ({ method: c.method.label, client: c.client, accuracy: c.accuracy * 100 })) },
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'client', type: 'ordinal', title: 'Client', axis: { labelAngle: 0 }, sort: clientIds },
          xOffset: { field: 'method', type: 'nominal', sort: shown.map((m) => m.label), scale: { paddingInner: 0.05 } },
          y: { field: 'accuracy', type: 'quantitative', title: 'Final accuracy (%)', scale: { domain: [0, 100] } },
          color: { field: 'method', type: 'nominal', title: 'Method', scale: colourScale(shown), sort: shown.map((m) => m.label) },
        },
      } as TopLevelSpec,
    });
  }
  return charts;
}

/** Renders a Vega-Lite spec to a standalone SVG string, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterises an SVG to PNG at `scale` times its CSS size (2 by default, sharp enough for a paper). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale }).png().toBuffer();
}
