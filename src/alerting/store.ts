/**
 * Alerting's tables in the metadata store (migrations 300–399): alert history (one row per episode of an
 * alert: from becoming active to resolving), silences, the notification log (what each receiver was last
 * told about each group: the dedup state that prevents notification storms after a restart), and the
 * notification outbox (every notification to send, with its delivery status and retries).
 *
 * Writes are synchronous better-sqlite3 statements in WAL mode. Alert transitions are written by the hub in
 * batches ({@link AlertStore.persist}: one transaction), always before a notification about them is queued,
 * so a crash never loses a transition the outside world has heard of.
 *
 * The record types and the health mapping are shared with the PostgreSQL store (`./records.ts`); this file
 * holds the SQLite schema, statements and row reads. Twin: `PgAlertStore` (`./postgres/store.ts` and parts).
 */
import type { Db, MetaStore, Migration } from '../meta/index.js';
import type { LabelSet } from '../model/labels.js';
import { alertUrl } from './alert.js';
import type { Alert, AlertGroup, AlertSource, AlertState } from './notifier.js';
import {
  type AlertQuery,
  type DeliveryPage,
  type DeliveryQuery,
  type DueNotification,
  healthFromRow,
  type IntegrationHealth,
  type NotificationRecord,
  type NotificationStatus,
  notificationTenant,
  type SilenceMatcher,
  STATE_ORDER,
  type StoredSilence,
} from './records.js';

/**
 * Kept duplicate: twin of `ALERTING_PG_MIGRATIONS` (postgres/migrations.ts). The DDL differs in its types and
 * a released migration is never edited, so each dialect keeps its own text.
 */
export const ALERTING_MIGRATIONS: readonly Migration[] = [
  {
    version: 300,
    description: 'alert history',
    sql: `CREATE TABLE alerts (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      tenant TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      active_at_ms INTEGER NOT NULL,
      name TEXT NOT NULL,
      source TEXT NOT NULL,
      origin TEXT NOT NULL,
      job_id TEXT,
      labels TEXT NOT NULL,
      annotations TEXT NOT NULL,
      state TEXT NOT NULL,
      firing_at_ms INTEGER,
      resolved_at_ms INTEGER,
      value REAL,
      updated_ms INTEGER NOT NULL,
      UNIQUE (tenant, fingerprint, active_at_ms)
    );
    CREATE INDEX alerts_open ON alerts (state) WHERE state != 'resolved';
    CREATE INDEX alerts_by_time ON alerts (tenant, active_at_ms);
    CREATE INDEX alerts_by_job ON alerts (tenant, job_id, active_at_ms);`,
  },
  {
    version: 301,
    description: 'silences',
    sql: `CREATE TABLE silences (
      id TEXT PRIMARY KEY,
      tenant TEXT NOT NULL,
      matchers TEXT NOT NULL,
      starts_at_ms INTEGER NOT NULL,
      ends_at_ms INTEGER NOT NULL,
      created_by TEXT NOT NULL,
      comment TEXT NOT NULL,
      updated_at_ms INTEGER NOT NULL
    );
    CREATE INDEX silences_by_tenant ON silences (tenant, ends_at_ms);`,
  },
  {
    version: 302,
    description: 'notification log and outbox',
    sql: `CREATE TABLE notification_log (
      receiver TEXT NOT NULL,
      integration TEXT NOT NULL,
      group_key TEXT NOT NULL,
      firing TEXT NOT NULL,
      sent_at_ms INTEGER NOT NULL,
      PRIMARY KEY (receiver, integration, group_key)
    );
    CREATE TABLE notifications (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      receiver TEXT NOT NULL,
      integration TEXT NOT NULL,
      group_key TEXT NOT NULL,
      dedup_key TEXT UNIQUE,
      payload TEXT NOT NULL,
      summary TEXT NOT NULL,
      status TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_ms INTEGER NOT NULL,
      last_error TEXT NOT NULL DEFAULT '',
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      delivered_ms INTEGER
    );
    CREATE INDEX notifications_due ON notifications (status, next_attempt_ms);
    CREATE INDEX notifications_by_group ON notifications (integration, group_key, status);`,
  },
  {
    // 303 is PostgreSQL's change sequence (postgres/migrations.ts); the numbers stay aligned.
    version: 304,
    description: 'notifications: tenant and attempt duration, for the delivery history',
    sql: `ALTER TABLE notifications ADD COLUMN tenant TEXT;
    ALTER TABLE notifications ADD COLUMN last_attempt_duration_ms INTEGER;
    UPDATE notifications SET tenant = json_extract(payload, '$.groupLabels.tenant');
    CREATE INDEX notifications_by_tenant ON notifications (tenant, receiver, id);`,
  },
];

interface AlertRow {
  tenant: string;
  fingerprint: string;
  active_at_ms: number;
  name: string;
  source: string;
  origin: string;
  labels: string;
  annotations: string;
  state: string;
  firing_at_ms: number | null;
  resolved_at_ms: number | null;
  value: number | null;
}

export class AlertStore {
  readonly db: Db;
  private readonly st;

  constructor(meta: MetaStore) {
    meta.migrate(ALERTING_MIGRATIONS);
    this.db = meta.db;
    const db = this.db;
    this.st = {
      getEpisode: db.prepare(
        'SELECT * FROM alerts WHERE tenant = ? AND fingerprint = ? AND active_at_ms = ?',
      ),
      insert: db.prepare(`INSERT INTO alerts
        (tenant, fingerprint, active_at_ms, name, source, origin, job_id, labels, annotations, state, firing_at_ms, resolved_at_ms, value, updated_ms)
        VALUES (@tenant, @fingerprint, @active_at_ms, @name, @source, @origin, @job_id, @labels, @annotations, @state, @firing_at_ms, @resolved_at_ms, @value, @updated_ms)`),
      update:
        db.prepare(`UPDATE alerts SET state = @state, firing_at_ms = @firing_at_ms, resolved_at_ms = @resolved_at_ms,
        annotations = @annotations, value = @value, updated_ms = @updated_ms
        WHERE tenant = @tenant AND fingerprint = @fingerprint AND active_at_ms = @active_at_ms`),
      updateValue: db.prepare(
        "UPDATE alerts SET value = ?, updated_ms = ? WHERE tenant = ? AND fingerprint = ? AND active_at_ms = ? AND state != 'resolved'",
      ),
      deletePending: db.prepare(
        "DELETE FROM alerts WHERE tenant = ? AND fingerprint = ? AND active_at_ms = ? AND state = 'pending'",
      ),
      open: db.prepare("SELECT * FROM alerts WHERE state != 'resolved'"),
      resolvedSince: db.prepare("SELECT * FROM alerts WHERE state = 'resolved' AND resolved_at_ms >= ?"),
      pruneResolved: db.prepare("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at_ms < ?"),
      silences: db.prepare('SELECT * FROM silences'),
      upsertSilence:
        db.prepare(`INSERT INTO silences (id, tenant, matchers, starts_at_ms, ends_at_ms, created_by, comment, updated_at_ms)
        VALUES (@id, @tenant, @matchers, @starts_at_ms, @ends_at_ms, @created_by, @comment, @updated_at_ms)
        ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at_ms = excluded.starts_at_ms,
          ends_at_ms = excluded.ends_at_ms, created_by = excluded.created_by, comment = excluded.comment,
          updated_at_ms = excluded.updated_at_ms`),
      pruneSilences: db.prepare('DELETE FROM silences WHERE ends_at_ms < ?'),
      nflogGet: db.prepare(
        'SELECT firing, sent_at_ms FROM notification_log WHERE receiver = ? AND integration = ? AND group_key = ?',
      ),
      nflogSet:
        db.prepare(`INSERT INTO notification_log (receiver, integration, group_key, firing, sent_at_ms) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (receiver, integration, group_key) DO UPDATE SET firing = excluded.firing, sent_at_ms = excluded.sent_at_ms`),
      nflogDelete: db.prepare(
        'DELETE FROM notification_log WHERE receiver = ? AND integration = ? AND group_key = ?',
      ),
      enqueue: db.prepare(`INSERT OR IGNORE INTO notifications
        (receiver, integration, group_key, dedup_key, payload, summary, status, attempts, next_attempt_ms, created_ms, updated_ms, tenant)
        VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)`),
      supersede: db.prepare(
        "UPDATE notifications SET status = 'superseded', updated_ms = ? WHERE integration = ? AND group_key = ? AND status = 'pending' AND dedup_key IS NULL AND id < ?",
      ),
      due: db.prepare(
        "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_ms <= ? ORDER BY next_attempt_ms, id LIMIT ?",
      ),
      nextDue: db.prepare("SELECT MIN(next_attempt_ms) AS t FROM notifications WHERE status = 'pending'"),
      markDelivered: db.prepare(
        "UPDATE notifications SET status = 'delivered', attempts = attempts + 1, delivered_ms = ?, updated_ms = ?, last_error = '', last_attempt_duration_ms = ? WHERE id = ? AND status = 'pending'",
      ),
      markRetry: db.prepare(
        'UPDATE notifications SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ?, updated_ms = ?, last_attempt_duration_ms = ? WHERE id = ?',
      ),
      markFailed: db.prepare(
        "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = ?, updated_ms = ?, last_attempt_duration_ms = ? WHERE id = ?",
      ),
      listNotifications: db.prepare('SELECT * FROM notifications ORDER BY id DESC LIMIT ?'),
      pruneNotifications: db.prepare(
        "DELETE FROM notifications WHERE status != 'pending' AND updated_ms < ?",
      ),
    };
  }

  // ---- alerts -------------------------------------------------------------------------------------------

  /**
   * Records an alert's new state. Idempotent and monotonic per episode (fingerprint, activeAt): a replayed
   * `pending` never downgrades a stored `firing`, and a replayed `firing` of a stored episode changes nothing.
   * Returns whether anything changed.
   */
  record(alert: Alert, nowMs: number): boolean {
    const tenant = alert.labels.tenant ?? '';
    const row = this.st.getEpisode.get(tenant, alert.fingerprint, alert.activeAtMs) as AlertRow | undefined;
    const params = {
      tenant,
      fingerprint: alert.fingerprint,
      active_at_ms: alert.activeAtMs,
      name: alert.name,
      source: alert.source,
      origin: alert.origin,
      job_id: alert.labels.job_id ?? null,
      labels: JSON.stringify(alert.labels),
      annotations: JSON.stringify(alert.annotations),
      state: alert.state,
      firing_at_ms: alert.firingAtMs,
      resolved_at_ms: alert.resolvedAtMs,
      value: Number.isFinite(alert.value) ? alert.value : null,
      updated_ms: nowMs,
    };
    if (!row) {
      this.st.insert.run(params);
      return true;
    }
    if (STATE_ORDER[alert.state] <= STATE_ORDER[row.state as AlertState]) return false;
    this.st.update.run({ ...params, firing_at_ms: params.firing_at_ms ?? row.firing_at_ms });
    return true;
  }

  /** A pending alert whose condition stopped holding leaves no history (as in Prometheus). */
  dropPending(alert: Alert): boolean {
    return (
      this.st.deletePending.run(alert.labels.tenant ?? '', alert.fingerprint, alert.activeAtMs).changes > 0
    );
  }

  /** The stored state of an alert's episode (fingerprint, activeAt), if it has one. */
  episodeState(alert: Alert): AlertState | undefined {
    const row = this.st.getEpisode.get(alert.labels.tenant ?? '', alert.fingerprint, alert.activeAtMs) as
      | AlertRow
      | undefined;
    return row?.state as AlertState | undefined;
  }

  /**
   * Writes a batch of alert changes and value updates in one transaction: each change as {@link record} (or
   * {@link dropPending} for `drop`) would, in order, then the values. Returns, per change, whether it changed
   * the stored history.
   */
  persist(
    changes: readonly { alert: Alert; drop: boolean }[],
    values: readonly Alert[],
    nowMs: number,
  ): boolean[] {
    if (changes.length === 0 && values.length === 0) return [];
    return this.db.transaction(() => {
      const changed = changes.map((c) => (c.drop ? this.dropPending(c.alert) : this.record(c.alert, nowMs)));
      this.writeValues(values, nowMs);
      return changed;
    })();
  }

  updateValues(alerts: readonly Alert[], nowMs: number): void {
    if (alerts.length === 0) return;
    this.db.transaction(() => this.writeValues(alerts, nowMs))();
  }

  /** The open episodes' current values (inside the caller's transaction). */
  private writeValues(alerts: readonly Alert[], nowMs: number): void {
    for (const a of alerts)
      this.st.updateValue.run(
        Number.isFinite(a.value) ? a.value : null,
        nowMs,
        a.labels.tenant ?? '',
        a.fingerprint,
        a.activeAtMs,
      );
  }

  /** Every pending or firing alert, of every tenant. */
  open(): Alert[] {
    return (this.st.open.all() as AlertRow[]).map(rowToAlert);
  }

  resolvedSince(sinceMs: number): Alert[] {
    return (this.st.resolvedSince.all(sinceMs) as AlertRow[]).map(rowToAlert);
  }

  query(q: AlertQuery): Alert[] {
    const where = ['tenant = ?'];
    const args: unknown[] = [q.tenant];
    if (q.states && q.states.length > 0) {
      where.push(`state IN (${q.states.map(() => '?').join(',')})`);
      args.push(...q.states);
    }
    if (q.jobId !== undefined) {
      where.push('job_id = ?');
      args.push(q.jobId);
    }
    if (q.sinceMs !== undefined) {
      where.push("(active_at_ms >= ? OR resolved_at_ms >= ? OR state != 'resolved')");
      args.push(q.sinceMs, q.sinceMs);
    }
    args.push(Math.max(1, Math.min(q.limit ?? 1000, 10_000)));
    const rows = this.db
      .prepare(
        `SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY active_at_ms DESC, id DESC LIMIT ?`,
      )
      .all(...args) as AlertRow[];
    return rows.map(rowToAlert);
  }

  pruneResolved(beforeMs: number): number {
    return this.st.pruneResolved.run(beforeMs).changes;
  }

  // ---- silences -----------------------------------------------------------------------------------------

  silences(): StoredSilence[] {
    return (this.st.silences.all() as Record<string, unknown>[]).map((r) => ({
      id: r.id as string,
      tenant: r.tenant as string,
      matchers: JSON.parse(r.matchers as string) as SilenceMatcher[],
      startsAtMs: r.starts_at_ms as number,
      endsAtMs: r.ends_at_ms as number,
      createdBy: r.created_by as string,
      comment: r.comment as string,
      updatedAtMs: r.updated_at_ms as number,
    }));
  }

  saveSilence(s: StoredSilence): void {
    this.st.upsertSilence.run({
      id: s.id,
      tenant: s.tenant,
      matchers: JSON.stringify(s.matchers),
      starts_at_ms: s.startsAtMs,
      ends_at_ms: s.endsAtMs,
      created_by: s.createdBy,
      comment: s.comment,
      updated_at_ms: s.updatedAtMs,
    });
  }

  pruneSilences(beforeMs: number): number {
    return this.st.pruneSilences.run(beforeMs).changes;
  }

  // ---- notification log ---------------------------------------------------------------------------------
  // Kept duplicates: these methods' parameter lists are the contract's (`AlertRepository`), as are their twins'
  // in `PgNotificationLog` and `PgOutbox` (postgres/); the statements are each dialect's.

  lastNotified(
    receiver: string,
    integration: string,
    groupKey: string,
  ): { firing: Set<string>; sentAtMs: number } | undefined {
    const r = this.st.nflogGet.get(receiver, integration, groupKey) as
      | { firing: string; sent_at_ms: number }
      | undefined;
    if (!r) return undefined;
    return { firing: new Set(JSON.parse(r.firing) as string[]), sentAtMs: r.sent_at_ms };
  }

  setNotified(
    receiver: string,
    integration: string,
    groupKey: string,
    firing: readonly string[],
    sentAtMs: number,
  ): void {
    if (firing.length === 0) this.st.nflogDelete.run(receiver, integration, groupKey);
    else this.st.nflogSet.run(receiver, integration, groupKey, JSON.stringify(firing), sentAtMs);
  }

  // ---- outbox -------------------------------------------------------------------------------------------

  /**
   * Queues a notification. A newer notification for the same integration and group supersedes older ones
   * still waiting (the receiver gets the group's latest state once it recovers, not a backlog). A `dedupKey`
   * (actions) makes the enqueue happen at most once, whatever replays follow; such entries are never superseded.
   */
  enqueue(
    receiver: string,
    integration: string,
    group: AlertGroup,
    summary: string,
    nowMs: number,
    dedupKey: string | null = null,
  ): number | undefined {
    return this.db.transaction(() => {
      const res = this.st.enqueue.run(
        receiver,
        integration,
        group.groupKey,
        dedupKey,
        JSON.stringify(group),
        summary,
        nowMs,
        nowMs,
        nowMs,
        notificationTenant(group),
      );
      if (res.changes === 0) return undefined;
      const id = Number(res.lastInsertRowid);
      if (dedupKey === null) this.st.supersede.run(nowMs, integration, group.groupKey, id);
      return id;
    })();
  }

  due(nowMs: number, limit: number): DueNotification[] {
    return (this.st.due.all(nowMs, limit) as Record<string, unknown>[]).map((r) => ({
      ...rowToNotification(r),
      group: JSON.parse(r.payload as string) as AlertGroup,
    }));
  }

  nextDueMs(): number | undefined {
    const r = this.st.nextDue.get() as { t: number | null };
    return r.t ?? undefined;
  }

  markDelivered(id: number, nowMs: number, attemptMs: number | null = null): void {
    this.st.markDelivered.run(nowMs, nowMs, attemptMs, id);
  }

  markRetry(
    id: number,
    nextAttemptMs: number,
    error: string,
    nowMs: number,
    attemptMs: number | null = null,
  ): void {
    this.st.markRetry.run(nextAttemptMs, error.slice(0, 1000), nowMs, attemptMs, id);
  }

  markFailed(id: number, error: string, nowMs: number, attemptMs: number | null = null): void {
    this.st.markFailed.run(error.slice(0, 1000), nowMs, attemptMs, id);
  }

  /** One tenant's notifications, newest first, filtered and paged (see {@link DeliveryQuery}). */
  deliveries(q: DeliveryQuery): DeliveryPage {
    const where = ['tenant = ?'];
    const args: (string | number)[] = [q.tenant];
    const add = (cond: string, ...values: (string | number)[]) => {
      where.push(cond);
      args.push(...values);
    };
    if (q.receiver !== undefined) add('receiver = ?', q.receiver);
    if (q.integration !== undefined) add('integration = ?', q.integration);
    if (q.statuses && q.statuses.length > 0)
      add(`status IN (${q.statuses.map(() => '?').join(', ')})`, ...q.statuses);
    if (q.sinceMs !== undefined) add('created_ms >= ?', q.sinceMs);
    if (q.untilMs !== undefined) add('created_ms < ?', q.untilMs);
    const cond = where.join(' AND ');
    const total = (
      this.db.prepare(`SELECT COUNT(*) AS n FROM notifications WHERE ${cond}`).get(...args) as { n: number }
    ).n;
    const rows = this.db
      .prepare(`SELECT * FROM notifications WHERE ${cond} ORDER BY id DESC LIMIT ? OFFSET ?`)
      .all(...args, q.limit, q.offset) as Record<string, unknown>[];
    return { notifications: rows.map(rowToNotification), total };
  }

  /** Per receiver integration: delivery counts, last success and failure, latency (one tenant). */
  deliveryHealth(tenant: string): IntegrationHealth[] {
    const rows = this.db
      .prepare(
        `SELECT receiver, integration,
           SUM(status = 'delivered') AS delivered, SUM(status = 'failed') AS failed,
           SUM(status = 'pending') AS pending, SUM(status = 'pending' AND attempts > 0) AS retrying,
           MAX(delivered_ms) AS last_delivered_ms,
           MAX(CASE WHEN last_error != '' THEN updated_ms END) AS last_failure_ms,
           AVG(delivered_ms - created_ms) AS mean_latency_ms, MAX(delivered_ms - created_ms) AS max_latency_ms
         FROM notifications WHERE tenant = ? GROUP BY receiver, integration ORDER BY receiver, integration`,
      )
      .all(tenant) as Record<string, number | string | null>[];
    // SQLite takes the bare column from the row that holds the MAX: the newest error of each integration.
    const errors = this.db
      .prepare(
        `SELECT receiver, integration, last_error, MAX(updated_ms) FROM notifications
         WHERE tenant = ? AND last_error != '' GROUP BY receiver, integration`,
      )
      .all(tenant) as { receiver: string; integration: string; last_error: string }[];
    return rows.map((r) => healthFromRow(r, errors));
  }

  notifications(limit: number): NotificationRecord[] {
    return (
      this.st.listNotifications.all(Math.max(1, Math.min(limit, 10_000))) as Record<string, unknown>[]
    ).map(rowToNotification);
  }

  pruneNotifications(beforeMs: number): number {
    return this.st.pruneNotifications.run(beforeMs).changes;
  }
}

/**
 * Kept duplicate of `alertFromRow` (./records.ts, which PostgreSQL's rows use): this store's reads stay its
 * own because routing them through the shared mapping changed delivery timing in
 * test/alerting/notifications-api.test.ts, a cause not yet found (see the branch's report).
 */
function rowToAlert(r: AlertRow): Alert {
  const labels = JSON.parse(r.labels) as LabelSet;
  return {
    labels,
    annotations: JSON.parse(r.annotations) as Record<string, string>,
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

/** Kept duplicate of `notificationFromRow` (./records.ts), for the reason given at `rowToAlert`. */
function rowToNotification(r: Record<string, unknown>): NotificationRecord {
  return {
    id: r.id as number,
    receiver: r.receiver as string,
    integration: r.integration as string,
    groupKey: r.group_key as string,
    summary: r.summary as string,
    status: r.status as NotificationStatus,
    attempts: r.attempts as number,
    nextAttemptMs: r.next_attempt_ms as number,
    lastError: r.last_error as string,
    createdMs: r.created_ms as number,
    updatedMs: r.updated_ms as number,
    deliveredMs: (r.delivered_ms as number | null) ?? null,
    tenant: (r.tenant as string | null) ?? null,
    lastAttemptDurationMs: (r.last_attempt_duration_ms as number | null) ?? null,
  };
}
