/**
 * The dashboard's side of the alerting contract: alerts and their history, rules, detectors, silences
 * (Alertmanager's /api/v2) and notification routing. Re-exported by api.ts.
 */
import { ApiError, get, qs, request, sendJson, unwrap } from './api-client';
import { alertsFromBody } from './lib/alerts';
import type { DeliveryPage, ReceiverInfo, RouteNode, RouteTestResult } from './lib/notifications';
import type { Alert, AlertState, Matcher, Silence } from './lib/types';

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
