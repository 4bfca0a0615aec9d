import { useEffect, useMemo, useState } from 'react';
import { type ApiError, fetchNode, type NodeDetail, promQueryRange } from '../api';
import { Chart, seriesColor } from '../components/chart';
import { DataTable } from '../components/data-table';
import { RangePicker } from '../components/range-picker';
import { ErrorBox, StatusBadge, Tile } from '../components/widgets';
import { fmtAge, fmtTime } from '../format';
import { useNow, usePoll } from '../hooks/use-live';
import { type LineSeries, matrixLines, type NodeChart, nodeCharts, nodeStepMs } from '../lib/node';
import type { PlotGutters } from '../lib/time-axis';
import { isLive, parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import { formatWithUnit, type Unit } from '../lib/units';
import { onLinkClick, useSearchParams } from '../router';

/** Room for the y-axis labels of every chart (`140 GiB/s`), the same on each so that plot areas line up. */
const NODE_GUTTERS: PlotGutters = { left: 90, right: 18 };
const LIVE_REFRESH_MS = 10_000;

function chartPoints(): number {
  return Math.max(200, Math.min(1200, Math.floor(window.innerWidth / 2)));
}

interface Loaded {
  readonly window: { start: number; end: number };
  readonly detail: NodeDetail;
  /** Lines per chart id; an Error when that chart's queries failed. */
  readonly lines: Readonly<Record<string, LineSeries[] | Error>>;
}

async function loadCharts(
  charts: readonly NodeChart[],
  w: { start: number; end: number },
  stepMs: number,
  signal: AbortSignal,
): Promise<Record<string, LineSeries[] | Error>> {
  const out: Record<string, LineSeries[] | Error> = {};
  await Promise.all(
    charts.map(async (c) => {
      try {
        const parts = await Promise.all(
          c.queries.map(async (q) => {
            const r = await promQueryRange(q.query, w.start, w.end, stepMs, signal);
            return r.resultType === 'matrix' ? matrixLines(r.result, q) : [];
          }),
        );
        out[c.id] = parts.flat();
      } catch (err) {
        out[c.id] = err as Error;
      }
    }),
  );
  return out;
}

/**
 * One node: every GPU's utilization, memory, temperature, power and clock, its health (XID and ECC errors,
 * throttling, PCIe and NVLink throughput) and the node's network, as charts on one time axis; its GPUs and
 * the jobs that ran on it in the range, each linking to its job page. The range lives in the URL.
 */
export function NodePage({ nodeId }: { nodeId: string }) {
  const [params, setParams] = useSearchParams();
  const now = useNow(5000);
  const range: RangeSpec = parseRange(params, { kind: 'relative', key: '1h', ms: 60 * 60_000 });
  const rangeKey = JSON.stringify(range);
  const live = isLive(range);
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);

  usePoll(
    async (signal) => {
      const w = resolveRange(range, Date.now());
      const stepMs = nodeStepMs(w.start, w.end, chartPoints());
      try {
        const [detail, lines] = await Promise.all([
          fetchNode(nodeId, w.start, w.end, signal),
          loadCharts(nodeCharts(nodeId, stepMs), w, stepMs, signal),
        ]);
        if (signal.aborted) return;
        setLoaded({ window: w, detail, lines });
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as Error);
      }
    },
    live ? LIVE_REFRESH_MS : 0,
    [nodeId, rangeKey],
  );

  // For tests: the node's answer and every chart's queries are in.
  useEffect(() => {
    if (loaded) document.body.dataset.nodeLoaded = '1';
    return () => {
      delete document.body.dataset.nodeLoaded;
    };
  }, [loaded]);

  const charts = useMemo(
    () =>
      nodeCharts(nodeId, loaded ? nodeStepMs(loaded.window.start, loaded.window.end, chartPoints()) : 1000),
    [nodeId, loaded],
  );

  if (error && !loaded) return <ErrorBox error={error} what={`node ${nodeId}`} />;
  const w = loaded?.window ?? resolveRange(range, now);
  const axis = { start: w.start, end: live ? Math.max(w.end, now) : w.end };
  const zoom = (from: number, to: number) => setParams(rangeParams({ kind: 'absolute', from, to }), true);
  const detail = loaded?.detail ?? null;
  const reported = new Set(detail?.metrics ?? []);
  const models = [...new Set((detail?.gpus ?? []).map((g) => g.name).filter((n): n is string => !!n))];
  const running = (detail?.jobs ?? []).filter((j) => j.endMs === null && j.status === 'running');

  const chart = (c: NodeChart) => {
    const got = loaded?.lines[c.id];
    const unit: Unit = { base: c.unit, perSecond: c.perSecond, source: 'name' };
    const series = got instanceof Error || !got ? [] : got.map((s, i) => ({ ...s, color: seriesColor(i) }));
    const notReported = detail !== null && !c.metrics.some((m) => reported.has(m));
    return (
      <Chart
        key={c.id}
        title={c.title}
        testId={`node-chart-${c.id}`}
        series={series}
        xRange={axis}
        gutters={NODE_GUTTERS}
        syncKey={`node-${nodeId}`}
        onZoom={zoom}
        yFormat={(v) => formatWithUnit(v, unit)}
        height={180}
        loading={!loaded}
        emptyText={
          got instanceof Error
            ? `Could not load: ${got.message}`
            : notReported
              ? `Not reported by this node in this range. ${c.absent}`
              : (c.quiet ?? 'No data in this range.')
        }
      />
    );
  };

  return (
    <section className="page" aria-labelledby="node-title">
      <div className="page-head">
        <div>
          <h1 id="node-title">
            Node <span className="mono">{nodeId}</span>
          </h1>
          <div className="sub">
            {detail
              ? `${detail.gpus.length} GPU${detail.gpus.length === 1 ? '' : 's'}${models.length ? ` · ${models.join(', ')}` : ''} · tenant ${detail.tenant}`
              : 'Loading…'}
          </div>
        </div>
        <div className="tiles">
          <Tile label="GPUs" value={detail ? String(detail.gpus.length) : '—'} testId="node-gpu-count" />
          <Tile label="jobs in range" value={detail ? String(detail.jobCount) : '—'} />
          <Tile label="running jobs" value={detail ? String(running.length) : '—'} />
        </div>
      </div>

      <div className="toolbar">
        <RangePicker value={range} onChange={(r) => setParams(rangeParams(r))} resolved={w} />
        {error && loaded ? <span className="note">Refresh failed: {error.message}</span> : null}
      </div>

      {detail && detail.gpus.length === 0 && detail.jobs.length === 0 && detail.metrics.length === 0 && (
        <div className="empty" data-testid="node-empty">
          <h2>Nothing from this node in this range</h2>
          <p>
            No series carries <code>node_id="{nodeId}"</code> between {fmtTime(w.start)} and {fmtTime(w.end)}.
            Pick a longer range, or check the node's agent.
          </p>
        </div>
      )}

      <h2>GPUs</h2>
      <div className="charts timeline">{charts.filter((c) => c.section === 'gpus').map(chart)}</div>
      <h2>Health</h2>
      <div className="charts timeline">{charts.filter((c) => c.section === 'health').map(chart)}</div>

      <h2>
        Jobs on this node{' '}
        {detail && detail.jobCount > detail.jobs.length && (
          <span className="muted small">
            the {detail.jobs.length} most recent of {detail.jobCount}
          </span>
        )}
      </h2>
      {detail && detail.jobs.length === 0 ? (
        <p className="muted">No job ran on this node in this range.</p>
      ) : (
        <DataTable
          testId="node-jobs"
          columns={['Job', 'Status', 'GPUs (rank)', 'Owner', 'Started', 'Ran for']}
        >
          {(detail?.jobs ?? []).map((j) => {
            const ranks = (detail?.gpus ?? []).flatMap((g) =>
              g.jobs
                .filter((x) => x.jobId === j.jobId)
                .map((x) => `gpu ${g.gpu}${x.rank !== null ? ` (rank ${x.rank})` : ''}`),
            );
            return (
              <tr key={j.jobId} data-job-id={j.jobId}>
                <td>
                  <a href={`/jobs/${encodeURIComponent(j.jobId)}`} onClick={onLinkClick}>
                    {j.known && j.name ? j.name : j.jobId}
                  </a>
                  {j.known && j.name && j.name !== j.jobId && <div className="sub mono">{j.jobId}</div>}
                </td>
                <td>
                  <StatusBadge status={j.status} />
                </td>
                <td>{ranks.join(', ') || '—'}</td>
                <td>{j.owner || '—'}</td>
                <td>{fmtTime(j.startMs)}</td>
                <td>{j.startMs !== null ? fmtAge(j.startMs, j.endMs ?? j.lastSampleMs ?? now) : '—'}</td>
              </tr>
            );
          })}
        </DataTable>
      )}

      <h2>GPU inventory</h2>
      <DataTable testId="node-gpus" columns={['GPU', 'Model', 'UUID', 'Jobs in range']}>
        {(detail?.gpus ?? []).map((g) => (
          <tr key={g.gpu} data-gpu={g.gpu}>
            <td>gpu {g.gpu}</td>
            <td>{g.name ?? '—'}</td>
            <td className="mono small">{g.uuid ?? '—'}</td>
            <td>
              {g.jobs.length === 0
                ? '—'
                : g.jobs.map((x, i) => (
                    <span key={x.jobId}>
                      {i > 0 && ', '}
                      <a href={`/jobs/${encodeURIComponent(x.jobId)}`} onClick={onLinkClick}>
                        {x.jobId}
                      </a>
                      {x.rank !== null && <span className="muted"> rank {x.rank}</span>}
                    </span>
                  ))}
            </td>
          </tr>
        ))}
      </DataTable>
    </section>
  );
}
