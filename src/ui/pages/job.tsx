import { useEffect, useMemo, useState } from 'react';
import { fetchJob, fetchSeries, type JobSummary, type Series, subscribeSeries, toNumber } from '../api';
import { Chart, type ChartSeries } from '../components/chart';
import { StatusBadge, UtilBar } from '../components/widgets';
import { fmtAge, fmtInt, fmtNumber, fmtTime } from '../format';

/** Metrics the job page draws; fetched in one request and streamed live in one SSE connection. */
const PAGE_METRICS = [
  'train_loss',
  'eval_loss',
  'train_step',
  'gpu_utilization_ratio',
  'gpu_memory_used_bytes',
  'train_samples_per_second',
  'train_tokens_per_second',
];
const RANGE_MS = 60 * 60_000;
const POINTS = 1200;

type SeriesMap = Map<string, Series>;

function seriesKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function byMetric(all: SeriesMap, metric: string): Series[] {
  return [...all.values()].filter((s) => s.labels.__name__ === metric);
}

export function JobPage({ jobId }: { jobId: string }) {
  const [job, setJob] = useState<JobSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [data, setData] = useState<SeriesMap>(new Map());
  const [xMode, setXMode] = useState<'time' | 'step'>(() =>
    new URLSearchParams(location.search).get('x') === 'step' ? 'step' : 'time',
  );
  const [logY, setLogY] = useState(() => new URLSearchParams(location.search).get('log') === '1');

  useEffect(() => {
    const url = new URL(location.href);
    url.searchParams.set('x', xMode);
    if (logY) url.searchParams.set('log', '1');
    else url.searchParams.delete('log');
    history.replaceState(null, '', url);
  }, [xMode, logY]);

  // Job metadata, refreshed for its live numbers.
  useEffect(() => {
    const abort = new AbortController();
    const load = () =>
      fetchJob(jobId, abort.signal)
        .then((d) => {
          setJob(d.job);
          setError(null);
        })
        .catch((err: Error) => {
          if (!abort.signal.aborted) setError(err.message);
        });
    void load();
    const timer = setInterval(load, 5000);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, [jobId]);

  const running = job?.status === 'running' || job?.status === 'queued' || job?.status === 'stalled';
  const windowEnd = job ? (running ? Date.now() : (job.endMs ?? job.lastSampleMs ?? Date.now())) : null;

  // Initial load of the window, then live samples appended (for jobs that still run). Reloaded only when the
  // job changes state, not on every metadata refresh.
  // biome-ignore lint/correctness/useExhaustiveDependencies: windowEnd is read once per (job, running) pair
  useEffect(() => {
    if (windowEnd === null) return;
    const abort = new AbortController();
    const end = windowEnd;
    const start = end - RANGE_MS;
    let close: (() => void) | undefined;
    fetchSeries({ metric: PAGE_METRICS, labels: { job_id: jobId }, start, end, points: POINTS }, abort.signal)
      .then((d) => {
        if (abort.signal.aborted) return;
        const map: SeriesMap = new Map();
        for (const s of d.series) map.set(seriesKey(s.labels), s);
        setData(map);
        if (!running) return;
        close = subscribeSeries({ metric: PAGE_METRICS, labels: { job_id: jobId } }, end, (fresh) => {
          setData((prev) => appendLive(prev, fresh, Date.now() - RANGE_MS));
        });
      })
      .catch((err: Error) => {
        if (!abort.signal.aborted) setError(err.message);
      });
    return () => {
      abort.abort();
      close?.();
    };
  }, [jobId, running, job === null]);

  const charts = useMemo(() => buildCharts(data, xMode), [data, xMode]);

  if (error && !job)
    return (
      <div className="error">
        Cannot load job {jobId}: {error}
      </div>
    );
  if (!job) return <div className="empty">Loading {jobId}…</div>;

  return (
    <section className="page">
      <div className="page-head">
        <div>
          <h1>
            {job.name} <StatusBadge status={job.status} />
          </h1>
          <div className="sub">
            {job.jobId} · {job.project || 'no project'} · {job.owner || 'no owner'} ·{' '}
            {job.framework || 'unknown framework'} · world size {job.worldSize ?? '—'}
          </div>
        </div>
        <div className="tiles">
          <div className="tile">
            <div className="tile-value">{fmtInt(job.step)}</div>
            <div className="tile-label">step</div>
          </div>
          <div className="tile">
            <div className={`tile-value ${job.loss === 'NaN' ? 'bad' : ''}`}>{fmtNumber(job.loss, 4)}</div>
            <div className="tile-label">loss</div>
          </div>
          <div className="tile">
            <div className="tile-value">
              <UtilBar ratio={job.meanGpuUtilization} />
            </div>
            <div className="tile-label">mean GPU utilization ({job.gpus} GPUs)</div>
          </div>
          <div className="tile">
            <div className="tile-value">{fmtAge(job.startMs, job.endMs ?? undefined)}</div>
            <div className="tile-label">running time</div>
          </div>
        </div>
      </div>
      <div className="toolbar">
        <fieldset className="segmented" aria-label="X axis">
          <button type="button" aria-pressed={xMode === 'time'} onClick={() => setXMode('time')}>
            Time
          </button>
          <button type="button" aria-pressed={xMode === 'step'} onClick={() => setXMode('step')}>
            Step
          </button>
        </fieldset>
        <label className="check">
          <input type="checkbox" checked={logY} onChange={(e) => setLogY(e.target.checked)} /> log scale
          (loss)
        </label>
        {running && <span className="live-dot">live</span>}
      </div>
      <div className="charts">
        <Chart title="Loss" testId="chart-loss" series={charts.loss} xMode={xMode} logY={logY} />
        <Chart
          title="GPU utilization by GPU"
          testId="chart-gpu-util"
          series={charts.util}
          yFormat={(v) => `${Math.round(v * 100)}%`}
        />
        <Chart
          title={charts.throughputTitle}
          testId="chart-throughput"
          series={charts.throughput}
          yFormat={(v) => fmtNumber(v)}
        />
        <Chart
          title="GPU memory used by GPU"
          testId="chart-gpu-memory"
          series={charts.memory}
          yFormat={(v) => `${fmtNumber(v)}B`}
        />
      </div>
      <h2>Configuration</h2>
      <ConfigTable config={job.config} />
      <p className="sub">
        Started {fmtTime(job.startMs)} · last sample {fmtTime(job.lastSampleMs)}
        {job.tags.length > 0 && <> · tags: {job.tags.join(', ')}</>}
      </p>
    </section>
  );
}

function ConfigTable({ config }: { config: Record<string, unknown> }) {
  const entries = Object.entries(config).filter(([, v]) => v !== undefined && v !== null);
  if (entries.length === 0) return <p className="muted">This job reported no configuration.</p>;
  return (
    <table className="kv">
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th>{k}</th>
            <td>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function appendLive(prev: SeriesMap, fresh: Series[], keepAfter: number): SeriesMap {
  const next: SeriesMap = new Map(prev);
  for (const s of fresh) {
    const key = seriesKey(s.labels);
    const old = next.get(key);
    if (!old) {
      next.set(key, s);
      continue;
    }
    const last = old.t.length ? old.t[old.t.length - 1]! : -Infinity;
    let cut = 0;
    while (cut < old.t.length && old.t[cut]! < keepAfter) cut++;
    const t = old.t.slice(cut);
    const v = old.v.slice(cut);
    for (let i = 0; i < s.t.length; i++) {
      if (s.t[i]! > last) {
        t.push(s.t[i]!);
        v.push(s.v[i]!);
      }
    }
    next.set(key, { labels: s.labels, t, v });
  }
  return next;
}

function gpuLabel(l: Record<string, string>): string {
  return `${l.node_id ?? '?'}/gpu${l.gpu ?? '?'}`;
}

function buildCharts(data: SeriesMap, xMode: 'time' | 'step') {
  const toChart = (s: Series, label: string): ChartSeries => ({ label, x: s.t, y: s.v.map(toNumber) });
  const sortBy = (a: ChartSeries, b: ChartSeries) =>
    a.label.localeCompare(b.label, undefined, { numeric: true });

  // Loss: rank 0's training loss (or every rank's if rank 0 has none) and the eval loss.
  const trainLoss = byMetric(data, 'train_loss');
  const rank0 = trainLoss.filter((s) => s.labels.rank === '0');
  const lossSeries = [
    ...(rank0.length ? rank0 : trainLoss).map((s) =>
      toChart(s, rank0.length ? 'train' : `train rank ${s.labels.rank ?? ''}`),
    ),
    ...byMetric(data, 'eval_loss').map((s) => ({ ...toChart(s, 'eval'), points: true })),
  ];
  let loss = lossSeries;
  if (xMode === 'step') {
    const steps =
      byMetric(data, 'train_step').find((s) => s.labels.rank === '0') ?? byMetric(data, 'train_step')[0];
    loss = lossSeries.map((s) => toStepAxis(s, steps));
  }

  const util = byMetric(data, 'gpu_utilization_ratio')
    .map((s) => toChart(s, gpuLabel(s.labels)))
    .sort(sortBy);
  const memory = byMetric(data, 'gpu_memory_used_bytes')
    .map((s) => toChart(s, gpuLabel(s.labels)))
    .sort(sortBy);
  const tokens = byMetric(data, 'train_tokens_per_second');
  const throughputMetric = tokens.length ? tokens : byMetric(data, 'train_samples_per_second');
  const throughput = throughputMetric.map((s) => toChart(s, `rank ${s.labels.rank ?? '?'}`)).sort(sortBy);
  return {
    loss,
    util,
    memory,
    throughput,
    throughputTitle: tokens.length ? 'Tokens per second by rank' : 'Samples per second by rank',
  };
}

/** Re-plots a time series against the training step reported at (or just before) each timestamp. */
function toStepAxis(s: ChartSeries, steps: Series | undefined): ChartSeries {
  if (!steps || steps.t.length === 0) return { label: s.label, x: [], y: [] };
  const x: number[] = [];
  const y: (number | null)[] = [];
  let j = 0;
  let lastStep = -1;
  for (let i = 0; i < s.x.length; i++) {
    while (j + 1 < steps.t.length && steps.t[j + 1]! <= s.x[i]!) j++;
    if (steps.t[j]! > s.x[i]!) continue;
    const step = toNumber(steps.v[j]);
    if (step === null || !Number.isFinite(step) || step <= lastStep) continue;
    lastStep = step;
    x.push(step);
    y.push(s.y[i]!);
  }
  return { label: s.label, x, y, points: s.points };
}
