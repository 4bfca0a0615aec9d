import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { type ApiError, type FleetJob, fetchAlertHistory, fetchHeatmap, promQuery } from '../api';
import { HealthLegend, Heatmap, ScaleLegend } from '../components/heatmap';
import { RangePicker } from '../components/range-picker';
import { Empty, ErrorBox, LiveIndicator, Tile } from '../components/widgets';
import { fmtInt, fmtNumber, fmtPercent } from '../format';
import { type FleetSelection, useAlertJobs, useFleetRows } from '../hooks/use-fleet';
import { useNow, usePoll, useTicks } from '../hooks/use-live';
import { useVirtualRows } from '../hooks/use-virtual-rows';
import { healthByJob, healthMatrix } from '../lib/alerts';
import { divergenceSteps, healthWithCauses, jobStatusOf, stepQueryOf } from '../lib/causes';
import {
  alertingGpusOf,
  type FleetFilter,
  healthOf,
  healthRanking,
  jobKey,
  SERVER_SORT,
  SORT_KEYS,
  type SortKey,
} from '../lib/fleet';
import { decodeMatrix, type HeatmapRowInfo, type Matrix, mergeMatrix, NO_DATA } from '../lib/matrix';
import { nodeHref } from '../lib/node';
import { isLive, parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import type { Alert, JobStatus } from '../lib/types';
import { navigate, useSearchParams } from '../router';
import { FLEET_ROW_HEIGHT, FleetTable } from './fleet-table';

const FLEET_REFRESH_MS = 3000;
const ALERTS_REFRESH_MS = 5000;
/** A full heatmap refetch now and then re-decimates and refreshes idle GPU-hours; ticks fetch only tails. */
const HEATMAP_FULL_REFRESH_MS = 60_000;
/** Job rows of the heatmap that fit its height; beyond, rows are projects (or owners) with drill-down. */
const HEATMAP_MAX_HEIGHT = 360;
const HEATMAP_MAX_ROWS = Math.floor(HEATMAP_MAX_HEIGHT / 6);
/** The server ranks at most this many jobs for the health order (meta/job-page.ts). */
const MAX_RANKED = 500;
const IDLE_BELOW = 0.05;
const STATUSES: JobStatus[] = ['running', 'stalled', 'queued', 'unknown', 'completed', 'failed'];

function heatmapCols(): number {
  return Math.max(120, Math.min(720, Math.floor(window.innerWidth - 260)));
}

/**
 * The fleet at a glance, for fleets of 100,000 jobs: totals over the whole fleet, a virtualized table whose
 * rows the server filters, sorts and pages, and a heatmap of jobs × time (utilization or health) or
 * nodes × time that groups jobs by project when more have data than rows fit (a click on a group drills
 * into it). Filters, sort and drill-down live in the URL.
 */
export function FleetPage() {
  const [params, setParams] = useSearchParams();
  const now = useNow(2000);
  const range: RangeSpec = parseRange(params, { kind: 'relative', key: '1h', ms: 3_600_000 });
  const paused = params.get('paused') === '1';
  const allTenants = params.get('scope') === 'all';
  const filter: FleetFilter & { project: string } = {
    q: params.get('q') ?? '',
    status: (params.get('status') ?? '') as JobStatus | '',
    tenant: params.get('tenant') ?? '',
    owner: params.get('owner') ?? '',
    project: params.get('project') ?? '',
    tag: params.get('tag') ?? '',
    alerting: params.get('alerting') === '1',
  };
  const sortParam = params.get('sort') ?? '';
  const sortKey: SortKey =
    (SORT_KEYS as readonly string[]).includes(sortParam) && SERVER_SORT[sortParam as SortKey]
      ? (sortParam as SortKey)
      : 'health';
  const sortDir = params.get('dir') === 'asc' ? 'asc' : 'desc';
  const heatView = params.get('heat') === 'nodes' ? 'nodes' : 'jobs';
  const requestedColor = params.get('color') === 'health' && heatView === 'jobs' ? 'health' : 'util';
  /** The tenant the server reads: the caller's, one named (admins), or all. */
  const tenantParam = filter.tenant || (allTenants ? '*' : undefined);

  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [alertsError, setAlertsError] = useState<ApiError | null>(null);
  const [matrix, setMatrix] = useState<Matrix | null>(null);
  const [grouping, setGrouping] = useState<{
    by: 'project' | 'owner' | null;
    jobs: number;
    rowJobs: number[];
  }>({ by: null, jobs: 0, rowJobs: [] });
  const [heatError, setHeatError] = useState<unknown>(null);
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
        setAlerts(await fetchAlertHistory({ since: window_.start }, signal));
        setAlertsError(null);
      } catch (err) {
        if (!signal.aborted) setAlertsError(err as ApiError);
      }
    },
    paused ? 0 : ALERTS_REFRESH_MS,
    [rangeKey, paused],
  );

  // Health comes from alerts, which name a few jobs of the fleet: those jobs are fetched by key wherever
  // they sit in the table, for their GPUs, their causes of failure and the health order.
  const activeHealth = useMemo(() => healthByJob(alerts, 'default'), [alerts]);
  const alertKeys = useMemo(
    () =>
      alerts.filter((a) => a.labels.job_id).map((a) => `${a.labels.tenant ?? 'default'}/${a.labels.job_id}`),
    [alerts],
  );
  const alertJobs = useAlertJobs(alertKeys, allTenants ? '*' : undefined, paused ? 0 : ALERTS_REFRESH_MS);
  const defaultTenant = alertJobs[0]?.tenant ?? 'default';
  const [nanSteps, setNanSteps] = useState<ReadonlyMap<string, number | null>>(new Map());
  // Health counts unsilenced active alerts; a failed job's health is its cause (causes.ts), with the step at
  // which a diverged job's loss went NaN, read once per job.
  const alertHealth = useMemo(
    () => healthWithCauses(healthByJob(alerts, defaultTenant), alertJobs, alerts, defaultTenant, nanSteps),
    [alerts, defaultTenant, alertJobs, nanSteps],
  );
  useEffect(() => {
    const abort = new AbortController();
    void divergenceSteps(alertHealth, alertJobs, nanSteps, (j, t) => stepAt(j, t, abort.signal)).then((m) => {
      if (!abort.signal.aborted && m.size !== nanSteps.size) setNanSteps(m);
    });
    return () => abort.abort();
  }, [alertHealth, alertJobs, nanSteps]);

  const ranking = useMemo(() => healthRanking(alertHealth).slice(0, MAX_RANKED), [alertHealth]);
  const alertingKeys = useMemo(
    () => [...activeHealth.entries()].filter(([, h]) => h.alerts.length > 0).map(([k]) => k),
    [activeHealth],
  );
  const serverSort = SERVER_SORT[sortKey]!;
  const selection: FleetSelection = {
    tenant: tenantParam,
    search: filter.q.trim() || undefined,
    status: filter.status || undefined,
    owner: filter.owner || undefined,
    project: filter.project || undefined,
    tag: filter.tag || undefined,
    ...(filter.alerting ? { ids: alertingKeys } : {}),
    sort: serverSort.sort,
    order: serverSort.invert ? (sortDir === 'asc' ? 'desc' : 'asc') : sortDir,
    ...(serverSort.sort === 'ranked' ? { ranked: ranking } : {}),
  };

  const [total, setTotal] = useState(0);
  const virtual = useVirtualRows(total, FLEET_ROW_HEIGHT);
  const fleet = useFleetRows(selection, virtual.first, virtual.last, paused ? 0 : FLEET_REFRESH_MS);
  useEffect(() => {
    if (fleet.total !== null) setTotal(fleet.total);
  }, [fleet.total]);
  const selectionKey = JSON.stringify({ ...selection, ranked: undefined });
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new filter or sort starts at the top
  useEffect(() => virtual.scrollTo(0), [selectionKey]);

  const summary = fleet.summary;
  const health = useMemo(
    () =>
      healthWithCauses(
        healthByJob(alerts, defaultTenant),
        [...alertJobs, ...fleet.loaded],
        alerts,
        defaultTenant,
        nanSteps,
      ),
    [alerts, defaultTenant, alertJobs, fleet.loaded, nanSteps],
  );
  const totals = useMemo(() => {
    let alertingGpus = 0;
    for (const j of alertJobs) {
      const status = jobStatusOf(j, health);
      if (status !== 'running' && status !== 'stalled') continue;
      const h = healthOf(health, j);
      if (h.worst > 0) alertingGpus += alertingGpusOf(j, h);
    }
    return {
      running: summary?.facets.status.running ?? 0,
      busyGpus: summary?.gpus.busyGpus ?? 0,
      idleGpus: summary?.gpus.idleGpus ?? 0,
      meanUtilization: summary?.gpus.meanUtilization ?? null,
      alertingGpus,
    };
  }, [summary, alertJobs, health]);

  const filtered = Object.entries(filter).some(([, v]) => v !== '' && v !== false);
  const heatJobs = {
    status: selection.status,
    search: selection.search,
    project: selection.project,
    owner: selection.owner,
    tag: selection.tag,
    ids: filter.alerting ? alertingKeys.join(',') : undefined,
  };
  const heatJobsKey = JSON.stringify(heatJobs);
  // biome-ignore lint/correctness/useExhaustiveDependencies: heatJobs is rebuilt each render; its JSON is the dependency
  const heatQuery = useCallback(
    (start: number, end: number, step?: number) => ({
      metric: 'gpu_utilization_ratio',
      start,
      end,
      idleBelow: IDLE_BELOW,
      step,
      cols: heatmapCols(),
      tenant: tenantParam,
      jobs: heatJobs,
      ...(heatView === 'jobs'
        ? { by: ['tenant', 'job_id'], groupBy: 'project' as const, maxRows: HEATMAP_MAX_ROWS }
        : { by: ['tenant', 'node_id'], keep: ['job_id', 'cluster'] }),
    }),
    [heatView, tenantParam, heatJobsKey],
  );

  // Full heatmap load: on range, view or filter change, and every minute.
  usePoll(
    async (signal) => {
      const w = resolveRange(range, Date.now());
      try {
        const r = await fetchHeatmap(heatQuery(w.start, w.end), signal);
        const m = decodeMatrix(r);
        setWindow(w);
        matrixRef.current = m;
        setMatrix(m);
        setGrouping({ by: r.grouped ?? null, jobs: r.jobs ?? m.rows.length, rowJobs: r.row_jobs ?? [] });
        setIdleGpuHours(m.rows.reduce((a, row) => a + (row.idleSeconds ?? 0), 0) / 3600);
        setHeatError(null);
      } catch (err) {
        if (!signal.aborted) setHeatError(err);
      }
    },
    live ? HEATMAP_FULL_REFRESH_MS : 0,
    [rangeKey, heatQuery, live],
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
      // A full load (new filters: other rows) replaced the matrix meanwhile: this tail belongs to the old one.
      if (matrixRef.current !== old) return;
      setMatrix(mergeMatrix(old, tail, w.start));
      setWindow(w);
    },
    1000,
  );

  const grouped = heatView === 'jobs' ? grouping.by : null;
  const colorBy = grouped ? 'util' : requestedColor;
  const names = useMemo(
    () => new Map([...alertJobs, ...fleet.loaded].map((j) => [jobKey(j), j.name])),
    [alertJobs, fleet.loaded],
  );
  const jobRowLabel = useCallback(
    (r: HeatmapRowInfo) => {
      if (grouped) {
        const i = matrix?.rows.indexOf(r) ?? -1;
        const n = i >= 0 ? grouping.rowJobs[i] : undefined;
        return `${r.labels[grouped] || `(no ${grouped})`}${n !== undefined ? ` · ${n} jobs` : ''}`;
      }
      const name = names.get(`${r.labels.tenant}/${r.labels.job_id}`);
      const id = r.labels.job_id ?? '?';
      return name && name !== id && !id.startsWith(name) ? `${name} · ${id}` : id;
    },
    [grouped, grouping.rowJobs, matrix, names],
  );

  const healthCells = useMemo(() => {
    if (!matrix || colorBy !== 'health') return null;
    const keys = matrix.rows.map((r) => `${r.labels.tenant}/${r.labels.job_id}`);
    const levels = healthMatrix(alerts, keys, matrix.start, matrix.step, matrix.cols, defaultTenant);
    for (let i = 0; i < levels.length; i++)
      if (levels[i] === 0 && matrix.cells[i] === NO_DATA) levels[i] = NO_DATA;
    return levels;
  }, [matrix, alerts, colorBy, defaultTenant]);

  const setRange = (r: RangeSpec) => setParams(rangeParams(r));
  const facets = summary?.facets;
  const tenants = summary?.tenants ?? [];
  const empty = fleet.total === 0 && !filtered;
  const heatRows = matrix?.rows.length ?? 0;

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
          placeholder="Search jobs, projects, owners…"
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
          label="Project"
          value={filter.project}
          options={withCurrent(facets?.projects, filter.project)}
          onChange={(v) => setParams({ project: v })}
        />
        <Select
          label="Owner"
          value={filter.owner}
          options={withCurrent(facets?.owners, filter.owner)}
          onChange={(v) => setParams({ owner: v })}
        />
        <Select
          label="Tag"
          value={filter.tag}
          options={withCurrent(facets?.tags, filter.tag)}
          onChange={(v) => setParams({ tag: v })}
        />
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
              setParams({
                q: null,
                status: null,
                tenant: null,
                owner: null,
                project: null,
                tag: null,
                alerting: null,
              })
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

      {fleet.error ? <ErrorBox error={fleet.error} what="the fleet" /> : null}
      {alertsError && (
        <div className="note" data-testid="alerts-unavailable">
          Health is unknown:{' '}
          {alertsError.missingRoute ? 'this server has no alerting API yet' : alertsError.message}. Jobs and
          heatmaps still work.
        </div>
      )}
      {fleet.total === null && !fleet.error && <div className="empty">Loading the fleet…</div>}
      {empty && (
        <Empty title="No jobs yet">
          <p>
            Send metrics with the Python SDK (<code>import trainwatch as tw; tw.init()</code>), the agent (
            <code>trainwatch agent</code>), Prometheus remote-write or OTLP — or run{' '}
            <code>trainwatch demo</code> for a simulated fleet.
          </p>
        </Empty>
      )}

      {fleet.total !== null && !empty && (
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
                  disabled={!!alertsError || !!grouped}
                  title={grouped ? `Health is shown per job: pick a ${grouped} to drill into` : undefined}
                >
                  Health
                </button>
              </fieldset>
            )}
          </div>
          {grouped && (
            <p className="muted small" data-testid="heatmap-grouped">
              {fmtInt(grouping.jobs)} jobs have data in this range, more than fit: one row per {grouped}.
              Click a row to see its jobs.
            </p>
          )}
          {heatError ? (
            <ErrorBox error={heatError} what="the heatmap" />
          ) : (
            <Heatmap
              title={
                heatView === 'nodes'
                  ? `Mean GPU utilization of ${heatRows} nodes`
                  : grouped
                    ? `Mean GPU utilization of ${fmtInt(grouping.jobs)} jobs in ${heatRows} ${grouped === 'project' ? 'projects' : 'owners'}`
                    : `${colorBy === 'health' ? 'Health' : 'Mean GPU utilization'} of ${heatRows} jobs`
              }
              testId={heatView === 'jobs' ? 'fleet-heatmap' : 'nodes-heatmap'}
              matrix={matrix}
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
                const row = matrix?.rows[mr];
                if (grouped) {
                  const value = row?.labels[grouped];
                  if (value) setParams({ [grouped]: value }, true);
                  return;
                }
                const { job_id: job, node_id: node } = row?.labels ?? {};
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
              maxHeight={heatView === 'jobs' ? HEATMAP_MAX_HEIGHT : 480}
              emptyText={filtered ? 'No job matches the filters.' : 'No GPU utilization in this time range.'}
            />
          )}

          <h2>
            Jobs{' '}
            <span className="muted small" data-testid="jobs-count">
              {filtered && facets
                ? `${fmtInt(fleet.total)} of ${fmtInt(Object.values(facets.status).reduce<number>((a, n) => a + (n ?? 0), 0))}`
                : fmtInt(fleet.total)}
            </span>
          </h2>
          {fleet.total === 0 ? (
            <Empty title="No job matches">
              <p>Change or clear the filters above.</p>
            </Empty>
          ) : (
            <FleetTable
              total={fleet.total}
              at={fleet.at}
              health={health}
              healthUnknown={!!alertsError}
              showTenant={tenants.length > 1}
              sortKey={sortKey}
              sortDir={sortDir}
              onSort={(key, dir) => setParams({ sort: key, dir })}
              virtual={virtual}
              now={now}
            />
          )}
        </>
      )}
    </section>
  );
}

/** A filter's menu keeps the current value even when the facets (first 500 values) leave it out. */
function withCurrent(options: readonly string[] | undefined, current: string): readonly string[] {
  const list = options ?? [];
  return current && !list.includes(current) ? [current, ...list] : list;
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
