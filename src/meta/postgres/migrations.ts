/**
 * The PostgreSQL schema of the metadata store, as versioned migrations. Version numbers and column
 * meanings follow the SQLite migrations (`JOB_MIGRATIONS` 100,
 * `TOKEN_MIGRATIONS` 200, `METRIC_METADATA_MIGRATIONS` 400), so both backends store the same things under the same names; only the types are
 * PostgreSQL's: BIGINT for millisecond timestamps and offsets, JSONB for JSON documents (config, tags, labels, matchers,
 * payloads), BYTEA for bytes, identity columns for AUTOINCREMENT. The alerting stage owns its tables and
 * their migrations (300–399: `ALERTING_PG_MIGRATIONS` in `alerting/postgres/`), applied by the alerting
 * stage with `PgMeta.migrate` into the same `schema_migrations` bookkeeping.
 *
 * A migration, once released, is never edited: a change is a new migration with a higher version.
 */

import { ACCESS_PG_MIGRATIONS } from '../access.js';
import { JOB_PAGE_PG_MIGRATIONS } from '../job-page.js';
import { METRIC_METADATA_PG_MIGRATIONS } from '../metric-metadata.js';
import { RUN_SUMMARY_PG_MIGRATIONS } from '../run-summary.js';

export interface PgMigration {
  /** Unique and increasing over the list. */
  readonly version: number;
  readonly description: string;
  /** One or more statements, run in one transaction. */
  readonly sql: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    // Twin of `JOB_MIGRATIONS` (../sqlite-jobs.ts): the DDL differs in types (JSONB, BIGINT) and a released
    // migration is never edited, so each dialect keeps its own text.
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
  // Per-job summaries for the runs table: one definition for both backends (../runs.ts).
  ...RUN_SUMMARY_PG_MIGRATIONS,
  // Paged fleet lists (issue 17): the same indexes as SQLite's (../job-page.ts).
  ...JOB_PAGE_PG_MIGRATIONS,
  {
    // Twin of `TOKEN_MIGRATIONS` 200–201 (../tokens.ts): the DDL differs in types (BYTEA, BIGINT, DOUBLE
    // PRECISION) and a released migration is never edited, so each dialect keeps its own text.
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
    version: 201,
    description: 'auth: token expiry and per-token rate limit',
    sql: `ALTER TABLE auth_tokens ADD COLUMN expires_at_ms BIGINT;
      ALTER TABLE auth_tokens ADD COLUMN rate_limit_per_second DOUBLE PRECISION;`,
  },
  // Users, roles per tenant, sessions, audit log: one definition for both backends (../access.ts).
  ...ACCESS_PG_MIGRATIONS,
  // Metric metadata senders declared: one definition for both backends (../metric-metadata.ts).
  ...METRIC_METADATA_PG_MIGRATIONS,
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
