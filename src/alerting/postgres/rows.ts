/**
 * Row ⇄ object mapping for the alerting stage's PostgreSQL repositories, in one place. Rows arrive with BIGINT
 * as numbers (see `PgMeta`'s type parsers) and JSONB already parsed; the objects are the ones the SQLite
 * `AlertStore` returns, so callers cannot tell the backends apart.
 */
import type { LabelSet } from '../../model/labels.js';
import { alertUrl } from '../alert.js';
import type { Alert, AlertGroup, AlertSource, AlertState } from '../notifier.js';
import type {
  DueNotification,
  NotificationRecord,
  NotificationStatus,
  SilenceMatcher,
  StoredSilence,
} from '../store.js';

// ---- alerts -------------------------------------------------------------------------------------------------

export interface AlertRow {
  tenant: string;
  fingerprint: string;
  active_at_ms: number;
  name: string;
  source: string;
  origin: string;
  job_id: string | null;
  labels: LabelSet;
  annotations: Record<string, string>;
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

/** An alert's tenant: its `tenant` label ('' when absent, as the SQLite store keys it). */
export function alertTenant(a: Alert): string {
  return a.labels.tenant ?? '';
}

/** NaN and ±Inf are stored as NULL (and read back as NaN), as in the SQLite store. */
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
  return {
    labels: r.labels,
    annotations: r.annotations,
    state: r.state as AlertState,
    activeAtMs: r.active_at_ms,
    firingAtMs: r.firing_at_ms,
    resolvedAtMs: r.resolved_at_ms,
    fingerprint: r.fingerprint,
    url: alertUrl(r.labels, r.active_at_ms),
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
  matchers: SilenceMatcher[];
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
    matchers: r.matchers,
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
  payload: AlertGroup;
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
    deliveredMs: r.delivered_ms,
    tenant: r.tenant ?? null,
    lastAttemptDurationMs: r.last_attempt_duration_ms ?? null,
  };
}

export function dueNotificationFromRow(r: NotificationRow): DueNotification {
  return { ...notificationFromRow(r), group: r.payload };
}
