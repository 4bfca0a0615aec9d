/**
 * Processor state per bus partition, for Kafka consumer-group hand-over. The processor that owns a partition
 * saves its detector/rollup state together with the bus offset that state covers; when the group rebalances
 * and the partition moves, the new owner loads it and resumes consuming from that offset, so its detectors
 * continue where the previous owner's stopped instead of starting cold.
 *
 * Invariant: the stored offset never goes backwards. A save with a lower offset than the stored one changes
 * nothing and returns false: it can only come from a previous owner that has not yet noticed it lost the
 * partition (a "zombie"), and must not overwrite the new owner's newer state. Saving the same offset again
 * (a retry) replaces the state. A deliberate rewind (offsets reset) first calls `delete`.
 */
import { checkPartitionPosition } from '../../model/partition-state.js';
import type { PgMeta } from './pg-meta.js';

export interface SavedPartitionState {
  /** The bus offset the state covers: consume from here. */
  readonly offset: number;
  readonly state: Uint8Array;
  readonly savedAtMs: number;
}

export class PgPartitionState {
  constructor(private readonly db: PgMeta) {}

  /** Upserts the state of (group, partition); false when a newer offset is already stored (see above). */
  async save(
    group: string,
    partition: number,
    offset: number,
    state: Uint8Array,
    nowMs = Date.now(),
    signal?: AbortSignal,
  ): Promise<boolean> {
    checkPartitionPosition(partition, offset);
    const r = await this.db.query(
      `INSERT INTO partition_state AS p (consumer_group, partition, bus_offset, state, saved_at_ms)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (consumer_group, partition) DO UPDATE SET
         bus_offset = excluded.bus_offset, state = excluded.state, saved_at_ms = excluded.saved_at_ms
       WHERE p.bus_offset <= excluded.bus_offset`,
      // A Buffer view of the same bytes (no copy): node-postgres sends Buffers as bytea.
      [group, partition, offset, Buffer.from(state.buffer, state.byteOffset, state.byteLength), nowMs],
      signal,
    );
    return (r.rowCount ?? 0) > 0;
  }

  async load(
    group: string,
    partition: number,
    signal?: AbortSignal,
  ): Promise<SavedPartitionState | undefined> {
    const r = await this.db.query<{ bus_offset: number; state: Buffer; saved_at_ms: number }>(
      'SELECT bus_offset, state, saved_at_ms FROM partition_state WHERE consumer_group = $1 AND partition = $2',
      [group, partition],
      signal,
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      offset: row.bus_offset,
      state: new Uint8Array(row.state.buffer, row.state.byteOffset, row.state.byteLength),
      savedAtMs: row.saved_at_ms,
    };
  }

  /** Forgets the state of (group, partition), e.g. before deliberately rewinding its offset. */
  async delete(group: string, partition: number): Promise<boolean> {
    const r = await this.db.query(
      'DELETE FROM partition_state WHERE consumer_group = $1 AND partition = $2',
      [group, partition],
    );
    return (r.rowCount ?? 0) > 0;
  }
}
