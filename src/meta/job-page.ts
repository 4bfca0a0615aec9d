/**
 * Pages of jobs for fleets of 100,000 jobs and more (issue 17): filtering, sorting and paging happen in SQL,
 * with the count of matching jobs, so a reader never loads the fleet to show a page of it. One SQL builder
 * serves SQLite and PostgreSQL (only placeholders and the case-insensitive LIKE differ), as `jobs.ts`'s list
 * does.
 *
 * Paging is by offset or by keyset cursor. A cursor holds the sort value, tenant and job id of the last row
 * of a page; the next page starts strictly after it in the total order `(sort value, tenant, job_id)`, so
 * jobs that arrive meanwhile shift nothing and a deep page costs an index seek instead of an OFFSET walk.
 * Every sort expression is non-NULL (COALESCE), since row-value comparison with NULL is never true.
 */
import { JOB_STATUSES, type JobInfo, type JobStatus } from '../model/job.js';
import type { Db, Migration } from './meta-store.js';

/**
 * Columns a page may be sorted by. `ranked`: by position in `JobPageQuery.ranked` (health order, say). The live
 * numbers — `util` (mean GPU utilization), `throughput` (tokens/s, else samples/s), `loss`, `step` — are the
 * newest values the processor keeps per job in `job_summaries` (runs.ts), so 100,000 jobs sort on them without
 * reading the TSDB.
 */
export const JOB_SORT_KEYS = [
  'last_sample',
  'start',
  'name',
  'status',
  'project',
  'owner',
  'gpus',
  'job_id',
  'ranked',
  'util',
  'throughput',
  'loss',
  'step',
] as const;

/** Sort keys read from the kept summaries (a join of `job_summaries`). */
const SUMMARY_SORTS: ReadonlySet<JobSortKey> = new Set(['util', 'throughput', 'loss', 'step']);
/**
 * The sort value of a job without the number: beyond every real value in the direction of the sort, so such
 * jobs come last either way (and a NULL never reaches a keyset comparison). A NaN loss (kept as NULL with its
 * time) is the worst loss: above every finite one, below the missing ones when ascending.
 */
const MISSING_HIGH = '1e308';
const MISSING_LOW = '-1e308';
const NAN_LOSS = '1e307';
export type JobSortKey = (typeof JOB_SORT_KEYS)[number];

export const MAX_JOB_PAGE = 1000;
/** Most job keys one request may list in `ids` or `exclude`. */
export const MAX_JOB_KEYS = 5000;
/** Most job keys in `ranked` (the rank is scaled by 10^13 into the sort value, which must stay below 2^53). */
export const MAX_RANKED_KEYS = 500;

/** Where the previous page ended: the last row's sort value and identity. */
export interface JobCursor {
  readonly value: string | number;
  readonly tenant: string;
  readonly jobId: string;
}

export interface JobPageQuery {
  /** The status readers see (a silent `running` job is `unknown`). */
  readonly status?: JobStatus;
  /** Case-insensitive substring of job id, name, project or owner. */
  readonly search?: string;
  readonly project?: string;
  readonly owner?: string;
  /** Jobs of exactly this name (the runs of one model: compare's "previous runs"). */
  readonly name?: string;
  /** Jobs that started at or before this time (ms); jobs without a start time are left out. */
  readonly startedBefore?: number;
  /** Jobs carrying this tag. */
  readonly tag?: string;
  /** Only these jobs, as `tenant/job_id` keys (the page's "alerting only" view sends its alerting jobs). */
  readonly ids?: readonly string[];
  /** Not these jobs (`tenant/job_id`). */
  readonly exclude?: readonly string[];
  /** Job keys in priority order, first = highest; `sort: 'ranked'` orders by it, unlisted jobs lowest. */
  readonly ranked?: readonly string[];
  readonly sort: JobSortKey;
  readonly order: 'asc' | 'desc';
  readonly limit: number;
  /** Rows to skip; ignored when `after` is given. */
  readonly offset?: number;
  readonly after?: JobCursor;
}

export interface JobPage {
  readonly jobs: JobInfo[];
  /** Jobs matching the filters, over every page. */
  readonly total: number;
  /** Where the next page starts; null on the last page. */
  readonly next: JobCursor | null;
}

/** Counts and filter choices over every job of the selection (not only the page). */
export interface JobFacets {
  readonly byStatus: Partial<Record<JobStatus, number>>;
  readonly owners: string[];
  readonly projects: string[];
  readonly tags: string[];
  readonly tenants: string[];
}

/**
 * Indexes for the sorts and filters above, one per sortable column under the tenant (every reader is
 * scoped to one), ending in job_id so ties are ordered by the index too. The same text runs on PostgreSQL.
 */
const JOB_PAGE_INDEXES = `CREATE INDEX jobs_page_by_name ON jobs (tenant, name, job_id);
    CREATE INDEX jobs_page_by_project ON jobs (tenant, project, job_id);
    CREATE INDEX jobs_page_by_owner ON jobs (tenant, owner, job_id);
    CREATE INDEX jobs_page_by_start ON jobs (tenant, (COALESCE(start_ms, 0)), job_id);
    CREATE INDEX jobs_page_by_activity ON jobs (tenant, (COALESCE(last_sample_ms, start_ms, 0)), job_id);
    CREATE INDEX jobs_page_by_gpus ON jobs (tenant, (COALESCE(world_size, 0)), job_id);
    CREATE INDEX jobs_page_by_status ON jobs (tenant, status, last_sample_ms);`;

/**
 * The fleet's filter menus and status counts, kept by the store as jobs are written (`job_facets`): one row
 * per (tenant, kind, value) with the number of jobs that have it — kind `status` (the stored status), `owner`,
 * `project`, `tag`. Counting them over 100,000 jobs at each fleet-page load took about half a second (a pass
 * over every job's tags); reading the kept counts touches one row per distinct value. Triggers keep them, so
 * every writer (the processor's merges, bulk imports, a future delete) keeps them right without knowing.
 * A count may reach 0 and stay: readers skip those rows. Migration 111 counts the jobs already stored.
 */
const FACET_TABLE = `CREATE TABLE job_facets (
      tenant TEXT NOT NULL,
      kind TEXT NOT NULL,
      value TEXT NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (tenant, kind, value)
    )`;

/** The facet rows of the jobs in `source` (an alias with tenant, job_id, status, owner, project, tags). */
const facetBackfill = (tagValues: string) => `INSERT INTO job_facets (tenant, kind, value, n)
      SELECT tenant, 'status', status, COUNT(*) FROM jobs GROUP BY tenant, status;
    INSERT INTO job_facets (tenant, kind, value, n)
      SELECT tenant, 'owner', owner, COUNT(*) FROM jobs GROUP BY tenant, owner;
    INSERT INTO job_facets (tenant, kind, value, n)
      SELECT tenant, 'project', project, COUNT(*) FROM jobs GROUP BY tenant, project;
    INSERT INTO job_facets (tenant, kind, value, n)
      SELECT tenant, 'tag', v, COUNT(*) FROM (SELECT DISTINCT jobs.tenant, jobs.job_id, ${tagValues}) t
      GROUP BY tenant, v;`;

/** SQLite trigger bodies: count the new row's facets, and uncount the old row's (shared by the triggers). */
const SQLITE_COUNT_NEW = `      INSERT INTO job_facets (tenant, kind, value, n)
        VALUES (NEW.tenant, 'status', NEW.status, 1), (NEW.tenant, 'owner', NEW.owner, 1),
          (NEW.tenant, 'project', NEW.project, 1)
        ON CONFLICT (tenant, kind, value) DO UPDATE SET n = n + 1;
      INSERT INTO job_facets (tenant, kind, value, n)
        SELECT DISTINCT NEW.tenant, 'tag', value, 1 FROM json_each(NEW.tags) WHERE true
        ON CONFLICT (tenant, kind, value) DO UPDATE SET n = n + 1;
`;
const SQLITE_UNCOUNT_OLD = `      UPDATE job_facets SET n = n - 1 WHERE tenant = OLD.tenant AND (
        (kind = 'status' AND value = OLD.status) OR (kind = 'owner' AND value = OLD.owner)
        OR (kind = 'project' AND value = OLD.project)
        OR (kind = 'tag' AND value IN (SELECT value FROM json_each(OLD.tags))));
`;

/** SQLite: row triggers (one writer at a time, so no two transactions wait on each other's counts). */
const SQLITE_FACET_COUNTS = `${FACET_TABLE} WITHOUT ROWID;
    ${facetBackfill('t.value AS v FROM jobs, json_each(jobs.tags) t')}
    CREATE TRIGGER job_facets_insert AFTER INSERT ON jobs BEGIN
${SQLITE_COUNT_NEW}    END;
    CREATE TRIGGER job_facets_delete AFTER DELETE ON jobs BEGIN
${SQLITE_UNCOUNT_OLD}    END;
    CREATE TRIGGER job_facets_update AFTER UPDATE OF tenant, status, owner, project, tags ON jobs
      WHEN OLD.tenant IS NOT NEW.tenant OR OLD.status IS NOT NEW.status OR OLD.owner IS NOT NEW.owner
        OR OLD.project IS NOT NEW.project OR OLD.tags IS NOT NEW.tags
    BEGIN
${SQLITE_UNCOUNT_OLD}${SQLITE_COUNT_NEW}    END;`;

/**
 * PostgreSQL: statement triggers over the transition tables. A statement's changes are summed per facet
 * first, so a merge that changes no facet (most: a newer sample time) touches no count, and counts are
 * updated in key order, so two processors' concurrent upserts take the count rows' locks in the same order
 * and cannot deadlock on them.
 */
const facetDelta = (table: string, sign: number) =>
  `SELECT j.tenant, f.kind, f.value, ${sign} AS d FROM ${table} j, LATERAL job_facet_values(j.status, j.owner, j.project, j.tags) f`;
const applyFacetDelta = (deltas: string) => `INSERT INTO job_facets AS c (tenant, kind, value, n)
        SELECT tenant, kind, value, SUM(d) FROM (${deltas}) x
        GROUP BY tenant, kind, value HAVING SUM(d) <> 0 ORDER BY tenant, kind, value
        ON CONFLICT (tenant, kind, value) DO UPDATE SET n = c.n + excluded.n;`;
const PG_FACET_COUNTS = `${FACET_TABLE};
    ${facetBackfill('t.v FROM jobs, jsonb_array_elements_text(jobs.tags) AS t(v)')}
    CREATE FUNCTION job_facet_values(st TEXT, ow TEXT, pr TEXT, tg JSONB) RETURNS TABLE (kind TEXT, value TEXT)
      LANGUAGE sql IMMUTABLE AS $$
        SELECT 'status', st UNION ALL SELECT 'owner', ow UNION ALL SELECT 'project', pr
        UNION ALL SELECT DISTINCT 'tag', t FROM jsonb_array_elements_text(tg) AS t
      $$;
    CREATE FUNCTION job_facets_count() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          ${applyFacetDelta(facetDelta('new_jobs', 1))}
        ELSIF TG_OP = 'UPDATE' THEN
          ${applyFacetDelta(`${facetDelta('new_jobs', 1)} UNION ALL ${facetDelta('old_jobs', -1)}`)}
        ELSE
          ${applyFacetDelta(facetDelta('old_jobs', -1))}
        END IF;
        RETURN NULL;
      END
    $$;
    CREATE TRIGGER job_facets_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
      FOR EACH STATEMENT EXECUTE FUNCTION job_facets_count();
    CREATE TRIGGER job_facets_update AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
      FOR EACH STATEMENT EXECUTE FUNCTION job_facets_count();
    CREATE TRIGGER job_facets_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs
      FOR EACH STATEMENT EXECUTE FUNCTION job_facets_count();`;

const FACET_COUNTS_DESCRIPTION = 'jobs: facet counts (status, owner, project, tag) kept by triggers';

export const JOB_PAGE_MIGRATIONS: readonly Migration[] = [
  { version: 110, description: 'jobs: indexes for paged, sorted fleet lists', sql: JOB_PAGE_INDEXES },
  { version: 111, description: FACET_COUNTS_DESCRIPTION, sql: SQLITE_FACET_COUNTS },
];
export const JOB_PAGE_PG_MIGRATIONS: readonly Migration[] = [
  { version: 110, description: 'jobs: indexes for paged, sorted fleet lists', sql: JOB_PAGE_INDEXES },
  { version: 111, description: FACET_COUNTS_DESCRIPTION, sql: PG_FACET_COUNTS },
];

type Dialect = 'sqlite' | 'postgres';

/** Builds one statement: values go to `params` in the order their placeholders appear. */
class SqlParams {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: Dialect) {}
  add(v: unknown): string {
    this.values.push(v);
    return this.dialect === 'sqlite' ? '?' : `$${this.values.length}`;
  }
}

/** The status readers see; `now` and `silentAfterMs` are integers checked by the caller. */
function liveStatusSql(nowMs: number, silentAfterMs: number): string {
  return `CASE WHEN status = 'running' AND last_sample_ms IS NOT NULL AND ${nowMs} - last_sample_ms > ${silentAfterMs}
      THEN 'unknown' ELSE status END`;
}

function sortSql(key: JobSortKey, rankedSql: string, order: 'asc' | 'desc'): string {
  const missing = order === 'asc' ? MISSING_HIGH : MISSING_LOW;
  switch (key) {
    case 'util':
      return `COALESCE(gpu_utilization_last, ${missing})`;
    case 'throughput':
      return `COALESCE(tokens_per_second_last, samples_per_second_last, ${missing})`;
    case 'step':
      return `COALESCE(step_last, ${missing})`;
    case 'loss':
      return `CASE WHEN loss_last IS NOT NULL THEN loss_last WHEN loss_last_ms IS NOT NULL THEN ${NAN_LOSS} ELSE ${missing} END`;
    case 'last_sample':
      return 'COALESCE(last_sample_ms, start_ms, 0)';
    case 'start':
      return 'COALESCE(start_ms, 0)';
    case 'gpus':
      return 'COALESCE(world_size, 0)';
    case 'status':
      return 'live_status';
    case 'ranked':
      // Listed jobs by position, then every other job by recent activity: one non-NULL number, so keyset
      // cursors work as for any column (activity in ms stays below 10^13 until the year 2286).
      return `${rankedSql} * 10000000000000 + COALESCE(last_sample_ms, start_ms, 0)`;
    default:
      return key;
  }
}

/** The WHERE of a selection (tenant and filters), over the `live` subquery's columns. */
function whereSql(
  p: SqlParams,
  dialect: Dialect,
  tenant: string | null,
  q: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
) {
  const where: string[] = [];
  if (tenant !== null) where.push(`tenant = ${p.add(tenant)}`);
  if (q.status) where.push(`live_status = ${p.add(q.status)}`);
  if (q.project !== undefined) where.push(`project = ${p.add(q.project)}`);
  if (q.owner !== undefined) where.push(`owner = ${p.add(q.owner)}`);
  if (q.name !== undefined) where.push(`name = ${p.add(q.name)}`);
  if (q.startedBefore !== undefined)
    where.push(`start_ms IS NOT NULL AND start_ms <= ${p.add(checkInt('startedBefore', q.startedBefore))}`);
  if (q.search) {
    const like = `%${q.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const op = dialect === 'sqlite' ? 'LIKE' : 'ILIKE'; // SQLite's LIKE is case-insensitive for ASCII
    where.push(
      `(${['job_id', 'name', 'project', 'owner'].map((c) => `${c} ${op} ${p.add(like)} ESCAPE '\\'`).join(' OR ')})`,
    );
  }
  if (q.tag !== undefined)
    where.push(
      dialect === 'sqlite'
        ? `EXISTS (SELECT 1 FROM json_each(tags) WHERE json_each.value = ${p.add(q.tag)})`
        : `tags @> jsonb_build_array(${p.add(q.tag)}::text)`,
    );
  // Keys split into (tenant, job_id) so the primary key finds each job instead of a scan of the fleet.
  const keyIn = (keys: readonly string[]) => {
    const pairs = keys.map(splitJobKey);
    return dialect === 'sqlite'
      ? `(tenant, job_id) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(${p.add(JSON.stringify(pairs))}))`
      : `(tenant, job_id) IN (SELECT * FROM unnest(${p.add(pairs.map((x) => x[0]))}::text[], ${p.add(pairs.map((x) => x[1]))}::text[]))`;
  };
  if (q.ids) where.push(q.ids.length === 0 ? '1 = 0' : keyIn(q.ids));
  if (q.exclude && q.exclude.length > 0) where.push(`NOT ${keyIn(q.exclude)}`);
  return where;
}

/** `tenant/job_id` → [tenant, job_id]; the tenant (a name without '/') ends at the first slash. */
export function splitJobKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return slash < 0 ? ['', key] : [key.slice(0, slash), key.slice(slash + 1)];
}

/** `SELECT … FROM jobs` with the live status and the ranked position as columns. */
function liveSql(
  p: SqlParams,
  dialect: Dialect,
  nowMs: number,
  silentAfterMs: number,
  ranked: readonly string[],
  summaries = false,
) {
  // Position in `ranked`, highest first: n for the first key, 1 for the last, 0 for jobs not listed. A join
  // on the primary key, not a lookup per row: the list is short, the fleet long.
  let rankedSql = '0';
  let join = '';
  if (ranked.length > 0) {
    const pairs = ranked.map(splitJobKey);
    if (dialect === 'sqlite') {
      // A LEFT JOIN would rescan the list for every job here; the IN test is one probe of an ephemeral index
      // per job, and the position is looked up only for the few listed jobs.
      const list = p.add(JSON.stringify(pairs));
      const again = p.add(JSON.stringify(pairs));
      rankedSql = `CASE WHEN (jobs.tenant, jobs.job_id) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(${list}))
        THEN (SELECT ${ranked.length} - MIN(key) FROM json_each(${again}) WHERE json_extract(value, '$[0]') = jobs.tenant
          AND json_extract(value, '$[1]') = jobs.job_id) ELSE 0 END`;
    } else {
      rankedSql = 'COALESCE(rk.rank, 0)';
      join = ` LEFT JOIN (SELECT t, j, ${ranked.length} + 1 - MIN(pos) AS rank
          FROM unnest(${p.add(pairs.map((x) => x[0]))}::text[], ${p.add(pairs.map((x) => x[1]))}::text[]) WITH ORDINALITY AS u(t, j, pos)
          GROUP BY t, j) rk ON rk.t = jobs.tenant AND rk.j = jobs.job_id`;
    }
  }
  // The kept live numbers, for a sort by one of them: one primary-key probe per job.
  const summaryColumns = summaries
    ? `, s.gpu_utilization_last, s.tokens_per_second_last, s.samples_per_second_last, s.step_last,
      s.loss_last, s.loss_last_ms`
    : '';
  const summaryJoin = summaries
    ? ' LEFT JOIN job_summaries s ON s.tenant = jobs.tenant AND s.job_id = jobs.job_id'
    : '';
  return `SELECT jobs.tenant, jobs.job_id, name, project, owner, framework, world_size, config, tags, metric_keys,
      ${liveStatusSql(nowMs, silentAfterMs)} AS live_status, start_ms, end_ms, last_sample_ms,
      ${rankedSql} AS ranked${summaryColumns}
    FROM jobs${join}${summaryJoin}`;
}

function checkInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${name} must be an integer, got ${v}`);
  return v;
}

export interface JobPageStatements {
  readonly page: { sql: string; params: unknown[] };
  readonly count: { sql: string; params: unknown[] };
}

/**
 * The page and count statements of a query. The sort value is selected as `sort_value` so the caller can
 * build the next cursor from the last row.
 */
export function jobPageSql(
  dialect: Dialect,
  tenant: string | null,
  nowMs: number,
  silentAfterMs: number,
  q: JobPageQuery,
): JobPageStatements {
  checkInt('nowMs', nowMs);
  checkInt('silentAfterMs', silentAfterMs);
  const limit = checkInt('limit', q.limit);
  const ranked = q.sort === 'ranked' ? (q.ranked ?? []) : [];
  if (ranked.length > MAX_RANKED_KEYS) throw new RangeError(`ranked lists at most ${MAX_RANKED_KEYS} jobs`);
  const dir = q.order === 'asc' ? 'ASC' : 'DESC';

  const p = new SqlParams(dialect);
  const live = liveSql(p, dialect, nowMs, silentAfterMs, ranked, SUMMARY_SORTS.has(q.sort));
  const where = whereSql(p, dialect, tenant, q);
  const sortExpr = sortSql(q.sort, 'ranked', q.order);
  // The filters go on the outer query so that `live_status` can be used; the planner pushes the others down.
  const inner = `SELECT *, ${sortExpr} AS sort_value FROM (${live}) live${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`;
  let outerWhere = '';
  if (q.after) {
    const cmp = q.order === 'asc' ? '>' : '<';
    outerWhere = ` WHERE (sort_value, tenant, job_id) ${cmp} (${p.add(q.after.value)}, ${p.add(q.after.tenant)}, ${p.add(q.after.jobId)})`;
  }
  let sql = `SELECT * FROM (${inner}) sorted${outerWhere}
    ORDER BY sort_value ${dir}, tenant ${dir}, job_id ${dir} LIMIT ${limit}`;
  if (!q.after && q.offset) sql += ` OFFSET ${checkInt('offset', q.offset)}`;

  const kept = keptCountSql(dialect, tenant, q);
  if (kept) return { page: { sql, params: p.values }, count: kept };
  const c = new SqlParams(dialect);
  const countLive = liveSql(c, dialect, nowMs, silentAfterMs, []);
  const countWhere = whereSql(c, dialect, tenant, q);
  const count = `SELECT COUNT(*) AS n FROM (${countLive}) live${countWhere.length ? ` WHERE ${countWhere.join(' AND ')}` : ''}`;
  return { page: { sql, params: p.values }, count: { sql: count, params: c.values } };
}

/**
 * The count of a selection the kept facet counts answer (`job_facets`): the whole fleet, or one project,
 * owner or tag — the fleet page's usual views, whose count was a pass over every job at each load. Other
 * selections (a status, which depends on now; a search; several filters) are counted over the jobs.
 */
function keptCountSql(
  dialect: Dialect,
  tenant: string | null,
  q: JobPageQuery,
): { sql: string; params: unknown[] } | undefined {
  const facets = { project: q.project, owner: q.owner, tag: q.tag };
  const given = Object.entries(facets).filter(([, v]) => v !== undefined);
  const other =
    q.status !== undefined ||
    q.search ||
    q.name !== undefined ||
    q.startedBefore !== undefined ||
    q.ids !== undefined ||
    (q.exclude !== undefined && q.exclude.length > 0);
  if (other || given.length > 1) return undefined;
  const c = new SqlParams(dialect);
  const where = tenant === null ? [] : [`tenant = ${c.add(tenant)}`];
  if (given.length === 0) where.push(`kind = 'status'`);
  else where.push(`kind = ${c.add(given[0]![0])}`, `value = ${c.add(given[0]![1])}`);
  return {
    sql: `SELECT COALESCE(SUM(n), 0) AS n FROM job_facets WHERE ${where.join(' AND ')}`,
    params: c.values,
  };
}

/** A job's identity and grouping columns: what a heatmap needs to filter and group its rows. */
export interface JobGroupRow {
  readonly tenant: string;
  readonly job_id: string;
  readonly project: string;
  readonly owner: string;
}

/** Most jobs one `groups` read returns. */
export const MAX_GROUP_ROWS = 1_000_000;

/** Every job matching the filters (no paging), with its project and owner only. */
export function jobGroupSql(
  dialect: Dialect,
  tenant: string | null,
  nowMs: number,
  silentAfterMs: number,
  q: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
): { sql: string; params: unknown[] } {
  checkInt('nowMs', nowMs);
  checkInt('silentAfterMs', silentAfterMs);
  const p = new SqlParams(dialect);
  const live = liveSql(p, dialect, nowMs, silentAfterMs, []);
  const where = whereSql(p, dialect, tenant, q);
  return {
    sql: `SELECT tenant, job_id, project, owner FROM (${live}) live${where.length ? ` WHERE ${where.join(' AND ')}` : ''} LIMIT ${MAX_GROUP_ROWS}`,
    params: p.values,
  };
}

/**
 * Facet statements, over the kept counts (`job_facets`): stored status counts, the running jobs that readers
 * see as `unknown` (silent: one range of the status index), and the values of each menu. Every statement
 * takes `params` (the tenant, when one).
 */
export function jobFacetSql(dialect: Dialect, tenant: string | null, nowMs: number, silentAfterMs: number) {
  checkInt('nowMs', nowMs);
  checkInt('silentAfterMs', silentAfterMs);
  const p = new SqlParams(dialect);
  const scope = tenant === null ? '' : `tenant = ${p.add(tenant)} AND `;
  const menu = (kind: string, limit: number) =>
    tenant === null
      ? `SELECT DISTINCT value AS v FROM job_facets WHERE kind = '${kind}' AND n > 0 ORDER BY v LIMIT ${limit}`
      : `SELECT value AS v FROM job_facets WHERE ${scope}kind = '${kind}' AND n > 0 ORDER BY v LIMIT ${limit}`;
  return {
    params: p.values,
    byStatus: `SELECT value AS s, SUM(n) AS n FROM job_facets WHERE ${scope}kind = 'status' GROUP BY value`,
    silent: `SELECT COUNT(*) AS n FROM jobs WHERE ${scope}status = 'running'
      AND last_sample_ms < ${checkInt('silentBefore', nowMs - silentAfterMs)}`,
    owners: menu('owner', MAX_FACET_VALUES + 1),
    projects: menu('project', MAX_FACET_VALUES + 1),
    tags: menu('tag', MAX_FACET_VALUES),
    tenants: `SELECT DISTINCT tenant AS v FROM job_facets WHERE ${scope}kind = 'status' AND n > 0 ORDER BY v LIMIT ${MAX_FACET_VALUES}`,
  };
}

/** Filter menus list at most this many values each (beyond it the search box is the way). */
export const MAX_FACET_VALUES = 500;

/**
 * The facets from the rows of `jobFacetSql`'s statements: `silent` running jobs are counted as `unknown`,
 * the status readers see.
 */
export function facetsFrom(
  byStatus: readonly { s: string; n: number | string }[],
  silent: number | string,
  owners: readonly { v: string }[],
  projects: readonly { v: string }[],
  tags: readonly { v: string }[],
  tenants: readonly { v: string }[],
): JobFacets {
  const counts: Partial<Record<JobStatus, number>> = {};
  for (const r of byStatus)
    if ((JOB_STATUSES as readonly string[]).includes(r.s) && Number(r.n) > 0)
      counts[r.s as JobStatus] = Number(r.n);
  const quiet = Number(silent);
  if (quiet > 0) {
    const running = (counts.running ?? 0) - quiet;
    if (running > 0) counts.running = running;
    else delete counts.running;
    counts.unknown = (counts.unknown ?? 0) + quiet;
  }
  const values = (rows: readonly { v: string }[]) =>
    rows
      .map((r) => r.v)
      .filter((v) => v !== '')
      .slice(0, MAX_FACET_VALUES);
  return {
    byStatus: counts,
    owners: values(owners),
    projects: values(projects),
    tags: values(tags),
    tenants: values(tenants),
  };
}

/** A page row: the jobs row with its live status and sort value. */
export interface JobPageRow {
  tenant: string;
  job_id: string;
  live_status: string;
  sort_value: string | number;
}

/** The cursor after the last row of a full page; null when the page is the last. */
export function nextCursor(rows: readonly JobPageRow[], limit: number): JobCursor | null {
  if (rows.length < limit) return null;
  const last = rows[rows.length - 1]!;
  const value = typeof last.sort_value === 'bigint' ? Number(last.sort_value) : last.sort_value;
  return { value, tenant: last.tenant, jobId: last.job_id };
}

/**
 * Replaces a stored job's columns, as an UPDATE: `INSERT OR REPLACE` deletes the old row without firing
 * delete triggers (SQLite's recursive_triggers is off), which would leave its facet counts behind.
 */
export const REPLACE_JOB = `ON CONFLICT (tenant, job_id) DO UPDATE SET name = excluded.name,
      project = excluded.project, owner = excluded.owner, framework = excluded.framework,
      world_size = excluded.world_size, config = excluded.config, tags = excluded.tags,
      metric_keys = excluded.metric_keys, status = excluded.status, start_ms = excluded.start_ms,
      end_ms = excluded.end_ms, last_sample_ms = excluded.last_sample_ms`;

/**
 * Writes whole jobs straight into the SQLite store in one transaction, replacing any with the same key: the
 * fast path for importing a fleet's history and for tests and benchmarks of 100,000-job fleets (about a
 * second per 100,000 rows). Live writers go through `JobStore`, whose merge rules this bypasses.
 */
export function insertJobsBulk(db: Db, jobs: Iterable<JobInfo>): number {
  const insert = db.prepare(`INSERT INTO jobs
    (tenant, job_id, name, project, owner, framework, world_size, config, tags, metric_keys, status, start_ms, end_ms, last_sample_ms)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ${REPLACE_JOB}`);
  let n = 0;
  db.transaction(() => {
    for (const j of jobs) {
      insert.run(
        j.tenant,
        j.jobId,
        j.name,
        j.project,
        j.owner,
        j.framework,
        j.worldSize,
        JSON.stringify(j.config),
        JSON.stringify(j.tags),
        JSON.stringify(j.metricKeys),
        j.status,
        j.startMs,
        j.endMs,
        j.lastSampleMs,
      );
      n++;
    }
  })();
  return n;
}
