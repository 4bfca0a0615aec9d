/**
 * Silences on PostgreSQL: the async counterpart of `AlertStore`'s silences (Alertmanager API v2 matchers,
 * stored as JSONB). A save replaces the silence with the same id of the same tenant; every process reads the
 * same set.
 */

import type { PgMeta } from '../../meta/index.js';
import { type SilenceRow, type StoredSilence, silenceFromRow } from '../records.js';

export class PgSilenceRepository {
  constructor(private readonly db: PgMeta) {}

  /** Every stored silence, of every tenant (expired ones too, until pruned). */
  async list(signal?: AbortSignal): Promise<StoredSilence[]> {
    const r = await this.db.query<SilenceRow>('SELECT * FROM silences ORDER BY tenant, id', [], signal);
    return r.rows.map(silenceFromRow);
  }

  /**
   * Creates or replaces a silence. Returns false, changing nothing, when the id belongs to a silence of
   * another tenant (ids come from API callers; one tenant must not overwrite another's silence).
   */
  async save(s: StoredSilence): Promise<boolean> {
    const r = await this.db.query(
      `INSERT INTO silences (id, tenant, matchers, starts_at_ms, ends_at_ms, created_by, comment, updated_at_ms)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at_ms = excluded.starts_at_ms,
         ends_at_ms = excluded.ends_at_ms, created_by = excluded.created_by, comment = excluded.comment,
         updated_at_ms = excluded.updated_at_ms
       WHERE silences.tenant = excluded.tenant`,
      [
        s.id,
        s.tenant,
        JSON.stringify(s.matchers),
        s.startsAtMs,
        s.endsAtMs,
        s.createdBy,
        s.comment,
        s.updatedAtMs,
      ],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** Deletes silences that ended before `beforeMs`; returns how many. */
  async prune(beforeMs: number): Promise<number> {
    const r = await this.db.query('DELETE FROM silences WHERE ends_at_ms < $1', [beforeMs]);
    return r.rowCount ?? 0;
  }
}
