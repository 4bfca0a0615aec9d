/**
 * The notification outbox on PostgreSQL: the async counterpart of `AlertStore`'s outbox (every notification
 * to send, with its delivery status and retries), made safe for several senders at once.
 *
 * Claiming: `due` selects due rows `FOR UPDATE SKIP LOCKED` and, in the same statement, moves their
 * `next_attempt_ms` a lease ahead. Rows another caller is claiming at that moment are skipped (not waited
 * for), and once a claim commits the rows are no longer due, so two senders never take the same notification
 * while its lease runs. The sender then reports `markDelivered` / `markRetry` / `markFailed`. A sender that
 * dies mid-send reports nothing: its rows become due again when the lease ends and another sender retries
 * them (at-least-once delivery, as with any outbox). The lease must therefore be longer than a send can take.
 */

import type { PgMeta } from '../../meta/index.js';
import type { AlertGroup } from '../notifier.js';
import {
  type DeliveryPage,
  type DeliveryQuery,
  type DueNotification,
  dueNotificationFromRow,
  healthFromRow,
  type IntegrationHealth,
  type NotificationRecord,
  type NotificationRow,
  notificationFromRow,
  notificationTenant,
} from '../records.js';

/** Default claim lease: longer than any notifier's request timeout plus its retries within one send. */
export const DEFAULT_CLAIM_LEASE_MS = 120_000;
/** Stored error messages are cut to this length (a receiver may answer with a whole HTML page). */
const MAX_ERROR_LENGTH = 1000;

/** Kept duplicate: the parameter lists are the contract's, as in its twin `AlertStore.enqueue`… (../store.ts). */
export class PgOutbox {
  private readonly leaseMs: number;

  constructor(
    private readonly db: PgMeta,
    opts: { claimLeaseMs?: number } = {},
  ) {
    this.leaseMs = opts.claimLeaseMs ?? DEFAULT_CLAIM_LEASE_MS;
  }

  /**
   * Queues a notification. A newer notification for the same integration and group supersedes older ones
   * still waiting (the receiver gets the group's latest state once it recovers, not a backlog). A `dedupKey`
   * makes the enqueue happen at most once, whatever replays follow (undefined is returned for a repeat);
   * such entries are never superseded.
   */
  async enqueue(
    receiver: string,
    integration: string,
    group: AlertGroup,
    summary: string,
    nowMs: number,
    dedupKey: string | null = null,
  ): Promise<number | undefined> {
    return this.db.transaction(async (tx) => {
      const r = await tx.query<{ id: number }>(
        `INSERT INTO notifications
           (receiver, integration, group_key, dedup_key, payload, summary, status, attempts, next_attempt_ms, created_ms, updated_ms, tenant)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7, $8)
         ON CONFLICT (dedup_key) DO NOTHING
         RETURNING id`,
        [
          receiver,
          integration,
          group.groupKey,
          dedupKey,
          JSON.stringify(group),
          summary,
          nowMs,
          notificationTenant(group),
        ],
      );
      const id = r.rows[0]?.id;
      if (id === undefined) return undefined;
      if (dedupKey === null)
        await tx.query(
          `UPDATE notifications SET status = 'superseded', updated_ms = $1
           WHERE integration = $2 AND group_key = $3 AND status = 'pending' AND dedup_key IS NULL AND id < $4`,
          [nowMs, integration, group.groupKey, id],
        );
      return id;
    });
  }

  /**
   * Claims up to `limit` notifications due at `nowMs`, oldest first, for this caller alone (see the file
   * comment). Each record's `nextAttemptMs` is the time it was due.
   */
  async due(nowMs: number, limit: number, signal?: AbortSignal): Promise<DueNotification[]> {
    const r = await this.db.query<NotificationRow & { due_ms: number }>(
      `UPDATE notifications n SET next_attempt_ms = $1::bigint + $3::bigint
       FROM (SELECT id, next_attempt_ms FROM notifications
             WHERE status = 'pending' AND next_attempt_ms <= $1
             ORDER BY next_attempt_ms, id LIMIT $2
             FOR UPDATE SKIP LOCKED) d
       WHERE n.id = d.id
       RETURNING n.*, d.next_attempt_ms AS due_ms`,
      [nowMs, Math.max(1, limit), this.leaseMs],
      signal,
    );
    return r.rows
      .sort((a, b) => a.due_ms - b.due_ms || a.id - b.id)
      .map((row) => dueNotificationFromRow({ ...row, next_attempt_ms: row.due_ms }));
  }

  /** When the next pending notification is due (a claimed one: when its lease ends); undefined if none. */
  async nextDueMs(): Promise<number | undefined> {
    const r = await this.db.query<{ t: number | null }>(
      "SELECT MIN(next_attempt_ms) AS t FROM notifications WHERE status = 'pending'",
    );
    return r.rows[0]?.t ?? undefined;
  }

  async markDelivered(id: number, nowMs: number, attemptMs: number | null = null): Promise<void> {
    await this.db.query(
      `UPDATE notifications SET status = 'delivered', attempts = attempts + 1, delivered_ms = $1, updated_ms = $1,
         last_error = '', last_attempt_duration_ms = $3 WHERE id = $2 AND status = 'pending'`,
      [nowMs, id, attemptMs],
    );
  }

  async markRetry(
    id: number,
    nextAttemptMs: number,
    error: string,
    nowMs: number,
    attemptMs: number | null = null,
  ): Promise<void> {
    await this.db.query(
      `UPDATE notifications SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2, updated_ms = $3,
         last_attempt_duration_ms = $5
       WHERE id = $4`,
      [nextAttemptMs, error.slice(0, MAX_ERROR_LENGTH), nowMs, id, attemptMs],
    );
  }

  async markFailed(id: number, error: string, nowMs: number, attemptMs: number | null = null): Promise<void> {
    await this.db.query(
      `UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $1, updated_ms = $2,
         last_attempt_duration_ms = $4
       WHERE id = $3`,
      [error.slice(0, MAX_ERROR_LENGTH), nowMs, id, attemptMs],
    );
  }

  /**
   * Gives a claimed notification back unsent, due at `dueMs` (its sender lost leadership before sending it):
   * the next leader need not wait for the claim's lease to end. Attempts are not counted.
   */
  async release(id: number, dueMs: number): Promise<void> {
    await this.db.query(
      "UPDATE notifications SET next_attempt_ms = $1 WHERE id = $2 AND status = 'pending'",
      [dueMs, id],
    );
  }

  /** The newest notifications first, whatever their status. */
  async list(limit: number, signal?: AbortSignal): Promise<NotificationRecord[]> {
    const r = await this.db.query<NotificationRow>(
      'SELECT * FROM notifications ORDER BY id DESC LIMIT $1',
      [Math.max(1, Math.min(limit, 10_000))],
      signal,
    );
    return r.rows.map(notificationFromRow);
  }

  /** One tenant's notifications, newest first, filtered and paged (see `DeliveryQuery`). */
  async deliveries(q: DeliveryQuery, signal?: AbortSignal): Promise<DeliveryPage> {
    const args: unknown[] = [q.tenant];
    const where = ['tenant = $1'];
    const add = (cond: (n: number) => string, value: unknown) => {
      args.push(value);
      where.push(cond(args.length));
    };
    if (q.receiver !== undefined) add((n) => `receiver = $${n}`, q.receiver);
    if (q.integration !== undefined) add((n) => `integration = $${n}`, q.integration);
    if (q.statuses && q.statuses.length > 0) add((n) => `status = ANY($${n}::text[])`, [...q.statuses]);
    if (q.sinceMs !== undefined) add((n) => `created_ms >= $${n}`, q.sinceMs);
    if (q.untilMs !== undefined) add((n) => `created_ms < $${n}`, q.untilMs);
    const cond = where.join(' AND ');
    const total = await this.db.query<{ n: string }>(
      `SELECT COUNT(*) AS n FROM notifications WHERE ${cond}`,
      args,
      signal,
    );
    const rows = await this.db.query<NotificationRow>(
      `SELECT * FROM notifications WHERE ${cond} ORDER BY id DESC LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
      [...args, q.limit, q.offset],
      signal,
    );
    return { notifications: rows.rows.map(notificationFromRow), total: Number(total.rows[0]?.n ?? 0) };
  }

  /** Per receiver integration of one tenant: counts, last success and failure, latency. */
  async deliveryHealth(tenant: string, signal?: AbortSignal): Promise<IntegrationHealth[]> {
    const rows = await this.db.query<Record<string, number | string | null>>(
      `SELECT receiver, integration,
         COUNT(*) FILTER (WHERE status = 'delivered') AS delivered,
         COUNT(*) FILTER (WHERE status = 'failed') AS failed,
         COUNT(*) FILTER (WHERE status = 'pending') AS pending,
         COUNT(*) FILTER (WHERE status = 'pending' AND attempts > 0) AS retrying,
         MAX(delivered_ms) AS last_delivered_ms,
         MAX(updated_ms) FILTER (WHERE last_error <> '') AS last_failure_ms,
         AVG(delivered_ms - created_ms) AS mean_latency_ms, MAX(delivered_ms - created_ms) AS max_latency_ms
       FROM notifications WHERE tenant = $1 GROUP BY receiver, integration ORDER BY receiver, integration`,
      [tenant],
      signal,
    );
    const errors = await this.db.query<{ receiver: string; integration: string; last_error: string }>(
      `SELECT DISTINCT ON (receiver, integration) receiver, integration, last_error FROM notifications
       WHERE tenant = $1 AND last_error <> '' ORDER BY receiver, integration, updated_ms DESC`,
      [tenant],
      signal,
    );
    return rows.rows.map((r) => healthFromRow(r, errors.rows));
  }

  /** Deletes finished (not pending) notifications last updated before `beforeMs`; returns how many. */
  async prune(beforeMs: number): Promise<number> {
    const r = await this.db.query("DELETE FROM notifications WHERE status <> 'pending' AND updated_ms < $1", [
      beforeMs,
    ]);
    return r.rowCount ?? 0;
  }
}
