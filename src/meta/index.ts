export { JOB_MIGRATIONS, type JobListFilter, JobStore } from './jobs.js';
export { type Db, MetaStore, type Migration } from './meta-store.js';
export {
  TENANT_RE,
  TOKEN_MIGRATIONS,
  TOKEN_SCOPES,
  type TokenCheck,
  type TokenInfo,
  type TokenScope,
  TokenStore,
} from './tokens.js';
