import { useEffect, useRef } from 'react';
import uPlot from 'uplot';

export interface ChartSeries {
  readonly label: string;
  /** X values in ascending order: milliseconds for time charts, steps for step charts. */
  readonly x: readonly number[];
  readonly y: readonly (number | null)[];
  /** Draw each point: for sparse series such as evaluation results, which lines between gaps would hide. */
  readonly points?: boolean;
}

const PALETTE = [
  '#4e9af1',
  '#f1a14e',
  '#5cc98b',
  '#e0607e',
  '#b07ff0',
  '#e8d44d',
  '#4ed6d6',
  '#f07fc8',
  '#9fb84e',
  '#c98b5c',
];

export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

interface ChartProps {
  readonly title: string;
  readonly series: readonly ChartSeries[];
  readonly xMode?: 'time' | 'step';
  readonly logY?: boolean;
  readonly height?: number;
  readonly yFormat?: (v: number) => string;
  readonly testId?: string;
}

/**
 * A uPlot line chart. Series with different x values are merged onto one x axis (uPlot.join); NaN values
 * (a diverged loss) are drawn as gaps. The chart is rebuilt only when the set of series or the options change,
 * and otherwise updated in place with setData, so live updates stay cheap.
 */
export function Chart({
  title,
  series,
  xMode = 'time',
  logY = false,
  height = 240,
  yFormat,
  testId,
}: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = `${xMode}|${logY}|${series.map((s) => s.label).join('\u0000')}`;

  const data = buildData(series, xMode, logY);

  // Rebuilt only when the shape changes; data updates go through setData below.
  // biome-ignore lint/correctness/useExhaustiveDependencies: the chart is rebuilt per shape, not per data
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    // Canvas strokes cannot use CSS variables: resolve the theme's colours once per build.
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue('--fg-muted').trim() || '#888';
    const grid = css.getPropertyValue('--grid').trim() || '#333';
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: xMode === 'time' }, y: logY ? { distr: 3 } : {} },
      legend: { show: series.length <= 12 },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        {
          stroke: muted,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          size: 60,
          values: yFormat ? (_u, vals) => vals.map((v) => (v === null ? '' : yFormat(v))) : undefined,
        },
      ],
      series: [
        { label: xMode === 'time' ? 'time' : 'step' },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: seriesColor(i),
          fill: s.points ? seriesColor(i) : undefined,
          width: 1.25,
          points: { show: s.points ?? false, size: 6 },
          spanGaps: s.points ?? false,
        })),
      ],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  const empty = series.every((s) => s.x.length === 0);
  return (
    <figure className="chart" data-testid={testId} data-points={series.reduce((a, s) => a + s.x.length, 0)}>
      <figcaption>{title}</figcaption>
      <div ref={box} className="chart-box" />
      {empty && <div className="chart-empty">No data in this time range.</div>}
    </figure>
  );
}

function buildData(series: readonly ChartSeries[], xMode: 'time' | 'step', logY: boolean): uPlot.AlignedData {
  if (series.length === 0) return [[]];
  const scale = xMode === 'time' ? 1 / 1000 : 1;
  const tables: uPlot.AlignedData[] = series.map((s) => [
    s.x.map((x) => x * scale),
    s.y.map((y) => (y === null || !Number.isFinite(y) || (logY && y <= 0) ? null : y)),
  ]);
  return tables.length === 1 ? tables[0]! : uPlot.join(tables);
}
