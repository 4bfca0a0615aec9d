/**
 * The PostgreSQL schema of the metadata store, as versioned migrations. Version numbers and column
 * meanings follow the SQLite migrations (`JOB_MIGRATIONS` 100, `TOKEN_MIGRATIONS` 200, `ALERTING_MIGRATIONS`
 * 300–302), so both backends store the same things under the same names; only the types are PostgreSQL's:
 * BIGINT for millisecond timestamps and offsets, JSONB for JSON documents (config, tags, labels, matchers,
 * payloads), BYTEA for bytes, identity columns for AUTOINCREMENT.
 *
 * A migration, once released, is never edited: a change is a new migration with a higher version.
 */

export interface PgMigration {
  /** Unique and increasing over the list. */
  readonly version: number;
  readonly description: string;
  /** One or more statements, run in one transaction. */
  readonly sql: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 100,
    description: 'jobs table',
    sql: `CREATE TABLE jobs (
      tenant TEXT NOT NULL,
      job_id TEXT NOT NULL,
      name TEXT NOT NULL DEFAULT '',
      project TEXT NOT NULL DEFAULT '',
      owner TEXT NOT NULL DEFAULT '',
      framework TEXT NOT NULL DEFAULT '',
      world_size INTEGER,
      config JSONB NOT NULL DEFAULT '{}',
      tags JSONB NOT NULL DEFAULT '[]',
      metric_keys JSONB NOT NULL DEFAULT '{}',
      status TEXT NOT NULL DEFAULT 'running',
      start_ms BIGINT,
      end_ms BIGINT,
      last_sample_ms BIGINT,
      PRIMARY KEY (tenant, job_id)
    );
    CREATE INDEX jobs_by_last_sample ON jobs (tenant, last_sample_ms);`,
  },
  {
    version: 200,
    description: 'auth: API tokens (hashed)',
    sql: `CREATE TABLE auth_tokens (
      id TEXT PRIMARY KEY,
      tenant TEXT NOT NULL,
      scope TEXT NOT NULL CHECK (scope IN ('ingest', 'read', 'admin')),
      name TEXT NOT NULL DEFAULT '',
      secret_sha256 BYTEA NOT NULL,
      created_at_ms BIGINT NOT NULL,
      revoked_at_ms BIGINT,
      last_used_at_ms BIGINT
    );
    CREATE INDEX auth_tokens_by_tenant ON auth_tokens (tenant, created_at_ms);`,
  },
  {
    version: 300,
    description: 'alert history',
    sql: `CREATE TABLE alerts (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      tenant TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      active_at_ms BIGINT NOT NULL,
      name TEXT NOT NULL,
      source TEXT NOT NULL,
      origin TEXT NOT NULL,
      job_id TEXT,
      labels JSONB NOT NULL,
      annotations JSONB NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
      firing_at_ms BIGINT,
      resolved_at_ms BIGINT,
      value DOUBLE PRECISION,
      updated_ms BIGINT NOT NULL,
      UNIQUE (tenant, fingerprint, active_at_ms)
    );
    CREATE INDEX alerts_open ON alerts (state) WHERE state <> 'resolved';
    CREATE INDEX alerts_by_time ON alerts (tenant, active_at_ms);
    CREATE INDEX alerts_by_job ON alerts (tenant, job_id, active_at_ms);
    CREATE INDEX alerts_resolved ON alerts (resolved_at_ms) WHERE state = 'resolved';`,
  },
  {
    version: 301,
    description: 'silences',
    sql: `CREATE TABLE silences (
      id TEXT PRIMARY KEY,
      tenant TEXT NOT NULL,
      matchers JSONB NOT NULL,
      starts_at_ms BIGINT NOT NULL,
      ends_at_ms BIGINT NOT NULL,
      created_by TEXT NOT NULL,
      comment TEXT NOT NULL,
      updated_at_ms BIGINT NOT NULL
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
      firing JSONB NOT NULL,
      sent_at_ms BIGINT NOT NULL,
      PRIMARY KEY (receiver, integration, group_key)
    );
    CREATE TABLE notifications (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      receiver TEXT NOT NULL,
      integration TEXT NOT NULL,
      group_key TEXT NOT NULL,
      dedup_key TEXT UNIQUE,
      payload JSONB NOT NULL,
      summary TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'superseded')),
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_ms BIGINT NOT NULL,
      last_error TEXT NOT NULL DEFAULT '',
      created_ms BIGINT NOT NULL,
      updated_ms BIGINT NOT NULL,
      delivered_ms BIGINT
    );
    CREATE INDEX notifications_due ON notifications (status, next_attempt_ms);
    CREATE INDEX notifications_by_group ON notifications (integration, group_key, status);`,
  },
  {
    // Scale-out only (no SQLite counterpart: the embedded processor keeps its state in its data dir).
    version: 900,
    description: 'processor state per bus partition, for consumer-group hand-over',
    sql: `CREATE TABLE partition_state (
      consumer_group TEXT NOT NULL,
      partition INTEGER NOT NULL CHECK (partition >= 0),
      bus_offset BIGINT NOT NULL,
      state BYTEA NOT NULL,
      saved_at_ms BIGINT NOT NULL,
      PRIMARY KEY (consumer_group, partition)
    );`,
  },
];
