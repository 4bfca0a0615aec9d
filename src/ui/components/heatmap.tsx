import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useTheme } from '../hooks/use-theme';
import { rangeColorTable, scalePosition, type ValueRange } from '../lib/color-scale';
import { HEALTH_COLORS, healthTable, type ScaleName, scaleCss } from '../lib/colors';
import { cellValue, type HeatmapRowInfo, type Matrix, NO_DATA } from '../lib/matrix';
import { type PlotGutters, timeTicks } from '../lib/time-axis';

export interface HeatmapHighlight {
  readonly label: string;
  readonly color: string;
}

export interface HeatmapMarker {
  readonly t: number;
  readonly color: string;
  readonly label: string;
}

interface HeatmapProps {
  readonly title: string;
  readonly matrix: Matrix | null;
  /** Matrix rows to draw, in this order (default: all, in the matrix's order). */
  readonly rowOrder?: readonly number[];
  readonly rowLabel: (row: HeatmapRowInfo) => string;
  /** Extra lines for the tooltip of a row. */
  readonly rowDetail?: (row: HeatmapRowInfo) => string;
  readonly scale: ScaleName | 'health';
  /** Replaces the matrix's cells (same shape), e.g. health levels 0..3 with 255 for no data. */
  readonly cells?: Uint8Array | null;
  readonly valueFormat: (v: number) => string;
  /** By matrix row index. */
  readonly highlights?: ReadonlyMap<number, HeatmapHighlight>;
  readonly markers?: readonly HeatmapMarker[];
  /** The time extent drawn (ms), so that the heatmap lines up with the charts of the page. */
  readonly rangeStart: number;
  readonly rangeEnd: number;
  /** Fixed gutters, the same as the page's charts' (default: the row labels' width on the left). */
  readonly gutters?: PlotGutters;
  /**
   * The values the colour scale spans (e.g. the cells' robust range); default: the matrix's lo..hi as the
   * server scaled it.
   */
  readonly colorRange?: ValueRange | null;
  readonly onSelect?: (matrixRow: number, t: number) => void;
  readonly maxHeight?: number;
  readonly testId?: string;
  readonly emptyText?: string;
  readonly legend?: React.ReactNode;
  readonly loading?: boolean;
}

const AXIS_HEIGHT = 20;
const HEALTH_NAMES = ['healthy', 'info alert', 'warning alert', 'critical alert'];

/**
 * A canvas heatmap of rows × time: one pixel per cell painted through a colour lookup table into an
 * ImageData, then scaled onto the canvas without smoothing, so thousands of rows cost a few milliseconds.
 * Rows are at most 18 px and at least 1 px tall; beyond `maxHeight` the rows scroll. Hover or move with the
 * arrow keys for a cell's value; click or Enter opens the row.
 */
export function Heatmap({
  title,
  matrix,
  rowOrder,
  rowLabel,
  rowDetail,
  scale,
  cells,
  valueFormat,
  highlights,
  markers = [],
  rangeStart,
  rangeEnd,
  gutters,
  colorRange,
  onSelect,
  maxHeight = 420,
  testId,
  emptyText = 'No data in this time range.',
  legend,
  loading = false,
}: HeatmapProps) {
  const wrap = useRef<HTMLDivElement>(null);
  const figure = useRef<HTMLElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const axis = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(0);
  const [hover, setHover] = useState<{ row: number; col: number; x: number; y: number } | null>(null);
  const [focusCell, setFocusCell] = useState<{ row: number; col: number } | null>(null);
  const theme = useTheme();

  const order = useMemo(
    () => (rowOrder ? [...rowOrder] : matrix ? matrix.rows.map((_, i) => i) : []),
    [rowOrder, matrix],
  );
  const nRows = order.length;
  const rowH = Math.max(1, Math.min(18, Math.floor(maxHeight / Math.max(1, nRows))));
  const showLabels = rowH >= 10;
  // The label gutter fits the longest label drawn (every row's when rows are tall enough, else the
  // highlighted ones), within a third of the width.
  const gutter = useMemo(() => {
    if (gutters) return gutters.left;
    if (!matrix || width === 0) return 120;
    const ctx = measureContext();
    ctx.font = '600 12px system-ui, sans-serif';
    let widest = 40;
    const rowsToLabel = showLabels ? order : order.filter((r) => highlights?.has(r));
    for (const r of rowsToLabel.slice(0, 2000)) {
      const label = (highlights?.has(r) ? '▶ ' : '') + rowLabel(matrix.rows[r]!);
      widest = Math.max(widest, ctx.measureText(label).width);
    }
    return Math.round(Math.min(widest + 14, Math.max(80, width / 3)));
  }, [matrix, order, showLabels, highlights, rowLabel, width, gutters]);
  const plotW = Math.max(10, width - gutter - (gutters?.right ?? 4));
  const height = nRows * rowH;

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);

  const xOf = useCallback(
    (t: number) => gutter + ((t - rangeStart) / Math.max(1, rangeEnd - rangeStart)) * plotW,
    [gutter, plotW, rangeStart, rangeEnd],
  );
  const tOf = useCallback(
    (x: number) => rangeStart + ((x - gutter) / plotW) * (rangeEnd - rangeStart),
    [gutter, plotW, rangeStart, rangeEnd],
  );

  // Paint.
  // biome-ignore lint/correctness/useExhaustiveDependencies: theme changes the resolved CSS colours
  useEffect(() => {
    const c = canvas.current;
    if (!c || !matrix || width === 0 || nRows === 0) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = Math.max(1, Math.round(height * dpr));
    c.style.width = `${width}px`;
    c.style.height = `${height}px`;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue('--fg').trim() || '#ddd';
    const muted = css.getPropertyValue('--fg-muted').trim() || '#888';
    const noData = css.getPropertyValue('--bg-hover').trim() || '#222';
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = noData;
    ctx.fillRect(gutter, 0, plotW, height);

    // One pixel per cell, through the lookup table.
    const lut = scale === 'health' ? healthTable() : rangeColorTable(scale, matrix, colorRange ?? null);
    const src = cells ?? matrix.cells;
    const img = new ImageData(matrix.cols, nRows);
    const px = new Uint32Array(img.data.buffer);
    for (let r = 0; r < nRows; r++) {
      const from = order[r]! * matrix.cols;
      const to = r * matrix.cols;
      for (let col = 0; col < matrix.cols; col++) px[to + col] = lut[src[from + col]!]!;
    }
    const off = document.createElement('canvas');
    off.width = matrix.cols;
    off.height = nRows;
    off.getContext('2d')!.putImageData(img, 0, 0);
    ctx.save();
    ctx.beginPath();
    ctx.rect(gutter, 0, plotW, height);
    ctx.clip();
    ctx.imageSmoothingEnabled = false;
    const x0 = xOf(matrix.start);
    const x1 = xOf(matrix.start + matrix.cols * matrix.step);
    ctx.drawImage(off, 0, 0, matrix.cols, nRows, x0, 0, x1 - x0, height);

    // Alert markers and the `t` of a link.
    for (const m of markers) {
      const x = Math.round(xOf(m.t)) + 0.5;
      ctx.strokeStyle = m.color;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, height);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    // Highlighted rows (the straggler): an outline across the plot.
    if (highlights) {
      order.forEach((mr, r) => {
        const h = highlights.get(mr);
        if (!h) return;
        ctx.strokeStyle = h.color;
        ctx.lineWidth = 2;
        const y = r * rowH;
        ctx.strokeRect(gutter + 1, Math.max(1, y - 1), plotW - 2, Math.max(2, rowH + 2) - (y === 0 ? 0 : 0));
      });
    }
    if (focusCell) {
      const r = focusCell.row;
      const x = xOf(matrix.start + focusCell.col * matrix.step);
      ctx.strokeStyle = fg;
      ctx.lineWidth = 2;
      ctx.strokeRect(
        x,
        r * rowH,
        Math.max(3, xOf(matrix.start + matrix.step) - xOf(matrix.start)),
        Math.max(3, rowH),
      );
    }
    ctx.restore();

    // Row labels: every row when rows are tall enough, else only the highlighted ones.
    ctx.font = `${Math.min(12, Math.max(10, rowH - 3))}px system-ui, sans-serif`;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    order.forEach((mr, r) => {
      const h = highlights?.get(mr);
      if (!showLabels && !h) return;
      const row = matrix.rows[mr]!;
      const text = h ? `▶ ${rowLabel(row)}` : rowLabel(row);
      ctx.fillStyle = h ? h.color : muted;
      if (h) ctx.font = `600 ${Math.min(12, Math.max(10, rowH - 3))}px system-ui, sans-serif`;
      ctx.fillText(
        fitText(ctx, text, gutter - 8),
        gutter - 6,
        Math.min(height - 6, Math.max(6, r * rowH + rowH / 2)),
      );
      if (h) ctx.font = `${Math.min(12, Math.max(10, rowH - 3))}px system-ui, sans-serif`;
    });
    // For tests and the render benchmark: the matrix is on the canvas.
    figure.current?.setAttribute('data-painted', '1');
  }, [
    matrix,
    cells,
    order,
    width,
    height,
    rowH,
    scale,
    highlights,
    markers,
    focusCell,
    theme,
    rangeStart,
    rangeEnd,
    colorRange?.lo,
    colorRange?.hi,
  ]);

  // Time axis: the page's one tick generator, so that labels and times match its line charts'.
  // biome-ignore lint/correctness/useExhaustiveDependencies: theme changes the resolved CSS colours
  useEffect(() => {
    const c = axis.current;
    if (!c || width === 0) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = AXIS_HEIGHT * dpr;
    c.style.width = `${width}px`;
    c.style.height = `${AXIS_HEIGHT}px`;
    const ctx = c.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, AXIS_HEIGHT);
    const css = getComputedStyle(document.documentElement);
    ctx.fillStyle = css.getPropertyValue('--fg-muted').trim() || '#888';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    const ticks = timeTicks(rangeStart, rangeEnd, plotW);
    ctx.textAlign = 'center';
    ctx.strokeStyle = css.getPropertyValue('--grid').trim() || '#333';
    ctx.lineWidth = 1;
    for (let i = 0; i < ticks.t.length; i++) {
      const x = Math.round(xOf(ticks.t[i]!)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, 4);
      ctx.stroke();
      ctx.fillText(ticks.labels[i]!, x, 5);
    }
    const f = figure.current;
    if (f) {
      f.dataset.xMin = String(rangeStart);
      f.dataset.xMax = String(rangeEnd);
      f.dataset.xTicks = ticks.labels.join(',');
    }
  }, [width, rangeStart, rangeEnd, plotW, gutter, theme]);

  const cellAt = (x: number, y: number): { row: number; col: number } | null => {
    if (!matrix || x < gutter || x > gutter + plotW) return null;
    const row = Math.floor(y / rowH);
    const col = Math.floor((tOf(x) - matrix.start) / matrix.step);
    if (row < 0 || row >= nRows || col < 0 || col >= matrix.cols) return null;
    return { row, col };
  };

  const describeCell = (cell: { row: number; col: number }): { head: string; lines: string[] } | null => {
    if (!matrix) return null;
    const mr = order[cell.row]!;
    const row = matrix.rows[mr]!;
    const t = matrix.start + cell.col * matrix.step;
    const lines = [`${new Date(t).toLocaleString()} (+${Math.round(matrix.step / 1000)}s)`];
    const raw = (cells ?? matrix.cells)[mr * matrix.cols + cell.col]!;
    if (scale === 'health') {
      lines.push(raw === NO_DATA ? 'no data' : (HEALTH_NAMES[raw] ?? 'alert'));
      const v = cellValue(matrix, mr, cell.col);
      if (v !== null) lines.push(`utilization ${valueFormat(v)}`);
    } else {
      const v = cellValue(matrix, mr, cell.col);
      lines.push(v === null ? 'no data' : valueFormat(v));
    }
    const h = highlights?.get(mr);
    if (h) lines.push(h.label);
    if (rowDetail) lines.push(rowDetail(row));
    return { head: rowLabel(row), lines };
  };

  const onKey = (ev: React.KeyboardEvent) => {
    if (!matrix || nRows === 0) return;
    const cur = focusCell ?? { row: 0, col: matrix.cols - 1 };
    let { row, col } = cur;
    switch (ev.key) {
      case 'ArrowUp':
        row--;
        break;
      case 'ArrowDown':
        row++;
        break;
      case 'ArrowLeft':
        col--;
        break;
      case 'ArrowRight':
        col++;
        break;
      case 'PageUp':
        row -= 10;
        break;
      case 'PageDown':
        row += 10;
        break;
      case 'Home':
        col = 0;
        break;
      case 'End':
        col = matrix.cols - 1;
        break;
      case 'Enter':
      case ' ':
        if (onSelect && focusCell)
          onSelect(order[focusCell.row]!, matrix.start + focusCell.col * matrix.step);
        ev.preventDefault();
        return;
      case 'Escape':
        setFocusCell(null);
        return;
      default:
        return;
    }
    ev.preventDefault();
    row = Math.max(0, Math.min(nRows - 1, row));
    col = Math.max(0, Math.min(matrix.cols - 1, col));
    setFocusCell({ row, col });
    // Keep the focused row in view when the rows scroll.
    const scroller = canvas.current?.parentElement;
    if (scroller) {
      const y = row * rowH;
      if (y < scroller.scrollTop) scroller.scrollTop = y;
      else if (y + rowH > scroller.scrollTop + scroller.clientHeight)
        scroller.scrollTop = y + rowH - scroller.clientHeight;
    }
  };

  const tip = hover ? describeCell(hover) : null;
  const focusText = focusCell ? describeCell(focusCell) : null;
  const empty = !matrix || nRows === 0;
  const highlighted = highlights ? [...highlights.entries()] : [];

  // Same shape as chart.tsx: Chart's figure: both expose their state as data-* attributes for tests; the facts differ.
  return (
    <figure
      ref={figure}
      className="heatmap"
      data-testid={testId}
      data-rows={nRows}
      data-cols={matrix?.cols ?? 0}
      data-highlighted={highlighted.map(([r]) => (matrix ? rowLabel(matrix.rows[r]!) : '')).join('|')}
    >
      <figcaption>
        <span>{title}</span>
        {legend}
      </figcaption>
      <div ref={wrap} className="heatmap-wrap">
        <div className="heatmap-scroll" style={{ maxHeight }}>
          <canvas
            ref={canvas}
            className="heatmap-canvas"
            tabIndex={empty ? -1 : 0}
            role="img"
            aria-label={`${title}: ${nRows} rows. Use the arrow keys to read cells, Enter to open a row.`}
            onMouseMove={(ev) => {
              const r = ev.currentTarget.getBoundingClientRect();
              const cell = cellAt(ev.clientX - r.left, ev.clientY - r.top);
              setHover(
                cell
                  ? {
                      ...cell,
                      x: ev.clientX - r.left,
                      y: ev.clientY - r.top - (ev.currentTarget.parentElement?.scrollTop ?? 0),
                    }
                  : null,
              );
            }}
            onMouseLeave={() => setHover(null)}
            onClick={(ev) => {
              if (!onSelect || !matrix) return;
              const r = ev.currentTarget.getBoundingClientRect();
              const cell = cellAt(ev.clientX - r.left, ev.clientY - r.top);
              if (cell) onSelect(order[cell.row]!, matrix.start + cell.col * matrix.step);
            }}
            onKeyDown={onKey}
            style={{ cursor: onSelect ? 'pointer' : 'crosshair' }}
          />
        </div>
        {/* The plot area (for tests, and the same box as a chart's .u-over). */}
        <div
          className="heatmap-plot"
          data-plot-area="1"
          style={{ left: gutter, width: plotW, height: Math.min(height, maxHeight) }}
        />
        <canvas ref={axis} className="heatmap-axis" />
        {tip && hover && (
          <div
            className="heatmap-tip"
            style={{ left: Math.min(hover.x + 14, Math.max(0, width - 260)), top: hover.y + 14 }}
          >
            <strong>{tip.head}</strong>
            {tip.lines.map((l) => (
              <div key={l}>{l}</div>
            ))}
          </div>
        )}
        {empty && <div className="chart-empty">{loading ? 'Loading…' : emptyText}</div>}
      </div>
      <div className="sr-only" aria-live="polite">
        {focusText ? `${focusText.head}: ${focusText.lines.join(', ')}` : ''}
      </div>
      {!showLabels && nRows > 0 && (
        <div className="sub">{nRows} rows · hover or focus and use the arrow keys for details</div>
      )}
    </figure>
  );
}

let measurer: CanvasRenderingContext2D | null = null;
function measureContext(): CanvasRenderingContext2D {
  measurer ??= document.createElement('canvas').getContext('2d')!;
  return measurer;
}

function fitText(ctx: CanvasRenderingContext2D, text: string, max: number): string {
  if (ctx.measureText(text).width <= max) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(`…${text.slice(text.length - mid)}`).width <= max) lo = mid;
    else hi = mid - 1;
  }
  return `…${text.slice(text.length - lo)}`;
}

/** A colour bar from lo to hi for a heatmap's caption. */
export function ScaleLegend({
  scale,
  lo,
  hi,
  format,
  marker,
}: {
  scale: ScaleName;
  lo: number;
  hi: number;
  format: (v: number) => string;
  /** A reference value such as the GPU's total memory: a tick on the bar when inside, its value beside. */
  marker?: { readonly value: number; readonly label: string } | null;
}) {
  const stops = Array.from({ length: 11 }, (_, i) => `${scaleCss(scale, i / 10)} ${i * 10}%`).join(', ');
  const at =
    marker && marker.value >= lo && marker.value <= hi ? scalePosition(marker.value, { lo, hi }) : null;
  const text = marker ? `${marker.label} ${format(marker.value)}` : '';
  return (
    <span
      className="scale-legend"
      role="img"
      aria-label={`colour scale from ${format(lo)} to ${format(hi)}${marker ? `; ${text}` : ''}`}
      data-lo={lo}
      data-hi={hi}
    >
      <span>{format(lo)}</span>
      <span className="scale-bar" style={{ background: `linear-gradient(to right, ${stops})` }}>
        {at !== null && <span className="scale-marker" style={{ left: `${at * 100}%` }} />}
      </span>
      <span>{format(hi)}</span>
      {marker && (
        <span className="scale-total" data-testid="scale-total">
          {at === null && marker.value > hi ? '▶ ' : ''}
          {text}
        </span>
      )}
    </span>
  );
}

export function HealthLegend() {
  return (
    <span className="scale-legend">
      {['healthy', 'info', 'warning', 'critical'].map((name, i) => (
        <span key={name} className="health-key">
          <span className="swatch" style={{ background: HEALTH_COLORS[i] }} /> {name}
        </span>
      ))}
    </span>
  );
}
