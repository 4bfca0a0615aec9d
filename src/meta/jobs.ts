/**
 * Job metadata: one contract (`JobRepository`) for the processor (the only writer: it applies job events and
 * notes sample times in bus order) and the query and alerting roles (readers), on SQLite (embedded,
 * `./sqlite-jobs.ts`) or PostgreSQL (`meta.kind: postgres`, `./postgres/jobs.ts`).
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
import type { JobFacets, JobGroupRow, JobPage, JobPageQuery } from './job-page.js';
import type { MetaStore } from './meta-store.js';
import { mergeRunSummaries, noteGaugeInto, type RunSummary, SUMMARY_GAUGES } from './run-summary.js';
import type { RunPage, RunQuery, RunRepository } from './runs.js';
import { SqliteJobRows } from './sqlite-jobs.js';

export interface JobListFilter {
  /** The status readers see (so `unknown` finds running jobs without recent samples). */
  readonly status?: JobStatus;
  /** Case-insensitive substring of job id, name, project or owner. */
  readonly search?: string;
  /** At most this many jobs; without it, every matching job (no silent cap: callers that list mean all). */
  readonly limit?: number;
}

/** The job-metadata contract shared by the processor (writer) and the query/alerting roles (readers). */
export interface JobRepository extends JobPageStore {
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
}

/**
 * The fleet list's reads (`JobRepository`'s too): a row store that serves them is a reader's; a processor
 * worker's is write-only.
 */
export interface JobPageStore {
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

/**
 * What one writer learnt about a job since its last flush. `status: null`: the delta says nothing about the
 * status (only samples or metadata arrived), so the stored one stays (or `running` for a new job). `summary`:
 * the gauges noted since (runs.ts), absent when none.
 */
export type JobDelta = {
  -readonly [K in keyof JobInfo]: K extends 'status' ? JobStatus | null : JobInfo[K];
} & { summary?: RunSummary };

/** Where deltas are merged and jobs read: SQLite (`SqliteJobRows`) or PostgreSQL (`PgJobRepository`). */
export interface JobRowStore extends Pick<JobRepository, 'get' | 'list'> {
  /** Merges each delta into its stored row (`mergeJobDelta`'s rule), all in one transaction. */
  upsert(deltas: readonly JobDelta[], signal?: AbortSignal): Promise<void>;
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

/** `mergeJobDelta` without the summaries: the SQLite store writes those by their own upsert. */
export function mergeJobFields(older: JobDelta, newer: JobDelta): JobDelta {
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
