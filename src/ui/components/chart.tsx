import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import { useTheme } from '../hooks/use-theme';
import { type PlotGutters, type TimeTicks, timeTicks } from '../lib/time-axis';

export interface ChartSeries {
  readonly label: string;
  /** X values in ascending order: ms for time charts, steps for step charts, seconds for elapsed charts. */
  readonly x: readonly number[];
  readonly y: readonly (number | null)[];
  /** Draw each point: for sparse series such as evaluation results, which lines between gaps would hide. */
  readonly points?: boolean;
  readonly color?: string;
  /** Drawn thin and translucent: the raw curve behind its smoothed line. */
  readonly faint?: boolean;
  readonly width?: number;
  readonly dash?: readonly number[];
  /** Not in the legend (e.g. a band's edges). */
  readonly hideInLegend?: boolean;
}

/** A filled band between two series (by index in `series`), e.g. min..max across 512 GPUs. */
export interface ChartBand {
  readonly upper: number;
  readonly lower: number;
  readonly color: string;
}

export interface ChartMarker {
  /** In the chart's x unit (ms for time charts). */
  readonly x: number;
  readonly color: string;
  readonly label: string;
}

/** A shaded stretch of the x axis, e.g. a stall from the last step to now. */
export interface ChartSpan {
  /** In the chart's x unit (ms for time charts). */
  readonly from: number;
  readonly to: number;
  readonly color: string;
  readonly label: string;
}

export type XMode = 'time' | 'step' | 'elapsed';

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
  readonly bands?: readonly ChartBand[];
  readonly markers?: readonly ChartMarker[];
  /** Shaded spans (a stall), drawn under the markers. */
  readonly spans?: readonly ChartSpan[];
  /**
   * The x axis reaches at least this far (chart units): a hung job's curves stop at the hang, and the
   * empty stretch up to now is the news.
   */
  readonly xEnd?: number;
  /**
   * A time chart's fixed x-range (ms): the page's window, the same for every chart of the page, so that a
   * moment sits in the same pixel column in all of them (xEnd still stretches it). Without it the axis
   * fits the data.
   */
  readonly xRange?: { readonly start: number; readonly end: number };
  /** Fixed gutters around the plot area, shared by a page's charts and heatmaps (default: uPlot's). */
  readonly gutters?: PlotGutters;
  /**
   * A scrollable legend below the chart, a row per series with its colour and value under the cursor, each
   * a toggle of the series' visibility (for many series, where uPlot's inline legend gives up).
   */
  readonly legendList?: boolean;
  readonly xMode?: XMode;
  readonly logY?: boolean;
  readonly height?: number;
  readonly yFormat?: (v: number) => string;
  readonly testId?: string;
  /** Charts with the same key move their cursors together. */
  readonly syncKey?: string;
  /** Dragging across a time chart selects a range (ms); without it, dragging zooms the chart alone. */
  readonly onZoom?: (from: number, to: number) => void;
  /** Shown in place of the chart while there is nothing to draw. */
  readonly emptyText?: string;
  /** While the data is on its way, an empty chart says so instead of 'no data'. */
  readonly loading?: boolean;
  readonly subtitle?: React.ReactNode;
}

function formatElapsed(s: number): string {
  const a = Math.abs(s);
  if (a < 120) return `${Math.round(s)}s`;
  if (a < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(a < 36000 ? 1 : 0)}h`;
}

/**
 * A uPlot line chart. Series with different x values are merged onto one x axis (uPlot.join); NaN values
 * (a diverged loss) are gaps. The chart is rebuilt only when its shape changes (series, scales, theme) and
 * otherwise updated in place with setData, so live updates stay cheap. Markers (alerts, the `t` of a link)
 * are drawn as vertical lines over the plot.
 */
export function Chart({
  title,
  series,
  bands = [],
  markers = [],
  spans = [],
  xEnd,
  xRange,
  gutters,
  legendList = false,
  xMode = 'time',
  logY = false,
  height = 220,
  yFormat,
  testId,
  syncKey,
  onZoom,
  emptyText = 'No data in this time range.',
  loading = false,
  subtitle,
}: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const markersRef = useRef(markers);
  markersRef.current = markers;
  const spansRef = useRef(spans);
  spansRef.current = spans;
  const xEndRef = useRef(xEnd);
  xEndRef.current = xEnd;
  const xRangeRef = useRef(xRange);
  xRangeRef.current = xRange;
  const fig = useRef<HTMLElement>(null);
  /** Series hidden from the legend list, by label. */
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const hiddenRef = useRef(hidden);
  hiddenRef.current = hidden;
  /** The data index under the cursor, for the legend list's values. */
  const [cursorIdx, setCursorIdx] = useState<number | null>(null);
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;
  const theme = useTheme();
  const xScale = xMode === 'time' ? 1 / 1000 : 1;
  const shape = `${theme}|${xMode}|${logY}|${!!onZoom}|${syncKey}|${legendList}|${!!xRange}|${JSON.stringify(gutters)}|${JSON.stringify(bands)}|${series
    .map((s) => `${s.label}/${s.color}/${s.faint}/${s.points}/${s.hideInLegend}`)
    .join('\u0000')}`;
  const data = buildData(series, xScale, logY);

  // biome-ignore lint/correctness/useExhaustiveDependencies: rebuilt per shape; data goes through setData
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    // Canvas strokes cannot use CSS variables: resolve the theme's colours once per build.
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue('--fg-muted').trim() || '#888';
    const grid = css.getPropertyValue('--grid').trim() || '#333';
    const drawMarkers = (u: uPlot) => {
      const ms = markersRef.current;
      const sp = spansRef.current;
      if (ms.length === 0 && sp.length === 0) return;
      const ctx = u.ctx;
      const { left, top, width, height: h } = u.bbox;
      ctx.save();
      for (const s of sp) {
        const x0 = Math.max(left, u.valToPos(s.from * xScale, 'x', true));
        const x1 = Math.min(left + width, u.valToPos(s.to * xScale, 'x', true));
        if (!(x1 > x0)) continue;
        ctx.globalAlpha = 0.14;
        ctx.fillStyle = s.color;
        ctx.fillRect(x0, top, x1 - x0, h);
        ctx.globalAlpha = 1;
        // uPlot leaves the alignment of its last axis label on the context: the span's label starts at it.
        ctx.font = `${11 * devicePixelRatio}px sans-serif`;
        ctx.textAlign = 'left';
        ctx.textBaseline = 'top';
        ctx.fillText(s.label, x0 + 4 * devicePixelRatio, top + 4 * devicePixelRatio);
      }
      ctx.lineWidth = Math.max(1, devicePixelRatio);
      for (const m of ms) {
        const x = Math.round(u.valToPos(m.x * xScale, 'x', true));
        if (x < left || x > left + width) continue;
        ctx.strokeStyle = m.color;
        ctx.fillStyle = m.color;
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + h);
        ctx.stroke();
        ctx.setLineDash([]);
        const s = 5 * devicePixelRatio;
        ctx.beginPath();
        ctx.moveTo(x - s, top);
        ctx.lineTo(x + s, top);
        ctx.lineTo(x, top + s * 1.4);
        ctx.closePath();
        ctx.fill();
      }
      ctx.restore();
    };
    let ticks: TimeTicks | null = null;
    let yTicks: string[] = [];
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: {
        x: {
          time: xMode === 'time',
          // Auto-ranged to the data, but reaching xEnd when given (drawn up to now past a hang).
          range: (_u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax => {
            const end = xEndRef.current;
            const fixed = xMode === 'time' ? xRangeRef.current : undefined;
            if (fixed) {
              const hi = Math.max(fixed.end, end ?? fixed.end);
              return [fixed.start * xScale, hi * xScale];
            }
            const hi = end !== undefined && max !== null ? Math.max(max, end * xScale) : max;
            return [min, hi];
          },
        },
        y: logY ? { distr: 3 } : {},
      },
      legend: { show: !legendList && series.filter((s) => !s.hideInLegend).length <= 12, live: true },
      ...(gutters ? { padding: [8, gutters.right, 0, 0] as uPlot.Padding } : {}),
      cursor: {
        drag: { x: true, y: false, setScale: !onZoom },
        ...(syncKey ? { sync: { key: syncKey } } : {}),
      },
      bands: bands.map((b) => ({ series: [b.upper + 1, b.lower + 1] as [number, number], fill: b.color })),
      axes: [
        {
          stroke: muted,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          ...(xMode === 'elapsed' ? { values: (_u: uPlot, vals: number[]) => vals.map(formatElapsed) } : {}),
          // Time ticks from the page's one generator (heatmaps use it too): same times, same labels.
          ...(xMode === 'time'
            ? {
                splits: (u: uPlot, _axis: number, min: number, max: number) => {
                  ticks = timeTicks(min / xScale, max / xScale, u.bbox.width / uPlot.pxRatio);
                  return ticks.t.map((t) => t * xScale);
                },
                values: (_u: uPlot, vals: number[]) =>
                  ticks && ticks.t.length === vals.length ? [...ticks.labels] : vals.map(() => ''),
              }
            : {}),
        },
        {
          stroke: muted,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          size: gutters?.left ?? 64,
          values: (_u: uPlot, vals: number[]) => {
            yTicks = vals.map((v) => (v === null ? '' : yFormat ? yFormat(v) : fmtTick(v)));
            return yTicks;
          },
        },
      ],
      series: [
        {
          label: xMode === 'time' ? 'time' : xMode === 'step' ? 'step' : 'elapsed',
          ...(xMode === 'elapsed'
            ? { value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatElapsed(v)) }
            : {}),
        },
        ...series.map((s, i) => {
          const color = s.color ?? seriesColor(i);
          return {
            label: s.label,
            stroke: s.faint ? `${color}55` : color,
            width: s.width ?? (s.faint ? 1 : 1.5),
            dash: s.dash ? [...s.dash] : undefined,
            points: { show: s.points ?? false, size: 6, fill: color },
            spanGaps: s.points ?? false,
            show: true,
            ...(yFormat ? { value: (_u: uPlot, v: number | null) => (v === null ? '—' : yFormat(v)) } : {}),
          };
        }),
      ],
      hooks: {
        draw: [
          drawMarkers,
          (u) => {
            // For tests: the x-range and ticks as drawn (ms), beside the plot area (.u-over).
            const f = fig.current;
            const x = u.scales.x;
            if (!f || x?.min == null || x.max == null) return;
            f.dataset.xMin = String(x.min / xScale);
            f.dataset.xMax = String(x.max / xScale);
            if (ticks) f.dataset.xTicks = ticks.labels.join(',');
            f.dataset.yTicks = yTicks.join('|');
          },
        ],
        // Only the legend list shows values outside uPlot: other charts skip a React render per mouse move.
        setLegend: legendList ? [(u) => setCursorIdx(u.legend.idx ?? null)] : [],
        setSelect: [
          (u) => {
            const zoom = zoomRef.current;
            if (!zoom || u.select.width < 4) return;
            const from = u.posToVal(u.select.left, 'x') / xScale;
            const to = u.posToVal(u.select.left + u.select.width, 'x') / xScale;
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoom(from, to);
          },
        ],
      },
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    u.over.dataset.plotArea = '1';
    series.forEach((s, i) => {
      if (hiddenRef.current.has(s.label)) u.setSeries(i + 1, { show: false });
    });
    // uPlot has no per-series legend switch: hide the rows of series drawn only as a backdrop.
    const rows = u.root.querySelectorAll<HTMLElement>('.u-legend .u-series');
    series.forEach((s, i) => {
      if (s.hideInLegend && rows[i + 1]) rows[i + 1]!.style.display = 'none';
    });
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [shape, height]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(data);
  });

  // biome-ignore lint/correctness/useExhaustiveDependencies: markers are read through a ref when drawing
  useEffect(() => {
    plot.current?.redraw(false, true);
  }, [JSON.stringify(markers), JSON.stringify(spans)]);

  // A new page window or end: the x scale's range function reads them through refs.
  const xStart = xRange?.start;
  const xStop = xRange?.end;
  // biome-ignore lint/correctness/useExhaustiveDependencies: the range's ends are read through xRangeRef
  useEffect(() => {
    const u = plot.current;
    if (!u || xMode !== 'time' || (xStart === undefined && xEnd === undefined)) return;
    u.setData(u.data, true);
  }, [xStart, xStop, xEnd, xMode]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: series are matched by label
  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    series.forEach((s, i) => {
      const show = !hidden.has(s.label);
      if (u.series[i + 1] && u.series[i + 1]!.show !== show) u.setSeries(i + 1, { show });
    });
  }, [hidden]);

  const points = series.reduce((a, s) => a + s.x.length, 0);
  let lastX: number | undefined;
  for (const s of series)
    if (s.x.length) lastX = Math.max(lastX ?? Number.NEGATIVE_INFINITY, s.x[s.x.length - 1]!);
  // Same shape as heatmap.tsx: Heatmap's figure: both expose their state as data-* attributes for tests; the facts differ.
  return (
    <figure
      ref={fig}
      className="chart"
      data-testid={testId}
      data-points={points}
      data-series={series.filter((s) => !s.hideInLegend).length}
      data-last-x={lastX}
      data-x-end={xEnd}
      data-spans={spans.length > 0 ? spans.map((s) => s.label).join(' | ') : undefined}
    >
      <figcaption>
        {title}
        {subtitle && <span className="chart-subtitle">{subtitle}</span>}
      </figcaption>
      <div ref={box} className="chart-box" />
      {points === 0 && <div className="chart-empty">{loading ? 'Loading…' : emptyText}</div>}
      {legendList && points > 0 && (
        <LegendList
          series={series}
          data={data}
          cursorIdx={cursorIdx}
          hidden={hidden}
          onToggle={(label) =>
            setHidden((h) => {
              const next = new Set(h);
              if (!next.delete(label)) next.add(label);
              return next;
            })
          }
          onShowOnly={(label) =>
            setHidden((h) => {
              const others = series.filter((s) => s.label !== label && !s.hideInLegend).map((s) => s.label);
              // Showing only this one again restores every series (as Grafana's click does).
              const isolated = !h.has(label) && others.every((o) => h.has(o));
              return new Set(isolated ? [] : others);
            })
          }
          format={yFormat}
        />
      )}
    </figure>
  );
}

const TICK_NUMBER = new Intl.NumberFormat();
/** As uPlot's own y tick labels when no format is given: locale numbers. */
function fmtTick(v: number): string {
  return TICK_NUMBER.format(v);
}

function buildData(series: readonly ChartSeries[], xScale: number, logY: boolean): uPlot.AlignedData {
  if (series.length === 0) return [[]];
  const clean = (y: number | null) => (y === null || !Number.isFinite(y) || (logY && y <= 0) ? null : y);
  // Series sharing one x array (band charts from one server answer) need no join.
  const x0 = series[0]!.x;
  if (series.every((s) => s.x === x0)) {
    return [
      xScale === 1 ? (x0 as number[]) : x0.map((x) => x * xScale),
      ...series.map((s) => s.y.map(clean)),
    ];
  }
  const tables: uPlot.AlignedData[] = series.map((s) => [
    xScale === 1 ? (s.x as number[]) : s.x.map((x) => x * xScale),
    s.y.map(clean),
  ]);
  return tables.length === 1 ? tables[0]! : uPlot.join(tables);
}

/** The legend list: scrollable, one toggle per series, with its value under the cursor (else its last). */
function LegendList({
  series,
  data,
  cursorIdx,
  hidden,
  onToggle,
  onShowOnly,
  format = (v) => String(v),
}: {
  series: readonly ChartSeries[];
  data: uPlot.AlignedData;
  cursorIdx: number | null;
  hidden: ReadonlySet<string>;
  onToggle: (label: string) => void;
  onShowOnly: (label: string) => void;
  format?: (v: number) => string;
}) {
  const shown = series.filter((s) => !s.hideInLegend).length - hidden.size;
  const valueAt = (i: number): string => {
    const ys = data[i + 1] as (number | null | undefined)[] | undefined;
    if (!ys) return '—';
    let v: number | null | undefined;
    if (cursorIdx !== null) v = ys[cursorIdx];
    else for (let k = ys.length - 1; k >= 0 && (v === null || v === undefined); k--) v = ys[k];
    return v === null || v === undefined ? '—' : format(v);
  };
  return (
    <div className="series-legend" data-testid="series-legend">
      <div className="series-legend-head small muted">
        {shown} of {series.filter((s) => !s.hideInLegend).length} series shown · click to hide or show,
        double-click to show only one
      </div>
      <ul>
        {series.map((s, i) =>
          s.hideInLegend ? null : (
            <li key={s.label}>
              <button
                type="button"
                className="series-toggle"
                aria-pressed={!hidden.has(s.label)}
                data-series-label={s.label}
                onClick={() => onToggle(s.label)}
                onDoubleClick={() => onShowOnly(s.label)}
              >
                <span className="swatch" style={{ background: s.color ?? seriesColor(i) }} />
                <span className="series-name">{s.label}</span>
                <span className="series-value">{valueAt(i)}</span>
              </button>
            </li>
          ),
        )}
      </ul>
    </div>
  );
}
