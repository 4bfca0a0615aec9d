import { fmtNumber } from '../../format';
import type { SpreadResponse } from '../../lib/types';
import { Chart } from '../chart';
import { type JobTimeline, spreadSeries, timeChartProps } from './timeline';

/** Throughput summed over ranks, and step time: the mean with the slowest and fastest rank as a band. */
export function ThroughputCharts({
  throughput,
  throughputError,
  stepTime,
  hasTokens,
  timeline,
}: {
  throughput: SpreadResponse | null;
  throughputError: unknown;
  stepTime: SpreadResponse | null;
  hasTokens: boolean;
  timeline: JobTimeline;
}) {
  const throughputSeries = spreadSeries(
    throughput,
    ['sum'],
    hasTokens ? 'tokens/s (all ranks)' : 'samples/s (all ranks)',
  );
  const stepSeries = spreadSeries(stepTime, ['mean', 'max', 'min'], 'step time');
  return (
    <>
      <h2>Throughput</h2>
      <div className="charts timeline">
        <Chart
          title={hasTokens ? 'Tokens per second' : 'Samples per second'}
          testId="chart-throughput"
          series={throughputSeries}
          {...timeChartProps(timeline)}
          spans={timeline.stallSpans}
          yFormat={(v) => fmtNumber(v)}
          subtitle="sum over ranks"
          emptyText={throughputError ? 'Could not load throughput.' : 'No throughput reported in this range.'}
        />
        <Chart
          title="Step time"
          testId="chart-step-time"
          series={stepSeries}
          bands={stepSeries.length === 3 ? [{ upper: 1, lower: 2, color: '#f1a14e22' }] : []}
          {...timeChartProps(timeline)}
          spans={timeline.stallSpans}
          yFormat={(v) => `${fmtNumber(v)}s`}
          subtitle="mean, slowest and fastest rank"
          emptyText="No step durations (train_step_duration_seconds) in this range."
        />
      </div>
    </>
  );
}
