/**
 * Alerts as the dashboard uses them (the alerting contract: GET /api/tw/v1/alerts): health per job, a
 * health strip per job over time for the heatmap, the place an alert points at, and the matchers of a
 * silence made from an alert.
 */
import type { JobCause } from './causes.js';
import type { Alert, Matcher, Severity } from './types.js';

export const SEVERITIES: readonly Severity[] = ['critical', 'warning', 'info'];

/** 3 critical, 2 warning, 1 info (or unknown), 0 none. */
export function severityLevel(s: string | undefined): number {
  return s === 'critical' ? 3 : s === 'warning' ? 2 : s === undefined ? 0 : 1;
}

/** Accepts the contract's `{data: {alerts: [...]}}` and, leniently, `{data: [...]}`. */
export function alertsFromBody(body: unknown): Alert[] {
  const data = (body as { data?: unknown })?.data ?? body;
  const list = Array.isArray(data) ? data : (data as { alerts?: unknown })?.alerts;
  if (!Array.isArray(list)) throw new Error('the alerts API answered without a list of alerts');
  return list as Alert[];
}

export interface JobHealth {
  critical: number;
  warning: number;
  info: number;
  pending: number;
  /** 0..3 as {@link severityLevel}, over firing alerts that no silence mutes. */
  worst: number;
  /** Active alerts that no silence mutes: what the counts above count. */
  alerts: Alert[];
  /** Active alerts muted by a silence: shown apart, never counted. */
  silenced: number;
  silencedAlerts: Alert[];
  /** A TrainingStalled alert fires for the job (silenced or not: a silence mutes news, not facts). */
  stalled: boolean;
  /** Why a failed job failed (causes.ts), when alerts tell. */
  cause?: JobCause;
}

export function emptyHealth(): JobHealth {
  return {
    critical: 0,
    warning: 0,
    info: 0,
    pending: 0,
    worst: 0,
    alerts: [],
    silenced: 0,
    silencedAlerts: [],
    stalled: false,
  };
}

/** The alert the stall detector raises when a job's step stops advancing. */
export const STALL_ALERT = 'TrainingStalled';

export function isSilenced(a: Alert): boolean {
  return (a.silencedBy?.length ?? 0) > 0;
}

export function alertName(a: Alert): string {
  return a.labels.alertname ?? a.name;
}

/**
 * Active (firing and pending) alerts grouped by `tenant/job_id` and counted by severity. Silenced alerts
 * are kept apart (`silenced`), so that a silence takes a job off the alerting list and the badges.
 */
export function healthByJob(alerts: readonly Alert[], defaultTenant: string): Map<string, JobHealth> {
  const out = new Map<string, JobHealth>();
  for (const a of alerts) {
    const job = a.labels.job_id;
    if (!job || a.state === 'resolved') continue;
    const key = `${a.labels.tenant ?? defaultTenant}/${job}`;
    const h = out.get(key) ?? emptyHealth();
    out.set(key, h);
    if (a.state === 'firing' && alertName(a) === STALL_ALERT) h.stalled = true;
    if (isSilenced(a)) {
      h.silenced++;
      h.silencedAlerts.push(a);
      continue;
    }
    h.alerts.push(a);
    if (a.state === 'pending') h.pending++;
    else {
      const level = severityLevel(a.labels.severity);
      if (level === 3) h.critical++;
      else if (level === 2) h.warning++;
      else h.info++;
      h.worst = Math.max(h.worst, level);
    }
  }
  return out;
}

/** When an alert started to matter: when it fired, or when it became pending. */
export function alertStart(a: Alert): number {
  return a.firingAtMs ?? a.activeAtMs;
}

/**
 * Severity level per cell for rows of jobs over aligned columns: the worst alert firing during the cell.
 * `rowJob[i]` is the `tenant/job_id` of row i.
 */
export function healthMatrix(
  alerts: readonly Alert[],
  rowJob: readonly string[],
  start: number,
  step: number,
  cols: number,
  defaultTenant: string,
): Uint8Array {
  const out = new Uint8Array(rowJob.length * cols);
  const rowOf = new Map<string, number[]>();
  rowJob.forEach((k, i) => {
    const rows = rowOf.get(k) ?? [];
    rows.push(i);
    rowOf.set(k, rows);
  });
  for (const a of alerts) {
    if (a.state === 'pending' || !a.labels.job_id) continue;
    const rows = rowOf.get(`${a.labels.tenant ?? defaultTenant}/${a.labels.job_id}`);
    if (!rows) continue;
    const level = severityLevel(a.labels.severity);
    const from = Math.max(0, Math.floor((alertStart(a) - start) / step));
    const to = Math.min(
      cols - 1,
      a.resolvedAtMs === null ? cols - 1 : Math.floor((a.resolvedAtMs - start) / step),
    );
    for (const r of rows)
      for (let c = from; c <= to; c++) if (out[r * cols + c]! < level) out[r * cols + c] = level;
  }
  return out;
}

const LOCATION_LABELS: readonly [string, string][] = [
  ['node_id', 'node'],
  ['rank', 'rank'],
  ['gpu', 'GPU'],
];

/** "node n1 · rank 7 · GPU 3", or '' when the alert is about the whole job. */
export function alertLocation(labels: Readonly<Record<string, string>>): string {
  return LOCATION_LABELS.filter(([l]) => labels[l] !== undefined && labels[l] !== '')
    .map(([l, word]) => `${word} ${labels[l]}`)
    .join(' · ');
}

/**
 * The matchers of a silence made from an alert: every label but `severity` (an escalation from warning to
 * critical is the same problem), each an exact match — as Alertmanager's own "silence" button does.
 */
export function silenceMatchersFor(labels: Readonly<Record<string, string>>): Matcher[] {
  return Object.keys(labels)
    .filter((name) => name !== 'severity' && labels[name] !== '')
    .sort((a, b) => (a === 'alertname' ? -1 : b === 'alertname' ? 1 : a.localeCompare(b)))
    .map((name) => ({ name, value: labels[name]!, isRegex: false, isEqual: true }));
}

/** Whether a matcher list selects an alert's labels (Alertmanager semantics; regexes anchored). */
export function matchersMatch(
  matchers: readonly Matcher[],
  labels: Readonly<Record<string, string>>,
): boolean {
  return matchers.every((m) => {
    const v = labels[m.name] ?? '';
    const hit = m.isRegex ? new RegExp(`^(?:${m.value})$`).test(v) : v === m.value;
    return m.isEqual === false ? !hit : hit;
  });
}
