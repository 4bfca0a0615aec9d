import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  type ApiError,
  fetchAlertHistory,
  fetchCurves,
  fetchHeatmap,
  fetchJob,
  fetchSeries,
  fetchSpread,
  fetchStragglers,
  type JobSummary,
  type Series,
  toNumber,
} from '../api';
import {
  Chart,
  type ChartMarker,
  type ChartSeries,
  type ChartSpan,
  seriesColor,
  type XMode,
} from '../components/chart';
import { Heatmap, type HeatmapHighlight, type HeatmapMarker, ScaleLegend } from '../components/heatmap';
import { JobNodeLinks } from '../components/node-link';
import { RangePicker } from '../components/range-picker';
import { ErrorBox, HealthBadges, LiveIndicator, StatusBadge, Tile, UtilBar } from '../components/widgets';
import { fmtAge, fmtInt, fmtNumber, fmtPercent, fmtTime } from '../format';
import { useNow, usePoll, useTicks } from '../hooks/use-live';
import { groupAlerts } from '../lib/alert-groups';
import { alertLocation, alertStart, healthByJob, isSilenced, STALL_ALERT } from '../lib/alerts';
import {
  causeOfFailure,
  fmtSpan,
  healthWithCauses,
  jobStatusOf,
  lastStepChange,
  stallStartOf,
} from '../lib/causes';
import { dataExtent, robustRange } from '../lib/color-scale';
import { SEVERITY_COLORS } from '../lib/colors';
import { mergeCurves, mergeSeries, mergeSpread, stepAtTime } from '../lib/live-merge';
import { decodeMatrix, type HeatmapRowInfo, type Matrix, mergeMatrix } from '../lib/matrix';
import { curveSplit, groupCurves } from '../lib/metrics';
import { emaSmooth } from '../lib/smoothing';
import { JOB_GUTTERS } from '../lib/time-axis';
import { isLive, parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import type { Alert, Curve, SpreadResponse, StragglerResponse } from '../lib/types';
import { formatWithUnit, rangeFormatter, type Unit } from '../lib/units';
import { onLinkClick, useSearchParams } from '../router';

/** GPUs up to this many get a line each in the power/temperature/clock charts; more get a min–max band. */
const MAX_GPU_LINES = 16;
const STRAGGLER_REFRESH_MS = 10_000;
const GPU_DETAIL_METRICS = [
  { metric: 'gpu_power_watts', title: 'Power', format: (v: number) => `${fmtNumber(v)} W` },
  { metric: 'gpu_temperature_celsius', title: 'Temperature', format: (v: number) => `${fmtNumber(v)} °C` },
  { metric: 'gpu_sm_clock_hertz', title: 'SM clock', format: (v: number) => `${fmtNumber(v)}Hz` },
] as const;

const BYTES: Unit = { base: 'bytes', perSecond: false, source: 'name' };
const fmtBytes = (v: number) => formatWithUnit(v, BYTES);
/**
 * Below this many byte levels between the smallest and largest cell, the memory heatmap is asked again
 * with its scale set to the data's extent: bytes from zero give 73.8 GB and 73.9 GB of 80 the same byte.
 */
const MIN_HEAT_LEVELS = 64;
/** Live values that leave the memory heatmap's scale refit it at most this often. */
const MEMORY_REFIT_MS = 60_000;

function chartPoints(): number {
  return Math.max(200, Math.min(1200, Math.floor(window.innerWidth / 2)));
}
function heatCols(): number {
  return Math.max(200, Math.min(1400, Math.floor(window.innerWidth - 220)));
}

/** What loading the panels needs from the job's answer. */
interface JobFacts {
  /** The job's throughput metric: tokens per second when it reports them, else samples per second. */
  readonly throughputMetric: string;
  /** Few enough GPUs for a line each in the power, temperature and clock charts (else min–max bands). */
  readonly few: boolean;
}

function throughputMetricOf(metrics: readonly string[]): string {
  return metrics.includes('train_tokens_per_second') ? 'train_tokens_per_second' : 'train_samples_per_second';
}

function jobFactsOf(job: JobSummary, metrics: readonly string[]): JobFacts {
  return {
    throughputMetric: throughputMetricOf(metrics),
    few: Math.max(job.gpus, job.worldSize ?? 0) <= MAX_GPU_LINES,
  };
}

/** Everything the job page draws, apart from the job's metadata. */
interface Panels {
  curves: Curve[];
  throughput: SpreadResponse | null;
  stepTime: SpreadResponse | null;
  util: Matrix | null;
  memory: Matrix | null;
  /** The GPUs' total memory (bytes, the largest reported): the marker on the memory heatmap's legend. */
  memoryTotal: number | null;
  /** Per GPU lines (few GPUs) … */
  gpuLines: Series[] | null;
  /** … or one band per metric (many GPUs). */
  gpuBands: Record<string, SpreadResponse> | null;
}

const EMPTY: Panels = {
  curves: [],
  throughput: null,
  stepTime: null,
  util: null,
  memory: null,
  memoryTotal: null,
  gpuLines: null,
  gpuBands: null,
};

type PanelErrors = Partial<Record<keyof Panels | 'stragglers', unknown>>;

/**
 * One job: training curves against step or time (smoothing, log scale), throughput and step time, a rank ×
 * time heatmap of utilization and memory with the straggler outlined, per-GPU power, temperature and clocks,
 * alert markers, configuration and metadata — live while the job runs.
 */
export function JobPage({ jobId }: { jobId: string }) {
  const [params, setParams] = useSearchParams();
  const now = useNow(5000);
  const range: RangeSpec = parseRange(params, { kind: 'run' });
  const centre = params.get('t') ? Number(params.get('t')) : null;
  const rangeKey = JSON.stringify(range);
  const paused = params.get('paused') === '1';
  const xMode: XMode = params.get('x') === 'step' ? 'step' : 'time';
  const logY = params.get('log') === '1';
  const smooth = Math.max(0, Math.min(0.99, Number(params.get('smooth') ?? '0') || 0));

  const [job, setJob] = useState<JobSummary | null>(null);
  const [metrics, setMetrics] = useState<string[]>([]);
  const [jobError, setJobError] = useState<unknown>(null);
  const [panels, setPanels] = useState<Panels>(EMPTY);
  const [errors, setErrors] = useState<PanelErrors>({});
  /** Nothing yet, the first view (everything above the per-GPU charts), or every panel. */
  const [loaded, setLoaded] = useState<false | 'view' | 'all'>(false);
  const [window_, setWindow] = useState<{ start: number; end: number } | null>(null);
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [alertsError, setAlertsError] = useState<ApiError | null>(null);
  const [stragglers, setStragglers] = useState<StragglerResponse | null>(null);
  const panelsRef = useRef(panels);
  panelsRef.current = panels;
  const reloadNeeded = useRef(false);
  /** When the memory heatmap's scale was last fitted again because live values left it. */
  const memoryFittedAt = useRef(0);

  /**
   * What a load needs from the job's answer (the throughput metric it reports, whether its GPUs get lines or
   * bands): the newest known, or a promise of the first answer. Loads start without waiting for the job,
   * and only the requests that need these wait for them.
   */
  const facts = useRef<{ current: JobFacts | null; waiters: ((f: JobFacts) => void)[]; jobId: string }>({
    current: null,
    waiters: [],
    jobId,
  });
  if (facts.current.jobId !== jobId) facts.current = { current: null, waiters: [], jobId };
  const jobFacts = useCallback((): Promise<JobFacts> => {
    const f = facts.current;
    return f.current ? Promise.resolve(f.current) : new Promise((resolve) => f.waiters.push(resolve));
  }, []);
  /** Bumped when the job's answer changes what a load fetches (e.g. a tokens/s metric appears): reload. */
  const [factsChanged, setFactsChanged] = useState(0);

  // Job metadata and its live numbers.
  usePoll(
    async (signal) => {
      try {
        const d = await fetchJob(jobId, signal);
        setJob(d.job);
        setMetrics(d.metrics);
        setJobError(null);
        const f = facts.current;
        const next = jobFactsOf(d.job, d.metrics);
        if (f.jobId !== jobId) return;
        if (f.current === null) {
          f.current = next;
          for (const w of f.waiters.splice(0)) w(next);
        } else if (f.current.throughputMetric !== next.throughputMetric || f.current.few !== next.few) {
          f.current = next;
          setFactsChanged((n) => n + 1);
        }
      } catch (err) {
        if (!signal.aborted) setJobError(err);
      }
    },
    5000,
    [jobId],
  );

  const running = job ? job.endMs === null && job.status !== 'completed' && job.status !== 'failed' : false;
  const throughputMetric = throughputMetricOf(metrics);
  const hasTokens = throughputMetric === 'train_tokens_per_second';
  const jobLabels = useMemo(() => ({ job_id: jobId }), [jobId]);

  /**
   * Loads every panel for a window in two phases: first what answers "is the run healthy" (curves,
   * throughput, step time with the straggler scores, the rank heatmaps), then the per-GPU power,
   * temperature and clocks, so that the first view is not held up by the 1,500 series below it.
   */
  const loadAll = useCallback(
    async (w: { start: number; end: number }, signal: AbortSignal) => {
      const points = chartPoints();
      const cols = heatCols();
      const heat = (metric: string) =>
        fetchHeatmap(
          {
            metric,
            start: w.start,
            end: w.end,
            by: ['node_id', 'gpu'],
            keep: ['rank'],
            cols,
            labels: jobLabels,
          },
          signal,
        ).then(decodeMatrix);
      const settle = async <T extends Record<string, Promise<unknown>>>(tasks: T) => {
        const keys = Object.keys(tasks);
        const results = await Promise.allSettled(keys.map((k) => tasks[k]!));
        const values: Record<string, unknown> = {};
        const errs: PanelErrors = {};
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') values[keys[i]!] = r.value;
          else (errs as Record<string, unknown>)[keys[i]!] = r.reason;
        });
        return { values, errs };
      };
      const first = {
        curves: fetchCurves(jobId, { start: w.start, end: w.end, points }, signal).then((d) => d.curves),
        throughput: jobFacts().then((f) =>
          fetchSpread(
            { metric: f.throughputMetric, start: w.start, end: w.end, cols: points, labels: jobLabels },
            signal,
          ),
        ),
        stepTime: fetchSpread(
          {
            metric: 'train_step_duration_seconds',
            start: w.start,
            end: w.end,
            cols: points,
            labels: jobLabels,
            stragglers: true,
          },
          signal,
        ),
        util: heat('gpu_utilization_ratio'),
        memory: heat('gpu_memory_used_bytes'),
      };
      // The per-GPU charts are asked for at once too: the server answers requests one after another, so
      // it works on them while the browser draws the first view instead of idling until that is done.
      const second = jobFacts().then(({ few }) =>
        settle({
          memory: first.memory.then(async (coarse) => {
            const ext = dataExtent(coarse);
            if (!ext || ext.levels >= MIN_HEAT_LEVELS) return coarse;
            // One level of margin each side: a cell's true value is within half a level of its byte's.
            const level = (coarse.hi - coarse.lo) / 254;
            return fetchHeatmap(
              {
                metric: 'gpu_memory_used_bytes',
                start: coarse.start,
                end: coarse.start + coarse.cols * coarse.step,
                step: coarse.step,
                by: ['node_id', 'gpu'],
                keep: ['rank'],
                lo: ext.lo - level,
                hi: ext.hi + level,
                labels: jobLabels,
              },
              signal,
            ).then(decodeMatrix);
          }),
          memoryTotal: fetchSpread(
            { metric: 'gpu_memory_total_bytes', start: w.start, end: w.end, cols: 20, labels: jobLabels },
            signal,
          ).then((t) => {
            let max: number | null = null;
            for (const v of t.max) if (v !== null && Number.isFinite(v) && (max === null || v > max)) max = v;
            return max;
          }),
          gpuLines: few
            ? fetchSeries(
                {
                  metric: GPU_DETAIL_METRICS.map((m) => m.metric),
                  labels: jobLabels,
                  start: w.start,
                  end: w.end,
                  points,
                },
                signal,
              ).then((d) => d.series)
            : Promise.resolve(null),
          gpuBands: few
            ? Promise.resolve(null)
            : Promise.all(
                GPU_DETAIL_METRICS.map((m) =>
                  fetchSpread(
                    { metric: m.metric, start: w.start, end: w.end, cols: points, labels: jobLabels },
                    signal,
                  ),
                ),
              ).then((list) => Object.fromEntries(list.map((x) => [x.metric, x]))),
        }),
      );
      const one = await settle(first);
      if (signal.aborted) return;
      setPanels({ ...EMPTY, ...(one.values as Partial<Panels>) });
      setErrors(one.errs);
      const st = (one.values.stepTime as SpreadResponse | undefined)?.stragglers;
      if (st) {
        setStragglers(st);
        stragglersAt.current = Date.now();
      }
      setWindow(w);
      setLoaded('view');
      reloadNeeded.current = false;
      const two = await second;
      if (signal.aborted) return;
      setPanels((p) => ({ ...p, ...(two.values as Partial<Panels>) }));
      setErrors((e) => ({ ...e, ...two.errs }));
      setLoaded('all');
    },
    [jobId, jobLabels, jobFacts],
  );

  // Full load when the job, the range or what the job's answer says to fetch changes. Only the whole-run
  // range needs the job (its start and end) before it can start; whether the job runs changes that range
  // only, as the live end of a running job becomes the job's end.
  const needsJob = range.kind === 'run';
  const rangeReady = !needsJob || job !== null;
  const runKey = needsJob ? running : null;
  // After the job poll's effect (declared above), so that jobs/:id, which the throughput and per-GPU
  // requests wait for, is the first request the server answers.
  // biome-ignore lint/correctness/useExhaustiveDependencies: job fields are read once per (job, range) pair
  useEffect(() => {
    if (!rangeReady) return;
    const abort = new AbortController();
    void loadAll(resolveRange(range, Date.now(), job ?? undefined), abort.signal);
    return () => abort.abort();
  }, [rangeReady, rangeKey, loadAll, runKey, factsChanged]);

  // Alerts of this job (firing, pending, and resolved within the range).
  usePoll(
    async (signal) => {
      if (!window_) return;
      try {
        setAlerts(await fetchAlertHistory({ jobId, since: window_.start }, signal));
        setAlertsError(null);
      } catch (err) {
        if (!signal.aborted) setAlertsError(err as ApiError);
      }
    },
    paused ? 0 : 5000,
    [jobId, window_?.start, paused],
  );

  // Straggler scores: with the first load (from the step-time pass), then every ten seconds while live.
  const stragglersAt = useRef(0);
  usePoll(
    async (signal) => {
      if (!window_ || Date.now() - stragglersAt.current < STRAGGLER_REFRESH_MS / 2) return;
      try {
        setStragglers(await fetchStragglers(jobId, window_.start, Math.min(window_.end, Date.now()), signal));
        stragglersAt.current = Date.now();
        setErrors((e) => ({ ...e, stragglers: undefined }));
      } catch (err) {
        if (!signal.aborted) setErrors((e) => ({ ...e, stragglers: err }));
      }
    },
    isLive(range, running) && !paused ? STRAGGLER_REFRESH_MS : 0,
    [jobId, isLive(range, running), paused],
  );

  // Live: new samples of this job → fetch only what is new for each panel.
  const liveState = useTicks(isLive(range, running) && job ? { job_id: jobId } : null, paused, async () => {
    const old = panelsRef.current;
    if (!job || !window_ || !loaded) return;
    const w = resolveRange(range, Date.now(), job);
    if (reloadNeeded.current) {
      await loadAll(w, new AbortController().signal);
      return;
    }
    const lastT = Math.max(...old.curves.map((c) => (c.t.length ? c.t[c.t.length - 1]! : w.start)), w.start);
    const tailOf = (m: Matrix | null, q: { metric: string }) =>
      m
        ? fetchHeatmap({
            metric: q.metric,
            start: m.start + (m.cols - 1) * m.step,
            end: w.end,
            step: m.step,
            by: ['node_id', 'gpu'],
            keep: ['rank'],
            lo: m.lo,
            hi: m.hi,
            labels: jobLabels,
          }).then((r) => mergeMatrix(m, decodeMatrix(r), w.start))
        : Promise.resolve(null);
    const spreadTail = (s: SpreadResponse | null, metric: string) =>
      s
        ? fetchSpread({
            metric,
            start: s.start + (s.cols - 1) * s.step,
            end: w.end,
            step: s.step,
            labels: jobLabels,
          }).then((t) => mergeSpread(s, t, w.start))
        : Promise.resolve(null);
    const [curves, throughput, stepTime, util, memory, gpuLines, gpuBands] = await Promise.all([
      fetchCurves(jobId, { start: lastT + 1, end: w.end }).then((d) =>
        mergeCurves(old.curves, d.curves, w.start),
      ),
      spreadTail(old.throughput, throughputMetric),
      spreadTail(old.stepTime, 'train_step_duration_seconds'),
      tailOf(old.util, { metric: 'gpu_utilization_ratio' }),
      tailOf(old.memory, { metric: 'gpu_memory_used_bytes' }),
      old.gpuLines
        ? fetchSeries({
            metric: GPU_DETAIL_METRICS.map((m) => m.metric),
            labels: jobLabels,
            start:
              Math.max(...old.gpuLines.map((s) => (s.t.length ? s.t[s.t.length - 1]! : w.start)), w.start) +
              1,
            end: w.end,
          }).then((d) => mergeSeries(old.gpuLines!, d.series, w.start))
        : Promise.resolve(null),
      old.gpuBands
        ? Promise.all(
            GPU_DETAIL_METRICS.map((m) => spreadTail(old.gpuBands![m.metric] ?? null, m.metric)),
          ).then((list) =>
            Object.fromEntries(list.filter((s): s is SpreadResponse => s !== null).map((s) => [s.metric, s])),
          )
        : Promise.resolve(null),
    ]);
    setPanels((p) => ({ ...p, curves, throughput, stepTime, util, memory, gpuLines, gpuBands }));
    // The memory heatmap's scale was fitted to the data: a value beyond it is clamped, so fit it again, at
    // most once a minute (a leak keeps leaving any scale; a reload per tick would cost more than it shows).
    if (
      memory?.rows.some((r) => r.last !== null && (r.last > memory.hi || r.last < memory.lo)) &&
      Date.now() - memoryFittedAt.current > MEMORY_REFIT_MS
    ) {
      memoryFittedAt.current = Date.now();
      reloadNeeded.current = true;
    }
    setWindow(w);
    // Live points are raw: once they outnumber the chart's pixels twice over, decimate again with a reload.
    const target = chartPoints();
    if (curves.some((c) => c.t.length > 3 * target) || (util && util.cols > 2 * heatCols()))
      reloadNeeded.current = true;
  });

  // For tests and the render benchmark (bench/ui-render.ts): the first view's data, then every panel's, is in.
  useEffect(() => {
    if (loaded) document.body.dataset.jobView = '1';
    if (loaded === 'all') document.body.dataset.jobLoaded = '1';
    return () => {
      delete document.body.dataset.jobView;
      delete document.body.dataset.jobLoaded;
    };
  }, [loaded]);

  // --- derived -------------------------------------------------------------------------------------------

  const firing = useMemo(() => alerts.filter((a) => a.state === 'firing'), [alerts]);
  const stepRef = useMemo(
    () => panels.curves.find((c) => c.step && c.metric === 'train_loss') ?? panels.curves.find((c) => c.step),
    [panels.curves],
  );
  // The step at which the loss first became non-finite: what "diverged (NaN loss at step N)" names.
  const nanStep = useMemo(() => {
    const loss = panels.curves.find((c) => c.metric === 'train_loss' && c.step);
    if (!loss) return null;
    const k = loss.v.findIndex((v) => !Number.isFinite(toNumber(v)));
    return k < 0 ? null : (loss.step![k] ?? null);
  }, [panels.curves]);
  const healthMap = useMemo(() => {
    if (!job) return new Map();
    const key = `${job.tenant}/${job.jobId}`;
    return healthWithCauses(
      healthByJob(alerts, job.tenant),
      [job],
      alerts,
      job.tenant,
      new Map([[key, nanStep]]),
    );
  }, [alerts, job, nanStep]);
  const health = job ? healthMap.get(`${job.tenant}/${job.jobId}`) : undefined;
  const status = job ? jobStatusOf(job, healthMap) : 'unknown';
  // When the step last moved before each stall alert fired: the stall began there, not when the detector's
  // threshold ran out minutes later.
  const stallStart = useCallback(
    (a: Alert) => (stepRef ? lastStepChange(stepRef, a.activeAtMs) : null) ?? stallStartOf(a, now),
    [stepRef, now],
  );
  const cause = useMemo(() => {
    if (!job) return null;
    const stall = alerts.find((a) => (a.labels.alertname ?? a.name) === STALL_ALERT && a.state !== 'pending');
    return causeOfFailure(job, alerts, nanStep, stall ? stallStart(stall) : null);
  }, [job, alerts, nanStep, stallStart]);
  // Every alert of the job in the range (the ones that resolved as it died included), under their causes:
  // the cause of the failure first, then what still fires, then the newest.
  const alertGroups = useMemo(() => {
    const groups = groupAlerts(alerts.filter((a) => a.labels.job_id === jobId));
    const order = (g: (typeof groups)[number]) =>
      g.cause === cause?.alert ? 0 : g.cause.state === 'firing' ? 1 : g.cause.state === 'pending' ? 2 : 3;
    return groups.sort((a, b) => order(a) - order(b) || alertStart(b.cause) - alertStart(a.cause));
  }, [alerts, jobId, cause]);
  // Stalls, shaded on the time charts from when the step stopped to when it moved again (or now).
  const stallSpans: ChartSpan[] = useMemo(
    () =>
      alerts
        .filter((a) => (a.labels.alertname ?? a.name) === STALL_ALERT && a.state !== 'pending')
        .map((a) => {
          const from = stallStart(a);
          const to = a.resolvedAtMs ?? now;
          return {
            from,
            to,
            color: SEVERITY_COLORS[a.labels.severity ?? ''] ?? '#d9534f',
            label: `${a.resolvedAtMs === null ? 'stalled' : 'stall'} ${fmtSpan(to - from)}`,
          };
        }),
    [alerts, now, stallStart],
  );
  // A stalled job's charts run up to now: the empty stretch after the last point is the hang.
  const xEnd = status === 'stalled' ? now : undefined;

  const timeMarkers: ChartMarker[] = useMemo(() => {
    const ms: ChartMarker[] = alerts
      .filter((a) => a.state !== 'pending')
      .map((a) => ({
        x: alertStart(a),
        color: SEVERITY_COLORS[a.labels.severity ?? ''] ?? '#999',
        label: a.labels.alertname ?? a.name,
      }));
    if (centre !== null && Number.isFinite(centre))
      ms.push({ x: centre, color: 'var(--accent)', label: 'linked moment' });
    return ms.map((m) =>
      m.color.startsWith('var(')
        ? { ...m, color: getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() }
        : m,
    );
  }, [alerts, centre]);
  const stepMarkers: ChartMarker[] = useMemo(
    () =>
      stepRef
        ? timeMarkers.flatMap((m) => {
            const s = stepAtTime(stepRef, m.x);
            return s === null ? [] : [{ ...m, x: s }];
          })
        : [],
    [timeMarkers, stepRef],
  );
  const heatMarkers: HeatmapMarker[] = useMemo(
    () => timeMarkers.map((m) => ({ t: m.x, color: m.color, label: m.label })),
    [timeMarkers],
  );

  const curveCharts = useMemo(
    () => buildCurveCharts(panels.curves, xMode, smooth),
    [panels.curves, xMode, smooth],
  );

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

  const w = window_ ?? resolveRange(range, now, job);
  // The page's one time axis: every time chart and heatmap spans it, with the same gutters and ticks. While
  // live it reaches now (past a hang, the empty stretch is the news).
  const axis = { start: w.start, end: isLive(range, running) ? Math.max(w.end, now) : w.end };
  const zoom = (from: number, to: number) => setParams(rangeParams({ kind: 'absolute', from, to }), true);
  const sync = `job-${jobId}`;
  const throughputSeries = spreadSeries(
    panels.throughput,
    ['sum'],
    hasTokens ? 'tokens/s (all ranks)' : 'samples/s (all ranks)',
  );
  const stepSeries = spreadSeries(panels.stepTime, ['mean', 'max', 'min'], 'step time');

  return (
    <section className="page" aria-labelledby="job-title">
      <div className="page-head">
        <div>
          <h1 id="job-title">
            {job.name} <StatusBadge status={status} cause={cause} />{' '}
            <HealthBadges health={health} unknown={!!alertsError} />
          </h1>
          <div className="sub">
            {job.jobId} · {job.project || 'no project'} · {job.owner || 'no owner'} ·{' '}
            {job.framework || 'unknown framework'} · world size {job.worldSize ?? '—'}
            {job.tags.length > 0 && (
              <>
                {' '}
                ·{' '}
                {job.tags.map((t) => (
                  <span key={t} className="tag">
                    {t}
                  </span>
                ))}
              </>
            )}
          </div>
        </div>
        <div className="tiles">
          <Tile label="step" value={fmtInt(job.step)} />
          <Tile
            label="loss"
            value={<span className={job.loss === 'NaN' ? 'bad' : ''}>{fmtNumber(job.loss, 4)}</span>}
          />
          <Tile
            label={`mean GPU utilization (${job.gpus} GPUs)`}
            value={<UtilBar ratio={job.meanGpuUtilization} />}
          />
          <Tile
            label="throughput"
            value={
              job.tokensPerSecond
                ? `${fmtNumber(job.tokensPerSecond)} tok/s`
                : job.samplesPerSecond
                  ? `${fmtNumber(job.samplesPerSecond)}/s`
                  : '—'
            }
          />
          <Tile label="running time" value={fmtAge(job.startMs, job.endMs ?? now)} />
        </div>
      </div>

      <div className="toolbar">
        <RangePicker value={range} onChange={(r) => setParams(rangeParams(r))} allowRun resolved={w} />
        <fieldset className="segmented" aria-label="X axis of the training curves">
          <button type="button" aria-pressed={xMode === 'time'} onClick={() => setParams({ x: null })}>
            Time
          </button>
          <button type="button" aria-pressed={xMode === 'step'} onClick={() => setParams({ x: 'step' })}>
            Step
          </button>
        </fieldset>
        <label className="check slider">
          smoothing
          <input
            type="range"
            min={0}
            max={0.99}
            step={0.01}
            value={smooth}
            aria-label="Smoothing (exponential moving average weight)"
            onChange={(e) => setParams({ smooth: Number(e.target.value) > 0 ? e.target.value : null })}
          />
          <span className="small mono">{smooth.toFixed(2)}</span>
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={logY}
            onChange={(e) => setParams({ log: e.target.checked ? '1' : null })}
          />{' '}
          log scale
        </label>
        <a
          className="btn btn-small"
          href={`/compare?base=${encodeURIComponent(jobId)}&previous=5`}
          onClick={onLinkClick}
        >
          Compare with previous runs
        </a>
        <span className="spacer" />
        <LiveIndicator
          state={isLive(range, running) ? liveState : 'off'}
          onToggle={() => setParams({ paused: paused ? null : '1' })}
        />
      </div>

      {(alertGroups.length > 0 || alertsError) && (
        <section className="alert-strip" data-testid="job-alerts" aria-label="Alerts of this job">
          {alertsError ? (
            <span className="muted">
              Alerts unavailable:{' '}
              {alertsError.missingRoute ? 'this server has no alerting API yet' : alertsError.message}
            </span>
          ) : (
            alertGroups.map((g) => (
              <div
                key={`${g.cause.fingerprint}/${g.cause.activeAtMs}`}
                className="alert-group"
                data-testid="alert-group"
                data-cause-of-failure={g.cause === cause?.alert ? '1' : undefined}
              >
                <AlertChip a={g.cause} now={now} />
                {g.cause === cause?.alert && <span className="alert-why">cause of the failure</span>}
                {g.consequences.length > 0 && (
                  <details className="alert-consequences">
                    <summary>
                      {g.consequences.length} related alert{g.consequences.length === 1 ? '' : 's'}
                    </summary>
                    {g.consequences.map((a) => (
                      <AlertChip key={`${a.fingerprint}/${a.activeAtMs}`} a={a} now={now} />
                    ))}
                  </details>
                )}
              </div>
            ))
          )}
        </section>
      )}

      <h2>Training</h2>
      {errors.curves ? <ErrorBox error={errors.curves} what="the training curves" /> : null}
      {loaded && curveCharts.length === 0 && !errors.curves && (
        <div className="empty small">
          This job reported no training metrics in this range (loss, accuracy, learning rate or custom ones
          via <code>tw.log</code>).
        </div>
      )}
      <div className="charts timeline">
        {curveCharts.map((c) => (
          <Chart
            key={c.stem}
            title={c.title}
            testId={`chart-${c.stem}`}
            series={c.series}
            xMode={xMode}
            logY={logY}
            markers={xMode === 'time' ? timeMarkers : stepMarkers}
            spans={xMode === 'time' ? stallSpans : undefined}
            xEnd={xMode === 'time' ? xEnd : undefined}
            xRange={xMode === 'time' ? axis : undefined}
            gutters={JOB_GUTTERS}
            syncKey={xMode === 'time' ? sync : `${sync}-step`}
            onZoom={xMode === 'time' ? zoom : undefined}
            yFormat={(v) => fmtNumber(v)}
            emptyText={xMode === 'step' ? 'No step information (train_step) for these points.' : undefined}
          />
        ))}
      </div>

      <h2>Throughput</h2>
      <div className="charts timeline">
        <Chart
          title={hasTokens ? 'Tokens per second' : 'Samples per second'}
          testId="chart-throughput"
          series={throughputSeries}
          markers={timeMarkers}
          spans={stallSpans}
          xEnd={xEnd}
          xRange={axis}
          gutters={JOB_GUTTERS}
          syncKey={sync}
          onZoom={zoom}
          yFormat={(v) => fmtNumber(v)}
          subtitle="sum over ranks"
          emptyText={
            errors.throughput ? 'Could not load throughput.' : 'No throughput reported in this range.'
          }
        />
        <Chart
          title="Step time"
          testId="chart-step-time"
          series={stepSeries}
          bands={stepSeries.length === 3 ? [{ upper: 1, lower: 2, color: '#f1a14e22' }] : []}
          markers={timeMarkers}
          spans={stallSpans}
          xEnd={xEnd}
          xRange={axis}
          gutters={JOB_GUTTERS}
          syncKey={sync}
          onZoom={zoom}
          yFormat={(v) => `${fmtNumber(v)}s`}
          subtitle="mean, slowest and fastest rank"
          emptyText="No step durations (train_step_duration_seconds) in this range."
        />
      </div>

      <h2>GPUs</h2>
      {errors.stragglers ? (
        <div className="note">Straggler scores unavailable: {(errors.stragglers as Error).message}</div>
      ) : null}
      <StragglerNote highlights={highlights} stragglers={stragglers} />
      <JobNodeLinks jobId={jobId} start={axis.start} end={axis.end} />
      <div className="heatmaps timeline">
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
            markers={heatMarkers}
            rangeStart={axis.start}
            rangeEnd={axis.end}
            gutters={JOB_GUTTERS}
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
            markers={heatMarkers}
            rangeStart={axis.start}
            rangeEnd={axis.end}
            gutters={JOB_GUTTERS}
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
              markers={timeMarkers}
              xEnd={xEnd}
              xRange={axis}
              gutters={JOB_GUTTERS}
              syncKey={sync}
              onZoom={zoom}
              yFormat={m.format}
              subtitle={lines || !band ? undefined : `min, mean and max of ${band.series} GPUs`}
              loading={loaded !== 'all'}
              height={180}
            />
          );
        })}
      </div>

      <h2>Configuration</h2>
      <ConfigTable config={job.config} />
      <h2>Metadata</h2>
      <table className="kv" data-testid="job-metadata">
        <tbody>
          {(
            [
              ['job id', job.jobId],
              ['tenant', job.tenant],
              ['name', job.name],
              ['project', job.project || '—'],
              ['owner', job.owner || '—'],
              ['framework', job.framework || '—'],
              ['world size', job.worldSize ?? '—'],
              ['status', cause ? `${status} — ${cause.text}` : status],
              ['started', fmtTime(job.startMs)],
              ['ended', fmtTime(job.endMs)],
              ['last sample', fmtTime(job.lastSampleMs)],
              ['tags', job.tags.join(', ') || '—'],
              ['metrics', metrics.join(', ')],
              ...Object.entries(job.metricKeys).map(([k, v]) => [`logged as ${v}`, k] as [string, string]),
            ] as [string, string | number][]
          ).map(([k, v]) => (
            <tr key={k}>
              <th>{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** One alert: its name, place, state and how long it lasted; silenced ones say so. */
function AlertChip({ a, now }: { a: Alert; now: number }) {
  const color = SEVERITY_COLORS[a.labels.severity ?? ''];
  const where = alertLocation(a.labels);
  return (
    <a
      className={`alert-chip alert-${a.state}`}
      style={{ borderColor: color }}
      href={`/alerts?fingerprint=${a.fingerprint}`}
      onClick={onLinkClick}
      title={a.annotations.description ?? a.annotations.summary ?? ''}
      data-alertname={a.labels.alertname ?? a.name}
      data-state={a.state}
    >
      <span className="swatch" style={{ background: color }} />
      {a.labels.alertname ?? a.name}
      {where && <span className="muted"> · {where}</span>}
      <span className="muted">
        {' '}
        ·{' '}
        {a.resolvedAtMs !== null
          ? `resolved after ${fmtSpan(a.resolvedAtMs - alertStart(a))}`
          : `${a.state} since ${fmtAge(alertStart(a), now)}`}
      </span>
      {isSilenced(a) && <span className="muted"> · silenced</span>}
    </a>
  );
}

function gpuRowLabel(r: Pick<HeatmapRowInfo, 'labels'>): string {
  const l = r.labels;
  const where = `${l.node_id ?? '?'}/gpu${l.gpu ?? '?'}`;
  return l.rank !== undefined ? `rank ${l.rank} · ${where}` : where;
}

/** Series of a spread answer sharing one x array (no join needed), for the given statistics. */
function spreadSeries(
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
          .filter(
            ([k]) =>
              ![
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
              ].includes(k),
          )
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

/**
 * Rows to outline on the rank heatmaps: where firing alerts point (rank, GPU or node), else the straggler
 * found by the server's robust z-score of step times.
 */
function stragglerHighlights(
  m: Matrix | null,
  firing: readonly Alert[],
  s: StragglerResponse | null,
): Map<number, HeatmapHighlight> {
  const out = new Map<number, HeatmapHighlight>();
  if (!m) return out;
  const rowsWhere = (pred: (l: Readonly<Record<string, string>>) => boolean) =>
    m.rows.flatMap((r, i) => (pred(r.labels) ? [i] : []));
  for (const a of firing) {
    const l = a.labels;
    let rows: number[] = [];
    if (l.rank !== undefined) rows = rowsWhere((r) => r.rank === l.rank);
    if (rows.length === 0 && l.node_id !== undefined && l.gpu !== undefined)
      rows = rowsWhere((r) => r.node_id === l.node_id && r.gpu === l.gpu);
    if (rows.length === 0 && l.node_id !== undefined && l.gpu === undefined && l.rank === undefined)
      rows = rowsWhere((r) => r.node_id === l.node_id);
    for (const i of rows)
      if (!out.has(i))
        out.set(i, {
          label: `${l.alertname ?? a.name} · ${gpuRowLabel(m.rows[i]!)}`,
          color: SEVERITY_COLORS[l.severity ?? ''] ?? '#e05a5a',
        });
  }
  if (out.size === 0 && s?.straggler) {
    const sl = s.straggler.labels;
    let rows = rowsWhere((r) => r.rank !== undefined && r.rank === sl.rank);
    if (rows.length === 0 && sl.node_id !== undefined && sl.local_rank !== undefined)
      rows = rowsWhere((r) => r.node_id === sl.node_id && r.gpu === sl.local_rank);
    const slow =
      s.straggler.slowdown === null ? '' : ` +${Math.round(s.straggler.slowdown * 100)}% step time`;
    for (const i of rows)
      out.set(i, { label: `straggler · ${gpuRowLabel(m.rows[i]!)}${slow}`, color: '#e0607e' });
  }
  return out;
}

/** The same highlights on another heatmap of the same GPUs (rows matched by node and GPU). */
function remapHighlights(
  from: Matrix | null,
  to: Matrix | null,
  h: Map<number, HeatmapHighlight>,
): Map<number, HeatmapHighlight> {
  const out = new Map<number, HeatmapHighlight>();
  if (!from || !to) return out;
  for (const [i, hl] of h) {
    const l = from.rows[i]!.labels;
    const j = to.rows.findIndex((r) => r.labels.node_id === l.node_id && r.labels.gpu === l.gpu);
    if (j >= 0) out.set(j, hl);
  }
  return out;
}

function StragglerNote({
  highlights,
  stragglers,
}: {
  highlights: Map<number, HeatmapHighlight>;
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

function ConfigTable({ config }: { config: Record<string, unknown> }) {
  const entries = Object.entries(config).filter(([, v]) => v !== undefined && v !== null);
  if (entries.length === 0)
    return (
      <p className="muted">
        This job reported no configuration (pass <code>config=</code> to <code>tw.init</code>).
      </p>
    );
  return (
    <table className="kv" data-testid="job-config">
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
