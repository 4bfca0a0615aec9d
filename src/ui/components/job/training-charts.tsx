import { useMemo } from 'react';
import { toNumber } from '../../api';
import { fmtNumber } from '../../format';
import { curveSplit, groupCurves } from '../../lib/metrics';
import { emaSmooth } from '../../lib/smoothing';
import { JOB_GUTTERS } from '../../lib/time-axis';
import type { Curve } from '../../lib/types';
import { Chart, type ChartMarker, type ChartSeries, seriesColor, type XMode } from '../chart';
import { ErrorBox } from '../widgets';
import type { JobTimeline } from './timeline';

/** Labels that every curve of a job shares or that place it: not worth a legend entry. */
const PLACE_LABELS = new Set([
  '__name__',
  'job_id',
  'tenant',
  'rank',
  'local_rank',
  'node_id',
  'gpu',
  'gpu_uuid',
  'cluster',
  'region',
]);

/** The training curves, a chart per curve group, against time (on the page's axis) or step. */
export function TrainingCharts({
  curves,
  error,
  loaded,
  xMode,
  smooth,
  logY,
  timeline,
  stepMarkers,
}: {
  curves: readonly Curve[];
  error: unknown;
  loaded: boolean;
  xMode: XMode;
  smooth: number;
  logY: boolean;
  timeline: JobTimeline;
  stepMarkers: readonly ChartMarker[];
}) {
  const charts = useMemo(() => buildCurveCharts(curves, xMode, smooth), [curves, xMode, smooth]);
  const time = xMode === 'time';
  return (
    <>
      <h2>Training</h2>
      {error ? <ErrorBox error={error} what="the training curves" /> : null}
      {loaded && charts.length === 0 && !error && (
        <div className="empty small">
          This job reported no training metrics in this range (loss, accuracy, learning rate or custom ones
          via <code>tw.log</code>).
        </div>
      )}
      <div className="charts timeline">
        {charts.map((c) => (
          <Chart
            key={c.stem}
            title={c.title}
            testId={`chart-${c.stem}`}
            series={c.series}
            xMode={xMode}
            logY={logY}
            markers={time ? timeline.markers : stepMarkers}
            spans={time ? timeline.stallSpans : undefined}
            xEnd={time ? timeline.xEnd : undefined}
            xRange={time ? timeline.axis : undefined}
            gutters={JOB_GUTTERS}
            syncKey={time ? timeline.sync : `${timeline.sync}-step`}
            onZoom={time ? timeline.zoom : undefined}
            yFormat={(v) => fmtNumber(v)}
            emptyText={xMode === 'step' ? 'No step information (train_step) for these points.' : undefined}
          />
        ))}
      </div>
    </>
  );
}

interface CurveChart {
  stem: string;
  title: string;
  series: ChartSeries[];
}

/** One chart per curve group; with smoothing, each curve is drawn faint and its EMA on top in the same colour. */
function buildCurveCharts(curves: readonly Curve[], xMode: XMode, smooth: number): CurveChart[] {
  const metrics = [...new Set(curves.map((c) => c.metric))];
  let colorIndex = 0;
  const colorOf = new Map<string, string>();
  return groupCurves(metrics).map((g) => {
    const series: ChartSeries[] = [];
    for (const metric of g.metrics) {
      for (const c of curves.filter((x) => x.metric === metric)) {
        const key = `${metric}|${JSON.stringify(c.labels)}`;
        if (!colorOf.has(key)) colorOf.set(key, seriesColor(colorIndex++));
        const color = colorOf.get(key)!;
        const split = curveSplit(metric) || metric;
        const extra = Object.entries(c.labels)
          .filter(([k]) => !PLACE_LABELS.has(k))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        const label = `${split}${extra ? ` ${extra}` : ''}`;
        let x: number[] = c.t;
        let y = c.v.map(toNumber);
        if (xMode === 'step') {
          const xs: number[] = [];
          const ys: (number | null)[] = [];
          let last = Number.NEGATIVE_INFINITY;
          c.t.forEach((_, i) => {
            const s = c.step?.[i];
            if (s === null || s === undefined || s <= last) return;
            last = s;
            xs.push(s);
            ys.push(y[i]!);
          });
          x = xs;
          y = ys;
        }
        const sparse = x.length < 50 && curveSplit(metric) !== 'train';
        if (smooth > 0 && !sparse) {
          series.push({ label: `${label} (raw)`, x, y, color, faint: true, hideInLegend: true });
          series.push({ label, x, y: emaSmooth(y, smooth), color });
        } else series.push({ label, x, y, color, points: sparse });
      }
    }
    return { stem: g.stem, title: g.title, series };
  });
}
