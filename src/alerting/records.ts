/**
 * What the alerting stores hold, dialect-free: the record types of the `AlertRepository` contract and the
 * row ⇄ record mapping that both stores use, the embedded `AlertStore` (`./store.ts`, SQLite) and
 * `PgAlertStore` (`./postgres/`), so callers cannot tell the backends apart. Rows arrive with BIGINT as
 * numbers (`PgMeta`'s type parsers); the JSON columns arrive as text from SQLite and parsed from PostgreSQL's
 * JSONB, and the mapping takes either. The SQL stays with each store.
 */

import type { SilenceMatcher } from '../model/alerting-api.js';
import type { LabelSet } from '../model/labels.js';
import { alertUrl } from './alert.js';
import type { Alert, AlertGroup, AlertSource, AlertState } from './notifier.js';

/** A JSON column: text as SQLite stores it, or the parsed value as PostgreSQL's JSONB arrives. */
export type JsonColumn<T> = T | string;

/** None of these columns holds a JSON string value (they are objects and arrays), so text means unparsed. */
export const parsed = <T>(v: JsonColumn<T>): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/** Alert states in the order an episode goes through them (a stored state is never downgraded). */
export const STATE_ORDER: Record<AlertState, number> = { pending: 0, firing: 1, resolved: 2 };

export interface AlertQuery {
  readonly tenant: string;
  readonly states?: readonly AlertState[];
  readonly jobId?: string;
  /** Alerts active at or after this time (or still open). */
  readonly sinceMs?: number;
  readonly limit?: number;
}

export interface StoredSilence {
  readonly id: string;
  readonly tenant: string;
  readonly matchers: SilenceMatcher[];
  readonly startsAtMs: number;
  readonly endsAtMs: number;
  readonly createdBy: string;
  readonly comment: string;
  readonly updatedAtMs: number;
}

// Alertmanager API v2 matcher: shared with the dashboard (model/alerting-api.ts).
export type { SilenceMatcher } from '../model/alerting-api.js';

export type NotificationStatus = 'pending' | 'delivered' | 'failed' | 'superseded';

export interface NotificationRecord {
  readonly id: number;
  readonly receiver: string;
  readonly integration: string;
  readonly groupKey: string;
  readonly summary: string;
  readonly status: NotificationStatus;
  readonly attempts: number;
  readonly nextAttemptMs: number;
  readonly lastError: string;
  readonly createdMs: number;
  readonly updatedMs: number;
  readonly deliveredMs: number | null;
  /** The one tenant of every alert in the notification; null when it mixes tenants (or has none). */
  readonly tenant: string | null;
  /** How long the last attempt took (request to answer or timeout); null before the first attempt. */
  readonly lastAttemptDurationMs: number | null;
}

/** A page of one tenant's delivery history, newest first (`AlertRepository.deliveries`). */
export interface DeliveryQuery {
  readonly tenant: string;
  readonly receiver?: string;
  readonly integration?: string;
  readonly statuses?: readonly NotificationStatus[];
  /** Queued at or after / before these times. */
  readonly sinceMs?: number;
  readonly untilMs?: number;
  readonly offset: number;
  readonly limit: number;
}

export interface DeliveryPage {
  readonly notifications: NotificationRecord[];
  /** How many match the filters in all (for paging). */
  readonly total: number;
}

/** Delivery health of one integration of a receiver, over one tenant's stored history. */
export interface IntegrationHealth {
  readonly receiver: string;
  readonly integration: string;
  readonly delivered: number;
  readonly failed: number;
  /** Waiting to be sent; `retrying` of them have failed at least once. */
  readonly pending: number;
  readonly retrying: number;
  readonly lastDeliveredMs: number | null;
  /** When an attempt last failed (a notification given up, or one waiting for a retry). */
  readonly lastFailureMs: number | null;
  readonly lastError: string | null;
  /** Queue-to-delivery time of delivered notifications: mean and worst. */
  readonly meanLatencyMs: number | null;
  readonly maxLatencyMs: number | null;
}

/**
 * The tenant a notification belongs to: the one tenant all its alerts share. A group that mixes tenants (a
 * route whose `group_by` leaves out `tenant`) belongs to none, and no tenant's history shows it.
 */
export function notificationTenant(group: AlertGroup): string | null {
  let tenant: string | undefined = group.groupLabels.tenant;
  for (const a of group.alerts) {
    const t = a.labels.tenant;
    if (t === undefined || (tenant !== undefined && t !== tenant)) return null;
    tenant = t;
  }
  return tenant ?? null;
}

export interface DueNotification extends NotificationRecord {
  readonly group: AlertGroup;
}

// ---- alerts -------------------------------------------------------------------------------------------------

export interface AlertRow {
  tenant: string;
  fingerprint: string;
  active_at_ms: number;
  name: string;
  source: string;
  origin: string;
  job_id: string | null;
  labels: JsonColumn<LabelSet>;
  annotations: JsonColumn<Record<string, string>>;
  state: string;
  firing_at_ms: number | null;
  resolved_at_ms: number | null;
  value: number | null;
  updated_ms: number;
}

/** The columns an alert writes (everything but the identity id), in `ALERT_COLUMNS` order. */
export const ALERT_COLUMNS = [
  'tenant',
  'fingerprint',
  'active_at_ms',
  'name',
  'source',
  'origin',
  'job_id',
  'labels',
  'annotations',
  'state',
  'firing_at_ms',
  'resolved_at_ms',
  'value',
  'updated_ms',
] as const;

/** An alert's tenant: its `tenant` label ('' when absent: both stores key alerts so). */
export function alertTenant(a: Alert): string {
  return a.labels.tenant ?? '';
}

/** NaN and ±Inf are stored as NULL (and read back as NaN). */
export function storedValue(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

export function alertToParams(a: Alert, nowMs: number): unknown[] {
  return [
    alertTenant(a),
    a.fingerprint,
    a.activeAtMs,
    a.name,
    a.source,
    a.origin,
    a.labels.job_id ?? null,
    JSON.stringify(a.labels),
    JSON.stringify(a.annotations),
    a.state,
    a.firingAtMs,
    a.resolvedAtMs,
    storedValue(a.value),
    nowMs,
  ];
}

export function alertFromRow(r: AlertRow): Alert {
  const labels = parsed(r.labels);
  return {
    labels,
    annotations: parsed(r.annotations),
    state: r.state as AlertState,
    activeAtMs: r.active_at_ms,
    firingAtMs: r.firing_at_ms,
    resolvedAtMs: r.resolved_at_ms,
    fingerprint: r.fingerprint,
    url: alertUrl(labels, r.active_at_ms),
    value: r.value ?? Number.NaN,
    source: r.source as AlertSource,
    name: r.name,
    origin: r.origin,
  };
}

// ---- silences -----------------------------------------------------------------------------------------------

export interface SilenceRow {
  id: string;
  tenant: string;
  matchers: JsonColumn<SilenceMatcher[]>;
  starts_at_ms: number;
  ends_at_ms: number;
  created_by: string;
  comment: string;
  updated_at_ms: number;
}

export function silenceFromRow(r: SilenceRow): StoredSilence {
  return {
    id: r.id,
    tenant: r.tenant,
    matchers: parsed(r.matchers),
    startsAtMs: r.starts_at_ms,
    endsAtMs: r.ends_at_ms,
    createdBy: r.created_by,
    comment: r.comment,
    updatedAtMs: r.updated_at_ms,
  };
}

// ---- notifications ------------------------------------------------------------------------------------------

export interface NotificationRow {
  id: number;
  receiver: string;
  integration: string;
  group_key: string;
  dedup_key: string | null;
  payload: JsonColumn<AlertGroup>;
  summary: string;
  status: string;
  attempts: number;
  next_attempt_ms: number;
  last_error: string;
  created_ms: number;
  updated_ms: number;
  delivered_ms: number | null;
  tenant: string | null;
  last_attempt_duration_ms: number | null;
}

/** Same shape as other row mappings (meta's `tokenFromRow`), different columns. */
export function notificationFromRow(r: NotificationRow): NotificationRecord {
  return {
    id: r.id,
    receiver: r.receiver,
    integration: r.integration,
    groupKey: r.group_key,
    summary: r.summary,
    status: r.status as NotificationStatus,
    attempts: r.attempts,
    nextAttemptMs: r.next_attempt_ms,
    lastError: r.last_error,
    createdMs: r.created_ms,
    updatedMs: r.updated_ms,
    deliveredMs: r.delivered_ms ?? null,
    tenant: r.tenant ?? null,
    lastAttemptDurationMs: r.last_attempt_duration_ms ?? null,
  };
}

export function dueNotificationFromRow(r: NotificationRow): DueNotification {
  return { ...notificationFromRow(r), group: parsed(r.payload) };
}

/** An aggregate row of the health query (either backend; PostgreSQL returns counts as strings). */
export function healthFromRow(
  r: Record<string, number | string | null>,
  errors: readonly { receiver: string; integration: string; last_error: string }[],
): IntegrationHealth {
  const num = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));
  const receiver = String(r.receiver);
  const integration = String(r.integration);
  const mean = num(r.mean_latency_ms);
  return {
    receiver,
    integration,
    delivered: num(r.delivered) ?? 0,
    failed: num(r.failed) ?? 0,
    pending: num(r.pending) ?? 0,
    retrying: num(r.retrying) ?? 0,
    lastDeliveredMs: num(r.last_delivered_ms),
    lastFailureMs: num(r.last_failure_ms),
    lastError:
      errors.find((e) => e.receiver === receiver && e.integration === integration)?.last_error ?? null,
    meanLatencyMs: mean === null ? null : Math.round(mean),
    maxLatencyMs: num(r.max_latency_ms),
  };
}
