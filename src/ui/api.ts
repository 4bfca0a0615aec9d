/**
 * The dashboard's view of trainwatch's HTTP APIs: the REST and dashboard endpoints (/api/tw/v1), the
 * Prometheus API (/api/v1) and Alertmanager's silences (/api/v2). Types live in lib/types.ts.
 *
 * Authentication: a signed-in user's browser holds the session cookie (`tw_session`, HttpOnly), which every
 * same-origin request carries; state-changing requests add `X-CSRF-Token` from `/auth/me`. When the user
 * pasted an API token instead (stored in localStorage), every request — streams included — carries
 * `Authorization: Bearer <token>`. Streams are read with fetch rather than EventSource, which cannot send
 * headers, so no token ever goes into a URL. A 401 raises the `tw:unauthorized` event; the app shell answers
 * it with the login page.
 */
import { alertsFromBody } from './lib/alerts';
import type { HeatmapResponse } from './lib/matrix';
import type { DeliveryPage, ReceiverInfo, RouteNode, RouteTestResult } from './lib/notifications';
import { type RunPageQuery, runPageParams } from './lib/previous-runs';
import type { CurvesQuery, HeatmapQuery, SeriesQuery, SpreadQuery } from './lib/queries';
import type { RunsResponse } from './lib/runs';
import { isStateChanging, type LoginProviders, type Me, type Role } from './lib/session';
import { SseParser } from './lib/sse';
import type {
  Alert,
  AlertState,
  Curve,
  FleetJob,
  JobStatus,
  JobSummary,
  Matcher,
  Series,
  Silence,
  SpreadResponse,
  StragglerResponse,
} from './lib/types';

export type { CurvesQuery, HeatmapQuery, SeriesQuery, SpreadQuery } from './lib/queries';
export type { FleetJob, JobStatus, JobSummary, JsonSample, JsonSpecial, Series } from './lib/types';
export { toNumber } from './lib/types';

const TOKEN_KEY = 'trainwatch.token';
export const UNAUTHORIZED_EVENT = 'tw:unauthorized';

export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The server has no such route: the feature is not (yet) on this server. */
    readonly missingRoute = false,
  ) {
    super(message);
  }
}

/** The session's CSRF token (from `/auth/me` or the login answer); null without a session. */
let csrfToken: string | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

function headers(extra: Record<string, string> = {}, method?: string): Record<string, string> {
  const token = getToken();
  return {
    accept: 'application/json',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(csrfToken && isStateChanging(method) ? { 'x-csrf-token': csrfToken } : {}),
    ...extra,
  };
}

async function request(path: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(path, {
    ...init,
    headers: headers(init.headers as Record<string, string>, init.method),
  });
  const text = await res.text();
  let body: unknown = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { error: text.slice(0, 300) };
  }
  if (!res.ok) {
    const msg =
      (body as { error?: string; message?: string }).error ?? (body as { message?: string }).message;
    if (res.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: msg }));
    const missing = res.status === 404 && /^no route for /.test(msg ?? '');
    throw new ApiError(res.status, msg ?? `${res.status} ${res.statusText}`, missing);
  }
  return body;
}

/** GET of an API answering `{status: "success", data}` (trainwatch's and Prometheus's envelope). */
async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const body = (await request(path, { signal })) as { status?: string; data?: T; error?: string };
  if (body.status !== 'success') throw new ApiError(200, body.error ?? 'the server answered without data');
  return body.data as T;
}

function qs(params: Record<string, string | number | readonly string[] | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

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

// ---- alerting (the alerting contract) -------------------------------------------------------------------

export async function fetchAlerts(
  q: { state?: AlertState; jobId?: string; since?: number },
  signal?: AbortSignal,
): Promise<Alert[]> {
  const body = await request(
    `/api/tw/v1/alerts${qs({ state: q.state, job_id: q.jobId, since: q.since === undefined ? undefined : Math.floor(q.since) })}`,
    { signal },
  );
  return alertsFromBody(body);
}

/** Firing and pending alerts, plus those resolved since `since`: the three lists of the contract. */
export async function fetchAlertHistory(
  q: { jobId?: string; since: number },
  signal?: AbortSignal,
): Promise<Alert[]> {
  const [firing, pending, resolved] = await Promise.all([
    fetchAlerts({ state: 'firing', jobId: q.jobId }, signal),
    fetchAlerts({ state: 'pending', jobId: q.jobId }, signal),
    fetchAlerts({ state: 'resolved', jobId: q.jobId, since: q.since }, signal),
  ]);
  const seen = new Set<string>();
  const out: Alert[] = [];
  for (const a of [...firing, ...pending, ...resolved]) {
    const key = `${a.fingerprint}/${a.activeAtMs}/${a.state}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(a);
  }
  return out;
}

export interface RuleGroup {
  name: string;
  file?: string;
  interval?: number;
  rules: {
    name: string;
    query: string;
    type: 'alerting' | 'recording' | string;
    state?: string;
    health?: string;
    lastError?: string;
    lastEvaluation?: string;
    evaluationTime?: number;
    duration?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    alerts?: unknown[];
  }[];
}

export async function fetchRules(signal?: AbortSignal): Promise<RuleGroup[]> {
  return (await get<{ groups: RuleGroup[] }>('/api/v1/rules', signal)).groups ?? [];
}

export type Detector = Record<string, unknown> & { name?: string; state?: string };

export async function fetchDetectors(signal?: AbortSignal): Promise<Detector[]> {
  const body = (await request('/api/tw/v1/detectors', { signal })) as { data?: unknown };
  const data = body.data ?? body;
  const list = Array.isArray(data) ? data : (data as { detectors?: unknown }).detectors;
  if (!Array.isArray(list)) throw new ApiError(200, 'the detectors API answered without a list');
  return list as Detector[];
}

export async function fetchSilences(signal?: AbortSignal): Promise<Silence[]> {
  const body = await request('/api/v2/silences', { signal });
  if (!Array.isArray(body)) throw new ApiError(200, 'the silences API answered without a list');
  return body as Silence[];
}

export async function createSilence(s: {
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}): Promise<string> {
  const body = (await request('/api/v2/silences', {
    method: 'POST',
    body: JSON.stringify(s),
    headers: { 'content-type': 'application/json' },
  })) as { silenceID?: string };
  if (!body.silenceID) throw new ApiError(200, 'the server created no silence id');
  return body.silenceID;
}

export async function expireSilence(id: string): Promise<void> {
  await request(`/api/v2/silence/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

// ---- notification routing (receivers, routes, delivery history) ----------------------------------------

export async function fetchNotificationRoutes(
  signal?: AbortSignal,
): Promise<{ route: RouteNode; receivers: string[] }> {
  return get('/api/tw/v1/notifications/routes', signal);
}

export async function fetchReceivers(signal?: AbortSignal): Promise<ReceiverInfo[]> {
  return (await get<{ receivers: ReceiverInfo[] }>('/api/tw/v1/notifications/receivers', signal)).receivers;
}

export async function testNotificationRoute(labels: Record<string, string>): Promise<RouteTestResult> {
  return unwrap<RouteTestResult>(await sendJson('POST', '/api/tw/v1/notifications/routes/test', { labels }));
}

export async function fetchDeliveries(
  q: { receiver?: string; status?: string; since?: number; offset: number; limit: number },
  signal?: AbortSignal,
): Promise<DeliveryPage> {
  return get(`/api/tw/v1/notifications/history${qs(q)}`, signal);
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

// ---- sign-in, users, tokens, audit (issue 16's access-control contract) ----------------------------------

/** The auth API answers plain JSON objects; accept the `{status, data}` envelope too. */
function unwrap<T>(body: unknown): T {
  const b = body as { status?: string; data?: T };
  return (b.status === 'success' && b.data !== undefined ? b.data : body) as T;
}

function sendJson(method: string, path: string, body?: unknown): Promise<unknown> {
  return request(path, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
}

/** Who is signed in; throws ApiError 401 when nobody is (and anonymous access is off). */
export async function fetchMe(signal?: AbortSignal): Promise<Me> {
  const res = await fetch('/api/tw/v1/auth/me', { signal, headers: headers() });
  const body = await res.json().catch(() => ({}));
  if (!res.ok)
    throw new ApiError(
      res.status,
      (body as { error?: string }).error ?? `${res.status} ${res.statusText}`,
      res.status === 404,
    );
  const me = unwrap<Me>(body);
  setCsrfToken(me.csrfToken ?? null);
  return me;
}

/** How one may sign in here (public: the login page asks before anyone is signed in). */
export async function fetchLoginProviders(signal?: AbortSignal): Promise<LoginProviders> {
  return unwrap<LoginProviders>(await request('/api/tw/v1/auth/providers', { signal }));
}

/** Signs in with a password; the answer sets the session cookie. A wrong password is ApiError 401. */
export async function login(username: string, password: string): Promise<Me> {
  const res = await fetch('/api/tw/v1/auth/login', {
    method: 'POST',
    headers: { accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok)
    throw new ApiError(res.status, (body as { error?: string }).error ?? `${res.status} ${res.statusText}`);
  const me = unwrap<Me>(body);
  setCsrfToken(me.csrfToken ?? null);
  return me;
}

export async function logout(): Promise<void> {
  await sendJson('POST', '/api/tw/v1/auth/logout');
  setCsrfToken(null);
}

/** Makes `tenant` the session's current tenant (one of the user's). */
export async function switchTenant(tenant: string): Promise<void> {
  await sendJson('POST', '/api/tw/v1/auth/tenant', { tenant });
}

export interface ApiToken {
  id: string;
  name: string;
  scopes: string[];
  createdAt: string | number | null;
  expiresAt: string | number | null;
  lastUsedAt: string | number | null;
  rateLimitPerSecond: number | null;
  revoked: boolean;
}

export async function fetchTokens(signal?: AbortSignal): Promise<ApiToken[]> {
  return unwrap<{ tokens: ApiToken[] }>(await request('/api/tw/v1/tokens', { signal })).tokens;
}

/** Creates a token; the answer holds its secret, which the server never shows again. */
export async function createToken(t: {
  name: string;
  scopes: string[];
  expiresIn?: string;
  rateLimitPerSecond?: number;
}): Promise<{ token: string; id: string }> {
  return unwrap<{ token: string; id: string }>(await sendJson('POST', '/api/tw/v1/tokens', t));
}

export async function revokeToken(id: string): Promise<void> {
  await sendJson('DELETE', `/api/tw/v1/tokens/${encodeURIComponent(id)}`);
}

export interface UserRow {
  id: string;
  name: string;
  disabled: boolean;
  operator: boolean;
  roles: { tenant: string; role: Role }[];
  createdAt: string | number | null;
  lastLoginAt: string | number | null;
}

export async function fetchUsers(signal?: AbortSignal): Promise<UserRow[]> {
  return unwrap<{ users: UserRow[] }>(await request('/api/tw/v1/users', { signal })).users;
}

/** Adds a user with a role in the current tenant. */
export async function createUser(u: { name: string; password: string; role: Role }): Promise<void> {
  await sendJson('POST', '/api/tw/v1/users', u);
}

export async function updateUser(
  name: string,
  patch: { role?: Role; disabled?: boolean; password?: string },
): Promise<void> {
  await sendJson('PATCH', `/api/tw/v1/users/${encodeURIComponent(name)}`, patch);
}

export interface AuditEvent {
  time: string | number;
  actor: string;
  via: string;
  tenant: string | null;
  action: string;
  target: string | null;
  ip: string | null;
  outcome: string;
}

export async function fetchAudit(
  q: { actor?: string; action?: string; since?: string; limit?: number },
  signal?: AbortSignal,
): Promise<AuditEvent[]> {
  return unwrap<{ events: AuditEvent[] }>(await request(`/api/tw/v1/audit${qs(q)}`, { signal })).events;
}
