export { JOB_MIGRATIONS, type JobListFilter, JobStore } from './jobs.js';
export { type Db, MetaStore, type Migration } from './meta-store.js';
// Types only: the PostgreSQL store's classes live in `./postgres/index.ts` (importing it loads `pg`), but other
// stages' PostgreSQL repositories (alerting's) are written against these shapes.
export type { PgMeta, PgMigration, Queryable } from './postgres/index.js';
export {
  TENANT_RE,
  TOKEN_MIGRATIONS,
  TOKEN_SCOPES,
  type TokenCheck,
  type TokenInfo,
  type TokenScope,
  TokenStore,
} from './tokens.js';
