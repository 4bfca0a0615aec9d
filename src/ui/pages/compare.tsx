import { useEffect, useMemo, useState } from 'react';
import { type FleetJob, fetchCurves, fetchFleet, fetchJob, type JobSummary, toNumber } from '../api';
import { Chart, type ChartSeries, seriesColor, type XMode } from '../components/chart';
import { Empty, ErrorBox, StatusBadge } from '../components/widgets';
import { fmtNumber, fmtTime } from '../format';
import { diffConfigs, formatConfigValue } from '../lib/config-diff';
import { curveSplit, groupCurves } from '../lib/metrics';
import { emaSmooth } from '../lib/smoothing';
import type { Curve } from '../lib/types';
import { onLinkClick, useSearchParams } from '../router';

const MAX_RUNS = 12;

interface Run {
  job: JobSummary;
  curves: Curve[];
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

  const [fleet, setFleet] = useState<FleetJob[] | null>(null);
  const [fleetError, setFleetError] = useState<unknown>(null);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [runsError, setRunsError] = useState<unknown>(null);
  const [pick, setPick] = useState('');

  useEffect(() => {
    const abort = new AbortController();
    fetchFleet(undefined, abort.signal)
      .then((d) => setFleet(d.jobs))
      .catch((err) => {
        if (!abort.signal.aborted) setFleetError(err);
      });
    return () => abort.abort();
  }, []);

  // Which runs: the explicit list, or the base and its predecessors.
  const resolved = useMemo((): { ids: string[]; how: string } | null => {
    if (!base) return { ids: explicitKey.split(',').filter(Boolean).slice(0, MAX_RUNS), how: '' };
    if (!fleet) return null;
    const b = fleet.find((j) => j.jobId === base);
    if (!b) return { ids: [base], how: `no job ${base} in the fleet list` };
    // Runs that started before the base, or at the same moment (a sweep launched at once), newest first.
    const before = (j: FleetJob) =>
      j.jobId !== b.jobId && j.startMs !== null && b.startMs !== null && j.startMs <= b.startMs;
    const byStart = (a: FleetJob, c: FleetJob) =>
      (c.startMs ?? 0) - (a.startMs ?? 0) || a.jobId.localeCompare(c.jobId);
    let same = fleet.filter((j) => before(j) && j.name === b.name).sort(byStart);
    let how = `the ${Math.min(previous, same.length)} previous runs named “${b.name}”`;
    if (same.length === 0 && b.project) {
      same = fleet.filter((j) => before(j) && j.project === b.project).sort(byStart);
      how = `the ${Math.min(previous, same.length)} previous runs of project “${b.project}” (no earlier run is named “${b.name}”)`;
    }
    if (same.length === 0)
      how = `nothing: no earlier run is named “${b.name}”${b.project ? ` or belongs to project “${b.project}”` : ''}`;
    return { ids: [b.jobId, ...same.slice(0, previous).map((j) => j.jobId)], how };
  }, [base, previous, fleet, explicitKey]);

  const idsKey = resolved?.ids.join(',') ?? '';
  // biome-ignore lint/correctness/useExhaustiveDependencies: reloads when the list of runs changes, not when it is recomputed
  useEffect(() => {
    if (!resolved || resolved.ids.length === 0) {
      setRuns(resolved ? [] : null);
      return;
    }
    const abort = new AbortController();
    setRuns(null);
    Promise.all(
      resolved.ids.map(async (id) => {
        const [j, c] = await Promise.all([
          fetchJob(id, abort.signal),
          fetchCurves(id, { points: 800 }, abort.signal),
        ]);
        return { job: j.job, curves: c.curves };
      }),
    )
      .then((r) => {
        setRuns(r);
        setRunsError(null);
      })
      .catch((err) => {
        if (!abort.signal.aborted) setRunsError(err);
      });
    return () => abort.abort();
  }, [idsKey]);

  const ids = resolved?.ids ?? [];
  const setIds = (next: string[]) =>
    setParams({ jobs: next.join(',') || null, base: null, previous: null }, true);
  const charts = useMemo(() => (runs ? buildOverlay(runs, xMode, smooth) : []), [runs, xMode, smooth]);
  const diff = useMemo(() => (runs ? diffConfigs(runs.map((r) => r.job.config)) : []), [runs]);
  const shownDiff = onlyDiff ? diff.filter((d) => d.differs) : diff;

  const options = (fleet ?? []).filter((j) => !ids.includes(j.jobId));
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
          {ids.map((id, i) => (
            <span key={id} className="chip" style={{ borderColor: seriesColor(i) }}>
              <span style={{ color: seriesColor(i) }}>●</span>{' '}
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
          ))}
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
            {options.map((j) => (
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
        <label className="check slider">
          smoothing
          <input
            type="range"
            min={0}
            max={0.99}
            step={0.01}
            value={smooth}
            aria-label="Smoothing"
            onChange={(e) => setParams({ smooth: Number(e.target.value) > 0 ? e.target.value : null })}
          />
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={logY}
            onChange={(e) => setParams({ log: e.target.checked ? '1' : null })}
          />{' '}
          log scale
        </label>
      </div>

      {fleetError ? <ErrorBox error={fleetError} what="the list of runs" /> : null}
      {runsError ? <ErrorBox error={runsError} what="the runs" /> : null}
      {ids.length === 0 && (
        <Empty title="Pick runs to compare">
          <p>
            Add runs with the box above, or open a job and choose <em>Compare with previous runs</em>. Links
            look like <code>/compare?jobs=run-a,run-b</code> or{' '}
            <code>/compare?base=run-c&amp;previous=5</code>.
          </p>
        </Empty>
      )}
      {ids.length > 0 && runs === null && !runsError && (
        <div className="empty">Loading {ids.length} runs…</div>
      )}
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
                    <th key={r.job.jobId} style={{ color: seriesColor(i) }}>
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
