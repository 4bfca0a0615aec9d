import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { type ApiError, type FleetJob, fetchAlertHistory, fetchFleet, fetchHeatmap, promQuery } from '../api';
import { HealthLegend, Heatmap, ScaleLegend } from '../components/heatmap';
import { RangePicker } from '../components/range-picker';
import {
  Empty,
  ErrorBox,
  HealthBadges,
  LiveIndicator,
  StatusBadge,
  Tile,
  UtilBar,
} from '../components/widgets';
import { fmtAge, fmtInt, fmtNumber, fmtPercent } from '../format';
import { useNow, usePoll, useTicks } from '../hooks/use-live';
import { healthByJob, healthMatrix } from '../lib/alerts';
import { divergenceSteps, healthWithCauses, jobStatusOf, stepQueryOf } from '../lib/causes';
import {
  distinct,
  type FleetFilter,
  filterJobs,
  fleetTotals,
  jobKey,
  SORT_KEYS,
  type SortKey,
  sortJobs,
} from '../lib/fleet';
import { decodeMatrix, type HeatmapRowInfo, type Matrix, mergeMatrix, NO_DATA } from '../lib/matrix';
import { nodeHref } from '../lib/node';
import { isLive, parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import type { Alert, JobStatus } from '../lib/types';
import { navigate, onLinkClick, useSearchParams } from '../router';

const FLEET_REFRESH_MS = 3000;
const ALERTS_REFRESH_MS = 5000;
/** A full heatmap refetch now and then re-decimates and refreshes idle GPU-hours; ticks fetch only tails. */
const HEATMAP_FULL_REFRESH_MS = 60_000;
const TABLE_PAGE = 200;
const IDLE_BELOW = 0.05;
const STATUSES: JobStatus[] = ['running', 'stalled', 'queued', 'unknown', 'completed', 'failed'];

const COLUMNS: { key: SortKey; label: string; num?: boolean }[] = [
  { key: 'name', label: 'Job' },
  { key: 'status', label: 'Status' },
  { key: 'health', label: 'Health' },
  { key: 'owner', label: 'Owner' },
  { key: 'gpus', label: 'GPUs', num: true },
  { key: 'util', label: 'GPU util' },
  { key: 'throughput', label: 'Throughput', num: true },
  { key: 'loss', label: 'Loss', num: true },
  { key: 'step', label: 'Step', num: true },
  { key: 'age', label: 'Age', num: true },
];

function heatmapCols(): number {
  return Math.max(120, Math.min(720, Math.floor(window.innerWidth - 260)));
}

/**
 * The fleet at a glance: totals, every job with its status, health and live numbers, and heatmaps of
 * jobs × time (utilization or health) and nodes × time. Everything is filterable, sortable and in the URL.
 */
export function FleetPage() {
  const [params, setParams] = useSearchParams();
  const now = useNow(2000);
  const range: RangeSpec = parseRange(params, { kind: 'relative', key: '1h', ms: 3_600_000 });
  const paused = params.get('paused') === '1';
  const allTenants = params.get('scope') === 'all';
  const filter: FleetFilter = {
    q: params.get('q') ?? '',
    status: (params.get('status') ?? '') as JobStatus | '',
    tenant: params.get('tenant') ?? '',
    owner: params.get('owner') ?? '',
    tag: params.get('tag') ?? '',
    alerting: params.get('alerting') === '1',
  };
  const sortKey = (SORT_KEYS as readonly string[]).includes(params.get('sort') ?? '')
    ? (params.get('sort') as SortKey)
    : 'health';
  const sortDir = params.get('dir') === 'asc' ? 'asc' : 'desc';
  const heatView = params.get('heat') === 'nodes' ? 'nodes' : 'jobs';
  const colorBy = params.get('color') === 'health' && heatView === 'jobs' ? 'health' : 'util';

  const [jobs, setJobs] = useState<FleetJob[] | null>(null);
  const [tenants, setTenants] = useState<string[]>([]);
  const [fleetError, setFleetError] = useState<unknown>(null);
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [alertsError, setAlertsError] = useState<ApiError | null>(null);
  const [matrix, setMatrix] = useState<Matrix | null>(null);
  const [heatError, setHeatError] = useState<unknown>(null);
  const [showAll, setShowAll] = useState(false);
  /** Idle GPU-hours over the range, from the last full heatmap load (tails cover only their own columns). */
  const [idleGpuHours, setIdleGpuHours] = useState<number | null>(null);
  const matrixRef = useRef<Matrix | null>(null);
  matrixRef.current = matrix;

  // The range is resolved when it changes, then moved forward by live ticks.
  const [window_, setWindow] = useState(() => resolveRange(range, Date.now()));
  const rangeKey = JSON.stringify(range);
  const live = isLive(range) && !paused;

  usePoll(
    async (signal) => {
      try {
        const d = await fetchFleet(allTenants ? '*' : undefined, signal);
        setJobs(d.jobs);
        setTenants(d.tenants);
        setFleetError(null);
      } catch (err) {
        if (!signal.aborted) setFleetError(err);
      }
    },
    paused ? 0 : FLEET_REFRESH_MS,
    [allTenants, paused],
  );

  usePoll(
    async (signal) => {
      try {
        setAlerts(await fetchAlertHistory({ since: window_.start }, signal));
        setAlertsError(null);
      } catch (err) {
        if (!signal.aborted) setAlertsError(err as ApiError);
      }
    },
    paused ? 0 : ALERTS_REFRESH_MS,
    [rangeKey, paused],
  );

  const heatQuery = useCallback(
    (start: number, end: number, step?: number) =>
      heatView === 'jobs'
        ? {
            metric: 'gpu_utilization_ratio',
            start,
            end,
            by: ['tenant', 'job_id'],
            idleBelow: IDLE_BELOW,
            step,
            cols: heatmapCols(),
            tenant: allTenants ? '*' : undefined,
          }
        : {
            metric: 'gpu_utilization_ratio',
            start,
            end,
            by: ['tenant', 'node_id'],
            keep: ['job_id', 'cluster'],
            idleBelow: IDLE_BELOW,
            step,
            cols: heatmapCols(),
            tenant: allTenants ? '*' : undefined,
          },
    [heatView, allTenants],
  );

  // Full heatmap load: on range or view change, and every minute.
  usePoll(
    async (signal) => {
      const w = resolveRange(range, Date.now());
      try {
        const m = decodeMatrix(await fetchHeatmap(heatQuery(w.start, w.end), signal));
        setWindow(w);
        setMatrix(m);
        setIdleGpuHours(m.rows.reduce((a, r) => a + (r.idleSeconds ?? 0), 0) / 3600);
        setHeatError(null);
      } catch (err) {
        if (!signal.aborted) setHeatError(err);
      }
    },
    live ? HEATMAP_FULL_REFRESH_MS : 0,
    [rangeKey, heatView, allTenants, live],
  );

  // Live: new utilization samples anywhere in the fleet → fetch only the newest columns.
  const liveState = useTicks(
    isLive(range) ? { metric: 'gpu_utilization_ratio', tenant: allTenants ? '*' : undefined } : null,
    paused,
    async () => {
      const old = matrixRef.current;
      if (!old) return;
      const w = resolveRange(range, Date.now());
      const lastCol = old.start + (old.cols - 1) * old.step;
      const tail = decodeMatrix(await fetchHeatmap(heatQuery(lastCol, w.end, old.step)));
      setMatrix(mergeMatrix(old, tail, w.start));
      setWindow(w);
    },
    1000,
  );

  const defaultTenant = jobs?.[0]?.tenant ?? 'default';
  // Health counts unsilenced active alerts; a failed job's health is its cause (causes.ts), with the step
  // at which a diverged job's loss went NaN, read once per job.
  const [nanSteps, setNanSteps] = useState<ReadonlyMap<string, number | null>>(new Map());
  const health = useMemo(
    () => healthWithCauses(healthByJob(alerts, defaultTenant), jobs ?? [], alerts, defaultTenant, nanSteps),
    [alerts, defaultTenant, jobs, nanSteps],
  );
  useEffect(() => {
    const abort = new AbortController();
    void divergenceSteps(health, jobs ?? [], nanSteps, (j, t) => stepAt(j, t, abort.signal)).then((m) => {
      if (!abort.signal.aborted && m.size !== nanSteps.size) setNanSteps(m);
    });
    return () => abort.abort();
  }, [health, jobs, nanSteps]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: filter is rebuilt from the URL each render; its JSON is the dependency
  const shown = useMemo(
    () => (jobs ? sortJobs(filterJobs(jobs, filter, health), sortKey, sortDir, health, now) : []),
    [jobs, JSON.stringify(filter), health, sortKey, sortDir, now],
  );
  const totals = useMemo(() => fleetTotals(jobs ?? [], health), [jobs, health]);
  const jobRowLabel = useMemo(() => {
    const names = new Map((jobs ?? []).map((j) => [jobKey(j), j.name]));
    return (r: HeatmapRowInfo) => {
      const name = names.get(`${r.labels.tenant}/${r.labels.job_id}`);
      const id = r.labels.job_id ?? '?';
      return name && name !== id && !id.startsWith(name) ? `${name} · ${id}` : id;
    };
  }, [jobs]);

  // Heatmap rows follow the table: its filter and its order.
  const rowOrder = useMemo(() => {
    if (!matrix) return [];
    const position = new Map(shown.map((j, i) => [jobKey(j), i]));
    const rows = matrix.rows
      .map((r, i) => ({
        i,
        pos: position.get(`${r.labels.tenant}/${r.labels.job_id}`),
        node: r.labels.node_id ?? '',
      }))
      .filter((r) => r.pos !== undefined);
    rows.sort((a, b) => a.pos! - b.pos! || a.node.localeCompare(b.node, 'en', { numeric: true }));
    return rows.map((r) => r.i);
  }, [matrix, shown]);

  const healthCells = useMemo(() => {
    if (!matrix || colorBy !== 'health') return null;
    const keys = matrix.rows.map((r) => `${r.labels.tenant}/${r.labels.job_id}`);
    const levels = healthMatrix(alerts, keys, matrix.start, matrix.step, matrix.cols, defaultTenant);
    for (let i = 0; i < levels.length; i++)
      if (levels[i] === 0 && matrix.cells[i] === NO_DATA) levels[i] = NO_DATA;
    return levels;
  }, [matrix, alerts, colorBy, defaultTenant]);

  const setRange = (r: RangeSpec) => setParams(rangeParams(r));
  const owners = useMemo(() => distinct((jobs ?? []).map((j) => j.owner)), [jobs]);
  const tags = useMemo(() => distinct((jobs ?? []).flatMap((j) => j.tags)), [jobs]);
  const rows = showAll ? shown : shown.slice(0, TABLE_PAGE);
  const filtered = Object.entries(filter).some(([, v]) => v !== '' && v !== false);

  return (
    <section className="page" aria-labelledby="fleet-title">
      <div className="page-head">
        <h1 id="fleet-title">Fleet</h1>
        <div className="tiles" data-testid="fleet-totals">
          <Tile label="running jobs" value={fmtInt(totals.running)} />
          <Tile label="GPUs busy" value={fmtInt(totals.busyGpus)} tone="good" testId="tile-busy" />
          <Tile
            label="GPUs idle"
            value={fmtInt(totals.idleGpus)}
            tone={totals.idleGpus ? 'warn' : undefined}
            testId="tile-idle"
          />
          <Tile
            label="GPUs alerting"
            value={alertsError ? '—' : fmtInt(totals.alertingGpus)}
            tone={totals.alertingGpus ? 'bad' : undefined}
            testId="tile-alerting"
          />
          <Tile
            label="idle GPU-hours (range)"
            value={idleGpuHours === null ? '—' : fmtNumber(idleGpuHours, 3)}
            testId="tile-idle-hours"
          />
          <Tile label="mean GPU utilization" value={fmtPercent(totals.meanUtilization)} />
        </div>
      </div>

      <div className="toolbar">
        <input
          type="search"
          placeholder="Search jobs, projects, owners, tags…"
          aria-label="Search jobs"
          value={filter.q}
          onChange={(e) => setParams({ q: e.target.value })}
        />
        <Select
          label="Status"
          value={filter.status}
          options={STATUSES}
          onChange={(v) => setParams({ status: v })}
        />
        {(tenants.length > 1 || allTenants) && (
          <Select
            label="Tenant"
            value={filter.tenant}
            options={tenants}
            onChange={(v) => setParams({ tenant: v })}
          />
        )}
        <Select
          label="Owner"
          value={filter.owner}
          options={owners}
          onChange={(v) => setParams({ owner: v })}
        />
        <Select label="Tag" value={filter.tag} options={tags} onChange={(v) => setParams({ tag: v })} />
        <label className="check">
          <input
            type="checkbox"
            checked={filter.alerting}
            onChange={(e) => setParams({ alerting: e.target.checked ? '1' : null })}
          />{' '}
          alerting only
        </label>
        <label className="check" title="Needs a token with the admin scope">
          <input
            type="checkbox"
            checked={allTenants}
            onChange={(e) => setParams({ scope: e.target.checked ? 'all' : null, tenant: null })}
          />{' '}
          all tenants
        </label>
        {filtered && (
          <button
            type="button"
            className="btn btn-small"
            onClick={() =>
              setParams({ q: null, status: null, tenant: null, owner: null, tag: null, alerting: null })
            }
          >
            Clear filters
          </button>
        )}
        <span className="spacer" />
        <RangePicker value={range} onChange={setRange} resolved={window_} />
        <LiveIndicator
          state={isLive(range) ? liveState : 'off'}
          onToggle={() => setParams({ paused: paused ? null : '1' })}
        />
      </div>

      {fleetError ? <ErrorBox error={fleetError} what="the fleet" /> : null}
      {alertsError && (
        <div className="note" data-testid="alerts-unavailable">
          Health is unknown:{' '}
          {alertsError.missingRoute ? 'this server has no alerting API yet' : alertsError.message}. Jobs and
          heatmaps still work.
        </div>
      )}
      {jobs === null && !fleetError && <div className="empty">Loading the fleet…</div>}
      {jobs !== null && jobs.length === 0 && (
        <Empty title="No jobs yet">
          <p>
            Send metrics with the Python SDK (<code>import trainwatch as tw; tw.init()</code>), the agent (
            <code>trainwatch agent</code>), Prometheus remote-write or OTLP — or run{' '}
            <code>trainwatch demo</code> for a simulated fleet.
          </p>
        </Empty>
      )}

      {jobs !== null && jobs.length > 0 && (
        <>
          <div className="section-head">
            <h2>{heatView === 'jobs' ? 'Jobs' : 'Nodes'} over time</h2>
            <fieldset className="segmented" aria-label="Heatmap rows">
              <button
                type="button"
                aria-pressed={heatView === 'jobs'}
                onClick={() => setParams({ heat: null })}
              >
                Jobs
              </button>
              <button
                type="button"
                aria-pressed={heatView === 'nodes'}
                onClick={() => setParams({ heat: 'nodes', color: null })}
              >
                Nodes
              </button>
            </fieldset>
            {heatView === 'jobs' && (
              <fieldset className="segmented" aria-label="Colour by">
                <button
                  type="button"
                  aria-pressed={colorBy === 'util'}
                  onClick={() => setParams({ color: null })}
                >
                  GPU utilization
                </button>
                <button
                  type="button"
                  aria-pressed={colorBy === 'health'}
                  onClick={() => setParams({ color: 'health' })}
                  disabled={!!alertsError}
                >
                  Health
                </button>
              </fieldset>
            )}
          </div>
          {heatError ? (
            <ErrorBox error={heatError} what="the heatmap" />
          ) : (
            <Heatmap
              title={
                heatView === 'jobs'
                  ? `${colorBy === 'health' ? 'Health' : 'Mean GPU utilization'} of ${rowOrder.length} jobs`
                  : `Mean GPU utilization of ${rowOrder.length} nodes`
              }
              testId={heatView === 'jobs' ? 'fleet-heatmap' : 'nodes-heatmap'}
              matrix={matrix}
              rowOrder={rowOrder}
              cells={healthCells}
              scale={colorBy === 'health' ? 'health' : 'utilization'}
              rowLabel={heatView === 'jobs' ? jobRowLabel : nodeRowLabel}
              rowDetail={(r) =>
                `mean ${fmtPercent(r.mean)} · now ${fmtPercent(r.last)} · idle ${fmtNumber((r.idleSeconds ?? 0) / 3600, 2)} GPU-h`
              }
              valueFormat={(v) => fmtPercent(v)}
              rangeStart={window_.start}
              rangeEnd={window_.end}
              onSelect={(mr, t) => {
                const { job_id: job, node_id: node } = matrix?.rows[mr]?.labels ?? {};
                // A node row opens the node page at that moment; a job row the job page.
                if (heatView === 'nodes' && node) navigate(nodeHref(node, { t: String(Math.round(t)) }));
                else if (job) navigate(`/jobs/${encodeURIComponent(job)}?t=${Math.round(t)}`);
              }}
              legend={
                colorBy === 'health' ? (
                  <HealthLegend />
                ) : (
                  <ScaleLegend scale="utilization" lo={0} hi={1} format={fmtPercent} />
                )
              }
              loading={matrix === null}
              maxHeight={heatView === 'jobs' ? 360 : 480}
              emptyText={filtered ? 'No job matches the filters.' : 'No GPU utilization in this time range.'}
            />
          )}

          <h2>
            Jobs{' '}
            <span className="muted small">
              {shown.length === jobs.length ? jobs.length : `${shown.length} of ${jobs.length}`}
            </span>
          </h2>
          {shown.length === 0 ? (
            <Empty title="No job matches">
              <p>Change or clear the filters above.</p>
            </Empty>
          ) : (
            <div className="table-scroll">
              <table className="jobs" data-testid="jobs-table">
                <thead>
                  <tr>
                    {COLUMNS.map((c) => (
                      <th
                        key={c.key}
                        className={c.num ? 'num' : undefined}
                        aria-sort={
                          sortKey === c.key ? (sortDir === 'asc' ? 'ascending' : 'descending') : undefined
                        }
                      >
                        <button
                          type="button"
                          className="sort"
                          onClick={() =>
                            setParams({
                              sort: c.key,
                              dir: sortKey === c.key && sortDir === 'desc' ? 'asc' : 'desc',
                            })
                          }
                        >
                          {c.label}
                          <span aria-hidden="true">
                            {sortKey === c.key ? (sortDir === 'asc' ? ' ▲' : ' ▼') : ''}
                          </span>
                        </button>
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {rows.map((j) => {
                    const h = health.get(jobKey(j));
                    return (
                      <tr key={jobKey(j)} data-job-id={j.jobId} data-alerts={h?.alerts.length ?? 0}>
                        <td>
                          <a
                            href={`/jobs/${encodeURIComponent(j.jobId)}`}
                            onClick={onLinkClick}
                            className="job-link"
                          >
                            {j.name !== j.jobId ? j.name : j.jobId}
                          </a>
                          <div className="sub">
                            {j.jobId}
                            {tenants.length > 1 ? ` · ${j.tenant}` : ''}
                            {j.project ? ` · ${j.project}` : ''}
                          </div>
                        </td>
                        <td>
                          <StatusBadge status={jobStatusOf(j, health)} cause={h?.cause} />
                        </td>
                        <td>
                          <HealthBadges health={h} unknown={!!alertsError} />
                        </td>
                        <td>{j.owner || '—'}</td>
                        <td className="num">
                          {j.gpus || j.worldSize || '—'}
                          {j.idleGpus > 0 && <div className="sub warn">{j.idleGpus} idle</div>}
                        </td>
                        <td>
                          <UtilBar ratio={j.meanGpuUtilization} />
                        </td>
                        <td className="num">
                          {/* A hung job's 0 is news: only a job that reports no throughput shows a dash. */}
                          {j.tokensPerSecond !== null && (j.tokensPerSecond > 0 || !j.samplesPerSecond)
                            ? `${fmtNumber(j.tokensPerSecond)} tok/s`
                            : j.samplesPerSecond !== null
                              ? `${fmtNumber(j.samplesPerSecond)} samples/s`
                              : '—'}
                        </td>
                        <td className={`num ${j.loss === 'NaN' ? 'bad' : ''}`}>{fmtNumber(j.loss, 4)}</td>
                        <td className="num">{fmtInt(j.step)}</td>
                        <td className="num">{fmtAge(j.startMs, j.endMs ?? now)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
              {shown.length > rows.length && (
                <button type="button" className="btn" onClick={() => setShowAll(true)}>
                  Show all {shown.length} jobs
                </button>
              )}
            </div>
          )}
        </>
      )}
    </section>
  );
}

/** The training step of a job at time t (PromQL's five-minute lookback), or null. */
export async function stepAt(
  j: Pick<FleetJob, 'jobId'>,
  t: number,
  signal?: AbortSignal,
): Promise<number | null> {
  const r = await promQuery(stepQueryOf(j), t, signal);
  const v = r.resultType === 'vector' ? r.result[0]?.value[1] : undefined;
  return v === undefined || !Number.isFinite(Number(v)) ? null : Number(v);
}

function nodeRowLabel(r: HeatmapRowInfo): string {
  return `${r.labels.node_id} · ${r.labels.job_id ?? ''}`;
}

function Select({
  label,
  value,
  options,
  onChange,
}: {
  label: string;
  value: string;
  options: readonly string[];
  onChange: (v: string) => void;
}) {
  return (
    <label className="select">
      <span className="sr-only">{label}</span>
      <select value={value} onChange={(e) => onChange(e.target.value)} aria-label={label}>
        <option value="">{label}: any</option>
        {options.map((o) => (
          <option key={o} value={o}>
            {label}: {o}
          </option>
        ))}
      </select>
    </label>
  );
}
