import { JOB_GUTTERS } from '../../lib/time-axis';
import type { SpreadResponse } from '../../lib/types';
import type { ChartMarker, ChartSeries, ChartSpan } from '../chart';
import type { HeatmapMarker } from '../heatmap';

/** The page's one time axis, shared by every time chart and heatmap of a job page. */
export interface JobTimeline {
  /** The x-range every chart spans (ms). */
  readonly axis: { readonly start: number; readonly end: number };
  readonly markers: readonly ChartMarker[];
  readonly heatMarkers: readonly HeatmapMarker[];
  readonly stallSpans: readonly ChartSpan[];
  /** A stalled job's charts run up to now: the empty stretch after the last point is the hang. */
  readonly xEnd: number | undefined;
  /** The cursor-sync key of the page's time charts. */
  readonly sync: string;
  /** Drag-to-zoom: writes the range into the URL. */
  readonly zoom: (from: number, to: number) => void;
}

/** What a time chart of a job page takes from the page's axis: its range, event markers, cursor sync and zoom. */
export function timeChartProps(t: JobTimeline) {
  return {
    markers: t.markers,
    xEnd: t.xEnd,
    xRange: t.axis,
    gutters: JOB_GUTTERS,
    syncKey: t.sync,
    onZoom: t.zoom,
  };
}

/** What a heatmap of a job page takes from the page's axis: its range and event markers (no cursor sync). */
export function heatmapTimelineProps(t: JobTimeline) {
  return { markers: t.heatMarkers, rangeStart: t.axis.start, rangeEnd: t.axis.end, gutters: JOB_GUTTERS };
}

/** Series of a spread answer sharing one x array (no join needed), for the given statistics. */
export function spreadSeries(
  s: SpreadResponse | null,
  stats: readonly ('min' | 'max' | 'mean' | 'sum')[],
  what: string,
): ChartSeries[] {
  if (!s || s.count.every((c) => c === 0)) return [];
  const colors: Record<string, string> = { mean: '#4e9af1', sum: '#4e9af1', max: '#f1a14e', min: '#5cc98b' };
  return stats.map((k) => ({
    label: k === 'sum' || stats.length === 1 ? what : `${k}`,
    x: s.t,
    y: s[k],
    color: colors[k],
  }));
}
