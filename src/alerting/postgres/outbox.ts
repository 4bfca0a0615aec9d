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
import type { DueNotification, NotificationRecord } from '../store.js';
import { dueNotificationFromRow, type NotificationRow, notificationFromRow } from './rows.js';

/** Default claim lease: longer than any notifier's request timeout plus its retries within one send. */
export const DEFAULT_CLAIM_LEASE_MS = 120_000;
/** Stored error messages are cut to this length (a receiver may answer with a whole HTML page). */
const MAX_ERROR_LENGTH = 1000;

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
           (receiver, integration, group_key, dedup_key, payload, summary, status, attempts, next_attempt_ms, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)
         ON CONFLICT (dedup_key) DO NOTHING
         RETURNING id`,
        [receiver, integration, group.groupKey, dedupKey, JSON.stringify(group), summary, nowMs],
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

  async markDelivered(id: number, nowMs: number): Promise<void> {
    await this.db.query(
      `UPDATE notifications SET status = 'delivered', attempts = attempts + 1, delivered_ms = $1, updated_ms = $1,
         last_error = '' WHERE id = $2 AND status = 'pending'`,
      [nowMs, id],
    );
  }

  async markRetry(id: number, nextAttemptMs: number, error: string, nowMs: number): Promise<void> {
    await this.db.query(
      `UPDATE notifications SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2, updated_ms = $3
       WHERE id = $4`,
      [nextAttemptMs, error.slice(0, MAX_ERROR_LENGTH), nowMs, id],
    );
  }

  async markFailed(id: number, error: string, nowMs: number): Promise<void> {
    await this.db.query(
      `UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $1, updated_ms = $2
       WHERE id = $3`,
      [error.slice(0, MAX_ERROR_LENGTH), nowMs, id],
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

  /** Deletes finished (not pending) notifications last updated before `beforeMs`; returns how many. */
  async prune(beforeMs: number): Promise<number> {
    const r = await this.db.query("DELETE FROM notifications WHERE status <> 'pending' AND updated_ms < $1", [
      beforeMs,
    ]);
    return r.rowCount ?? 0;
  }
}
