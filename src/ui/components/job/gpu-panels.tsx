import { useMemo } from 'react';
import { toNumber } from '../../api';
import { fmtNumber, fmtPercent } from '../../format';
import { robustRange } from '../../lib/color-scale';
import {
  GPU_DETAIL_METRIC_NAMES,
  type GpuDetailMetric,
  type LoadPhase,
  type PanelErrors,
  type Panels,
} from '../../lib/job-panels';
import { gpuRowLabel, remapHighlights, stragglerHighlights } from '../../lib/job-view';
import { rangeParams } from '../../lib/time-range';
import type { Alert, StragglerResponse } from '../../lib/types';
import { formatWithUnit, rangeFormatter, type Unit } from '../../lib/units';
import { Chart } from '../chart';
import { Heatmap, type HeatmapHighlight, ScaleLegend } from '../heatmap';
import { JobNodeLinks } from '../node-link';
import { ErrorBox } from '../widgets';
import type { SetParams } from './job-toolbar';
import { heatmapTimelineProps, type JobTimeline, spreadSeries, timeChartProps } from './timeline';

/** How each per-GPU detail metric (loaded by JobPanelsLoader) is drawn. */
const GPU_DETAIL: Record<
  GpuDetailMetric,
  { readonly title: string; readonly format: (v: number) => string }
> = {
  gpu_power_watts: { title: 'Power', format: (v) => `${fmtNumber(v)} W` },
  gpu_temperature_celsius: { title: 'Temperature', format: (v) => `${fmtNumber(v)} °C` },
  gpu_sm_clock_hertz: { title: 'SM clock', format: (v) => `${fmtNumber(v)}Hz` },
};
const GPU_DETAIL_METRICS = GPU_DETAIL_METRIC_NAMES.map((metric) => ({ metric, ...GPU_DETAIL[metric] }));

const BYTES: Unit = { base: 'bytes', perSecond: false, source: 'name' };
const fmtBytes = (v: number) => formatWithUnit(v, BYTES);

/**
 * The job's GPUs: rank × time heatmaps of utilization and memory with the straggler (or the GPUs that
 * firing alerts name) outlined, then power, temperature and SM clock per GPU (lines, or min–max bands).
 */
export function GpuPanels({
  jobId,
  panels,
  errors,
  loaded,
  firing,
  stragglers,
  timeline,
  setParams,
}: {
  jobId: string;
  panels: Panels;
  errors: PanelErrors;
  loaded: LoadPhase;
  firing: readonly Alert[];
  stragglers: StragglerResponse | null;
  timeline: JobTimeline;
  setParams: SetParams;
}) {
  const highlights = useMemo(
    () => stragglerHighlights(panels.util, firing, stragglers),
    [panels.util, firing, stragglers],
  );
  const memHighlights = useMemo(
    () => remapHighlights(panels.util, panels.memory, highlights),
    [panels.util, panels.memory, highlights],
  );
  // The memory heatmap's colours span its cells' robust range (2nd–98th percentile), not zero to the total:
  // ranks a few GB apart at 74 of 80 GB look different; the total is a marker on the legend.
  const memRange = useMemo(() => (panels.memory ? robustRange(panels.memory) : null), [panels.memory]);
  const { axis } = timeline;
  return (
    <>
      <h2>GPUs</h2>
      {errors.stragglers ? (
        <div className="note">Straggler scores unavailable: {(errors.stragglers as Error).message}</div>
      ) : null}
      <StragglerNote highlights={highlights} stragglers={stragglers} />
      <JobNodeLinks jobId={jobId} start={axis.start} end={axis.end} />
      <div className="heatmaps timeline">
        {/* Same shape as the memory heatmap below (gpu-panels.tsx: GpuPanels), with another metric, scale and legend. */}
        {errors.util ? (
          <ErrorBox error={errors.util} what="the utilization heatmap" />
        ) : (
          <Heatmap
            title="GPU utilization by rank"
            testId="gpu-util-heatmap"
            matrix={panels.util}
            scale="utilization"
            rowLabel={gpuRowLabel}
            rowDetail={(r) =>
              `mean ${fmtPercent(r.mean)} · recent ${fmtPercent(r.recentMean)} · z ${r.z === null ? '—' : r.z.toFixed(1)}`
            }
            valueFormat={fmtPercent}
            highlights={highlights}
            {...heatmapTimelineProps(timeline)}
            onSelect={(_r, t) =>
              setParams(
                { ...rangeParams({ kind: 'absolute', from: t - 5 * 60_000, to: t + 5 * 60_000 }) },
                true,
              )
            }
            legend={<ScaleLegend scale="utilization" lo={0} hi={1} format={fmtPercent} />}
            loading={!loaded}
            emptyText="No GPU utilization for this job in this range."
          />
        )}
        {/* Same shape as the utilization heatmap above (gpu-panels.tsx: GpuPanels), with another metric, scale and legend. */}
        {errors.memory ? (
          <ErrorBox error={errors.memory} what="the memory heatmap" />
        ) : (
          <Heatmap
            title="GPU memory used by rank"
            testId="gpu-memory-heatmap"
            matrix={panels.memory}
            scale="viridis"
            rowLabel={gpuRowLabel}
            rowDetail={(r) =>
              `mean ${r.mean === null ? '—' : fmtBytes(r.mean)} · now ${r.last === null ? '—' : fmtBytes(r.last)}`
            }
            valueFormat={fmtBytes}
            colorRange={memRange}
            highlights={memHighlights}
            {...heatmapTimelineProps(timeline)}
            legend={
              panels.memory && (
                <ScaleLegend
                  scale="viridis"
                  lo={memRange?.lo ?? panels.memory.lo}
                  hi={memRange?.hi ?? panels.memory.hi}
                  format={rangeFormatter(
                    memRange?.lo ?? panels.memory.lo,
                    memRange?.hi ?? panels.memory.hi,
                    BYTES,
                  )}
                  marker={panels.memoryTotal !== null ? { value: panels.memoryTotal, label: 'total' } : null}
                />
              )
            }
            loading={!loaded}
            emptyText="No GPU memory for this job in this range."
          />
        )}
      </div>
      <div className="charts timeline">
        {GPU_DETAIL_METRICS.map((m) => {
          const lines = panels.gpuLines?.filter((s) => s.labels.__name__ === m.metric) ?? null;
          const band = panels.gpuBands?.[m.metric] ?? null;
          const series = lines
            ? lines
                .map((s) => ({
                  label:
                    s.labels.rank !== undefined
                      ? `rank ${s.labels.rank}`
                      : `${s.labels.node_id}/gpu${s.labels.gpu}`,
                  x: s.t,
                  y: s.v.map(toNumber),
                }))
                .sort((a, b) => a.label.localeCompare(b.label, 'en', { numeric: true }))
            : spreadSeries(band, ['max', 'mean', 'min'], m.title.toLowerCase());
          return (
            <Chart
              key={m.metric}
              title={`${m.title} by GPU`}
              testId={`chart-${m.metric}`}
              series={series}
              bands={!lines && series.length === 3 ? [{ upper: 0, lower: 2, color: '#4e9af122' }] : []}
              {...timeChartProps(timeline)}
              yFormat={m.format}
              subtitle={lines || !band ? undefined : `min, mean and max of ${band.series} GPUs`}
              loading={loaded !== 'all'}
              height={180}
            />
          );
        })}
      </div>
    </>
  );
}

function StragglerNote({
  highlights,
  stragglers,
}: {
  highlights: ReadonlyMap<number, HeatmapHighlight>;
  stragglers: StragglerResponse | null;
}) {
  const first = [...highlights.values()][0];
  if (first)
    return (
      <p className="straggler-note" data-testid="straggler-note">
        <span className="swatch" style={{ background: first.color }} /> {first.label}
        {highlights.size > 1 ? ` and ${highlights.size - 1} more` : ''}
      </p>
    );
  if (stragglers && stragglers.ranks.length > 0)
    return (
      <p className="sub" data-testid="straggler-note">
        No straggler: every rank's step time is within 10% of the median (
        {fmtNumber(stragglers.medianSeconds)} s) or not an outlier.
      </p>
    );
  return null;
}
