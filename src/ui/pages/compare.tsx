import { useEffect, useMemo, useState } from 'react';
import {
  type ApiError,
  type FleetJob,
  fetchCurves,
  fetchJob,
  fetchRunPage,
  fetchSpread,
  type JobSummary,
  toNumber,
} from '../api';
import { Chart, type ChartSeries, seriesColor, type XMode } from '../components/chart';
import { CurveOptions } from '../components/curve-options';
import { Empty, ErrorBox, StatusBadge } from '../components/widgets';
import { fmtNumber, fmtPercent, fmtTime } from '../format';
import { diffConfigs, formatConfigValue } from '../lib/config-diff';
import { stepAtTime } from '../lib/live-merge';
import { curveSplit, groupCurves } from '../lib/metrics';
import { findPreviousRuns, type RunLookup } from '../lib/previous-runs';
import { emaSmooth } from '../lib/smoothing';
import type { Curve, SpreadResponse } from '../lib/types';
import { onLinkClick, useSearchParams } from '../router';

const MAX_RUNS = 12;
/** Suggestions in the "Add a run" box: the runs matching what was typed, most recently active first. */
const SUGGESTIONS = 20;

/**
 * Runs are looked up on the server, by id or by a filtered page, never searched for in a copy of the whole
 * fleet: at 100,000 jobs no such copy exists, and a run missing from one could not be compared.
 */
const lookup: (signal: AbortSignal) => RunLookup<JobSummary> = (signal) => ({
  job: async (id) => {
    try {
      return (await fetchJob(id, signal)).job;
    } catch (err) {
      if ((err as ApiError).status === 404) return undefined;
      throw err;
    }
  },
  page: (q) => fetchRunPage(q, signal),
});

interface Run {
  job: JobSummary;
  curves: Curve[];
  /** System metrics over the run: throughput (sum over ranks), GPU utilization and memory (mean, max). */
  system: Partial<Record<SystemMetric, SpreadResponse>>;
}

/** A run that could not be loaded: an unknown id (404), or another error with its message. */
interface Unloaded {
  id: string;
  error: ApiError | Error;
}

type SystemMetric = 'throughput' | 'gpu_utilization_ratio' | 'gpu_memory_used_bytes';

/** The system charts under the training curves: what a run cost and how well it used its GPUs. */
const SYSTEM_CHARTS: readonly {
  key: SystemMetric;
  title: string;
  column: 'sum' | 'mean' | 'max';
  format: (v: number) => string;
}[] = [
  { key: 'throughput', title: 'Throughput (sum over ranks)', column: 'sum', format: (v) => fmtNumber(v) },
  {
    key: 'gpu_utilization_ratio',
    title: 'GPU utilization (mean over GPUs)',
    column: 'mean',
    format: fmtPercent,
  },
  {
    key: 'gpu_memory_used_bytes',
    title: 'GPU memory used (largest GPU)',
    column: 'max',
    format: (v) => `${fmtNumber(v)}B`,
  },
];

async function loadRun(id: string, signal: AbortSignal): Promise<Run> {
  const [j, c] = await Promise.all([fetchJob(id, signal), fetchCurves(id, { points: 800 }, signal)]);
  const job = j.job;
  const start = (job.startMs ?? Date.now() - 3_600_000) - 60_000;
  const end = (job.endMs ?? job.lastSampleMs ?? Date.now()) + 60_000;
  const throughput = j.metrics.includes('train_tokens_per_second')
    ? 'train_tokens_per_second'
    : 'train_samples_per_second';
  const system: Run['system'] = {};
  // System charts are extra: a run whose system metrics fail still shows its curves.
  await Promise.all(
    SYSTEM_CHARTS.map(async ({ key }) => {
      const metric = key === 'throughput' ? throughput : key;
      try {
        system[key] = await fetchSpread({ metric, start, end, cols: 400, labels: { job_id: id } }, signal);
      } catch {}
    }),
  );
  return { job, curves: c.curves, system };
}

/**
 * Overlays the curves of any runs, aligned by step, by time since each run started, or by wall-clock time,
 * with a diff of their configurations. `?base=<job>&previous=N` compares a run with the N runs of the same
 * name (or, when there are none, the same project) that started before it.
 */
export function ComparePage() {
  const [params, setParams] = useSearchParams();
  const explicitKey = params.get('jobs') ?? '';
  const base = params.get('base');
  const previous = Math.max(1, Math.min(MAX_RUNS - 1, Number(params.get('previous') ?? '5') || 5));
  const xMode: XMode =
    params.get('x') === 'time' ? 'time' : params.get('x') === 'elapsed' ? 'elapsed' : 'step';
  const smooth = Math.max(0, Math.min(0.99, Number(params.get('smooth') ?? '0') || 0));
  const logY = params.get('log') === '1';
  const onlyDiff = params.get('diff') !== 'all';

  const [options, setOptions] = useState<FleetJob[]>([]);
  const [lookupError, setLookupError] = useState<unknown>(null);
  /** The base and its previous runs, once looked up (`?base=`). */
  const [basedOn, setBasedOn] = useState<{ key: string; ids: string[]; how: string } | null>(null);
  const [runs, setRuns] = useState<Run[] | null>(null);
  /** Runs that did not load; the others still draw. */
  const [unloaded, setUnloaded] = useState<Unloaded[]>([]);
  const [pick, setPick] = useState('');

  const baseKey = base ? `${base}\u0000${previous}` : '';
  useEffect(() => {
    if (!base) return;
    const abort = new AbortController();
    setLookupError(null);
    findPreviousRuns(lookup(abort.signal), base, previous)
      .then((r) => {
        if (!abort.signal.aborted) setBasedOn({ key: baseKey, ...r });
      })
      .catch((err) => {
        if (!abort.signal.aborted) setLookupError(err);
      });
    return () => abort.abort();
  }, [base, previous, baseKey]);

  // Which runs: the explicit list, or the base and its predecessors.
  const resolved = useMemo((): { ids: string[]; how: string } | null => {
    if (!base) return { ids: explicitKey.split(',').filter(Boolean).slice(0, MAX_RUNS), how: '' };
    return basedOn?.key === baseKey ? basedOn : null;
  }, [base, baseKey, basedOn, explicitKey]);

  const idsKey = resolved?.ids.join(',') ?? '';
  // biome-ignore lint/correctness/useExhaustiveDependencies: reloads when the list of runs changes, not when it is recomputed
  useEffect(() => {
    if (!resolved || resolved.ids.length === 0) {
      setRuns(resolved ? [] : null);
      return;
    }
    const abort = new AbortController();
    setRuns(null);
    // Each run on its own: one unknown id must not blank the others.
    void Promise.allSettled(resolved.ids.map((id) => loadRun(id, abort.signal))).then((results) => {
      if (abort.signal.aborted) return;
      const ok: Run[] = [];
      const bad: Unloaded[] = [];
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') ok.push(r.value);
        else bad.push({ id: resolved.ids[i]!, error: r.reason as Error });
      });
      setRuns(ok);
      setUnloaded(bad);
    });
    return () => abort.abort();
  }, [idsKey]);

  const ids = resolved?.ids ?? [];
  const setIds = (next: string[]) =>
    setParams({ jobs: next.join(',') || null, base: null, previous: null }, true);
  const charts = useMemo(() => (runs ? buildOverlay(runs, xMode, smooth) : []), [runs, xMode, smooth]);
  const systemCharts = useMemo(() => (runs ? buildSystemOverlay(runs, xMode) : []), [runs, xMode]);
  const diff = useMemo(() => (runs ? diffConfigs(runs.map((r) => r.job.config)) : []), [runs]);
  const shownDiff = onlyDiff ? diff.filter((d) => d.differs) : diff;

  // Suggestions for the box, from the server as the user types (a short pause first: one request per word).
  const typed = pick.includes(' — ') ? '' : pick.trim();
  useEffect(() => {
    const abort = new AbortController();
    const timer = setTimeout(() => {
      fetchRunPage({ search: typed, sort: 'last_sample', limit: SUGGESTIONS }, abort.signal)
        .then(setOptions)
        .catch((err) => {
          if (!abort.signal.aborted) setLookupError(err);
        });
    }, 200);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [typed]);
  const addPick = () => {
    const id = pick.trim().split(' — ').pop()!.trim();
    if (!id) return;
    setIds([...ids, id].slice(0, MAX_RUNS));
    setPick('');
  };

  return (
    <section className="page" aria-labelledby="compare-title">
      <div className="page-head">
        <div>
          <h1 id="compare-title">Compare runs</h1>
          {base && resolved && (
            <p className="sub" data-testid="compare-how">
              {base} compared with {resolved.how}.
            </p>
          )}
        </div>
      </div>
      <div className="toolbar">
        <fieldset className="chips" aria-label="Runs being compared">
          {ids.map((id) => {
            // The colour of the run's lines: its place among the runs that loaded.
            const at = runs?.findIndex((r) => r.job.jobId === id) ?? -1;
            const color = at >= 0 ? seriesColor(at) : 'var(--fg-muted)';
            return (
              <span
                key={id}
                className="chip"
                style={{ borderColor: color }}
                data-unknown={at < 0 && runs ? '1' : undefined}
              >
                <span className="swatch" style={{ background: color }} />
                <a href={`/jobs/${encodeURIComponent(id)}`} onClick={onLinkClick}>
                  {runs?.find((r) => r.job.jobId === id)?.job.name ?? id}
                </a>
                <span className="muted small"> {id.slice(-6)}</span>
                <button
                  type="button"
                  className="chip-x"
                  aria-label={`Remove ${id}`}
                  onClick={() => setIds(ids.filter((x) => x !== id))}
                >
                  ×
                </button>
              </span>
            );
          })}
        </fieldset>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            addPick();
          }}
        >
          <input
            list="compare-jobs"
            placeholder="Add a run (name or id)…"
            aria-label="Add a run to compare"
            value={pick}
            onChange={(e) => setPick(e.target.value)}
            data-testid="compare-add"
          />
          <datalist id="compare-jobs">
            {options
              .filter((j) => !ids.includes(j.jobId))
              .map((j) => (
                <option key={j.jobId} value={`${j.name} — ${j.jobId}`} />
              ))}
          </datalist>
          <button type="submit" className="btn btn-small" disabled={!pick.trim()}>
            Add
          </button>
        </form>
        <span className="spacer" />
        <fieldset className="segmented" aria-label="Align runs by">
          {(['step', 'elapsed', 'time'] as const).map((m) => (
            <button
              key={m}
              type="button"
              aria-pressed={xMode === m}
              onClick={() => setParams({ x: m === 'step' ? null : m })}
            >
              {m === 'step' ? 'Step' : m === 'elapsed' ? 'Time since start' : 'Wall clock'}
            </button>
          ))}
        </fieldset>
        <CurveOptions smooth={smooth} logY={logY} setParams={setParams} />
      </div>

      {lookupError ? <ErrorBox error={lookupError} what="the runs to compare" /> : null}
      {unloaded.map(({ id, error }) =>
        (error as ApiError).status === 404 ? (
          <div key={id} className="note" role="status" data-testid="compare-unknown">
            <strong>No run {id}.</strong> No job with that id is known here (a typo, another tenant, or data
            that has expired); the other runs are drawn without it.{' '}
            <button
              type="button"
              className="btn btn-small"
              onClick={() => setIds(ids.filter((x) => x !== id))}
            >
              Remove {id}
            </button>
          </div>
        ) : (
          <ErrorBox key={id} error={error} what={`run ${id}`} />
        ),
      )}
      {ids.length === 0 && (
        <Empty title="Pick runs to compare">
          <p>
            Add runs with the box above, or open a job and choose <em>Compare with previous runs</em>. Links
            look like <code>/compare?jobs=run-a,run-b</code> or{' '}
            <code>/compare?base=run-c&amp;previous=5</code>.
          </p>
        </Empty>
      )}
      {ids.length > 0 && runs === null && <div className="empty">Loading {ids.length} runs…</div>}
      {runs && runs.length > 0 && (
        <>
          <div className="charts" data-testid="compare-charts">
            {charts.map((c) => (
              <Chart
                key={c.metric}
                title={c.title}
                testId={`compare-${c.metric}`}
                series={c.series}
                xMode={xMode}
                logY={logY}
                yFormat={(v) => fmtNumber(v)}
                syncKey={`compare-${xMode}`}
              />
            ))}
          </div>
          {charts.length === 0 && <div className="empty small">These runs reported no training metrics.</div>}
          <h2>System</h2>
          <div className="charts" data-testid="compare-system">
            {systemCharts.map((c) => (
              <Chart
                key={c.key}
                title={c.title}
                testId={`compare-${c.key}`}
                series={c.series}
                xMode={xMode}
                yFormat={c.format}
                syncKey={`compare-${xMode}`}
                emptyText={
                  xMode === 'step'
                    ? 'No step information (train_step) to place these on the step axis.'
                    : 'These runs reported none.'
                }
              />
            ))}
          </div>
          <div className="section-head">
            <h2>Configuration</h2>
            <label className="check">
              <input
                type="checkbox"
                checked={onlyDiff}
                onChange={(e) => setParams({ diff: e.target.checked ? null : 'all' })}
              />{' '}
              only what differs ({diff.filter((d) => d.differs).length} of {diff.length})
            </label>
          </div>
          <div className="table-scroll">
            <table className="diff" data-testid="config-diff">
              <thead>
                <tr>
                  <th>key</th>
                  {runs.map((r, i) => (
                    <th key={r.job.jobId}>
                      <span className="swatch" style={{ background: seriesColor(i) }} />
                      {r.job.name}
                      <div className="sub">{r.job.jobId}</div>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                <tr>
                  <th>status</th>
                  {runs.map((r) => (
                    <td key={r.job.jobId}>
                      <StatusBadge status={r.job.status} />
                    </td>
                  ))}
                </tr>
                <tr>
                  <th>started</th>
                  {runs.map((r) => (
                    <td key={r.job.jobId}>{fmtTime(r.job.startMs)}</td>
                  ))}
                </tr>
                <tr>
                  <th>latest loss</th>
                  {runs.map((r) => (
                    <td key={r.job.jobId}>{fmtNumber(r.job.loss, 4)}</td>
                  ))}
                </tr>
                {shownDiff.map((d) => (
                  <tr key={d.key} className={d.differs ? 'differs' : undefined} data-differs={d.differs}>
                    <th>{d.key}</th>
                    {d.values.map((v, i) => (
                      <td key={runs[i]!.job.jobId}>{formatConfigValue(v)}</td>
                    ))}
                  </tr>
                ))}
                {shownDiff.length === 0 && (
                  <tr>
                    <td colSpan={runs.length + 1} className="muted">
                      {diff.length === 0
                        ? 'These runs reported no configuration.'
                        : 'The configurations are identical.'}
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}

/** Throughput and GPU charts, one line per run, on the same x axis as the curves. */
function buildSystemOverlay(
  runs: readonly Run[],
  xMode: XMode,
): { key: SystemMetric; title: string; format: (v: number) => string; series: ChartSeries[] }[] {
  return SYSTEM_CHARTS.map(({ key, title, column, format }) => {
    const series: ChartSeries[] = [];
    runs.forEach((run, i) => {
      const sp = run.system[key];
      if (!sp) return;
      // Time to step through the run's loss curve (or any curve with steps).
      const ref =
        run.curves.find((c) => c.step && c.metric === 'train_loss') ?? run.curves.find((c) => c.step);
      const xs: number[] = [];
      const ys: (number | null)[] = [];
      let last = Number.NEGATIVE_INFINITY;
      sp.t.forEach((t, k) => {
        const y = sp[column][k] ?? null;
        if (y === null) return;
        const x =
          xMode === 'step'
            ? ref
              ? stepAtTime(ref, t)
              : null
            : xMode === 'elapsed'
              ? (t - (run.job.startMs ?? sp.t[0]!)) / 1000
              : t;
        if (x === null || x <= last) return;
        last = x;
        xs.push(x);
        ys.push(y);
      });
      if (xs.length > 0)
        series.push({
          label: `${run.job.name} ${run.job.jobId.slice(-6)}`,
          x: xs,
          y: ys,
          color: seriesColor(i),
        });
    });
    return { key, title, format, series };
  });
}

/** One chart per metric, one line per run in the run's colour; x by step, elapsed seconds or wall clock. */
function buildOverlay(
  runs: readonly Run[],
  xMode: XMode,
  smooth: number,
): { metric: string; title: string; series: ChartSeries[] }[] {
  const metrics = [...new Set(runs.flatMap((r) => r.curves.map((c) => c.metric)))];
  const ordered = groupCurves(metrics).flatMap((g) =>
    g.metrics.map((m) => ({
      metric: m,
      title: `${g.title}${g.metrics.length > 1 ? ` (${curveSplit(m) || m})` : ''}`,
    })),
  );
  return ordered.map(({ metric, title }) => {
    const series: ChartSeries[] = [];
    runs.forEach((run, i) => {
      const c = run.curves.find((x) => x.metric === metric);
      if (!c) return;
      const color = seriesColor(i);
      const xs: number[] = [];
      const ys: (number | null)[] = [];
      let last = Number.NEGATIVE_INFINITY;
      c.t.forEach((t, k) => {
        const x =
          xMode === 'step'
            ? c.step?.[k]
            : xMode === 'elapsed'
              ? (t - (run.job.startMs ?? c.t[0]!)) / 1000
              : t;
        if (x === null || x === undefined || x <= last) return;
        last = x;
        xs.push(x);
        ys.push(toNumber(c.v[k]!));
      });
      const label = `${run.job.name} ${run.job.jobId.slice(-6)}`;
      const sparse = xs.length < 50;
      if (smooth > 0 && !sparse) {
        series.push({ label: `${label} (raw)`, x: xs, y: ys, color, faint: true, hideInLegend: true });
        series.push({ label, x: xs, y: emaSmooth(ys, smooth), color });
      } else series.push({ label, x: xs, y: ys, color, points: sparse });
    });
    return { metric, title, series };
  });
}
