/**
 * Job metadata: one contract (`JobRepository`) for the processor (the only writer: it applies job events and
 * notes sample times in bus order) and the query and alerting roles (readers), on SQLite (embedded) or
 * PostgreSQL (`meta.kind: postgres`, `./postgres/jobs.ts`).
 *
 * The writer buffers *deltas*: what it learnt about each job since its last flush, merged in memory (no read,
 * synchronous or not, on a job it has not seen), and written in one batch per checkpoint. The store merges
 * each delta into the stored row. Because a writer never writes more than it learnt since its last flush, a
 * processor that just took a partition over (and never read the job) cannot undo what the previous owner
 * stored, and replaying a batch is harmless.
 *
 * Merging rules (so that every rank may send `start` without coordination, and replays are harmless):
 * scalar fields take the newest non-empty value (a name equal to the job id is the placeholder for "not
 * announced"); `config` and `metricKeys` are merged key by key; `tags` are a union; `startMs` is the earliest
 * start; `lastSampleMs` the latest sample; a final status (completed/failed) is never left by later events
 * or samples, and its `endMs` stays; samples turn a `queued` job `running`.
 *
 * These rules are written here once as `applyJobEvent`/`noteJobSamples` (event → delta) and `mergeJobDelta`
 * (older ⊕ newer: used to fold a failed flush back and by the SQLite store to merge into the stored row).
 * PostgreSQL runs the same `mergeJobDelta` rule in SQL (one statement per batch); `jobs.contract.test.ts`
 * runs one suite against both stores so the two cannot drift apart.
 */
import { FINAL_JOB_STATUSES, type JobEvent, type JobInfo, type JobStatus } from '../model/job.js';
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
import type { Db, MetaStore, Migration } from './meta-store.js';
import {
  ConfigKeyCache,
  configKeysSql,
  groupFromRow,
  MAX_RUNS_PAGE,
  mergeRunSummaries,
  noteGaugeInto,
  pageConfigKeys,
  RUN_SUMMARY_MIGRATIONS,
  type RunPage,
  type RunQuery,
  type RunRepository,
  type RunSqlRow,
  type RunSummary,
  runStatements,
  SUMMARY_GAUGES,
  summaryFromRow,
  summaryToRow,
  summaryUpsertSql,
} from './runs.js';

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

export interface JobListFilter {
  /** The status readers see (so `unknown` finds running jobs without recent samples). */
  readonly status?: JobStatus;
  /** Case-insensitive substring of job id, name, project or owner. */
  readonly search?: string;
  /** At most this many jobs; without it, every matching job (no silent cap: callers that list mean all). */
  readonly limit?: number;
}

/** The job-metadata contract shared by the processor (writer) and the query/alerting roles (readers). */
export interface JobRepository {
  /** Merges a job event into the pending delta; no I/O. */
  applyEvent(tenant: string, ev: JobEvent): void;
  /** Records that samples of the job between `minT` and `maxT` arrived; creates the job if nobody announced it. */
  noteSamples(tenant: string, jobId: string, minT: number, maxT: number): void;
  /**
   * Writes every delta since the last flush in one batch. Flushes run one at a time, in call order. On failure
   * the deltas are kept (folded into newer ones) for the next flush, and the error is thrown.
   */
  flush(signal?: AbortSignal): Promise<void>;
  /** One job with the status readers see; undefined when there is no such job. */
  get(tenant: string, jobId: string, nowMs: number, signal?: AbortSignal): Promise<JobInfo | undefined>;
  /** Jobs of one tenant (or all tenants when null), most recently active first. */
  list(
    tenant: string | null,
    nowMs: number,
    filter?: JobListFilter,
    signal?: AbortSignal,
  ): Promise<JobInfo[]>;
  /** One page of the jobs matching `query`, sorted and counted in the store (./job-page.ts). */
  page(tenant: string | null, nowMs: number, query: JobPageQuery, signal?: AbortSignal): Promise<JobPage>;
  /** Status counts and filter choices over every job of the tenant (all tenants when null). */
  facets(tenant: string | null, nowMs: number, signal?: AbortSignal): Promise<JobFacets>;
  /** Every job matching the filters (paging and sort ignored): identity, project and owner. */
  groups(
    tenant: string | null,
    nowMs: number,
    filter: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
    signal?: AbortSignal,
  ): Promise<JobGroupRow[]>;
}

/** A row store that serves pages and facets (the stores of readers; a processor worker's is write-only). */
export interface JobPageStore {
  page(tenant: string | null, nowMs: number, query: JobPageQuery, signal?: AbortSignal): Promise<JobPage>;
  facets(tenant: string | null, nowMs: number, signal?: AbortSignal): Promise<JobFacets>;
  groups(
    tenant: string | null,
    nowMs: number,
    filter: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
    signal?: AbortSignal,
  ): Promise<JobGroupRow[]>;
}

/**
 * What one writer learnt about a job since its last flush. `status: null`: the delta says nothing about the
 * status (only samples or metadata arrived), so the stored one stays (or `running` for a new job). `summary`:
 * the gauges noted since (runs.ts), absent when none.
 */
export type JobDelta = {
  -readonly [K in keyof JobInfo]: K extends 'status' ? JobStatus | null : JobInfo[K];
} & { summary?: RunSummary };

/** Where deltas are merged and jobs read: SQLite (`SqliteJobRows`) or PostgreSQL (`PgJobRepository`). */
export interface JobRowStore {
  /** Merges each delta into its stored row (`mergeJobDelta`'s rule), all in one transaction. */
  upsert(deltas: readonly JobDelta[], signal?: AbortSignal): Promise<void>;
  get(tenant: string, jobId: string, nowMs: number, signal?: AbortSignal): Promise<JobInfo | undefined>;
  list(
    tenant: string | null,
    nowMs: number,
    filter?: JobListFilter,
    signal?: AbortSignal,
  ): Promise<JobInfo[]>;
  /** The runs table (runs.ts); a store that only writes (a processor worker's) has none. */
  runs?(tenant: string, nowMs: number, query: RunQuery, signal?: AbortSignal): Promise<RunPage>;
}

// ---- the merge rules, written once ------------------------------------------------------------------------

/** A delta that says nothing yet but that the job exists (first heard of at `timeMs`). */
export function blankJobDelta(tenant: string, jobId: string, timeMs: number): JobDelta {
  return {
    tenant,
    jobId,
    name: jobId,
    project: '',
    owner: '',
    framework: '',
    worldSize: null,
    config: {},
    tags: [],
    status: null,
    startMs: timeMs,
    endMs: null,
    lastSampleMs: null,
    metricKeys: {},
  };
}

const isFinal = (s: JobStatus | null): boolean => s !== null && FINAL_JOB_STATUSES.has(s);

/** Merges a job event into `job` (in place). */
export function applyJobEvent(job: JobDelta, ev: JobEvent): void {
  if (ev.name) job.name = ev.name;
  if (ev.project) job.project = ev.project;
  if (ev.owner) job.owner = ev.owner;
  if (ev.framework) job.framework = ev.framework;
  if (typeof ev.worldSize === 'number' && Number.isInteger(ev.worldSize) && ev.worldSize > 0)
    job.worldSize = ev.worldSize;
  if (ev.config && typeof ev.config === 'object') job.config = { ...job.config, ...ev.config };
  if (Array.isArray(ev.tags))
    job.tags = [...new Set([...job.tags, ...ev.tags.filter((t) => typeof t === 'string')])];
  if (ev.metricKeys && typeof ev.metricKeys === 'object')
    job.metricKeys = { ...job.metricKeys, ...ev.metricKeys };
  const final = isFinal(job.status);
  if (ev.kind === 'start') {
    job.startMs = job.startMs === null ? ev.timeMs : Math.min(job.startMs, ev.timeMs);
    if (!final) job.status = 'running';
  } else if (ev.kind === 'update' && ev.status && !final && !FINAL_JOB_STATUSES.has(ev.status)) {
    job.status = ev.status;
  } else if (ev.kind === 'finish' && !final) {
    job.status = ev.status && FINAL_JOB_STATUSES.has(ev.status) ? ev.status : 'completed';
    job.endMs = ev.timeMs;
  }
}

/** Records samples between `minT` and `maxT` in `job` (in place). */
export function noteJobSamples(job: JobDelta, minT: number, maxT: number): void {
  if (job.status === 'queued') job.status = 'running';
  if (job.lastSampleMs === null || maxT > job.lastSampleMs) job.lastSampleMs = maxT;
  if (job.startMs === null || minT < job.startMs) job.startMs = minT;
}

const minOf = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.min(a, b);
const maxOf = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.max(a, b);

/**
 * `older` ⊕ `newer` of the same job: what a store holding `older` holds after `newer` is written. The rule
 * `PgJobRepository`'s upsert statement runs in SQL; keep the two in step (the contract suite checks them).
 */
export function mergeJobDelta(older: JobDelta, newer: JobDelta): JobDelta {
  const merged = mergeJobFields(older, newer);
  if (older.summary || newer.summary) merged.summary = mergeRunSummaries(older.summary, newer.summary);
  return merged;
}

function mergeJobFields(older: JobDelta, newer: JobDelta): JobDelta {
  const olderFinal = isFinal(older.status);
  let status: JobStatus | null;
  if (olderFinal) status = older.status;
  else if (newer.status !== null) status = newer.status;
  else if (older.status === 'queued' && newer.lastSampleMs !== null) status = 'running';
  else status = older.status;
  return {
    tenant: older.tenant,
    jobId: older.jobId,
    name: newer.name === '' || newer.name === newer.jobId ? older.name : newer.name,
    project: newer.project || older.project,
    owner: newer.owner || older.owner,
    framework: newer.framework || older.framework,
    worldSize: newer.worldSize ?? older.worldSize,
    config: { ...older.config, ...newer.config },
    tags: [...new Set([...older.tags, ...newer.tags])],
    metricKeys: { ...older.metricKeys, ...newer.metricKeys },
    status,
    startMs: minOf(older.startMs, newer.startMs),
    endMs: olderFinal ? older.endMs : (newer.endMs ?? older.endMs),
    lastSampleMs: maxOf(older.lastSampleMs, newer.lastSampleMs),
  };
}

/** A stored job as readers see it: a `running` job silent for longer than `silentAfterMs` is `unknown`. */
export function withLiveStatus(job: JobInfo, nowMs: number, silentAfterMs: number): JobInfo {
  return job.status === 'running' && job.lastSampleMs !== null && nowMs - job.lastSampleMs > silentAfterMs
    ? { ...job, status: 'unknown' }
    : job;
}

// ---- the repository: the writer's deltas in memory, reads and merges in a row store -----------------------

const keyOf = (tenant: string, jobId: string): string => `${tenant}\u0000${jobId}`;

/**
 * The `JobRepository` of either backend: the writer's pending deltas (shared merge rules) over a `JobRowStore`.
 * `new JobStore(meta, silentAfterMs)` keeps the embedded (SQLite) form; `new JobStore(rows)` takes any store.
 */
export class JobStore implements JobRepository, RunRepository {
  readonly rows: JobRowStore;
  /** Deltas since the last flush, by `tenant \0 jobId`. Memory: the jobs active in one checkpoint interval. */
  private pending = new Map<string, JobDelta>();
  /** The flush in progress: flushes are serialized so an older delta is never written after a newer one. */
  private flushing: Promise<void> = Promise.resolve();
  /**
   * Told about each job delta that could not be written while others of its flush could: that delta is
   * dropped (a poison job must not keep every other job unwritten, issue 16 item 3) and the caller logs it.
   */
  onDroppedDelta: ((tenant: string, jobId: string, err: unknown) => void) | undefined;

  constructor(rows: JobRowStore);
  constructor(meta: MetaStore, silentAfterMs: number);
  constructor(source: JobRowStore | MetaStore, silentAfterMs?: number) {
    if ('upsert' in source) {
      this.rows = source;
    } else {
      if (silentAfterMs === undefined)
        throw new Error('JobStore(meta, silentAfterMs): silentAfterMs is required');
      this.rows = new SqliteJobRows(source, silentAfterMs);
    }
  }

  applyEvent(tenant: string, ev: JobEvent): void {
    applyJobEvent(this.delta(tenant, ev.jobId, ev.timeMs), ev);
  }

  noteSamples(tenant: string, jobId: string, minT: number, maxT: number): void {
    noteJobSamples(this.delta(tenant, jobId, minT), minT, maxT);
  }

  /**
   * Records gauge `gauge` (an index of `SUMMARY_GAUGES`) of a job: the newest of its samples just read
   * (`lastMs`, `last`) and the best finite one (null: none). Called once per series per record, not per sample.
   */
  noteGauge(
    tenant: string,
    jobId: string,
    gauge: number,
    lastMs: number,
    last: number,
    best: number | null,
  ): void {
    const delta = this.delta(tenant, jobId, lastMs);
    delta.summary ??= {};
    noteGaugeInto(delta.summary, SUMMARY_GAUGES[gauge]!, lastMs, last, best);
  }

  flush(signal?: AbortSignal): Promise<void> {
    const run = this.flushing.then(() => this.flushPending(signal));
    // The chain must not stay rejected: the next flush retries whatever this one could not write.
    this.flushing = run.catch(() => {});
    return run;
  }

  get(tenant: string, jobId: string, nowMs: number, signal?: AbortSignal): Promise<JobInfo | undefined> {
    return this.rows.get(tenant, jobId, nowMs, signal);
  }

  list(
    tenant: string | null,
    nowMs: number,
    filter: JobListFilter = {},
    signal?: AbortSignal,
  ): Promise<JobInfo[]> {
    return this.rows.list(tenant, nowMs, filter, signal);
  }

  runs(tenant: string, nowMs: number, query: RunQuery, signal?: AbortSignal): Promise<RunPage> {
    if (!this.rows.runs) throw new Error('this job store does not serve reads');
    return this.rows.runs(tenant, nowMs, query, signal);
  }

  page(tenant: string | null, nowMs: number, query: JobPageQuery, signal?: AbortSignal): Promise<JobPage> {
    if (query.sort === 'ranked' && !query.after) return this.rankedPage(tenant, nowMs, query, signal);
    return this.pageStore().page(tenant, nowMs, query, signal);
  }

  /**
   * The ranked order without a sort over the fleet: the listed jobs (a few hundred at most) by rank, and the
   * rest by activity on its index, excluding them — the same order `sort_value` defines, but a deep page
   * costs an index walk instead of sorting 100,000 computed values. Descending: listed jobs first.
   */
  private async rankedPage(
    tenant: string | null,
    nowMs: number,
    query: JobPageQuery,
    signal?: AbortSignal,
  ): Promise<JobPage> {
    const store = this.pageStore();
    const ranked = query.ranked ?? [];
    const offset = query.offset ?? 0;
    const listed =
      ranked.length === 0
        ? { jobs: [], total: 0, next: null }
        : await store.page(
            tenant,
            nowMs,
            {
              ...query,
              ids: query.ids ? query.ids.filter((k) => ranked.includes(k)) : ranked,
              offset: 0,
              limit: ranked.length,
            },
            signal,
          );
    const restQuery: JobPageQuery = {
      ...query,
      sort: 'last_sample',
      ranked: undefined,
      exclude: [...(query.exclude ?? []), ...ranked],
    };
    const listedFirst = query.order === 'desc';
    const head = listedFirst ? listed.jobs : undefined;
    const headCount = listedFirst ? listed.total : undefined;
    if (head !== undefined && headCount !== undefined) {
      const fromHead = head.slice(offset, offset + query.limit);
      const restOffset = Math.max(0, offset - headCount);
      const rest = await store.page(
        tenant,
        nowMs,
        { ...restQuery, offset: restOffset, limit: Math.max(1, query.limit - fromHead.length) },
        signal,
      );
      const jobs = [...fromHead, ...(fromHead.length < query.limit ? rest.jobs : [])];
      return { jobs, total: headCount + rest.total, next: null };
    }
    // Ascending: unlisted jobs by activity, then the listed ones, lowest rank first.
    const rest = await store.page(tenant, nowMs, { ...restQuery, offset }, signal);
    const tail = listed.jobs; // in the query's order: lowest rank first
    const fromTail =
      rest.jobs.length < query.limit
        ? tail.slice(
            Math.max(0, offset - rest.total),
            Math.max(0, offset - rest.total) + query.limit - rest.jobs.length,
          )
        : [];
    return { jobs: [...rest.jobs, ...fromTail], total: rest.total + listed.total, next: null };
  }

  facets(tenant: string | null, nowMs: number, signal?: AbortSignal): Promise<JobFacets> {
    return this.pageStore().facets(tenant, nowMs, signal);
  }

  groups(
    tenant: string | null,
    nowMs: number,
    filter: Omit<JobPageQuery, 'sort' | 'order' | 'limit'>,
    signal?: AbortSignal,
  ): Promise<JobGroupRow[]> {
    return this.pageStore().groups(tenant, nowMs, filter, signal);
  }

  private pageStore(): JobPageStore {
    const rows = this.rows as Partial<JobPageStore>;
    if (!rows.page || !rows.facets || !rows.groups)
      throw new Error('this job store does not serve pages (a write-only store)');
    return rows as JobPageStore;
  }

  private async flushPending(signal?: AbortSignal): Promise<void> {
    if (this.pending.size === 0) return;
    let batch = this.pending;
    this.pending = new Map();
    try {
      try {
        await this.rows.upsert([...batch.values()], signal);
      } catch (err) {
        if (!isPoison(err)) throw err;
        // Some delta is poison (the store cannot take it, e.g. too deep for JSON.stringify): write the jobs one
        // at a time, drop the poison ones (told to `onDroppedDelta`) so they cannot hold every other job back,
        // and keep the ones that failed for another reason for the next flush.
        const kept = new Map<string, JobDelta>();
        let firstError: unknown;
        for (const [key, delta] of batch) {
          try {
            await this.rows.upsert([delta], signal);
          } catch (one) {
            if (isPoison(one)) this.onDroppedDelta?.(delta.tenant, delta.jobId, one);
            else {
              kept.set(key, delta);
              firstError ??= one;
            }
          }
        }
        batch = kept;
        if (firstError !== undefined) throw firstError;
      }
    } catch (err) {
      // Keep what was not written: fold the failed deltas under whatever arrived since (they are older).
      for (const [key, newer] of this.pending) {
        const older = batch.get(key);
        batch.set(key, older ? mergeJobDelta(older, newer) : newer);
      }
      this.pending = batch;
      throw err;
    }
  }

  private delta(tenant: string, jobId: string, timeMs: number): JobDelta {
    const key = keyOf(tenant, jobId);
    let job = this.pending.get(key);
    if (!job) {
      job = blankJobDelta(tenant, jobId, timeMs);
      this.pending.set(key, job);
    }
    return job;
  }
}

/** Errors that retrying cannot cure: the data itself (e.g. too deep for JSON.stringify), not the store. */
function isPoison(err: unknown): boolean {
  return err instanceof RangeError || err instanceof TypeError;
}

// ---- SQLite ---------------------------------------------------------------------------------------------------

interface JobRow {
  tenant: string;
  job_id: string;
  name: string;
  project: string;
  owner: string;
  framework: string;
  world_size: number | null;
  config: string;
  tags: string;
  metric_keys: string;
  status: string;
  start_ms: number | null;
  end_ms: number | null;
  last_sample_ms: number | null;
}

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
        const merged = stored ? mergeJobFields(fromRow(stored), delta) : delta;
        this.write.run(toRow(merged));
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
    return row ? withLiveStatus(asInfo(fromRow(row)), nowMs, this.silentAfterMs) : undefined;
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
    return (this.db.prepare(sql).all(...all) as JobRow[]).map((r) => asInfo(fromRow(r)));
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
    const runs = all(st.page).map((r) => ({
      job: asInfo(fromRow(r as unknown as JobRow)),
      summary: summaryFromRow(r),
      gpuHours: r.gpu_hours === null ? null : Number(r.gpu_hours),
    }));
    return { total, runs, configKeys: pageConfigKeys(tenantKeys, runs, query) };
  }

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
      jobs: rows.map((r) => asInfo(fromRow({ ...r, status: r.live_status }))),
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

/** A stored row always has a status (a new job without one is written `running`). */
function asInfo(j: JobDelta): JobInfo {
  return { ...j, status: j.status ?? 'running' };
}

function toRow(j: JobDelta): JobRow {
  return {
    tenant: j.tenant,
    job_id: j.jobId,
    name: j.name,
    project: j.project,
    owner: j.owner,
    framework: j.framework,
    world_size: j.worldSize,
    config: JSON.stringify(j.config),
    tags: JSON.stringify(j.tags),
    metric_keys: JSON.stringify(j.metricKeys),
    status: j.status ?? 'running',
    start_ms: j.startMs,
    end_ms: j.endMs,
    last_sample_ms: j.lastSampleMs,
  };
}

function fromRow(r: JobRow): JobDelta {
  return {
    tenant: r.tenant,
    jobId: r.job_id,
    name: r.name,
    project: r.project,
    owner: r.owner,
    framework: r.framework,
    worldSize: r.world_size,
    config: JSON.parse(r.config) as Record<string, unknown>,
    tags: JSON.parse(r.tags) as string[],
    metricKeys: JSON.parse(r.metric_keys) as Record<string, string>,
    status: r.status as JobStatus,
    startMs: r.start_ms,
    endMs: r.end_ms,
    lastSampleMs: r.last_sample_ms,
  };
}
