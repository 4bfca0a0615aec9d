/**
 * `meta.kind: postgres`: the metadata store on PostgreSQL for the scaled-out deployment. Importing this
 * module loads `pg`; the embedded (SQLite) store in `../index.ts` does not.
 */

export { pgRunner } from './access.js';
export { describeTarget, pgError } from './errors.js';
export { PgJobRepository } from './jobs.js';
export { LeaderElection, type LeaderElectionOptions } from './leader.js';
export { PG_MIGRATIONS, type PgMigration } from './migrations.js';
export { PgPartitionState, type SavedPartitionState } from './partition-state.js';
export { clientConfig, MIGRATION_LOCK_KEY, PgMeta, type PgMetaOptions, type Queryable } from './pg-meta.js';
export { PgTokenCache, type PgTokenCacheOptions } from './token-cache.js';
export { PgTokenRepository } from './tokens.js';
