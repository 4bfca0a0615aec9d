export { JOB_MIGRATIONS, type JobListFilter, JobStore } from './jobs.js';
export { type Db, MetaStore, type Migration } from './meta-store.js';
