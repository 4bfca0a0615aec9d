/**
 * Job metadata on PostgreSQL: the `JobRowStore` under `JobStore` for `meta.kind: postgres` (the in-memory
 * merging of job events into deltas stays with the writer, in `../jobs.ts`). Twin of `../sqlite-jobs.ts`:
 * the row mapping (`../job-rows.ts`) and the page/run statements are shared; the SQL here is PostgreSQL's. The processor that owns a job's
 * bus partition writes it; any query process reads.
 *
 * `upsert` writes a batch of job deltas in one statement, and merges each with the stored row by
 * `mergeJobDelta`'s rule (newest non-empty scalar, config and metric keys merged key by key, tags a union,
 * earliest start, latest sample, a final status and its end are never left, a NULL status keeps the stored
 * one and samples turn `queued` into `running`; a name equal to the job id is the writer's placeholder for
 * "not announced", like '', and keeps the stored name). The merge happens in the statement, under the row
 * lock ON CONFLICT takes, so two processors writing the same job concurrently cannot lose each other's
 * fields, and a writer that never read the job — a partition that just moved here — cannot undo what the
 * previous owner stored. Replaying a batch is harmless.
 */
import type { JobInfo, JobStatus } from '../../model/job.js';
import {
  facetsFrom,
  type JobFacets,
  type JobGroupRow,
  type JobPage,
  type JobPageQuery,
  type JobPageRow,
  jobFacetSql,
  jobGroupSql,
  jobPageSql,
  nextCursor,
} from '../job-page.js';
import { type JobRow, jobFromRow, jobToRow, runFromRow } from '../job-rows.js';
import type { JobDelta, JobListFilter, JobPageStore, JobRowStore } from '../jobs.js';
import {
  mergeRunSummaries,
  type RunSqlRow,
  type RunSummary,
  summaryToRow,
  summaryUpsertSql,
} from '../run-summary.js';
import {
  ConfigKeyCache,
  configKeysSql,
  groupFromRow,
  pageConfigKeys,
  type RunPage,
  type RunQuery,
  runStatements,
} from '../runs.js';
import type { PgMeta } from './pg-meta.js';

const FINAL = `('completed', 'failed')`;

/**
 * The merging upsert. The status rule depends on whether the deltas carry a status, and ON CONFLICT sees only
 * the proposed row (where a NULL status cannot be stored), so deltas with and without one go in two
 * statements (one transaction), on disjoint jobs.
 */
const upsertSql = (withStatus: boolean): string => `INSERT INTO jobs AS j
    (tenant, job_id, name, project, owner, framework, world_size, config, tags, metric_keys, status, start_ms, end_ms, last_sample_ms)
  SELECT tenant, job_id, name, project, owner, framework, world_size, config, tags, metric_keys,
    COALESCE(status, 'running'), start_ms, end_ms, last_sample_ms
  FROM jsonb_to_recordset($1::jsonb) AS x(tenant TEXT, job_id TEXT, name TEXT, project TEXT, owner TEXT, framework TEXT,
    world_size INTEGER, config JSONB, tags JSONB, metric_keys JSONB, status TEXT, start_ms BIGINT, end_ms BIGINT,
    last_sample_ms BIGINT)
  ORDER BY tenant, job_id
  ON CONFLICT (tenant, job_id) DO UPDATE SET
    name = CASE WHEN excluded.name IN ('', excluded.job_id) THEN j.name ELSE excluded.name END,
    project = COALESCE(NULLIF(excluded.project, ''), j.project),
    owner = COALESCE(NULLIF(excluded.owner, ''), j.owner),
    framework = COALESCE(NULLIF(excluded.framework, ''), j.framework),
    world_size = COALESCE(excluded.world_size, j.world_size),
    config = j.config || excluded.config,
    tags = j.tags || COALESCE((SELECT jsonb_agg(t.v ORDER BY t.n)
      FROM jsonb_array_elements(excluded.tags) WITH ORDINALITY AS t(v, n)
      WHERE NOT j.tags @> jsonb_build_array(t.v)), '[]'::jsonb),
    metric_keys = j.metric_keys || excluded.metric_keys,
    status = ${
      withStatus
        ? `CASE WHEN j.status IN ${FINAL} THEN j.status ELSE excluded.status END`
        : `CASE WHEN j.status = 'queued' AND excluded.last_sample_ms IS NOT NULL THEN 'running' ELSE j.status END`
    },
    start_ms = LEAST(j.start_ms, excluded.start_ms),
    end_ms = CASE WHEN j.status IN ${FINAL} THEN j.end_ms ELSE COALESCE(excluded.end_ms, j.end_ms) END,
    last_sample_ms = GREATEST(j.last_sample_ms, excluded.last_sample_ms)`;
const UPSERT_WITH_STATUS = upsertSql(true);
const UPSERT_WITHOUT_STATUS = upsertSql(false);
const UPSERT_SUMMARIES = summaryUpsertSql('pg');
const CONFIG_KEYS = configKeysSql('pg');

/**
 * Jobs with the status a reader should see: a `running` job without samples for `$2` ms is `unknown`
 * (the rule of `JobStore`'s reader side). `$1` is the reader's now.
 */
const LIVE_JOBS = `SELECT tenant, job_id, name, project, owner, framework, world_size, config, tags, metric_keys,
    CASE WHEN status = 'running' AND last_sample_ms IS NOT NULL AND $1::bigint - last_sample_ms > $2::bigint
      THEN 'unknown' ELSE status END AS status,
    start_ms, end_ms, last_sample_ms
  FROM jobs`;

export class PgJobRepository implements JobRowStore, JobPageStore {
  private readonly configKeyCache = new ConfigKeyCache();

  constructor(
    private readonly db: PgMeta,
    /** A running job without samples for this long is reported as `unknown`. */
    private readonly silentAfterMs: number,
  ) {}

  /**
   * Merges a batch of job deltas (or whole jobs: a `JobInfo` is a delta with a status) in one statement.
   * Later rows for the same job win within a batch. A delta's `status: null` keeps the stored status.
   */
  async upsert(jobs: readonly (JobDelta | JobInfo)[], signal?: AbortSignal): Promise<void> {
    if (jobs.length === 0) return;
    // One row per key: ON CONFLICT cannot touch the same row twice in one statement.
    const byKey = new Map<string, JobRow>();
    for (const j of jobs) byKey.set(`${j.tenant}\u0000${j.jobId}`, jobToRow(j, 'jsonb'));
    const withStatus: JobRow[] = [];
    const withoutStatus: JobRow[] = [];
    for (const row of byKey.values()) (row.status === null ? withoutStatus : withStatus).push(row);
    // Summaries merge by their own rule (later sample wins), so every delta's goes in, in batch order.
    const summaries = new Map<string, { tenant: string; jobId: string; summary: RunSummary }>();
    for (const j of jobs) {
      const summary = 'summary' in j ? j.summary : undefined;
      if (!summary) continue;
      const key = `${j.tenant}\u0000${j.jobId}`;
      const prev = summaries.get(key);
      summaries.set(key, {
        tenant: j.tenant,
        jobId: j.jobId,
        summary: prev ? mergeRunSummaries(prev.summary, summary) : summary,
      });
    }
    if (summaries.size > 0) {
      await this.db.transaction(async (tx) => {
        if (withStatus.length > 0) await tx.query(UPSERT_WITH_STATUS, [JSON.stringify(withStatus)]);
        if (withoutStatus.length > 0) await tx.query(UPSERT_WITHOUT_STATUS, [JSON.stringify(withoutStatus)]);
        const rows = [...summaries.values()].map((x) => summaryToRow(x.tenant, x.jobId, x.summary));
        await tx.query(UPSERT_SUMMARIES, [JSON.stringify(rows)]);
      }, signal);
      return;
    }
    if (withoutStatus.length === 0 || withStatus.length === 0) {
      await this.db.query(
        withStatus.length > 0 ? UPSERT_WITH_STATUS : UPSERT_WITHOUT_STATUS,
        [JSON.stringify([...byKey.values()])],
        signal,
      );
      return;
    }
    // One transaction, so a batch is written whole or not at all (the writer keeps a failed batch). Two
    // writers of the same jobs (a partition handoff) may deadlock here; PostgreSQL aborts one, which keeps
    // its batch for its next flush.
    await this.db.transaction(async (tx) => {
      await tx.query(UPSERT_WITH_STATUS, [JSON.stringify(withStatus)]);
      await tx.query(UPSERT_WITHOUT_STATUS, [JSON.stringify(withoutStatus)]);
    }, signal);
  }

  async get(
    tenant: string,
    jobId: string,
    nowMs: number,
    signal?: AbortSignal,
  ): Promise<JobInfo | undefined> {
    const r = await this.db.query<JobRow>(
      `${LIVE_JOBS} WHERE tenant = $3 AND job_id = $4`,
      [nowMs, this.silentAfterMs, tenant, jobId],
      signal,
    );
    return r.rows[0] ? jobFromRow(r.rows[0]) : undefined;
  }

  /**
   * Jobs of one tenant (or all tenants when null), most recently active first. The status filter applies to
   * the status readers see (so `unknown` finds silent jobs) and before the limit.
   */
  async list(
    tenant: string | null,
    nowMs: number,
    filter: JobListFilter = {},
    signal?: AbortSignal,
  ): Promise<JobInfo[]> {
    const params: unknown[] = [nowMs, this.silentAfterMs];
    const where: string[] = [];
    if (tenant !== null) {
      params.push(tenant);
      where.push(`tenant = $${params.length}`);
    }
    if (filter.search) {
      params.push(`%${filter.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      const p = `$${params.length}`;
      where.push(
        `(job_id ILIKE ${p} ESCAPE '\\' OR name ILIKE ${p} ESCAPE '\\' OR project ILIKE ${p} ESCAPE '\\' OR owner ILIKE ${p} ESCAPE '\\')`,
      );
    }
    const outer: string[] = [];
    if (filter.status) {
      params.push(filter.status satisfies JobStatus);
      outer.push(`status = $${params.length}`);
    }
    let limit = '';
    if (filter.limit !== undefined) {
      params.push(Math.max(1, Math.floor(filter.limit)));
      limit = `LIMIT $${params.length}`;
    }
    const sql = `SELECT * FROM (${LIVE_JOBS} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}) live
      ${outer.length ? `WHERE ${outer.join(' AND ')}` : ''}
      ORDER BY COALESCE(last_sample_ms, start_ms, 0) DESC, tenant, job_id ${limit}`;
    const r = await this.db.query<JobRow>(sql, params, signal);
    return r.rows.map(jobFromRow);
  }

  /** The runs table (../runs.ts): counted, paged (or grouped) and the config keys, in three statements. */
  async runs(tenant: string, nowMs: number, query: RunQuery, signal?: AbortSignal): Promise<RunPage> {
    const st = runStatements('pg', tenant, nowMs, this.silentAfterMs, query);
    const run = async (s: { sql: string; params: unknown[] }) =>
      (await this.db.query<RunSqlRow>(s.sql, s.params, signal)).rows;
    const [count, page, keys, groupCount] = await Promise.all([
      run(st.count),
      run(st.page),
      this.configKeyCache.get(tenant, async () =>
        (await this.db.query<{ key: string }>(CONFIG_KEYS, [tenant], signal)).rows.map((r) => r.key),
      ),
      st.groupCount ? run(st.groupCount) : Promise.resolve(undefined),
    ]);
    const total = Number(count[0]!.n);
    if (groupCount)
      return {
        total,
        runs: [],
        groups: page.map(groupFromRow),
        groupTotal: Number(groupCount[0]!.n),
        configKeys: pageConfigKeys(keys, [], query),
      };
    const runs = page.map(runFromRow);
    return { total, runs, configKeys: pageConfigKeys(keys, runs, query) };
  }

  // Kept duplicates: `list`, `runs`, `page`, `facets` and `groups` mirror their twins in `SqliteJobRows`
  // (../sqlite-jobs.ts): the same shared statement builders and row mapping, run by each dialect's driver.
  async page(
    tenant: string | null,
    nowMs: number,
    query: JobPageQuery,
    signal?: AbortSignal,
  ): Promise<JobPage> {
    const st = jobPageSql('postgres', tenant, nowMs, this.silentAfterMs, query);
    const [rows, count] = await Promise.all([
      this.db.query<JobRow & JobPageRow>(st.page.sql, st.page.params, signal),
      this.db.query<{ n: string | number }>(st.count.sql, st.count.params, signal),
    ]);
    return {
      jobs: rows.rows.map((r) => jobFromRow({ ...r, status: r.live_status })),
      total: Number(count.rows[0]?.n ?? 0),
      next: nextCursor(rows.rows, query.limit),
    };
  }

  async facets(tenant: string | null, nowMs: number, signal?: AbortSignal): Promise<JobFacets> {
    const st = jobFacetSql('postgres', tenant, nowMs, this.silentAfterMs);
    const q = <T extends object>(sql: string) => this.db.query<T>(sql, st.params, signal).then((r) => r.rows);
    const [byStatus, silent, owners, projects, tags, tenants] = await Promise.all([
      q<{ s: string; n: string }>(st.byStatus),
      q<{ n: string }>(st.silent),
      q<{ v: string }>(st.owners),
      q<{ v: string }>(st.projects),
      q<{ v: string }>(st.tags),
      q<{ v: string }>(st.tenants),
    ]);
    return facetsFrom(byStatus, silent[0]!.n, owners, projects, tags, tenants);
  }

  async groups(
    tenant: string | null,
    nowMs: number,
    filter: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
    signal?: AbortSignal,
  ): Promise<JobGroupRow[]> {
    const st = jobGroupSql('postgres', tenant, nowMs, this.silentAfterMs, filter);
    return (await this.db.query<JobGroupRow & Record<string, unknown>>(st.sql, st.params, signal)).rows;
  }
}
