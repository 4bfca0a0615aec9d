/**
 * The alerting stage's tables on PostgreSQL (`meta.kind: postgres`). Importing this module loads nothing of
 * `pg` by itself: the repositories run on the `PgMeta` the caller opened (`meta/postgres`).
 */
export { PgAlertRepository } from './alerts.js';
export { ALERT_CHANGE_LOCK_KEY, ALERTING_PG_MIGRATIONS } from './migrations.js';
export { PgNotificationLog } from './notification-log.js';
export { DEFAULT_CLAIM_LEASE_MS, PgOutbox } from './outbox.js';
export { PgSilenceRepository } from './silences.js';
export { PgAlertStore, type PgAlertStoreOptions } from './store.js';
