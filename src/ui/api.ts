/**
 * The dashboard's view of trainwatch's REST API (/api/tw/v1). Types mirror src/query on the server.
 */

export type JobStatus = 'queued' | 'running' | 'stalled' | 'completed' | 'failed' | 'unknown';

export interface JobSummary {
  tenant: string;
  jobId: string;
  name: string;
  project: string;
  owner: string;
  framework: string;
  worldSize: number | null;
  config: Record<string, unknown>;
  tags: string[];
  status: JobStatus;
  startMs: number | null;
  endMs: number | null;
  lastSampleMs: number | null;
  metricKeys: Record<string, string>;
  gpus: number;
  meanGpuUtilization: number | null;
  step: number | null;
  loss: number | JsonSpecial | null;
  samplesPerSecond: number | null;
  tokensPerSecond: number | null;
}

export type JsonSpecial = 'NaN' | '+Inf' | '-Inf';
export type JsonSample = number | JsonSpecial;

export interface Series {
  labels: Record<string, string>;
  t: number[];
  v: JsonSample[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { signal, headers: { accept: 'application/json' } });
  const body = (await res.json().catch(() => ({}))) as { status?: string; data?: T; error?: string };
  if (!res.ok || body.status !== 'success')
    throw new ApiError(res.status, body.error ?? `${res.status} ${res.statusText}`);
  return body.data as T;
}

export function fetchJobs(signal?: AbortSignal): Promise<{ jobs: JobSummary[] }> {
  return get('/api/tw/v1/jobs', signal);
}

export function fetchJob(
  jobId: string,
  signal?: AbortSignal,
): Promise<{ job: JobSummary; metrics: string[] }> {
  return get(`/api/tw/v1/jobs/${encodeURIComponent(jobId)}`, signal);
}

export interface SeriesQuery {
  /** One metric name, or several fetched together. */
  metric: string | readonly string[];
  labels?: Record<string, string>;
  start: number;
  end: number;
  points?: number;
}

function seriesParams(q: Omit<SeriesQuery, 'start' | 'end'>): URLSearchParams {
  const p = new URLSearchParams(q.labels ?? {});
  for (const m of typeof q.metric === 'string' ? [q.metric] : q.metric) p.append('metric', m);
  if (q.points) p.set('points', String(q.points));
  return p;
}

export function fetchSeries(q: SeriesQuery, signal?: AbortSignal): Promise<{ series: Series[] }> {
  const p = seriesParams(q);
  p.set('start', String(Math.floor(q.start)));
  p.set('end', String(Math.ceil(q.end)));
  return get(`/api/tw/v1/series?${p}`, signal);
}

/** Subscribes to new samples after `since`; returns the function that closes the stream. */
export function subscribeSeries(
  q: Omit<SeriesQuery, 'start' | 'end' | 'points'>,
  since: number,
  onSeries: (series: Series[]) => void,
): () => void {
  const p = seriesParams(q);
  p.set('since', String(Math.floor(since)));
  const source = new EventSource(`/api/tw/v1/live?${p}`);
  source.onmessage = (ev) => onSeries((JSON.parse(ev.data) as { series: Series[] }).series);
  return () => source.close();
}

export function toNumber(v: JsonSample | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  return v === 'NaN' ? Number.NaN : v === '+Inf' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
}
