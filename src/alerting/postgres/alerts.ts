/**
 * Alert history on PostgreSQL: the async counterpart of the alert half of `AlertStore` (one row per
 * episode of an alert, keyed by tenant, fingerprint and activeAt).
 *
 * `record` is one statement that is idempotent and monotonic per episode: the stored state only moves
 * forward (pending → firing → resolved), so a replayed or reordered transition — from this process or from
 * a previous owner of the partition — never downgrades what is stored. `persist` writes a batch of changes in
 * one transaction, before any notification about them is queued (the invariant `AlertStore` documents).
 *
 * Change feed: every write that changes an episode's state gives its row the next `change_seq`, under a
 * transaction-scoped advisory lock (`ALERT_CHANGE_LOCK_KEY`) held until commit. Numbering is therefore in
 * commit order, and {@link PgAlertRepository.changesSince} can follow a cursor without ever skipping a change
 * committed late with a lower number (a plain sequence gives no such guarantee across concurrent writers).
 * Value updates do not renumber: the dispatcher does not need them.
 */

import type { PgMeta, Queryable } from '../../meta/index.js';
import type { Alert, AlertState } from '../notifier.js';
import {
  ALERT_COLUMNS,
  type AlertQuery,
  type AlertRow,
  alertFromRow,
  alertTenant,
  alertToParams,
  storedValue,
} from '../records.js';
import { ALERT_CHANGE_LOCK_KEY } from './migrations.js';

/** Rank of a state in an episode's order; the SQL twin of `STATE_ORDER`. */
const RANK = (col: string) => `array_position(ARRAY['pending', 'firing', 'resolved'], ${col})`;

const RECORD = `INSERT INTO alerts AS a (${ALERT_COLUMNS.join(', ')})
  VALUES (${ALERT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})
  ON CONFLICT (tenant, fingerprint, active_at_ms) DO UPDATE SET
    state = excluded.state,
    firing_at_ms = COALESCE(excluded.firing_at_ms, a.firing_at_ms),
    resolved_at_ms = excluded.resolved_at_ms,
    annotations = excluded.annotations,
    value = excluded.value,
    updated_ms = excluded.updated_ms,
    change_seq = nextval('alerts_change_seq')
  WHERE ${RANK('a.state')} < ${RANK('excluded.state')}
  RETURNING 1`;

const LOCK_CHANGES = 'SELECT pg_advisory_xact_lock($1::bigint)';

const DROP_PENDING =
  "DELETE FROM alerts WHERE tenant = $1 AND fingerprint = $2 AND active_at_ms = $3 AND state = 'pending'";

const UPDATE_VALUE = `UPDATE alerts SET value = $1, updated_ms = $2
  WHERE tenant = $3 AND fingerprint = $4 AND active_at_ms = $5 AND state <> 'resolved'`;

export class PgAlertRepository {
  constructor(private readonly db: PgMeta) {}

  /** Records an alert's new state (see the file comment). Returns whether anything changed. */
  async record(alert: Alert, nowMs: number, signal?: AbortSignal): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.query(LOCK_CHANGES, [ALERT_CHANGE_LOCK_KEY]);
      const r = await tx.query(RECORD, alertToParams(alert, nowMs));
      return (r.rowCount ?? 0) > 0;
    }, signal);
  }

  /** A pending alert whose condition stopped holding leaves no history (as in Prometheus). */
  async dropPending(alert: Alert): Promise<void> {
    await this.db.query(DROP_PENDING, [alertTenant(alert), alert.fingerprint, alert.activeAtMs]);
  }

  /** The stored state of an alert's episode (fingerprint, activeAt), if it has one. */
  async episodeState(alert: Alert): Promise<AlertState | undefined> {
    const r = await this.db.query<{ state: AlertState }>(
      'SELECT state FROM alerts WHERE tenant = $1 AND fingerprint = $2 AND active_at_ms = $3',
      [alertTenant(alert), alert.fingerprint, alert.activeAtMs],
    );
    return r.rows[0]?.state;
  }

  /**
   * Writes a batch of alert changes and value updates in one transaction: each change as `record` (or
   * `dropPending` for `drop`) would, in order, then the values.
   */
  async persist(
    changes: readonly { alert: Alert; drop: boolean }[],
    values: readonly Alert[],
    nowMs: number,
    signal?: AbortSignal,
  ): Promise<boolean[]> {
    if (changes.length === 0 && values.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const changed: boolean[] = [];
      if (changes.some((c) => !c.drop)) await tx.query(LOCK_CHANGES, [ALERT_CHANGE_LOCK_KEY]);
      for (const c of changes) {
        if (c.drop) {
          const r = await tx.query(DROP_PENDING, [
            alertTenant(c.alert),
            c.alert.fingerprint,
            c.alert.activeAtMs,
          ]);
          changed.push((r.rowCount ?? 0) > 0);
        } else {
          const r = await tx.query(RECORD, alertToParams(c.alert, nowMs));
          changed.push((r.rowCount ?? 0) > 0);
        }
      }
      await updateValues(tx, values, nowMs);
      return changed;
    }, signal);
  }

  /**
   * Episodes whose state changed after change `cursor` (oldest change first, at most `limit`), with the cursor
   * to pass next time. Only the latest state of each episode is returned: an episode that went pending →
   * firing → resolved between two calls comes back once, resolved (the dispatcher acts on the latest state).
   */
  async changesSince(
    cursor: number,
    limit: number,
    signal?: AbortSignal,
  ): Promise<{ alerts: Alert[]; cursor: number }> {
    const r = await this.db.query<AlertRow & { change_seq: number }>(
      'SELECT * FROM alerts WHERE change_seq > $1 ORDER BY change_seq LIMIT $2',
      [cursor, Math.max(1, limit)],
      signal,
    );
    const last = r.rows[r.rows.length - 1];
    return { alerts: r.rows.map(alertFromRow), cursor: last ? last.change_seq : cursor };
  }

  /** The newest change number (0 when none): where a follower that loaded the current state starts. */
  async latestChange(signal?: AbortSignal): Promise<number> {
    const r = await this.db.query<{ seq: number | null }>(
      'SELECT MAX(change_seq) AS seq FROM alerts',
      [],
      signal,
    );
    return r.rows[0]?.seq ?? 0;
  }

  async updateValues(alerts: readonly Alert[], nowMs: number): Promise<void> {
    if (alerts.length === 0) return;
    await this.db.transaction((tx) => updateValues(tx, alerts, nowMs));
  }

  /** Every pending or firing alert, of every tenant. */
  async open(signal?: AbortSignal): Promise<Alert[]> {
    const r = await this.db.query<AlertRow>(
      "SELECT * FROM alerts WHERE state <> 'resolved' ORDER BY id",
      [],
      signal,
    );
    return r.rows.map(alertFromRow);
  }

  async resolvedSince(sinceMs: number, signal?: AbortSignal): Promise<Alert[]> {
    const r = await this.db.query<AlertRow>(
      "SELECT * FROM alerts WHERE state = 'resolved' AND resolved_at_ms >= $1 ORDER BY id",
      [sinceMs],
      signal,
    );
    return r.rows.map(alertFromRow);
  }

  /** One tenant's alerts, newest episode first. */
  async query(q: AlertQuery, signal?: AbortSignal): Promise<Alert[]> {
    const params: unknown[] = [q.tenant];
    const where = ['tenant = $1'];
    if (q.states && q.states.length > 0) {
      params.push([...q.states]);
      where.push(`state = ANY($${params.length}::text[])`);
    }
    if (q.jobId !== undefined) {
      params.push(q.jobId);
      where.push(`job_id = $${params.length}`);
    }
    if (q.sinceMs !== undefined) {
      params.push(q.sinceMs);
      const p = `$${params.length}`;
      where.push(`(active_at_ms >= ${p} OR resolved_at_ms >= ${p} OR state <> 'resolved')`);
    }
    params.push(Math.max(1, Math.min(q.limit ?? 1000, 10_000)));
    const r = await this.db.query<AlertRow>(
      `SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY active_at_ms DESC, id DESC LIMIT $${params.length}`,
      params,
      signal,
    );
    return r.rows.map(alertFromRow);
  }

  /** Deletes resolved episodes that resolved before `beforeMs`; returns how many. */
  async pruneResolved(beforeMs: number): Promise<number> {
    const r = await this.db.query("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at_ms < $1", [
      beforeMs,
    ]);
    return r.rowCount ?? 0;
  }
}

async function updateValues(tx: Queryable, alerts: readonly Alert[], nowMs: number): Promise<void> {
  for (const a of alerts)
    await tx.query(UPDATE_VALUE, [storedValue(a.value), nowMs, alertTenant(a), a.fingerprint, a.activeAtMs]);
}
