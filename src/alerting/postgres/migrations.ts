/**
 * The alerting stage's PostgreSQL schema (versions 300–399, the numbers of its SQLite migrations in
 * `../store.ts`), applied with `PgMeta.migrate` by whichever process opens the alerting stage. Same tables and
 * columns as SQLite; PostgreSQL types (BIGINT milliseconds, JSONB documents, identity ids).
 *
 * A migration, once released, is never edited: a change is a new migration with a higher version.
 */
import type { PgMigration } from '../../meta/index.js';

/**
 * Lock key (`pg_advisory_xact_lock`) that serialises the writers of `alerts.change_seq`. Whoever numbers
 * changes holds it until its transaction commits, so change numbers become visible in increasing order: a
 * reader that has seen change n has seen every change below n (see `PgAlertRepository.changesSince`).
 */
export const ALERT_CHANGE_LOCK_KEY = '7355608300303';

/**
 * Kept duplicate: twin of `ALERTING_MIGRATIONS` (../store.ts). The DDL differs in its types and a released
 * migration is never edited, so each dialect keeps its own text.
 */
export const ALERTING_PG_MIGRATIONS: readonly PgMigration[] = [
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
    version: 303,
    description: 'alerts: change sequence for the dispatcher leader to follow',
    // Existing rows are numbered as the column is added; later writes number theirs under ALERT_CHANGE_LOCK_KEY.
    sql: `CREATE SEQUENCE alerts_change_seq;
    ALTER TABLE alerts ADD COLUMN change_seq BIGINT NOT NULL DEFAULT nextval('alerts_change_seq');
    CREATE INDEX alerts_by_change ON alerts (change_seq);`,
  },
  {
    version: 304,
    description: 'notifications: tenant and attempt duration, for the delivery history',
    sql: `ALTER TABLE notifications ADD COLUMN tenant TEXT;
    ALTER TABLE notifications ADD COLUMN last_attempt_duration_ms BIGINT;
    UPDATE notifications SET tenant = payload->'groupLabels'->>'tenant';
    CREATE INDEX notifications_by_tenant ON notifications (tenant, receiver, id);`,
  },
];
