/**
 * Jobs in the embedded (SQLite) metadata store: the `JobRowStore` under `JobStore` when `meta.kind` is
 * `sqlite`. Its PostgreSQL twin is `./postgres/jobs.ts`; the two share the row mapping (`./job-rows.ts`), the
 * merge rule (`mergeJobFields`, `./jobs.ts`) and the page/run statements (`./job-page.ts`, `./runs.ts`), and
 * keep apart only what the dialects write differently (placeholders, the merge done in JavaScript here and in
 * SQL there). Separate from `./jobs.ts` so the contract and the writer's buffering read without the SQLite
 * plumbing.
 */
import type { JobInfo } from '../model/job.js';
import {
  facetsFrom,
  JOB_PAGE_MIGRATIONS,
  type JobFacets,
  type JobGroupRow,
  type JobPage,
  type JobPageQuery,
  type JobPageRow,
  jobFacetSql,
  jobGroupSql,
  jobPageSql,
  nextCursor,
  REPLACE_JOB,
} from './job-page.js';
import { type JobRow, jobFromRow, jobToRow, runFromRow } from './job-rows.js';
import {
  type JobDelta,
  type JobListFilter,
  type JobPageStore,
  type JobRowStore,
  mergeJobFields,
  withLiveStatus,
} from './jobs.js';
import type { Db, MetaStore, Migration } from './meta-store.js';
import { RUN_SUMMARY_MIGRATIONS, type RunSqlRow, summaryToRow, summaryUpsertSql } from './run-summary.js';
import {
  ConfigKeyCache,
  configKeysSql,
  groupFromRow,
  MAX_RUNS_PAGE,
  pageConfigKeys,
  type RunPage,
  type RunQuery,
  runStatements,
} from './runs.js';

/**
 * The SQLite schema of `jobs`. Twin of `PG_MIGRATIONS` version 100 (`./postgres/migrations.ts`): the DDL
 * differs in its types (TEXT JSON and INTEGER here, JSONB and BIGINT there) and a released migration is never
 * edited, so each dialect keeps its own text.
 */
export const JOB_MIGRATIONS: readonly Migration[] = [
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
      config TEXT NOT NULL DEFAULT '{}',
      tags TEXT NOT NULL DEFAULT '[]',
      metric_keys TEXT NOT NULL DEFAULT '{}',
      status TEXT NOT NULL DEFAULT 'running',
      start_ms INTEGER,
      end_ms INTEGER,
      last_sample_ms INTEGER,
      PRIMARY KEY (tenant, job_id)
    );
    CREATE INDEX jobs_by_last_sample ON jobs (tenant, last_sample_ms);`,
  },
  // Paged fleet lists (issue 17): ./job-page.ts.
  ...JOB_PAGE_MIGRATIONS,
];

/** Jobs in the embedded metadata store. Synchronous underneath (a local file); async in shape. */
export class SqliteJobRows implements JobRowStore, JobPageStore {
  private readonly db: Db;
  private readonly selectOne;
  private readonly write;
  private readonly writeSummary;
  private readonly configKeys;
  private readonly configKeyCache = new ConfigKeyCache();

  constructor(
    meta: MetaStore,
    /** A running job without samples for this long is reported as `unknown`. */
    private readonly silentAfterMs: number,
  ) {
    meta.migrate(JOB_MIGRATIONS);
    meta.migrate(RUN_SUMMARY_MIGRATIONS);
    this.db = meta.db;
    this.writeSummary = this.db.prepare(summaryUpsertSql('sqlite'));
    this.configKeys = this.db.prepare<[string], { key: string }>(configKeysSql('sqlite'));
    this.selectOne = this.db.prepare<[string, string], JobRow>(
      'SELECT * FROM jobs WHERE tenant = ? AND job_id = ?',
    );
    this.write = this.db.prepare(`INSERT INTO jobs
      (tenant, job_id, name, project, owner, framework, world_size, config, tags, metric_keys, status, start_ms, end_ms, last_sample_ms)
      VALUES (@tenant, @job_id, @name, @project, @owner, @framework, @world_size, @config, @tags, @metric_keys, @status, @start_ms, @end_ms, @last_sample_ms)
      ${REPLACE_JOB}`);
  }

  async upsert(deltas: readonly JobDelta[], signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (deltas.length === 0) return;
    // Read, merge and write in one transaction: SQLite has one writer at a time, so no other process can
    // write the row between the read and the write.
    this.db.transaction(() => {
      for (const delta of deltas) {
        const stored = this.selectOne.get(delta.tenant, delta.jobId);
        const merged = stored ? mergeJobFields(jobFromRow(stored), delta) : delta;
        // A new job without a status is stored `running` (the column is NOT NULL).
        this.write.run(jobToRow({ ...merged, status: merged.status ?? 'running' }, 'text'));
        if (delta.summary) this.writeSummary.run(summaryToRow(delta.tenant, delta.jobId, delta.summary));
      }
    })();
  }

  async get(
    tenant: string,
    jobId: string,
    nowMs: number,
    signal?: AbortSignal,
  ): Promise<JobInfo | undefined> {
    signal?.throwIfAborted();
    const row = this.selectOne.get(tenant, jobId);
    return row ? withLiveStatus(jobFromRow(row), nowMs, this.silentAfterMs) : undefined;
  }

  async list(
    tenant: string | null,
    nowMs: number,
    filter: JobListFilter = {},
    signal?: AbortSignal,
  ): Promise<JobInfo[]> {
    signal?.throwIfAborted();
    const where: string[] = [];
    const params: unknown[] = [];
    if (tenant !== null) {
      where.push('tenant = ?');
      params.push(tenant);
    }
    if (filter.search) {
      where.push(
        "(job_id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR project LIKE ? ESCAPE '\\' OR owner LIKE ? ESCAPE '\\')",
      );
      const like = `%${filter.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      params.push(like, like, like, like);
    }
    // The live status (`unknown`) is computed here, as in PostgreSQL, so the status filter applies to what
    // readers see, and before the limit.
    const live = `CASE WHEN status = 'running' AND last_sample_ms IS NOT NULL AND ? - last_sample_ms > ?
      THEN 'unknown' ELSE status END`;
    const sql = `SELECT * FROM (SELECT tenant, job_id, name, project, owner, framework, world_size, config, tags,
        metric_keys, ${live} AS status, start_ms, end_ms, last_sample_ms
      FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}) live
      ${filter.status ? 'WHERE status = ?' : ''}
      ORDER BY COALESCE(last_sample_ms, start_ms, 0) DESC, tenant, job_id
      ${filter.limit === undefined ? '' : 'LIMIT ?'}`;
    const all = [nowMs, this.silentAfterMs, ...params];
    if (filter.status) all.push(filter.status);
    if (filter.limit !== undefined) all.push(Math.max(1, Math.floor(filter.limit)));
    return (this.db.prepare(sql).all(...all) as JobRow[]).map(jobFromRow);
  }

  async runs(tenant: string, nowMs: number, query: RunQuery, signal?: AbortSignal): Promise<RunPage> {
    signal?.throwIfAborted();
    const st = runStatements('sqlite', tenant, nowMs, this.silentAfterMs, query);
    const all = (s: { sql: string; named(): Record<string, unknown> }) =>
      this.db.prepare(s.sql).all(s.named()) as RunSqlRow[];
    const tenantKeys = await this.configKeyCache.get(tenant, async () =>
      this.configKeys.all(tenant).map((r) => r.key),
    );
    if (st.groupCount) {
      const groups = all(st.page).map(groupFromRow);
      // Every group on this page: the counts need no second pass over the runs.
      const whole = query.offset === 0 && groups.length < Math.min(query.limit, MAX_RUNS_PAGE);
      return {
        total: whole ? groups.reduce((n, g) => n + g.count, 0) : Number(all(st.count)[0]!.n),
        runs: [],
        groups,
        groupTotal: whole ? groups.length : Number(all(st.groupCount)[0]!.n),
        configKeys: pageConfigKeys(tenantKeys, [], query),
      };
    }
    const total = Number(all(st.count)[0]!.n);
    const runs = all(st.page).map(runFromRow);
    return { total, runs, configKeys: pageConfigKeys(tenantKeys, runs, query) };
  }

  // Kept duplicates: `list`, `runs`, `page`, `facets` and `groups` mirror their twins in `PgJobRepository`
  // (postgres/jobs.ts): the same shared statement builders and row mapping, run by each dialect's driver
  // (synchronous prepared statements here, pooled async queries there, with its `$n` placeholders).
  async page(
    tenant: string | null,
    nowMs: number,
    query: JobPageQuery,
    signal?: AbortSignal,
  ): Promise<JobPage> {
    signal?.throwIfAborted();
    const st = jobPageSql('sqlite', tenant, nowMs, this.silentAfterMs, query);
    const rows = this.db.prepare(st.page.sql).all(...st.page.params) as (JobRow & JobPageRow)[];
    const { n } = this.db.prepare(st.count.sql).get(...st.count.params) as { n: number };
    return {
      jobs: rows.map((r) => jobFromRow({ ...r, status: r.live_status })),
      total: n,
      next: nextCursor(rows, query.limit),
    };
  }

  async facets(tenant: string | null, nowMs: number, signal?: AbortSignal): Promise<JobFacets> {
    signal?.throwIfAborted();
    const st = jobFacetSql('sqlite', tenant, nowMs, this.silentAfterMs);
    const all = <T>(sql: string) => this.db.prepare(sql).all(...st.params) as T[];
    return facetsFrom(
      all(st.byStatus),
      all<{ n: number }>(st.silent)[0]!.n,
      all(st.owners),
      all(st.projects),
      all(st.tags),
      all(st.tenants),
    );
  }

  async groups(
    tenant: string | null,
    nowMs: number,
    filter: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
    signal?: AbortSignal,
  ): Promise<JobGroupRow[]> {
    signal?.throwIfAborted();
    const st = jobGroupSql('sqlite', tenant, nowMs, this.silentAfterMs, filter);
    return this.db.prepare(st.sql).all(...st.params) as JobGroupRow[];
  }
}
