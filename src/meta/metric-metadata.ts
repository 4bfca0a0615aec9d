/**
 * Metric metadata senders declared (type, help, unit per metric name), per tenant, in the metadata store:
 * SQLite (embedded) or PostgreSQL (scaled out), the same SQL through a `SqlRunner` (access.ts). The query
 * stage answers `/api/v1/metadata` from it, and from the canonical catalog (src/model/metric-catalog.ts)
 * for metrics nobody declared.
 *
 * Written off the request path: the collector hands over only entries its decoding threads had not passed on
 * before ({@link MetricMetadataStore.noteDeclared}, which only queues), and a timer writes the queue in
 * batches of upserts. A failed write keeps its entries queued for the next flush (newer declarations of the
 * same metric replace them). One row per (tenant, metric): the last declaration wins, as the last scrape's
 * metadata does in Prometheus's metadata cache.
 */
import type { DeclaredMetadata, MetricMetadata, MetricType } from '../model/metric-catalog.js';
import type { SqlRunner } from './access.js';
import type { Migration } from './meta-store.js';

const TABLE_SQL = (big: string) => `
  CREATE TABLE metric_metadata (
    tenant TEXT NOT NULL,
    metric TEXT NOT NULL,
    type TEXT NOT NULL,
    help TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    updated_at_ms ${big} NOT NULL,
    PRIMARY KEY (tenant, metric)
  );`;

/** SQLite. */
export const METRIC_METADATA_MIGRATIONS: readonly Migration[] = [
  { version: 400, description: 'metric metadata senders declared', sql: TABLE_SQL('INTEGER') },
];

/** The same for PostgreSQL (part of `PG_MIGRATIONS`). */
export const METRIC_METADATA_PG_MIGRATIONS: readonly Migration[] = [
  { version: 400, description: 'metric metadata senders declared', sql: TABLE_SQL('BIGINT') },
];

/** Rows per upsert statement (6 parameters each: well under SQLite's and PostgreSQL's limits). */
const ROWS_PER_STATEMENT = 200;
/** How often queued declarations are written. */
export const METRIC_METADATA_FLUSH_INTERVAL_MS = 1000;
/** Queued entries beyond this are dropped (the store is failing for long): the senders declare them again. */
const MAX_QUEUED = 100_000;

export interface MetricMetadataQuery {
  /** Only this metric. */
  readonly metric?: string;
}

export class MetricMetadataStore {
  /** Queued declarations by `tenant \0 metric`; the newest wins. */
  private queued = new Map<string, { tenant: string; entry: DeclaredMetadata; atMs: number }>();
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sql: SqlRunner,
    private readonly onError?: (err: Error) => void,
  ) {}

  /** Starts writing queued declarations every `intervalMs`; `close` stops it and writes what is queued. */
  start(intervalMs = METRIC_METADATA_FLUSH_INTERVAL_MS): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.flush().catch((err: Error) => this.onError?.(err));
    }, intervalMs);
    this.timer.unref();
  }

  /** Queues declarations (the collector's `DeclaredMetadataSink`); never blocks, never throws. */
  noteDeclared(tenant: string, entries: readonly DeclaredMetadata[]): void {
    const atMs = Date.now();
    for (const entry of entries) {
      if (this.queued.size >= MAX_QUEUED) return;
      this.queued.set(`${tenant}\u0000${entry[0]}`, { tenant, entry, atMs });
    }
  }

  /** Writes what is queued; rejects when the store fails (the entries stay queued). */
  flush(): Promise<void> {
    const run = this.flushing.then(() => this.writeQueued());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  private async writeQueued(): Promise<void> {
    if (this.queued.size === 0) return;
    const batch = [...this.queued.values()];
    this.queued = new Map();
    for (let i = 0; i < batch.length; i += ROWS_PER_STATEMENT) {
      const rows = batch.slice(i, i + ROWS_PER_STATEMENT);
      const params: unknown[] = [];
      for (const { tenant, entry, atMs } of rows)
        params.push(tenant, entry[0], entry[1], entry[2], entry[3], atMs);
      try {
        await this.sql.run(
          `INSERT INTO metric_metadata (tenant, metric, type, help, unit, updated_at_ms) VALUES ${rows
            .map(() => '(?, ?, ?, ?, ?, ?)')
            .join(', ')}
           ON CONFLICT (tenant, metric) DO UPDATE SET type = excluded.type, help = excluded.help,
             unit = excluded.unit, updated_at_ms = excluded.updated_at_ms`,
          params,
        );
      } catch (err) {
        // Back in the queue unless something newer for the same metric arrived meanwhile.
        for (const q of batch.slice(i)) {
          const key = `${q.tenant}\u0000${q.entry[0]}`;
          if (!this.queued.has(key) && this.queued.size < MAX_QUEUED) this.queued.set(key, q);
        }
        throw err;
      }
    }
  }

  /** The tenant's declared metadata by metric name, sorted by name. */
  async list(
    tenant: string,
    query: MetricMetadataQuery,
    signal?: AbortSignal,
  ): Promise<Map<string, MetricMetadata>> {
    signal?.throwIfAborted();
    const rows =
      query.metric === undefined
        ? await this.sql.all<Row>(
            'SELECT metric, type, help, unit FROM metric_metadata WHERE tenant = ? ORDER BY metric',
            [tenant],
          )
        : await this.sql.all<Row>(
            'SELECT metric, type, help, unit FROM metric_metadata WHERE tenant = ? AND metric = ?',
            [tenant, query.metric],
          );
    signal?.throwIfAborted();
    return new Map(rows.map((r) => [r.metric, { type: r.type, help: r.help, unit: r.unit }]));
  }

  /** Stops the timer and writes what is queued. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}

interface Row {
  readonly metric: string;
  readonly type: MetricType;
  readonly help: string;
  readonly unit: string;
}
