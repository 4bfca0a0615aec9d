export {
  ACCESS_MIGRATIONS,
  AccessStore,
  type AuditEvent,
  type AuditFilter,
  type AuditOutcome,
  generatePassword,
  MIN_PASSWORD_LENGTH,
  ROLES,
  type Role,
  type SessionRecord,
  sessionIdHash,
  sqliteRunner,
  type UserInfo,
  validatePassword,
  validateRole,
  validateTenant,
  validateUsername,
} from './access.js';
export { JobInfoCache, type JobInfoCacheOptions } from './job-cache.js';
export {
  insertJobsBulk,
  JOB_SORT_KEYS,
  type JobCursor,
  type JobFacets,
  type JobGroupRow,
  type JobPage,
  type JobPageQuery,
  type JobSortKey,
  MAX_JOB_KEYS,
  MAX_JOB_PAGE,
  MAX_RANKED_KEYS,
} from './job-page.js';
export {
  applyJobEvent,
  blankJobDelta,
  type JobDelta,
  type JobListFilter,
  type JobPageStore,
  type JobRepository,
  type JobRowStore,
  JobStore,
  mergeJobDelta,
  noteJobSamples,
  withLiveStatus,
} from './jobs.js';
export { type Db, MetaStore, type Migration } from './meta-store.js';
export {
  METRIC_METADATA_FLUSH_INTERVAL_MS,
  METRIC_METADATA_MIGRATIONS,
  type MetricMetadataQuery,
  MetricMetadataStore,
} from './metric-metadata.js';
export {
  type MetaConfig,
  type OpenedMeta,
  type OpenMetaOptions,
  openAccessAdmin,
  openMeta,
  openTokenAdmin,
  postgresUrlOf,
} from './open.js';
// Types only: the PostgreSQL store's classes live in `./postgres/index.ts` (importing it loads `pg`), but other
// stages' PostgreSQL repositories (alerting's) are written against these shapes.
export type { PgMeta, PgMigration, Queryable } from './postgres/index.js';
export { type GaugeSummary, type RunSummary, SUMMARY_GAUGES, type SummaryGauge } from './run-summary.js';
export {
  configColumn,
  FIXED_RUN_COLUMNS,
  MAX_RUNS_PAGE,
  RUN_FILTER_OPS,
  type RunColumn,
  type RunFilter,
  type RunFilterOp,
  type RunGroup,
  type RunPage,
  type RunQuery,
  RunQueryError,
  type RunRepository,
  type RunRow,
} from './runs.js';
export { JOB_MIGRATIONS, SqliteJobRows } from './sqlite-jobs.js';
export {
  type NewToken,
  TENANT_RE,
  TOKEN_MIGRATIONS,
  TOKEN_SCOPES,
  type TokenAdmin,
  type TokenCheck,
  type TokenInfo,
  type TokenScope,
  type TokenSource,
  TokenStore,
  tokenAdminOf,
} from './tokens.js';
