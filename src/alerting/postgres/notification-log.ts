/**
 * The notification log on PostgreSQL: what each receiver integration was last told about each alert group
 * (the fingerprints that were firing), the dedup state that keeps a restarted or newly elected dispatcher
 * from re-sending what was already sent. The async counterpart of `AlertStore.lastNotified`/`setNotified`.
 */
import type { PgMeta } from '../../meta/index.js';

/** Kept duplicate: the parameter lists are the contract's, as in its twin `AlertStore.lastNotified`/`setNotified`. */
export class PgNotificationLog {
  constructor(private readonly db: PgMeta) {}

  async lastNotified(
    receiver: string,
    integration: string,
    groupKey: string,
  ): Promise<{ firing: Set<string>; sentAtMs: number } | undefined> {
    const r = await this.db.query<{ firing: string[]; sent_at_ms: number }>(
      'SELECT firing, sent_at_ms FROM notification_log WHERE receiver = $1 AND integration = $2 AND group_key = $3',
      [receiver, integration, groupKey],
    );
    const row = r.rows[0];
    return row ? { firing: new Set(row.firing), sentAtMs: row.sent_at_ms } : undefined;
  }

  /** Records what was sent; an empty `firing` (all resolved) forgets the group. */
  async setNotified(
    receiver: string,
    integration: string,
    groupKey: string,
    firing: readonly string[],
    sentAtMs: number,
  ): Promise<void> {
    if (firing.length === 0) {
      await this.db.query(
        'DELETE FROM notification_log WHERE receiver = $1 AND integration = $2 AND group_key = $3',
        [receiver, integration, groupKey],
      );
      return;
    }
    await this.db.query(
      `INSERT INTO notification_log (receiver, integration, group_key, firing, sent_at_ms) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (receiver, integration, group_key) DO UPDATE SET firing = excluded.firing, sent_at_ms = excluded.sent_at_ms`,
      [receiver, integration, groupKey, JSON.stringify(firing), sentAtMs],
    );
  }
}
