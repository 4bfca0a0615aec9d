/**
 * The dashboard's reads of jobs, series and charts (/api/tw/v1), their live streams (Server-Sent Events read
 * with fetch), and PromQL through the Prometheus API (/api/v1). Re-exported by api.ts.
 */
import { get, headers, qs, UNAUTHORIZED_EVENT } from './api-client';
import type { HeatmapResponse } from './lib/matrix';
import { type RunPageQuery, runPageParams } from './lib/previous-runs';
import type { CurvesQuery, HeatmapQuery, SeriesQuery, SpreadQuery } from './lib/queries';
import type { RunsResponse } from './lib/runs';
import { SseParser } from './lib/sse';
import type {
  Curve,
  FleetJob,
  JobStatus,
  JobSummary,
  Series,
  SpreadResponse,
  StragglerResponse,
} from './lib/types';

// ---- jobs and series ------------------------------------------------------------------------------------

export function fetchJobs(signal?: AbortSignal, search?: string): Promise<{ jobs: JobSummary[] }> {
  return get(`/api/tw/v1/jobs${qs({ search })}`, signal);
}

export function fetchFleet(
  tenant: string | undefined,
  signal?: AbortSignal,
): Promise<{ tenants: string[]; jobs: FleetJob[] }> {
  return get(`/api/tw/v1/fleet${qs({ tenant })}`, signal);
}

/** Runs matching a compare lookup (name, project, started before, search), newest first. */
export async function fetchRunPage(q: RunPageQuery, signal?: AbortSignal): Promise<FleetJob[]> {
  return (await get<{ jobs: FleetJob[] }>(`/api/tw/v1/fleet?${runPageParams(q)}`, signal)).jobs;
}

/** A page of the fleet (GET /api/tw/v1/fleet with paging): the server sorts, filters and counts. */
export interface FleetPageQuery {
  tenant?: string;
  limit: number;
  offset?: number;
  sort?: string;
  order?: 'asc' | 'desc';
  status?: string;
  search?: string;
  project?: string;
  owner?: string;
  tag?: string;
  /** `tenant/job_id` keys. */
  ids?: readonly string[];
  ranked?: readonly string[];
}

export interface FleetPage {
  tenants: string[];
  jobs: FleetJob[];
  total: number;
  facets: {
    status: Partial<Record<string, number>>;
    owners: string[];
    projects: string[];
    tags: string[];
  };
  gpus: { gpus: number; busyGpus: number; idleGpus: number; meanUtilization: number | null };
}

export function fetchFleetPage(q: FleetPageQuery, signal?: AbortSignal): Promise<FleetPage> {
  const query = qs({
    ...q,
    ids: q.ids ? q.ids.join(',') : undefined,
    ranked: q.ranked?.length ? q.ranked.join(',') : undefined,
  });
  return get(`/api/tw/v1/fleet${withEmpty(query, q.ids?.length === 0 ? 'ids' : undefined)}`, signal);
}

/** `qs` leaves empty values out; an empty job list (`ids=`) means "no job" and must be sent. */
function withEmpty(query: string, name: string | undefined): string {
  return name === undefined ? query : `${query}${query ? '&' : '?'}${name}=`;
}

export function fetchJob(
  jobId: string,
  signal?: AbortSignal,
): Promise<{ job: JobSummary; metrics: string[] }> {
  return get(`/api/tw/v1/jobs/${encodeURIComponent(jobId)}`, signal);
}

/**
 * The runs table (`/api/tw/v1/runs`): `params` is the page's own query string (sort, filter…, group, offset),
 * so a view in the URL is the same query on the server.
 */
export function fetchRuns(params: URLSearchParams, signal?: AbortSignal): Promise<RunsResponse> {
  const s = params.toString();
  return get(`/api/tw/v1/runs${s ? `?${s}` : ''}`, signal);
}

/** A node's GPUs, the jobs that ran on it and the metrics it reported, in a range (src/query/nodes.ts). */
export interface NodeDetail {
  nodeId: string;
  tenant: string;
  start: number;
  end: number;
  gpus: {
    gpu: string;
    uuid: string | null;
    name: string | null;
    jobs: { jobId: string; rank: string | null }[];
  }[];
  jobs: {
    jobId: string;
    known: boolean;
    name: string;
    project: string;
    owner: string;
    status: JobStatus;
    startMs: number | null;
    endMs: number | null;
    lastSampleMs: number | null;
    worldSize: number | null;
  }[];
  jobCount: number;
  metrics: string[];
}

export function fetchNode(
  nodeId: string,
  start: number,
  end: number,
  signal?: AbortSignal,
): Promise<NodeDetail> {
  return get(
    `/api/tw/v1/nodes/${encodeURIComponent(nodeId)}${qs({ start: Math.floor(start), end: Math.ceil(end) })}`,
    signal,
  );
}

/** The node ids that reported in a range; of one job with `jobId`. */
export function fetchNodes(
  q: { jobId?: string; start: number; end: number },
  signal?: AbortSignal,
): Promise<{ nodes: string[] }> {
  return get(
    `/api/tw/v1/nodes${qs({ job_id: q.jobId, start: Math.floor(q.start), end: Math.ceil(q.end) })}`,
    signal,
  );
}

export function fetchSeries(q: SeriesQuery, signal?: AbortSignal): Promise<{ series: Series[] }> {
  return get(
    `/api/tw/v1/series${qs({
      ...q.labels,
      metric: typeof q.metric === 'string' ? [q.metric] : q.metric,
      start: Math.floor(q.start),
      end: Math.ceil(q.end),
      points: q.points,
    })}`,
    signal,
  );
}

export function fetchHeatmap(q: HeatmapQuery, signal?: AbortSignal): Promise<HeatmapResponse> {
  const jobs: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(q.jobs ?? {})) jobs[`job.${k}`] = v;
  const emptyIds = q.jobs?.ids === '' ? 'job.ids' : undefined;
  return get(
    `/api/tw/v1/heatmap${withEmpty(
      qs({
        ...q.labels,
        ...jobs,
        group_by: q.groupBy,
        max_rows: q.groupBy ? q.maxRows : undefined,
        metric: q.metric,
        start: Math.floor(q.start),
        end: Math.ceil(q.end),
        by: q.by.join(','),
        keep: q.keep?.join(','),
        cols: q.step ? undefined : q.cols,
        step: q.step,
        lo: q.lo,
        hi: q.hi,
        idle_below: q.idleBelow,
        tenant: q.tenant,
      }),
      emptyIds,
    )}`,
    signal,
  );
}

export function fetchSpread(q: SpreadQuery, signal?: AbortSignal): Promise<SpreadResponse> {
  return get(
    `/api/tw/v1/spread${qs({
      ...q.labels,
      metric: q.metric,
      start: Math.floor(q.start),
      end: Math.ceil(q.end),
      cols: q.step ? undefined : q.cols,
      step: q.step,
      stragglers: q.stragglers ? '1' : undefined,
    })}`,
    signal,
  );
}

export function fetchCurves(
  jobId: string,
  q: CurvesQuery,
  signal?: AbortSignal,
): Promise<{ start: number; end: number; curves: Curve[] }> {
  return get(
    `/api/tw/v1/jobs/${encodeURIComponent(jobId)}/curves${qs({
      start: q.start === undefined ? undefined : Math.floor(q.start),
      end: q.end === undefined ? undefined : Math.ceil(q.end),
      points: q.points,
      metric: q.metrics,
    })}`,
    signal,
  );
}

export function fetchStragglers(
  jobId: string,
  start: number,
  end: number,
  signal?: AbortSignal,
): Promise<StragglerResponse> {
  return get(
    `/api/tw/v1/jobs/${encodeURIComponent(jobId)}/stragglers${qs({ start: Math.floor(start), end: Math.ceil(end) })}`,
    signal,
  );
}

// ---- streams --------------------------------------------------------------------------------------------

/**
 * Reads a Server-Sent Events stream with fetch (so the Authorization header goes along) and reconnects with
 * backoff until closed. Returns the function that closes it.
 */
export function openEventStream(
  path: string,
  onData: (data: string) => void,
  onState?: (state: 'open' | 'retrying', error?: string) => void,
): () => void {
  const abort = new AbortController();
  let attempt = 0;
  const run = async () => {
    while (!abort.signal.aborted) {
      try {
        const res = await fetch(path, {
          signal: abort.signal,
          headers: headers({ accept: 'text/event-stream' }),
        });
        if (!res.ok || !res.body) {
          const text = await res.text().catch(() => '');
          let msg = `${res.status} ${res.statusText}`;
          try {
            msg = (JSON.parse(text) as { error?: string }).error ?? msg;
          } catch {}
          if (res.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: msg }));
          throw new Error(msg);
        }
        attempt = 0;
        onState?.('open');
        const parser = new SseParser((ev) => {
          if (ev.event === 'message') onData(ev.data);
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
        throw new Error('the stream ended');
      } catch (err) {
        if (abort.signal.aborted) return;
        onState?.('retrying', (err as Error).message);
        attempt++;
        await new Promise((r) =>
          setTimeout(r, Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2)),
        );
      }
    }
  };
  void run();
  return () => abort.abort();
}

/** New samples of a selection arrived: `t` is the newest sample time. */
export function subscribeTicks(
  params: Record<string, string | readonly string[] | undefined>,
  onTick: (t: number | null) => void,
  onState?: (state: 'open' | 'retrying', error?: string) => void,
): () => void {
  return openEventStream(
    `/api/tw/v1/ticks${qs(params)}`,
    (data) => onTick((JSON.parse(data) as { t: number | null }).t),
    onState,
  );
}

/** Subscribes to new samples after `since` (the raw live stream); returns the function that closes it. */
export function subscribeSeries(
  q: Omit<SeriesQuery, 'start' | 'end' | 'points'>,
  since: number,
  onSeries: (series: Series[]) => void,
): () => void {
  const p = qs({
    ...q.labels,
    metric: typeof q.metric === 'string' ? [q.metric] : q.metric,
    since: Math.floor(since),
  });
  return openEventStream(`/api/tw/v1/live${p}`, (data) =>
    onSeries((JSON.parse(data) as { series: Series[] }).series),
  );
}

// ---- PromQL (the Prometheus HTTP API) -------------------------------------------------------------------

export type PromResult =
  | { resultType: 'vector'; result: { metric: Record<string, string>; value: [number, string] }[] }
  | { resultType: 'matrix'; result: { metric: Record<string, string>; values: [number, string][] }[] }
  | { resultType: 'scalar'; result: [number, string] }
  | { resultType: 'string'; result: [number, string] };

export function promQuery(query: string, time: number, signal?: AbortSignal): Promise<PromResult> {
  return get(`/api/v1/query${qs({ query, time: time / 1000 })}`, signal);
}

export function promQueryRange(
  query: string,
  start: number,
  end: number,
  step: number,
  signal?: AbortSignal,
): Promise<PromResult> {
  return get(
    `/api/v1/query_range${qs({ query, start: start / 1000, end: end / 1000, step: step / 1000 })}`,
    signal,
  );
}

export function fetchMetricNames(signal?: AbortSignal): Promise<string[]> {
  return get('/api/v1/label/__name__/values', signal);
}

/** Prometheus's metric metadata (`{<metric>: [{type, help, unit}]}`) for one metric. */
export function fetchMetricMetadata(
  metric: string,
  signal?: AbortSignal,
): Promise<Record<string, { type?: string; help?: string; unit?: string }[]>> {
  return get(`/api/v1/metadata${qs({ metric })}`, signal);
}
