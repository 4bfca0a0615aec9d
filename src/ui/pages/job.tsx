import type { ApiError } from '../api';
import type { XMode } from '../components/chart';
import { JobAlertStrip } from '../components/job/alert-strip';
import { GpuPanels } from '../components/job/gpu-panels';
import { JobDetails } from '../components/job/job-details';
import { JobHeader } from '../components/job/job-header';
import { JobToolbar } from '../components/job/job-toolbar';
import { ThroughputCharts } from '../components/job/throughput-charts';
import type { JobTimeline } from '../components/job/timeline';
import { TrainingCharts } from '../components/job/training-charts';
import { ErrorBox } from '../components/widgets';
import { useAlertMarkers, useJobAlerts, useJobHealth } from '../hooks/use-job-alerts';
import { useJobFacts } from '../hooks/use-job-facts';
import { useJobPanels } from '../hooks/use-job-panels';
import { useNow } from '../hooks/use-live';
import { throughputMetricOf } from '../lib/job-facts';
import { isLive, parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import { onLinkClick, useSearchParams } from '../router';

/**
 * One job: training curves against step or time (smoothing, log scale), throughput and step time, a rank ×
 * time heatmap of utilization and memory with the straggler outlined, per-GPU power, temperature and clocks,
 * alert markers, configuration and metadata — live while the job runs.
 *
 * The state lives in hooks: the job's answer (useJobFacts), the panels and their live tails
 * (useJobPanels), the alerts and what they say about the job (useJobAlerts, useJobHealth); the view
 * settings live in the URL. The panels are components of their own (components/job).
 */
export function JobPage({ jobId }: { jobId: string }) {
  const [params, setParams] = useSearchParams();
  const now = useNow(5000);
  const range: RangeSpec = parseRange(params, { kind: 'run' });
  const centre = params.get('t') ? Number(params.get('t')) : null;
  const paused = params.get('paused') === '1';
  const xMode: XMode = params.get('x') === 'step' ? 'step' : 'time';
  const logY = params.get('log') === '1';
  const smooth = Math.max(0, Math.min(0.99, Number(params.get('smooth') ?? '0') || 0));

  const { job, metrics, error: jobError, facts, factsVersion } = useJobFacts(jobId);
  const running = job ? job.endMs === null && job.status !== 'completed' && job.status !== 'failed' : false;
  const throughputMetric = throughputMetricOf(metrics);
  const { state, liveState } = useJobPanels({
    jobId,
    range,
    job,
    running,
    paused,
    facts,
    factsVersion,
    throughputMetric,
  });
  const { panels, errors, loaded, stragglers } = state;
  const { alerts, error: alertsError } = useJobAlerts(jobId, state.window?.start ?? null, paused);
  const { firing, health, status, cause, alertGroups, stallSpans } = useJobHealth(
    job,
    alerts,
    panels.curves,
    now,
  );
  const markers = useAlertMarkers(alerts, centre, panels.curves);

  if (jobError && !job) {
    const e = jobError as ApiError;
    return e.status === 404 ? (
      <div className="empty">
        <h2>No job {jobId}</h2>
        <p>
          This tenant has no job with that id. It may belong to another tenant, or its data has expired.{' '}
          <a href="/" onClick={onLinkClick}>
            Back to the fleet
          </a>
          .
        </p>
      </div>
    ) : (
      <ErrorBox error={jobError} what={`job ${jobId}`} />
    );
  }
  if (!job) return <div className="empty">Loading {jobId}…</div>;

  const live = isLive(range, running);
  const w = state.window ?? resolveRange(range, now, job);
  // The page's one time axis: every time chart and heatmap spans it, with the same gutters and ticks. While
  // live it reaches now (past a hang, the empty stretch is the news).
  const timeline: JobTimeline = {
    axis: { start: w.start, end: live ? Math.max(w.end, now) : w.end },
    markers: markers.time,
    heatMarkers: markers.heat,
    stallSpans,
    // A stalled job's charts run up to now: the empty stretch after the last point is the hang.
    xEnd: status === 'stalled' ? now : undefined,
    sync: `job-${jobId}`,
    zoom: (from, to) => setParams(rangeParams({ kind: 'absolute', from, to }), true),
  };

  return (
    <section className="page" aria-labelledby="job-title">
      <JobHeader
        job={job}
        status={status}
        cause={cause}
        health={health}
        alertsUnknown={!!alertsError}
        now={now}
      />
      {/* Same shape as the panels' props below (job.tsx: ThroughputCharts): each component takes the page state it shows. */}
      <JobToolbar
        jobId={jobId}
        range={range}
        resolved={w}
        xMode={xMode}
        smooth={smooth}
        logY={logY}
        liveState={live ? liveState : 'off'}
        paused={paused}
        setParams={setParams}
      />
      <JobAlertStrip groups={alertGroups} cause={cause} error={alertsError} now={now} />
      <TrainingCharts
        curves={panels.curves}
        error={errors.curves}
        loaded={!!loaded}
        xMode={xMode}
        smooth={smooth}
        logY={logY}
        timeline={timeline}
        stepMarkers={markers.step}
      />
      {/* Same shape as the toolbar's props above (job.tsx: JobToolbar): each component takes the page state it shows. */}
      <ThroughputCharts
        throughput={panels.throughput}
        throughputError={errors.throughput}
        stepTime={panels.stepTime}
        hasTokens={throughputMetric === 'train_tokens_per_second'}
        timeline={timeline}
      />
      <GpuPanels
        jobId={jobId}
        panels={panels}
        errors={errors}
        loaded={loaded}
        firing={firing}
        stragglers={stragglers}
        timeline={timeline}
        setParams={setParams}
      />
      <JobDetails job={job} metrics={metrics} status={status} cause={cause} />
    </section>
  );
}
