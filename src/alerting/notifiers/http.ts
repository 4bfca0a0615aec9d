/**
 * HTTP delivery shared by the webhook-style notifiers: POST a JSON body and classify the answer the way
 * receivers mean it — 2xx delivered; 429 and 5xx (and network errors, timeouts) worth a retry, honouring
 * Retry-After; any other 4xx permanent (the payload or the URL is wrong and will stay wrong).
 */
import type { Alert, AlertGroup, DeliveryOutcome } from '../notifier.js';

const MAX_ERROR_BODY = 300;

export async function postJson(
  url: string,
  body: unknown,
  signal: AbortSignal,
  headers: Readonly<Record<string, string>> = {},
): Promise<DeliveryOutcome> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'trainwatch', ...headers },
      body: JSON.stringify(body),
      signal,
    });
  } catch (err) {
    const reason = signal.aborted ? 'timed out' : describeFetchError(err);
    return { kind: 'retryable', reason: `POST ${redact(url)}: ${reason}` };
  }
  let text = '';
  try {
    text = (await res.text()).slice(0, MAX_ERROR_BODY);
  } catch {
    // The status decides; a body that cannot be read changes nothing.
  }
  if (res.ok) return { kind: 'delivered' };
  const reason = `POST ${redact(url)}: HTTP ${res.status}${text ? `: ${text.trim()}` : ''}`;
  if (res.status === 429 || res.status >= 500) {
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    return retryAfterMs === undefined
      ? { kind: 'retryable', reason }
      : { kind: 'retryable', reason, retryAfterMs };
  }
  return { kind: 'permanent', reason };
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/** Seconds or an HTTP date. */
export function parseRetryAfter(v: string | null): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** Webhook URLs often carry secrets in the path (Slack); logs and statuses show only the origin. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname.length > 1 ? '/…' : '/'}`;
  } catch {
    return '<invalid URL>';
  }
}

export function absoluteUrl(group: AlertGroup, alert: Alert): string {
  return `${group.externalUrl.replace(/\/+$/, '')}${alert.url}`;
}

export function groupStatus(group: AlertGroup): 'firing' | 'resolved' {
  return group.alerts.some((a) => a.state !== 'resolved') ? 'firing' : 'resolved';
}

/** `[FIRING:2] TrainingStalled job_id=llama-1`, as Alertmanager titles its messages. */
export function groupTitle(group: AlertGroup): string {
  const firing = group.alerts.filter((a) => a.state !== 'resolved').length;
  const status = firing > 0 ? `FIRING:${firing}` : 'RESOLVED';
  const labels = Object.entries(group.groupLabels)
    .filter(([k]) => k !== 'alertname' && k !== 'tenant')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const name = group.groupLabels.alertname ?? group.commonLabels.alertname ?? '';
  return `[${status}] ${name}${labels ? ` ${labels}` : ''}`.trim();
}

/** Go's zero time, which Alertmanager sends as endsAt of an alert that has not ended. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function iso(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? ZERO_TIME : new Date(ms).toISOString();
}

/** One line per alert for chat and e-mail: summary, where, and the dashboard link. */
export function alertLines(group: AlertGroup): string[] {
  return group.alerts.map((a) => {
    const state = a.state === 'resolved' ? 'RESOLVED' : 'FIRING';
    const summary = a.annotations.summary ?? a.name;
    const where = ['job_id', 'node_id', 'rank', 'gpu']
      .filter((k) => a.labels[k] !== undefined)
      .map((k) => `${k}=${a.labels[k]}`)
      .join(' ');
    return `${state} ${a.name}: ${summary}${where ? ` (${where})` : ''} ${absoluteUrl(group, a)}`;
  });
}
